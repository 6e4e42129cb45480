//! What the ng integration tests (`node.rs`, `remote.rs`) share: a media node on loopback
//! (the socket data plane on one address, the ng listener on an ephemeral UDP port, its own
//! thread and runtime), stopped when dropped.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use b2bua::InProcessMedia;
use ng::server::{Listener, Peer};
use ng::{Node, NodeSettings};

pub(crate) const DEADLINE: Duration = Duration::from_secs(10);

/// A running media node: its ng address and drain handle.
pub(crate) struct Lab {
    pub(crate) ng: SocketAddr,
    // Read by the tests that drain a node only.
    #[allow(dead_code)]
    pub(crate) drain: ng::node::DrainHandle,
    _dp: worker::Dataplane,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Lab {
    /// Stops the ng listener (the node stops answering) and joins its thread.
    pub(crate) fn stop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts a node with media address `ip` and RTP `ports`.
pub(crate) fn start_node(
    ip: Ipv4Addr,
    ports: std::ops::RangeInclusive<u16>,
    settings: NodeSettings,
) -> Lab {
    let cfg = worker::DataplaneConfig::new(IpAddr::V4(ip), ports);
    let (dp, handle) = worker::Dataplane::start(cfg).expect("data plane");
    let media = Arc::new(InProcessMedia::start(Arc::new(handle), vec![IpAddr::V4(ip)]).unwrap());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (drain_tx, drain_rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let l = Listener::bind("127.0.0.1:0".parse().unwrap())
                .await
                .unwrap();
            addr_tx.send(l.local_addr().unwrap()).unwrap();
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            let node: Node<Peer> = Node::new(media, tx, settings);
            drain_tx.send(node.drain_handle()).unwrap();
            l.run(node, rx, async {
                let _ = stop_rx.await;
            })
            .await
            .unwrap();
        });
    });
    Lab {
        ng: addr_rx.recv_timeout(DEADLINE).unwrap(),
        drain: drain_rx.recv_timeout(DEADLINE).unwrap(),
        _dp: dp,
        stop: Some(stop_tx),
        thread: Some(thread),
    }
}
