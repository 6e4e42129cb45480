//! callbridge configuration files for tests.

use std::fmt::Write as _;
use std::net::SocketAddr;

use crate::ports::PortBlock;

/// One `[[agent]]` entry.
#[derive(Debug, Clone)]
pub struct Agent {
    /// `id`.
    pub id: String,
    /// `contact`: a SIP URI or an E.164 number.
    pub contact: String,
    /// `businesses`.
    pub businesses: Vec<String>,
}

impl Agent {
    /// An agent of business `acme` reached at `contact`.
    #[must_use]
    pub fn new(id: &str, contact: &str) -> Self {
        Self {
            id: id.into(),
            contact: contact.into(),
            businesses: vec!["acme".into()],
        }
    }
}

/// The optional `[flow]` table (seconds).
#[derive(Debug, Clone, Copy)]
pub struct Flow {
    /// `customer_ring_secs`.
    pub customer_ring_secs: u32,
    /// `agent_ring_secs`.
    pub agent_ring_secs: u32,
    /// `max_agent_attempts`.
    pub max_agent_attempts: u32,
}

impl Default for Flow {
    fn default() -> Self {
        Self {
            customer_ring_secs: 30,
            agent_ring_secs: 20,
            max_agent_attempts: 3,
        }
    }
}

/// A callbridge config; [`Config::render`] gives the TOML text.
#[derive(Debug, Clone)]
pub struct Config {
    /// `[http] listen`.
    pub http: SocketAddr,
    /// `[sip] listen` (UDP).
    pub sip: SocketAddr,
    /// `[sip] trunk`, the host:port E.164 customers are sent to.
    pub trunk: SocketAddr,
    /// `[media] ports`, inclusive (RTP even, RTCP odd).
    pub media_ports: (u16, u16),
    /// `[[business]]` entries: (id, name).
    pub businesses: Vec<(String, String)>,
    /// `[[agent]]` entries.
    pub agents: Vec<Agent>,
    /// `[flow]`, omitted when `None`.
    pub flow: Option<Flow>,
    /// `[lab] endpoints`.
    pub lab_endpoints: bool,
}

impl Config {
    /// A config on the ports of `block` (port 0 = HTTP, port 1 = SIP, ports `2..2+MEDIA_BLOCK`
    /// = media), business `acme`, no agents, trunk at `trunk`.
    #[must_use]
    pub fn new(block: &PortBlock, trunk: SocketAddr) -> Self {
        let media_first = block.port(2);
        Self {
            http: block.addr(0),
            sip: block.addr(1),
            trunk,
            media_ports: (media_first, media_first + crate::MEDIA_BLOCK - 1),
            businesses: vec![("acme".into(), "ACME Corp".into())],
            agents: Vec::new(),
            flow: None,
            lab_endpoints: false,
        }
    }

    /// The port block size [`Config::new`] needs.
    pub const BLOCK_LEN: u16 = 2 + crate::MEDIA_BLOCK;

    /// Adds an agent.
    #[must_use]
    pub fn agent(mut self, agent: Agent) -> Self {
        self.agents.push(agent);
        self
    }

    /// Sets `[flow]`.
    #[must_use]
    pub fn flow(mut self, flow: Flow) -> Self {
        self.flow = Some(flow);
        self
    }

    /// Sets `[lab] endpoints`.
    #[must_use]
    pub fn lab_endpoints(mut self, on: bool) -> Self {
        self.lab_endpoints = on;
        self
    }

    /// The TOML text, in the layout of the contract.
    #[must_use]
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "[http]\nlisten = \"{}\"\n", self.http);
        let _ = writeln!(
            s,
            "[sip]\nlisten = \"{}\"\ntrunk = \"sip:{}\"\n",
            self.sip, self.trunk
        );
        let _ = writeln!(
            s,
            "[media]\nbackend = \"socket\"\naddress = \"127.0.0.1\"\nports = \"{}-{}\"\n",
            self.media_ports.0, self.media_ports.1
        );
        for (id, name) in &self.businesses {
            let _ = writeln!(
                s,
                "[[business]]\nid = {}\nname = {}\n",
                quote(id),
                quote(name)
            );
        }
        for a in &self.agents {
            let bs: Vec<String> = a.businesses.iter().map(|b| quote(b)).collect();
            let _ = writeln!(
                s,
                "[[agent]]\nid = {}\ncontact = {}\nbusinesses = [{}]\n",
                quote(&a.id),
                quote(&a.contact),
                bs.join(", ")
            );
        }
        if let Some(f) = self.flow {
            let _ = writeln!(
                s,
                "[flow]\ncustomer_ring_secs = {}\nagent_ring_secs = {}\nmax_agent_attempts = {}\n",
                f.customer_ring_secs, f.agent_ring_secs, f.max_agent_attempts
            );
        }
        let _ = writeln!(s, "[lab]\nendpoints = {}", self.lab_endpoints);
        s
    }
}

/// A TOML basic string (the values we write never need more than `"` and `\` escaped).
fn quote(v: &str) -> String {
    format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_contract_layout() {
        let block = PortBlock::reserve(Config::BLOCK_LEN);
        let trunk: SocketAddr = "127.0.0.1:5080".parse().unwrap();
        let cfg = Config::new(&block, trunk)
            .agent(Agent::new("alice", "sip:alice@127.0.0.1:15064"))
            .flow(Flow {
                customer_ring_secs: 5,
                agent_ring_secs: 2,
                max_agent_attempts: 1,
            });
        let text = cfg.render();
        assert!(text.starts_with(&format!(
            "[http]\nlisten = \"127.0.0.1:{}\"\n",
            block.port(0)
        )));
        assert!(text.contains("trunk = \"sip:127.0.0.1:5080\""));
        assert!(text.contains(&format!("ports = \"{}-{}\"", block.port(2), block.last())));
        assert!(text.contains(
            "[[agent]]\nid = \"alice\"\ncontact = \"sip:alice@127.0.0.1:15064\"\nbusinesses = [\"acme\"]"
        ));
        assert!(text.contains("agent_ring_secs = 2\nmax_agent_attempts = 1"));
        assert!(text.ends_with("[lab]\nendpoints = false\n"));
        assert_eq!(quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
    }
}
