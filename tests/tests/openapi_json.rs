//! `GET /openapi.json` from a started server is a valid OpenAPI 3.1 document, checked by a real
//! validator (Python `openapi-spec-validator`, installed by `scripts/install-test-deps`), and
//! lists the routes other tools rely on.

use std::io::Write;
use std::process::{Command, Stdio};

use callbridge_tests::{Callbridge, Config, PortBlock, Workdir};

#[test]
fn openapi_json_validates_as_openapi_3_1() {
    let dir = Workdir::new("openapi_json");
    let ports = PortBlock::reserve(Config::BLOCK_LEN);
    let trunk = PortBlock::reserve(2);
    let cb = Callbridge::start(&dir, &Config::new(&ports, trunk.addr(0)));

    let r = cb.get("/openapi.json");
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.header("content-type")
            .is_some_and(|c| c.starts_with("application/json")),
        "{:?}",
        r.headers
    );
    let doc = r.json();
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1.")),
        "{}",
        doc["openapi"]
    );
    for (path, method) in [
        ("/v1/call-requests", "post"),
        ("/v1/call-requests/{id}", "get"),
        ("/v1/call-requests/{id}", "delete"),
        ("/v1/calls", "get"),
        ("/v1/agents/{id}/presence", "put"),
        ("/openapi.json", "get"),
    ] {
        assert!(
            doc["paths"][path].get(method).is_some(),
            "{method} {path} missing"
        );
    }

    let script = "import json, sys\n\
from openapi_spec_validator import validate\n\
from openapi_spec_validator.validation import OpenAPIV31SpecValidator\n\
validate(json.load(sys.stdin), cls=OpenAPIV31SpecValidator)\n\
print('valid')\n";
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 (scripts/install-test-deps installs it with openapi-spec-validator)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(r.body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success() && stdout.trim() == "valid",
        "openapi-spec-validator refused /openapi.json (run scripts/install-test-deps if it is missing): {stdout} {stderr}"
    );
}
