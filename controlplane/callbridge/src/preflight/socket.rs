//! Checks for the socket backend: addresses bindable, a sample of media ports free and
//! outside the kernel's ephemeral range, the file-descriptor limit for the port range, and
//! the `media.cores`.

use std::net::{SocketAddr, UdpSocket};

use super::{Report, Sys, Verdict};
use crate::config::{bindable, Config};

/// Runs the socket backend's checks into `r`.
pub(super) fn socket(r: &mut Report, sys: &Sys<'_>, cfg: &Config) {
    addresses(r, cfg);
    ports(r, sys, cfg);
    fd_limit(r, sys, cfg);
    cores(r, sys, cfg);
}

fn addresses(r: &mut Report, cfg: &Config) {
    let mut all: Vec<(String, std::net::IpAddr)> = cfg
        .media
        .addresses()
        .into_iter()
        .map(|a| ("media address".to_owned(), a))
        .collect();
    all.extend(
        cfg.sip
            .listen
            .addrs()
            .iter()
            .map(|l| ("sip.listen".to_owned(), l.addr.ip())),
    );
    all.push(("http.listen".to_owned(), cfg.http.listen.ip()));
    for (topic, ip) in all {
        match bindable(ip) {
            Ok(()) => r.push(
                Verdict::Ok,
                topic,
                format!("{ip} is an address of this host"),
            ),
            Err(e) => r.push(
                Verdict::Fail,
                topic,
                format!("{ip} is not an address of this host ({e}); configure it or use another"),
            ),
        }
    }
}

fn ports(r: &mut Report, sys: &Sys<'_>, cfg: &Config) {
    let p = cfg.media.ports;
    let mid = p.first + (p.last - p.first) / 2 / 2 * 2;
    let sample = [p.first, p.first + 1, mid, mid + 1, p.last - 1, p.last];
    let busy: Vec<String> = sample
        .iter()
        .filter(|&&port| UdpSocket::bind(SocketAddr::new(cfg.media.address, port)).is_err())
        .map(ToString::to_string)
        .collect();
    if busy.is_empty() {
        r.push(
            Verdict::Ok,
            "media ports",
            format!("a sample of {p} is free"),
        );
    } else {
        r.push(
            Verdict::Warn,
            "media ports",
            format!(
                "port(s) {} of {p} cannot be bound on {} (in use?); calls on those pairs will fail",
                busy.join(","),
                cfg.media.address
            ),
        );
    }
    let eph = sys
        .read("/proc/sys/net/ipv4/ip_local_port_range")
        .and_then(|s| {
            let mut it = s.split_whitespace().map(str::parse::<u16>);
            Some((it.next()?.ok()?, it.next()?.ok()?))
        });
    match eph {
        Some((lo, hi)) if lo <= p.last && p.first <= hi => r.push(
            Verdict::Warn,
            "ephemeral ports",
            format!(
                "media.ports {p} overlaps the kernel's ephemeral range {lo}-{hi} \
                 (net.ipv4.ip_local_port_range): outgoing connections may take media ports; \
                 move the range or reserve it with net.ipv4.ip_local_reserved_ports"
            ),
        ),
        Some((lo, hi)) => r.push(
            Verdict::Ok,
            "ephemeral ports",
            format!("media.ports {p} is outside the ephemeral range {lo}-{hi}"),
        ),
        None => r.push(
            Verdict::Warn,
            "ephemeral ports",
            "cannot read /proc/sys/net/ipv4/ip_local_port_range",
        ),
    }
}

/// Soft and hard `Max open files` from `/proc/self/limits` (`None`: unlimited or unknown).
fn nofile(sys: &Sys<'_>) -> Option<(u64, u64)> {
    let text = sys.read("/proc/self/limits")?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    let mut it = line["Max open files".len()..].split_whitespace();
    let num = |s: Option<&str>| s.and_then(|s| s.parse::<u64>().ok()).unwrap_or(u64::MAX);
    Some((num(it.next()), num(it.next())))
}

fn fd_limit(r: &mut Report, sys: &Sys<'_>, cfg: &Config) {
    use crate::config::budget::{port_calls, Budget, FIXED_ESTIMATE};
    let topic = "file descriptors";
    let Some((soft, hard)) = nofile(sys) else {
        r.push(
            Verdict::Warn,
            topic,
            "cannot read the limit from /proc/self/limits",
        );
        return;
    };
    // `serve` raises the soft limit to the hard one: the hard limit is what it gets.
    let b = Budget::new(cfg, hard, FIXED_ESTIMATE);
    let ports = port_calls(cfg);
    let p = cfg.media.ports;
    let need = ports as u64 * b.per_call + FIXED_ESTIMATE + crate::config::budget::HTTP_MARGIN;
    match b.calls {
        Some(0) => r.push(
            Verdict::Fail,
            topic,
            format!(
                "hard limit {hard} carries not even one call ({b}): raise it (LimitNOFILE= in the \
                 unit, nofile in limits.conf)"
            ),
        ),
        Some(calls) if calls < ports => r.push(
            Verdict::Warn,
            topic,
            format!(
                "media.ports {p} holds {ports} calls but the hard limit {hard} carries {calls} ({b}): \
                 calls beyond are refused (503, reason descriptors); raise it to {need} \
                 (LimitNOFILE=, limits.conf) or narrow media.ports"
            ),
        ),
        _ => r.push(
            Verdict::Ok,
            topic,
            format!(
                "hard limit {hard} (soft {soft}, raised to it at start) carries the {ports} calls of media.ports {p} ({b})"
            ),
        ),
    }
}

fn cores(r: &mut Report, sys: &Sys<'_>, cfg: &Config) {
    let Some(cores) = &cfg.media.cores else {
        r.push(
            Verdict::Ok,
            "cores",
            "media.cores not set: workers unpinned",
        );
        return;
    };
    let Some(online) = sys.cpus("/sys/devices/system/cpu/online") else {
        r.push(
            Verdict::Warn,
            "cores",
            "cannot read /sys/devices/system/cpu/online",
        );
        return;
    };
    let missing: Vec<String> = cores
        .iter()
        .filter(|&&c| !online.contains(c))
        .map(ToString::to_string)
        .collect();
    if missing.is_empty() {
        r.push(
            Verdict::Ok,
            "cores",
            format!("media.cores {} online", super::list(cores)),
        );
    } else {
        let (v, then) = if cfg.media.allow_missing_cores {
            (
                Verdict::Warn,
                "their workers run unpinned (media.allow_missing_cores)",
            )
        } else {
            (
                Verdict::Fail,
                "serve refuses; name online cores or set media.allow_missing_cores = true",
            )
        };
        r.push(
            v,
            "cores",
            format!(
                "core(s) {} not online (online: {online}); {then}",
                missing.join(",")
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// A fake `/` in a temp dir, removed on drop.
    struct Fake(std::path::PathBuf);

    impl Drop for Fake {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    impl Fake {
        fn path(&self) -> &Path {
            &self.0
        }
    }

    fn fake(limits: &str, eph: &str, online: &str) -> Fake {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let d = Fake(std::env::temp_dir().join(format!(
            "callbridge-preflight-socket-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        )));
        let w = |p: &str, s: &str| {
            let f = d.0.join(p);
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(f, s).unwrap();
        };
        w("proc/self/limits", &format!("Limit Soft Limit Hard Limit Units\nMax open files            {limits}            files\n"));
        w("proc/sys/net/ipv4/ip_local_port_range", eph);
        w("sys/devices/system/cpu/online", online);
        d
    }

    fn run(text: &str, root: &Path) -> Report {
        let cfg = Config::parse(
            &format!("{text}[[business]]\nid = \"a\"\nname = \"A\"\n"),
            Path::new("/etc/cb.toml"),
        )
        .unwrap();
        let mut r = Report::default();
        socket(&mut r, &Sys { root }, &cfg);
        r
    }

    fn verdict(r: &Report, topic: &str) -> Verdict {
        r.find(topic)[0].verdict
    }

    #[test]
    fn a_good_host_is_ready() {
        let d = fake("1048576 1048576", "50000\t60999", "0-1");
        let r = run("[media]\nports = \"40000-40099\"\ncores = [1]\n", d.path());
        assert!(r.ok(), "{r}");
        for t in [
            "media address",
            "sip.listen",
            "http.listen",
            "media ports",
            "ephemeral ports",
            "file descriptors",
            "cores",
        ] {
            assert_eq!(verdict(&r, t), Verdict::Ok, "{t}: {r}");
        }
    }

    #[test]
    fn ephemeral_overlap_warns_and_fd_limits_fail_or_warn() {
        let d = fake("1024 1048576", "32768 60999", "0-1");
        let r = run("", d.path());
        assert_eq!(verdict(&r, "ephemeral ports"), Verdict::Ok, "{r}");
        // 2500 calls: 10320 descriptors; soft 1024 < that <= hard: serve raises the soft one.
        assert_eq!(verdict(&r, "file descriptors"), Verdict::Ok, "{r}");
        // Hard 4096: 944 calls of 2500; the message names media.ports and the figures.
        let d = fake("1024 4096", "10000 30000", "0-1");
        let r = run("", d.path());
        assert_eq!(verdict(&r, "ephemeral ports"), Verdict::Warn, "{r}");
        assert_eq!(verdict(&r, "file descriptors"), Verdict::Warn, "{r}");
        let msg = &r.find("file descriptors")[0].message;
        assert!(
            msg.contains("media.ports 20000-29999 holds 2500 calls")
                && msg.contains("carries 944")
                && msg.contains("raise it to 10320"),
            "{msg}"
        );
        // Not one call fits: FAIL.
        let d = fake("256 256", "32768 60999", "0-1");
        assert_eq!(
            verdict(&run("", d.path()), "file descriptors"),
            Verdict::Fail
        );
        let d = fake("unlimited unlimited", "32768 60999", "0-1");
        assert_eq!(verdict(&run("", d.path()), "file descriptors"), Verdict::Ok);
    }

    #[test]
    fn missing_cores_fail_unless_allowed() {
        let d = fake("1048576 1048576", "32768 60999", "0-1");
        let r = run("[media]\ncores = [2]\n", d.path());
        assert_eq!(verdict(&r, "cores"), Verdict::Fail, "{r}");
        let r = run(
            "[media]\ncores = [2]\nallow_missing_cores = true\n",
            d.path(),
        );
        assert_eq!(verdict(&r, "cores"), Verdict::Warn, "{r}");
    }
}
