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
