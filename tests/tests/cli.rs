//! `callbridge --help` and `--version`.

use callbridge_tests::server::run_cli;

#[test]
fn help_lists_the_subcommands() {
    let out = run_cli(&["--help"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "--help exited {}: {text} {:?}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("serve"), "--help mentions serve: {text}");
    assert!(
        text.contains("check-config"),
        "--help mentions check-config: {text}"
    );
}

#[test]
fn version_prints_the_workspace_version() {
    let out = run_cli(&["--version"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "--version exited {}: {text}",
        out.status
    );
    // The tests crate shares the workspace version with the binary.
    assert!(
        text.contains(env!("CARGO_PKG_VERSION")),
        "--version prints {}: {text:?}",
        env!("CARGO_PKG_VERSION")
    );
}
