//! Checks of the port layout (pure) and against this host (addresses bindable, cores present,
//! the binary's backends), run by [`Config::load`](super::Config::load) and
//! [`Config::load_checked`](super::Config::load_checked) after the schema and semantic checks.
//!
//! - SIP and HTTP listen ports may not lie inside the media port range on a media address (or
//!   a wildcard); media ports start at 1024 or above.
//! - `sip.listen`, `http.listen`, and with the socket backend `media.address` and
//!   `media.extra_addresses`, must be addresses of this host: binding a UDP socket to
//!   `ADDRESS:0` must not fail with "address not available" (port 0, so a port in use is not
//!   taken for a foreign address). With `backend = "dpdk"` the media addresses belong to the
//!   DPDK port, not to the kernel, and are not probed.
//! - `media.cores` (socket backend) must be online on this host: a missing core is a
//!   *warning* for `check-config` and an error for `serve` unless
//!   `media.allow_missing_cores = true`.
//! - `backend = "dpdk"` needs a binary built with the `dpdk` feature.

use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};

use super::locate::{key, Seg};
use super::{Backend, Config, CpuSet};

/// Deserializes `IP:PORT`; a host name gets "hostnames are not accepted here".
pub(super) fn socket_addr<'de, D: serde::Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    let s = <String as serde::Deserialize>::deserialize(d)?;
    s.parse().map_err(|_| {
        let hint = match s.rsplit_once(':') {
            Some((host, port)) if looks_like_host(host) => format!(
                "{s:?} names a host; hostnames are not accepted here: write an IP address, \
                 e.g. \"127.0.0.1:{port}\" or \"0.0.0.0:{port}\""
            ),
            _ => format!("{s:?} is not IP:PORT, e.g. \"127.0.0.1:8080\" or \"[::1]:8080\""),
        };
        serde::de::Error::custom(hint)
    })
}

/// [`socket_addr`] for an optional key.
pub(super) fn opt_socket_addr<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<SocketAddr>, D::Error> {
    socket_addr(d).map(Some)
}

/// Deserializes an IP address; a host name gets "hostnames are not accepted here".
pub(super) fn ip_addr<'de, D: serde::Deserializer<'de>>(d: D) -> Result<IpAddr, D::Error> {
    let s = <String as serde::Deserialize>::deserialize(d)?;
    parse_ip(&s).map_err(serde::de::Error::custom)
}

/// [`ip_addr`] for a list (an error names the item).
pub(super) fn ip_addrs<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<IpAddr>, D::Error> {
    /// One item.
    struct Item(IpAddr);
    impl<'de> serde::Deserialize<'de> for Item {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl serde::de::Visitor<'_> for V {
                type Value = Item;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("an IP address")
                }
                fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Item, E> {
                    parse_ip(s).map(Item).map_err(E::custom)
                }
            }
            d.deserialize_str(V)
        }
    }
    let v = <Vec<Item> as serde::Deserialize>::deserialize(d)?;
    Ok(v.into_iter().map(|i| i.0).collect())
}

fn parse_ip(s: &str) -> Result<IpAddr, String> {
    s.parse().map_err(|_| {
        if looks_like_host(s) {
            format!("{s:?} names a host; hostnames are not accepted here: write an IP address, e.g. \"127.0.0.1\"")
        } else {
            format!("{s:?} is not an IP address, e.g. \"127.0.0.1\" or \"::1\"")
        }
    })
}

/// Letters, digits, dots and dashes with at least one letter: a host name, not an address.
fn looks_like_host(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        && s.chars().any(|c| c.is_ascii_alphabetic())
}

/// A problem found: where and why.
pub(super) type Problem = (Vec<Seg>, String);

/// Whether `ip` is an address of this host: binds a UDP socket to `ip:0`. Only "address not
/// available" counts as foreign; other failures (permissions, …) are left to the start.
pub(crate) fn bindable(ip: IpAddr) -> io::Result<()> {
    match UdpSocket::bind(SocketAddr::new(ip, 0)) {
        Err(e) if e.kind() == io::ErrorKind::AddrNotAvailable => Err(e),
        _ => Ok(()),
    }
}

/// SIP/HTTP listen ports outside the media range on the media addresses; media ports ≥ 1024.
pub(super) fn check_ports(cfg: &Config) -> Result<(), Problem> {
    let ports = cfg.media.ports;
    if ports.first < 1024 {
        return Err((
            vec![key("media"), key("ports")],
            format!(
                "{ports} starts below 1024: those ports are privileged and crowded by system services; \
                 use a range above 1023, e.g. \"20000-29999\""
            ),
        ));
    }
    // A media node's file (ng_listen, no businesses) runs no SIP or HTTP listener.
    if cfg.media.ng_listen.is_some() && cfg.business.is_empty() {
        return Ok(());
    }
    let media = cfg.media.addresses();
    let clash = |a: SocketAddr| {
        ports.range().contains(&a.port()) && (a.ip().is_unspecified() || media.contains(&a.ip()))
    };
    for (i, l) in cfg.sip.listen.addrs().iter().enumerate() {
        if clash(l.addr) {
            return Err((
                cfg.sip.listen.seg(i),
                format!(
                    "port {} is inside media.ports ({ports}) on a media address; \
                     move SIP or the media range so they do not overlap",
                    l.addr.port()
                ),
            ));
        }
    }
    if clash(cfg.http.listen) {
        return Err((
            vec![key("http"), key("listen")],
            format!(
                "port {} is inside media.ports ({ports}) on a media address; \
                 move the HTTP port or the media range so they do not overlap",
                cfg.http.listen.port()
            ),
        ));
    }
    Ok(())
}

/// Checks against this host. `Err`: the configuration cannot work here. `Ok(warnings)`: what
/// works only in part (missing cores).
pub(super) fn check_host(
    cfg: &Config,
    cpus: &CpuSet,
    probe: &dyn Fn(IpAddr) -> io::Result<()>,
) -> Result<Vec<Problem>, Problem> {
    if cfg.media.backend == Backend::Dpdk && cfg.check_build().is_err() {
        return Err((
            vec![key("media"), key("backend")],
            "this callbridge was built without DPDK support; rebuild with `cargo build --release \
             -p callbridge --features dpdk` (needs libdpdk-dev) or use backend = \"socket\""
                .into(),
        ));
    }
    let foreign = |ip: IpAddr, at: Vec<Seg>, hint: &str| match probe(ip) {
        Ok(()) => Ok(()),
        Err(e) => Err((
            at,
            format!(
                "{ip} is not an address of this host (binding it fails: {e}); {hint} \
                 (`ip -brief address` lists them)"
            ),
        )),
    };
    for (i, l) in cfg.sip.listen.addrs().iter().enumerate() {
        foreign(
            l.addr.ip(),
            cfg.sip.listen.seg(i),
            "listen on one of this host's addresses, or 0.0.0.0",
        )?;
    }
    foreign(
        cfg.http.listen.ip(),
        vec![key("http"), key("listen")],
        "listen on one of this host's addresses, or 0.0.0.0",
    )?;
    if cfg.media.backend == Backend::Socket {
        let hint = "media is bound to it and written into SDP: give one of this host's addresses";
        foreign(cfg.media.address, vec![key("media"), key("address")], hint)?;
        for (i, &a) in cfg.media.extra_addresses.iter().enumerate() {
            foreign(
                a,
                vec![key("media"), key("extra_addresses"), Seg::Index(i)],
                hint,
            )?;
        }
    }
    if let Some(ng) = cfg.media.ng_listen {
        foreign(
            ng.ip(),
            vec![key("media"), key("ng_listen")],
            "the ng listener binds it: give one of this host's addresses, or 0.0.0.0",
        )?;
    }
    let mut warnings = Vec::new();
    if let Some(problem) = missing_core(cfg, cpus) {
        warnings.push(problem);
    }
    Ok(warnings)
}

/// The first `media.cores` entry (socket backend) that is not online, with the reason.
pub(super) fn missing_core(cfg: &Config, cpus: &CpuSet) -> Option<Problem> {
    if cfg.media.backend != Backend::Socket {
        return None;
    }
    let cores = cfg.media.cores.as_ref()?;
    let (i, c) = cores.iter().enumerate().find(|(_, &c)| !cpus.contains(c))?;
    Some((
        vec![key("media"), key("cores"), Seg::Index(i)],
        format!(
            "core {c} does not exist on this host (online: {cpus}); its worker would run unpinned. \
             Name online cores, or set media.allow_missing_cores = true to start anyway"
        ),
    ))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn parse(text: &str) -> Config {
        Config::parse(text, Path::new("/etc/cb.toml")).unwrap()
    }

    const BUSINESS: &str = "[[business]]\nid = \"acme\"\nname = \"ACME\"\n";

    fn foreign_is(bad: IpAddr) -> impl Fn(IpAddr) -> io::Result<()> {
        move |ip| {
            if ip == bad {
                Err(io::Error::from(io::ErrorKind::AddrNotAvailable))
            } else {
                Ok(())
            }
        }
    }

    #[test]
    fn loopback_and_wildcards_are_local() {
        for ip in ["127.0.0.1", "127.0.0.2", "0.0.0.0"] {
            assert!(bindable(ip.parse().unwrap()).is_ok(), "{ip}");
        }
        // TEST-NET-3 is never configured on a test host.
        assert!(bindable("203.0.113.7".parse().unwrap()).is_err());
    }

    #[test]
    fn a_foreign_address_is_refused_with_its_key() {
        let cpus = CpuSet(vec![0, 1]);
        let ip: IpAddr = "203.0.113.7".parse().unwrap();
        let c = parse(&format!("[media]\naddress = \"203.0.113.7\"\n{BUSINESS}"));
        let (at, why) = check_host(&c, &cpus, &foreign_is(ip)).unwrap_err();
        assert_eq!(at, vec![key("media"), key("address")]);
        assert!(
            why.contains("203.0.113.7 is not an address of this host"),
            "{why}"
        );
        let c = parse(&format!("[http]\nlisten = \"203.0.113.7:80\"\n{BUSINESS}"));
        let (at, _) = check_host(&c, &cpus, &foreign_is(ip)).unwrap_err();
        assert_eq!(at, vec![key("http"), key("listen")]);
        let c = parse(&format!(
            "[sip]\nlisten = [\"udp:127.0.0.1:5060\", \"tcp:203.0.113.7:5060\"]\n{BUSINESS}"
        ));
        let (at, _) = check_host(&c, &cpus, &foreign_is(ip)).unwrap_err();
        assert_eq!(at, vec![key("sip"), key("listen"), Seg::Index(1)]);
        let c = parse(&format!(
            "[media]\nextra_addresses = [\"203.0.113.7\"]\n{BUSINESS}"
        ));
        let (at, _) = check_host(&c, &cpus, &foreign_is(ip)).unwrap_err();
        assert_eq!(
            at,
            vec![key("media"), key("extra_addresses"), Seg::Index(0)]
        );
    }

    #[test]
    fn ng_listen_is_an_address_of_this_host_never_a_host_name() {
        let got = Config::parse(
            "[media]\nng_listen = \"media.example:2223\"\n",
            Path::new("/etc/cb.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            got.starts_with("/etc/cb.toml:2: media.ng_listen: \"media.example:2223\" names a host"),
            "{got}"
        );
        let cfg = parse("[media]\nng_listen = \"192.0.2.9:2223\"\nng_allow_from = [\"192.0.2.0/24\"]\n\n[[business]]\nid = \"b\"\nname = \"B\"\n");
        let (at, _) = check_host(
            &cfg,
            &CpuSet(vec![0, 1]),
            &foreign_is("192.0.2.9".parse().unwrap()),
        )
        .unwrap_err();
        assert_eq!(at, vec![key("media"), key("ng_listen")]);
    }

    #[test]
    fn hostnames_are_refused_with_a_hint() {
        let e = |text: &str| {
            Config::parse(&format!("{text}{BUSINESS}"), Path::new("/etc/cb.toml"))
                .unwrap_err()
                .to_string()
        };
        let got = e("[http]\nlisten = \"localhost:18500\"\n");
        assert!(got.starts_with("/etc/cb.toml:2: http.listen: \"localhost:18500\" names a host; hostnames are not accepted here: write an IP address"), "{got}");
        let got = e("[media]\naddress = \"media.example.net\"\n");
        assert!(
            got.starts_with("/etc/cb.toml:2: media.address: \"media.example.net\" names a host"),
            "{got}"
        );
        let got = e("[media]\nextra_addresses = [\"127.0.0.2\", \"localhost\"]\n");
        assert!(
            got.starts_with("/etc/cb.toml:2: media.extra_addresses[1]: "),
            "{got}"
        );
        assert!(got.contains("hostnames are not accepted"), "{got}");
        let got = e("[http]\nlisten = \"127.0.0.1\"\n");
        assert!(got.contains("is not IP:PORT"), "{got}");
    }

    #[test]
    fn dpdk_media_addresses_are_not_probed_and_the_build_is_checked() {
        let text = format!(
            "[media]\nbackend = \"dpdk\"\naddress = \"198.18.0.1\"\n\
             [dpdk]\nmain_core = 0\nworker_cores = [1]\ndevices = [\"net_null0\"]\n{BUSINESS}"
        );
        let cpus = CpuSet(vec![0, 1]);
        let c = Config::parse_on(&text, Path::new("/etc/cb.toml"), &cpus).unwrap();
        let foreign = foreign_is("198.18.0.1".parse().unwrap());
        let dpdk_built = cfg!(feature = "dpdk");
        match check_host(&c, &cpus, &foreign) {
            Ok(w) => assert!(dpdk_built && w.is_empty()),
            Err((at, why)) => {
                assert!(!dpdk_built, "{why}");
                assert_eq!(at, vec![key("media"), key("backend")]);
                assert!(why.contains("built without DPDK"), "{why}");
            }
        }
    }

    #[test]
    fn missing_cores_are_a_warning() {
        let c = parse(&format!("[media]\nworkers = 2\ncores = [1, 2]\n{BUSINESS}"));
        let w = check_host(&c, &CpuSet(vec![0, 1]), &|_| Ok(())).unwrap();
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].0, vec![key("media"), key("cores"), Seg::Index(1)]);
        assert!(w[0].1.contains("core 2 does not exist"), "{}", w[0].1);
        assert!(check_host(&c, &CpuSet(vec![0, 1, 2]), &|_| Ok(()))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn listen_ports_inside_the_media_range_and_low_media_ports_are_refused() {
        let e = |text: &str| {
            Config::parse(&format!("{text}{BUSINESS}"), Path::new("/etc/cb.toml"))
                .unwrap_err()
                .to_string()
        };
        let got = e("[sip]\nlisten = \"127.0.0.1:20000\"\n");
        assert!(
            got.starts_with("/etc/cb.toml:2: sip.listen: port 20000 is inside media.ports"),
            "{got}"
        );
        let got = e("[sip]\nlisten = [\"udp:127.0.0.1:5060\", \"udp:0.0.0.0:25000\"]\n");
        assert!(
            got.starts_with("/etc/cb.toml:2: sip.listen[1]: port 25000"),
            "{got}"
        );
        let got = e("[http]\nlisten = \"0.0.0.0:29999\"\n");
        assert!(
            got.starts_with("/etc/cb.toml:2: http.listen: port 29999"),
            "{got}"
        );
        let got = e("[media]\nports = \"1000-1999\"\n");
        assert!(
            got.starts_with("/etc/cb.toml:2: media.ports: 1000-1999 starts below 1024"),
            "{got}"
        );
        // A media node's file: its (default) SIP and HTTP listeners do not run.
        Config::parse(
            "[media]\nports = \"5000-9999\"\nng_listen = \"127.0.0.1:2223\"\n",
            Path::new("/etc/cb.toml"),
        )
        .unwrap();
        // Another address than the media's: no clash.
        parse(&format!("[sip]\nlisten = \"127.0.0.2:20000\"\n{BUSINESS}"));
    }
}
