//! The Debian package: `scripts/package --profile debug` builds
//! `target/debian/callbridge_<version>_<arch>.deb`; its contents and control data are checked
//! (`dpkg-deb -c`, `dpkg-deb -I`), it is installed with `dpkg -i` (the maintainer scripts create
//! the `callbridge` user and `/var/lib/callbridge`), the installed unit's `ExecStart` is run as
//! its `User=` in its `WorkingDirectory=` (no systemd in CI: under `setpriv`), with a test
//! configuration written beside the installed example, and a call placed through it (lab
//! endpoints) is bridged with RTP both ways. `dpkg --purge` at the end, also on failure,
//! leaves the machine as it was (no package, user, state or configuration directory).
//!
//! Needs root and dpkg (CI runs as root on a throwaway machine).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use callbridge_tests::record::{self, is_terminal, media, media_summary};
use callbridge_tests::{
    workspace_root, Agent, Callbridge, Config, PortBlock, Workdir, CALL_DEADLINE,
};

const UNIT: &str = "/lib/systemd/system/callbridge.service";
const EXAMPLE: &str = "/etc/callbridge/callbridge.toml";
const STATE: &str = "/var/lib/callbridge";

fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

fn run_ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed with {}:\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn installed() -> bool {
    run(Command::new("dpkg-query").args(["-W", "-f=${Status}", "callbridge"]))
        .stdout
        .starts_with(b"install ok")
}

fn user_exists(name: &str) -> bool {
    run(Command::new("getent").args(["passwd", name]))
        .status
        .success()
}

/// Purges the package (and the test's files) when dropped: on success and on failure.
struct Installed {
    test_files: Vec<PathBuf>,
}

impl Drop for Installed {
    fn drop(&mut self) {
        for f in &self.test_files {
            let _ = std::fs::remove_file(f);
        }
        let out = run(Command::new("dpkg").args(["--purge", "callbridge"]));
        if !out.status.success() {
            eprintln!(
                "dpkg --purge callbridge failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// `Key=` values of the unit's `[Service]` section.
fn unit_value(unit: &str, key: &str) -> Option<String> {
    unit.lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('=').map(str::to_owned))
}

#[test]
fn package_builds_installs_runs_a_call_and_purges() {
    assert!(
        run(Command::new("id").arg("-u")).stdout.trim_ascii() == b"0",
        "the package test installs a .deb: it must run as root (CI does)"
    );
    assert!(
        !installed() && !user_exists("callbridge") && !Path::new(STATE).exists(),
        "callbridge is already installed here (or its user or {STATE} is left over): \
         run `dpkg --purge callbridge` first; this test must leave the machine as it found it"
    );

    // Build the package from the already-built debug binary.
    let root = workspace_root();
    let deb = run_ok(
        Command::new(root.join("scripts/package"))
            .args(["--profile", "debug", "--no-lintian"])
            .env("CARGO_TARGET_DIR", callbridge_tests::target_dir())
            .current_dir(&root),
    );
    let deb = PathBuf::from(deb.lines().last().unwrap_or_default().trim());
    let version = env!("CARGO_PKG_VERSION");
    let arch = run_ok(Command::new("dpkg").arg("--print-architecture"));
    assert_eq!(
        deb,
        callbridge_tests::target_dir()
            .join("debian")
            .join(format!("callbridge_{version}_{}.deb", arch.trim())),
        "scripts/package printed another path"
    );
    assert!(deb.is_file(), "{} missing", deb.display());

    // Contents and control data.
    let contents = run_ok(Command::new("dpkg-deb").arg("-c").arg(&deb));
    for path in [
        "./usr/bin/callbridge",
        "./lib/systemd/system/callbridge.service",
        "./etc/callbridge/callbridge.toml",
        "./usr/share/man/man1/callbridge.1.gz",
        "./usr/share/doc/callbridge/copyright",
        "./usr/share/doc/callbridge/changelog.gz",
        "./usr/share/doc/callbridge/examples/dpdk.conf",
    ] {
        let line = contents
            .lines()
            .find(|l| l.ends_with(&format!(" {path}")))
            .unwrap_or_else(|| panic!("{path} not in the package:\n{contents}"));
        assert!(
            line.contains("root/root"),
            "{path} not owned by root: {line}"
        );
    }
    let info = run_ok(Command::new("dpkg-deb").arg("-I").arg(&deb));
    for field in [
        "Package: callbridge".to_string(),
        format!("Version: {version}"),
        format!("Architecture: {}", arch.trim()),
        "libc6".into(),
        "adduser".into(),
        "postinst".into(),
        "postrm".into(),
        "conffiles".into(),
    ] {
        assert!(
            info.contains(&field),
            "dpkg-deb -I lacks {field:?}:\n{info}"
        );
    }

    // Install (purged again when `_installed` drops, also on a failed assertion).
    let dir = Workdir::new("package");
    let test_config = PathBuf::from(format!("/etc/callbridge/test-{}.toml", std::process::id()));
    let test_db = PathBuf::from(format!("{STATE}/test-{}.db", std::process::id()));
    let _installed = Installed {
        test_files: vec![test_config.clone()],
    };
    run_ok(
        Command::new("dpkg")
            .arg("-i")
            .arg(&deb)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    );
    assert!(installed(), "dpkg -i did not leave callbridge installed");
    assert!(
        user_exists("callbridge"),
        "postinst did not create the callbridge user"
    );
    let owner = run_ok(Command::new("stat").args(["-c", "%U:%G %a", STATE]));
    assert_eq!(
        owner.trim(),
        "callbridge:callbridge 750",
        "{STATE}'s owner and mode"
    );
    run_ok(Command::new("/usr/bin/callbridge").args(["check-config", EXAMPLE]));
    let conf = run_ok(Command::new("dpkg-query").args(["-W", "-f=${Conffiles}", "callbridge"]));
    assert!(
        conf.contains(EXAMPLE),
        "{EXAMPLE} is not a conffile: {conf:?}"
    );
    // Installing again (an upgrade to the same version) is idempotent.
    run_ok(
        Command::new("dpkg")
            .arg("-i")
            .arg(&deb)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    );

    // The unit's command line, user and working directory.
    let unit = std::fs::read_to_string(UNIT).expect("the installed unit");
    let exec = unit_value(&unit, "ExecStart").expect("ExecStart= in the unit");
    let user = unit_value(&unit, "User").expect("User= in the unit");
    let workdir = unit_value(&unit, "WorkingDirectory").expect("WorkingDirectory= in the unit");
    assert_eq!(user, "callbridge");
    assert_eq!(workdir, STATE);
    let mut argv: Vec<String> = exec.split_whitespace().map(str::to_owned).collect();
    let at = argv
        .iter()
        .position(|a| a == "--config")
        .expect("ExecStart passes --config");
    assert_eq!(argv[at + 1], EXAMPLE, "ExecStart runs the example config");
    argv[at + 1] = test_config.display().to_string();

    // A test configuration beside the example: loopback ports this test reserved, lab
    // endpoints as customer and agent, the store in the state directory.
    let ports = PortBlock::reserve(Config::BLOCK_LEN);
    let nobody = PortBlock::reserve(4);
    let config = Config::new(&ports, nobody.addr(0))
        .agent(Agent::new(
            "alice",
            &format!("sip:alice@{}", nobody.addr(2)),
        ))
        .lab_endpoints(true)
        .with_toml(&format!("[store]\npath = \"{}\"", test_db.display()));
    std::fs::write(&test_config, config.render()).expect("write the test config");
    run_ok(
        Command::new("chown")
            .arg("root:callbridge")
            .arg(&test_config),
    );
    run_ok(Command::new("chmod").arg("0640").arg(&test_config));

    let mut cmd = Command::new("setpriv");
    cmd.args([
        "--reuid=callbridge",
        "--regid=callbridge",
        "--init-groups",
        "--inh-caps=-all",
        "--",
    ])
    .args(&argv)
    .current_dir(&workdir);
    let mut cb = Callbridge::start_command(&dir, &config, test_config.clone(), cmd);

    let id = cb.call("+15551234567");
    let bridged = cb.wait_for_status(&id, |s| s == "bridged" || is_terminal(s), CALL_DEADLINE);
    if record::status(&bridged) != "bridged" {
        cb.fail(&format!("the call never bridged: {bridged:#}"));
    }
    let both_ways = |v: &serde_json::Value| {
        media(v, "customer", "rx_packets") > 0 && media(v, "agent", "rx_packets") > 0
    };
    let path = format!("/v1/call-requests/{id}");
    let with_media = cb.wait_for(
        &path,
        "RTP both ways",
        |v| both_ways(v) || is_terminal(record::status(v)),
        CALL_DEADLINE,
    );
    if !both_ways(&with_media) {
        cb.fail(&format!(
            "no RTP both ways ({})",
            media_summary(&with_media)
        ));
    }
    if let Ok(end) = cb.poll_until(
        &path,
        "the call to end",
        |v| record::status(v) != "bridged",
        Duration::from_secs(30),
    ) {
        if record::status(&end) != "completed" {
            cb.fail(&format!(
                "the call ended {:?}: {end:#}",
                record::status(&end)
            ));
        }
    }

    // It ran as the unit's user: the store it created belongs to callbridge.
    let db_owner = run_ok(Command::new("stat").args(["-c", "%U"]).arg(&test_db));
    assert_eq!(db_owner.trim(), "callbridge", "the store's owner");
    let proc_owner = run_ok(
        Command::new("stat")
            .args(["-c", "%U"])
            .arg(format!("/proc/{}", cb.pid())),
    );
    assert_eq!(proc_owner.trim(), "callbridge", "the server's user");
    drop(cb);

    drop(_installed);
    assert!(!installed(), "dpkg --purge left callbridge installed");
    assert!(!user_exists("callbridge"), "purge left the callbridge user");
    for p in [STATE, "/etc/callbridge", "/usr/bin/callbridge", UNIT] {
        assert!(!Path::new(p).exists(), "purge left {p}");
    }
}
