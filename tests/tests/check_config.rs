//! `callbridge check-config FILE`: exit 0 for a good config; otherwise non-zero with
//! `FILE:LINE: KEY: reason` on stderr.

use callbridge_tests::server::run_cli;
use callbridge_tests::{Agent, Config, PortBlock, Workdir};

fn good_config() -> (PortBlock, String) {
    let ports = PortBlock::reserve(Config::BLOCK_LEN);
    let text = Config::new(&ports, "127.0.0.1:5080".parse().unwrap())
        .agent(Agent::new("alice", "sip:alice@127.0.0.1:15064"))
        .agent(Agent::new("bob", "+15557654321"))
        .render();
    (ports, text)
}

/// Inserts `line` so that it becomes line number `at` (1-based).
fn insert_line(text: &str, at: usize, line: &str) -> String {
    let mut lines: Vec<&str> = text.lines().collect();
    lines.insert(at - 1, line);
    lines.join("\n") + "\n"
}

/// Runs check-config on `text` and asserts the `FILE:LINE: KEY: reason` diagnostic.
fn assert_rejected(dir: &Workdir, name: &str, text: &str, line: usize, key: &str) {
    let path = dir.write(name, text);
    let path_s = path.to_str().unwrap();
    let out = run_cli(&["check-config", path_s]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success(),
        "check-config accepted {name} (line {line}: {key}); stdout {stdout:?} stderr {stderr:?}\n{text}"
    );
    let prefix = format!("{path_s}:{line}: ");
    let diag = stderr
        .lines()
        .find_map(|l| l.split_once(&prefix).map(|(_, rest)| rest))
        .unwrap_or_else(|| {
            panic!("stderr lacks {prefix:?}KEY: reason; stderr {stderr:?} stdout {stdout:?}")
        });
    let (got_key, reason) = diag
        .split_once(": ")
        .unwrap_or_else(|| panic!("diagnostic {diag:?} is not `KEY: reason`"));
    // KEY may be written bare ("bogus") or dotted ("http.bogus").
    assert!(
        got_key == key || got_key.ends_with(&format!(".{key}")),
        "diagnostic names key {got_key:?}, expected {key:?}: {diag:?}"
    );
    assert!(
        !reason.trim().is_empty(),
        "diagnostic has no reason: {diag:?}"
    );
}

#[test]
fn good_config_passes() {
    let dir = Workdir::new("check_config_good");
    let (_ports, text) = good_config();
    let path = dir.write("good.toml", &text);
    let out = run_cli(&["check-config", path.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "check-config rejected a good config: {} stderr {:?} stdout {:?}\n{text}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn unknown_key_is_reported_with_file_and_line() {
    let dir = Workdir::new("check_config_unknown_key");
    let (_ports, text) = good_config();
    // Line 1 is "[http]", line 2 "listen = ...": the new key becomes line 3, inside [http].
    assert!(text.starts_with("[http]\nlisten = "));
    let bad = insert_line(&text, 3, "bogus_key = 1");
    assert_rejected(&dir, "unknown_key.toml", &bad, 3, "bogus_key");
}

#[test]
fn unknown_key_deeper_in_the_file() {
    let dir = Workdir::new("check_config_unknown_key_agent");
    let (_ports, text) = good_config();
    // Put the unknown key right after the first agent's id.
    let at = text
        .lines()
        .position(|l| l == "id = \"alice\"")
        .expect("agent alice")
        + 2;
    let bad = insert_line(&text, at, "favourite_colour = \"blue\"");
    assert_rejected(&dir, "unknown_agent_key.toml", &bad, at, "favourite_colour");
}

#[test]
fn bad_value_is_reported_with_file_and_line() {
    let dir = Workdir::new("check_config_bad_value");
    let (_ports, text) = good_config();
    let at = text
        .lines()
        .position(|l| l.starts_with("ports = "))
        .expect("media ports")
        + 1;
    let bad: String = text
        .lines()
        .enumerate()
        .map(|(i, l)| {
            if i + 1 == at {
                "ports = \"lots\"".to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n";
    assert_rejected(&dir, "bad_ports.toml", &bad, at, "ports");
}

/// `text` with the first line starting with `prefix` replaced by `line`; and its number.
fn replace_line(text: &str, prefix: &str, line: &str) -> (String, usize) {
    let at = text
        .lines()
        .position(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starts with {prefix:?}"));
    let mut lines: Vec<&str> = text.lines().collect();
    lines[at] = line;
    (lines.join("\n") + "\n", at + 1)
}

/// The number of the first line starting with `prefix` after the line `header`.
fn line_after(text: &str, header: &str, prefix: &str) -> usize {
    let start = text.lines().position(|l| l == header).expect("header");
    text.lines()
        .enumerate()
        .skip(start)
        .find(|(_, l)| l.starts_with(prefix))
        .map(|(i, _)| i + 1)
        .unwrap_or_else(|| panic!("no {prefix:?} after {header:?}"))
}

/// Replaces the line `at` (1-based) with `line`.
fn set_line(text: &str, at: usize, line: &str) -> String {
    let mut lines: Vec<&str> = text.lines().collect();
    lines[at - 1] = line;
    lines.join("\n") + "\n"
}

/// check-config's stderr for `text`, asserting it was rejected with `reason` in it.
fn rejected_saying(dir: &Workdir, name: &str, text: &str, line: usize, key: &str, reason: &str) {
    assert_rejected(dir, name, text, line, key);
    let path = dir.write(name, text);
    let out = run_cli(&["check-config", path.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(reason),
        "stderr lacks {reason:?}: {stderr:?}"
    );
}

#[test]
fn an_address_of_another_host_is_refused() {
    let dir = Workdir::new("check_config_foreign_address");
    let (_ports, text) = good_config();
    // TEST-NET-3 (RFC 5737): never an address of the test host.
    let at = line_after(&text, "[media]", "address = ");
    let bad = set_line(&text, at, "address = \"203.0.113.7\"");
    let why = "203.0.113.7 is not an address of this host";
    rejected_saying(&dir, "foreign_media.toml", &bad, at, "media.address", why);
    let (bad, at) = replace_line(&text, "listen = \"127.", "listen = \"203.0.113.7:18500\"");
    rejected_saying(&dir, "foreign_http.toml", &bad, at, "http.listen", why);
}

#[test]
fn a_host_name_where_an_address_is_needed_says_so() {
    let dir = Workdir::new("check_config_hostname");
    let (_ports, text) = good_config();
    let (bad, at) = replace_line(&text, "listen = \"127.", "listen = \"localhost:18500\"");
    let why = "hostnames are not accepted here: write an IP address";
    rejected_saying(&dir, "hostname.toml", &bad, at, "http.listen", why);
}

#[test]
fn sip_inside_the_media_range_and_privileged_media_ports_are_refused() {
    let dir = Workdir::new("check_config_port_layout");
    let (_ports, text) = good_config();
    let media_first: u16 = text
        .lines()
        .find_map(|l| l.strip_prefix("ports = \""))
        .and_then(|r| r.split('-').next())
        .and_then(|p| p.parse().ok())
        .expect("media ports");
    let at = line_after(&text, "[sip]", "listen = ");
    let bad = set_line(&text, at, &format!("listen = \"127.0.0.1:{media_first}\""));
    rejected_saying(
        &dir,
        "sip_in_media.toml",
        &bad,
        at,
        "sip.listen",
        "inside media.ports",
    );
    let (bad, at) = replace_line(&text, "ports = ", "ports = \"1000-1999\"");
    rejected_saying(
        &dir,
        "low_ports.toml",
        &bad,
        at,
        "media.ports",
        "below 1024",
    );
}

#[test]
fn absurd_timers_and_agents_without_businesses_are_refused() {
    let dir = Workdir::new("check_config_ranges");
    let (_ports, text) = good_config();
    let bad = format!("{text}[flow]\ncustomer_ring_secs = 99999999999\n");
    let at = bad.lines().count();
    let why = "99999999999 is outside 1..=600";
    rejected_saying(&dir, "ring.toml", &bad, at, "flow.customer_ring_secs", why);
    let at = line_after(&text, "id = \"alice\"", "businesses = ");
    let bad = set_line(&text, at, "businesses = []");
    rejected_saying(
        &dir,
        "no_business.toml",
        &bad,
        at,
        "agent[0].businesses",
        "serving no business",
    );
    let bad = format!("{text}[log]\nlevel = \"bogus\"\n");
    let at = bad.lines().count();
    rejected_saying(
        &dir,
        "log.toml",
        &bad,
        at,
        "log.level",
        "is not a log filter",
    );
}

#[test]
fn a_missing_core_is_a_warning_for_check_config() {
    let dir = Workdir::new("check_config_missing_core");
    let (_ports, text) = good_config();
    let at = line_after(&text, "[media]", "ports = ") + 1;
    let text = insert_line(&text, at, "cores = [4095]");
    let path = dir.write("cores.toml", &text);
    let path_s = path.to_str().unwrap();
    let out = run_cli(&["check-config", path_s]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "check-config refused a missing core: {stderr:?}"
    );
    let want = format!("warning: {path_s}:{at}: media.cores[0]: core 4095 does not exist");
    assert!(stderr.contains(&want), "stderr lacks {want:?}: {stderr:?}");
}

#[test]
fn an_invalid_callbridge_log_stops_serve_naming_the_variable() {
    let dir = Workdir::new("check_config_callbridge_log");
    let (_ports, text) = good_config();
    let path = dir.write("good.toml", &text);
    let out = std::process::Command::new(callbridge_tests::server::bin_path())
        .args(["serve", "--config", path.to_str().unwrap()])
        .env("CALLBRIDGE_LOG", "bogus")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run callbridge serve");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr {stderr:?}");
    assert!(
        stderr.contains("CALLBRIDGE_LOG: \"bogus\" is not a log filter"),
        "stderr {stderr:?}"
    );
}
