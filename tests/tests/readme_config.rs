//! Every ```toml block of the README passes `callbridge check-config` (issue 12: an operator
//! copies them). The files they name are provided as the README says: the shipped prompt
//! (`prompts/hold-en.wav`, relative to the configuration file) and, for the reference's
//! `[sip.tls]`, a throw-away PKI at `tls/cert.pem`, `tls/key.pem`, `tls/carrier-ca.pem`. A block
//! that is a fragment of a `serve` file (it has no `[[business]]` and is no media node's file)
//! is completed with the one business every such file needs, and said so in the failure.

use std::path::Path;

use callbridge_tests::certs::TestPki;
use callbridge_tests::server::run_cli;
use callbridge_tests::Workdir;

fn blocks(readme: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut cur: Option<(usize, String)> = None;
    for (n, line) in readme.lines().enumerate() {
        match (&mut cur, line.trim_end()) {
            (None, "```toml") => cur = Some((n + 2, String::new())),
            (Some(_), "```") => out.extend(cur.take()),
            (Some((_, text)), l) => {
                text.push_str(l);
                text.push('\n');
            }
            _ => {}
        }
    }
    out
}

#[test]
fn every_toml_block_of_the_readme_passes_check_config() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let found = blocks(&readme);
    assert!(
        found.len() >= 3,
        "only {} toml blocks found in README.md",
        found.len()
    );

    let dir = Workdir::new("readme_config");
    // What the blocks name, relative to the configuration file.
    std::fs::create_dir_all(dir.path().join("prompts")).unwrap();
    std::fs::copy(
        root.join("prompts/hold-en.wav"),
        dir.path().join("prompts/hold-en.wav"),
    )
    .expect("prompts/hold-en.wav ships in the repository");
    let pki = TestPki::generate(&dir);
    std::fs::create_dir_all(dir.path().join("tls")).unwrap();
    for (from, to) in [
        (&pki.cert, "tls/cert.pem"),
        (&pki.key, "tls/key.pem"),
        (&pki.ca, "tls/carrier-ca.pem"),
    ] {
        std::fs::copy(from, dir.path().join(to)).unwrap();
    }

    let mut failures = Vec::new();
    for (line, text) in &found {
        let fragment = !text.contains("[[business]]") && !text.contains("ng_listen");
        let body = if fragment {
            format!("{text}\n[[business]]\nid = \"demo\"\nname = \"Demo\"\n")
        } else {
            text.clone()
        };
        let file = dir.write(&format!("readme-line-{line}.toml"), &body);
        let out = run_cli(&["check-config", file.to_str().unwrap()]);
        if !out.status.success() {
            failures.push(format!(
                "README.md line {line}{}: {}{}",
                if fragment {
                    " (completed with one [[business]])"
                } else {
                    ""
                },
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
