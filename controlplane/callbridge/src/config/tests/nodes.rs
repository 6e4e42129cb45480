//! `media.nodes` and `media.node_timeout_ms`.

use super::*;

/// `FULL` with `nodes = {list}` on line 9, after `media.address`.
fn with_nodes(list: &str) -> String {
    with_line(8, &format!("address = \"127.0.0.1\"\nnodes = {list}"))
}

#[test]
fn nodes_default_to_none_and_load_in_order() {
    assert!(parse(FULL).unwrap().media.nodes.is_empty());
    let c = parse(&with_nodes(
        "[\"udp:198.18.0.2:2223\", \"127.0.0.1:2224\", \"udp:[::1]:2225\"]",
    ))
    .unwrap();
    let want: Vec<std::net::SocketAddr> = ["198.18.0.2:2223", "127.0.0.1:2224", "[::1]:2225"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(c.media.node_addrs(), want);
    assert_eq!(c.media.node_timeout_ms, 400);
}

#[test]
fn bad_nodes_name_the_entry() {
    for (list, needle) in [
        (
            "[\"udp:198.18.0.2:2223\", \"udp:kamailio:2223\"]",
            "IP literals only",
        ),
        (
            "[\"udp:198.18.0.2:2223\", \"tcp:198.18.0.3:2223\"]",
            "over UDP only",
        ),
        (
            "[\"udp:198.18.0.2:2223\", \"udp:0.0.0.0:2223\"]",
            "node's own address",
        ),
        (
            "[\"udp:198.18.0.2:2223\", \"198.18.0.2:2223\"]",
            "listed twice",
        ),
    ] {
        let e = assert_prefix(&with_nodes(list), "9: media.nodes[1]: ");
        assert!(e.contains(needle), "{e}");
    }
    assert_prefix(&with_nodes("\"udp:198.18.0.2:2223\""), "9: media.nodes: ");
}

#[test]
fn node_timeout_is_bounded() {
    let text = with_line(8, "address = \"127.0.0.1\"\nnode_timeout_ms = 10");
    let e = assert_prefix(&text, "9: media.node_timeout_ms: ");
    assert!(e.contains("50..=5000"), "{e}");
    let text = with_line(8, "address = \"127.0.0.1\"\nnode_timeout_ms = 250");
    assert_eq!(parse(&text).unwrap().media.node_timeout_ms, 250);
}
