//! Trunk keep-alive against real endpoints on 127.0.0.1: OPTIONS to each trunk; one that
//! refuses connections is taken out after `DOWN_AFTER` misses and goes last in the hop order;
//! once something answers there, it is back in service.

use std::sync::Arc;
use std::time::{Duration, Instant};

use callbridge_b2bua::{TrunkSpec, Trunks};
use sip::{Endpoint, EndpointConfig, Transport};
use tokio_util::sync::CancellationToken;

fn spec(name: &str, uri: String, priority: u32) -> TrunkSpec {
    TrunkSpec {
        name: name.into(),
        uri,
        priority,
        credentials: None,
        caller_id: None,
        businesses: None,
        srtp: sip::sdp::Srtp::Off,
    }
}

async fn until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_dead_trunk_is_taken_out_and_brought_back() {
    let (us, _in) = Endpoint::bind(EndpointConfig::new("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let (alive, _alive_in) = Endpoint::bind(EndpointConfig::new("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    // A TCP port nobody listens on (yet).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let trunks = Arc::new(
        Trunks::new(
            vec![
                spec("dead", format!("sip:127.0.0.1:{port};transport=tcp"), 1),
                spec("alive", format!("sip:{}", alive.local_addr()), 2),
            ],
            None,
        )
        .unwrap(),
    );
    let stop = CancellationToken::new();
    trunks.spawn_keepalive(us.clone(), Duration::from_millis(50), stop.clone());
    until("the dead trunk is out", || !trunks.is_up(0)).await;
    assert!(trunks.is_up(1));
    let order: Vec<String> = trunks
        .hops(None)
        .await
        .into_iter()
        .map(|h| h.trunk_name)
        .collect();
    assert_eq!(order, ["alive", "dead"], "a trunk out of service goes last");

    // Something starts answering on the dead trunk's address: back in.
    let mut cfg = EndpointConfig::new("127.0.0.1:0".parse().unwrap());
    cfg.listen = vec![sip::ListenAddr {
        transport: Transport::Tcp,
        addr: format!("127.0.0.1:{port}").parse().unwrap(),
    }];
    let (_revived, _r_in) = Endpoint::bind(cfg).await.unwrap();
    until("the trunk is back", || trunks.is_up(0)).await;
    let order: Vec<String> = trunks
        .hops(None)
        .await
        .into_iter()
        .map(|h| h.trunk_name)
        .collect();
    assert_eq!(order, ["dead", "alive"], "back in, by priority");
    stop.cancel();
}
