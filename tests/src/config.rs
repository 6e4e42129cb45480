//! callbridge configuration files for tests.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

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
    /// Raw TOML lines added to this agent's table (e.g. `token = "…"`).
    pub extra: String,
}

impl Agent {
    /// An agent of business `acme` reached at `contact`.
    #[must_use]
    pub fn new(id: &str, contact: &str) -> Self {
        Self {
            id: id.into(),
            contact: contact.into(),
            businesses: vec!["acme".into()],
            extra: String::new(),
        }
    }

    /// Adds raw TOML lines to the agent's table.
    #[must_use]
    pub fn with_toml(mut self, toml: &str) -> Self {
        self.extra.push_str(toml);
        self.extra.push('\n');
        self
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

/// The `[dpdk]` table (see the README's Operators section); its presence makes
/// [`Config::render`] write `media.backend = "dpdk"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dpdk {
    /// `devices`: PCI addresses or vdevs, e.g. `net_af_packet0,iface=veth0`.
    pub devices: Vec<String>,
    /// `main_core`.
    pub main_core: u32,
    /// `worker_cores`.
    pub worker_cores: Vec<u32>,
    /// `prefix_len` of `media.address`.
    pub prefix_len: u8,
    /// `no_huge`.
    pub no_huge: bool,
    /// `memory_mb`, omitted when `None`.
    pub memory_mb: Option<u32>,
    /// `mbufs`, omitted when `None`.
    pub mbufs: Option<u32>,
    /// `rx_desc`, omitted when `None`.
    pub rx_desc: Option<u32>,
    /// `tx_desc`, omitted when `None`.
    pub tx_desc: Option<u32>,
    /// `file_prefix`: unique per DPDK process on the host.
    pub file_prefix: String,
    /// `eal_args`, verbatim.
    pub eal_args: Vec<String>,
    /// `allow_shared_cores` (written only when true).
    pub allow_shared_cores: bool,
}

impl Dpdk {
    /// One device, main core 0, worker core 1, `/24`, hugepages, EAL defaults otherwise.
    #[must_use]
    pub fn new(device: &str, file_prefix: &str) -> Self {
        Self {
            devices: vec![device.into()],
            main_core: 0,
            worker_cores: vec![1],
            prefix_len: 24,
            no_huge: false,
            memory_mb: None,
            mbufs: None,
            rx_desc: None,
            tx_desc: None,
            file_prefix: file_prefix.into(),
            eal_args: Vec::new(),
            allow_shared_cores: false,
        }
    }

    fn render(&self, s: &mut String) {
        let list = |v: &[u32]| v.iter().map(u32::to_string).collect::<Vec<_>>().join(", ");
        let strings = |v: &[String]| v.iter().map(|d| quote(d)).collect::<Vec<_>>().join(", ");
        let _ = writeln!(s, "[dpdk]\ndevices = [{}]", strings(&self.devices));
        let _ = writeln!(s, "main_core = {}", self.main_core);
        let _ = writeln!(s, "worker_cores = [{}]", list(&self.worker_cores));
        let _ = writeln!(s, "prefix_len = {}", self.prefix_len);
        let _ = writeln!(s, "no_huge = {}", self.no_huge);
        for (key, value) in [
            ("memory_mb", self.memory_mb),
            ("mbufs", self.mbufs),
            ("rx_desc", self.rx_desc),
            ("tx_desc", self.tx_desc),
        ] {
            if let Some(v) = value {
                let _ = writeln!(s, "{key} = {v}");
            }
        }
        if self.allow_shared_cores {
            let _ = writeln!(s, "allow_shared_cores = true");
        }
        let _ = writeln!(s, "file_prefix = {}", quote(&self.file_prefix));
        let _ = writeln!(s, "eal_args = [{}]\n", strings(&self.eal_args));
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
    /// The trunk URI's `;transport=` (`"tcp"`), omitted when `None`.
    pub trunk_transport: Option<&'static str>,
    /// `[[trunk]]` tables, as raw TOML bodies (`uri = "…"\npriority = 1`); when any are given,
    /// `sip.trunk` is not rendered.
    pub trunk_tables: Vec<String>,
    /// `[sip] trunk_keepalive_secs` (default 0 here: off; see [`Config::render`]).
    pub sip_keepalive_secs: u64,
    /// Further `sip.listen` entries (`"tcp:127.0.0.1:5060"`); when there are any, `listen` is
    /// rendered as a list starting with `"udp:" + sip`.
    pub sip_extra_listen: Vec<String>,
    /// Raw TOML lines added to the `[sip]` table (e.g. `dns_servers = ["127.0.0.1:5353"]`),
    /// omitted when empty; tables such as `[sip.tls]` go in [`Config::extra`].
    pub sip_extra: String,
    /// `[media] address`: 127.0.0.1 unless set (with [`Config::dpdk`], the address DPDK owns).
    pub media_address: IpAddr,
    /// `[media] extra_addresses` (further media addresses, same ports on each), omitted when
    /// empty.
    pub extra_addresses: Vec<IpAddr>,
    /// `[media] ports`, inclusive (RTP even, RTCP odd).
    pub media_ports: (u16, u16),
    /// Raw TOML lines added to the `[media]` table (e.g. `nat_window_ms = 3000`), omitted
    /// when empty.
    pub media_extra: String,
    /// `[dpdk]`; `Some` renders `media.backend = "dpdk"`, `None` the socket backend.
    pub dpdk: Option<Dpdk>,
    /// `[[business]]` entries: (id, name).
    pub businesses: Vec<(String, String)>,
    /// Raw TOML lines added to a business's table, by business id (e.g. `webhook_url = "…"`).
    /// Every business gets `[business.retry] attempts = 1` unless its lines set a `retry`
    /// table: the tests expect one attempt per request unless they test retries.
    pub business_extra: Vec<(String, String)>,
    /// `[[agent]]` entries.
    pub agents: Vec<Agent>,
    /// `[flow]`, omitted when `None`.
    pub flow: Option<Flow>,
    /// `[lab] endpoints`.
    pub lab_endpoints: bool,
    /// Raw TOML appended after everything else: tables the harness does not model (e.g. a
    /// `[flow]` with other keys when [`Config::flow`] is `None`).
    pub extra: String,
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
            trunk_transport: None,
            sip_keepalive_secs: 0,
            trunk_tables: Vec::new(),
            sip_extra_listen: Vec::new(),
            sip_extra: String::new(),
            media_address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            extra_addresses: Vec::new(),
            media_ports: (media_first, media_first + crate::MEDIA_BLOCK - 1),
            media_extra: String::new(),
            dpdk: None,
            businesses: vec![("acme".into(), "ACME Corp".into())],
            business_extra: Vec::new(),
            agents: Vec::new(),
            flow: None,
            lab_endpoints: false,
            extra: String::new(),
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

    /// The DPDK backend: `media.address = address` and the `[dpdk]` table `dpdk`.
    #[must_use]
    pub fn dpdk(mut self, address: Ipv4Addr, dpdk: Dpdk) -> Self {
        self.media_address = IpAddr::V4(address);
        self.dpdk = Some(dpdk);
        self
    }

    /// Sets `[media] extra_addresses`.
    #[must_use]
    pub fn extra_addresses(mut self, addresses: &[IpAddr]) -> Self {
        self.extra_addresses = addresses.to_vec();
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
        let listen = if self.sip_extra_listen.is_empty() {
            quote(&self.sip.to_string())
        } else {
            let mut all = vec![quote(&format!("udp:{}", self.sip))];
            all.extend(self.sip_extra_listen.iter().map(|l| quote(l)));
            format!("[{}]", all.join(", "))
        };
        let trunk_params = self
            .trunk_transport
            .map(|t| format!(";transport={t}"))
            .unwrap_or_default();
        // No OPTIONS keep-alive to the trunk unless a test asks (`sip_keepalive_secs`): SIPp
        // counts an unexpected OPTIONS as one of its `-m` calls.
        let trunk = if self.trunk_tables.is_empty() {
            format!("trunk = \"sip:{}{trunk_params}\"\n", self.trunk)
        } else {
            String::new()
        };
        let _ = writeln!(
            s,
            "[sip]\nlisten = {listen}\n{trunk}trunk_keepalive_secs = {}",
            self.sip_keepalive_secs
        );
        if !self.sip_extra.is_empty() {
            let _ = writeln!(s, "{}", self.sip_extra.trim_end());
        }
        s.push('\n');
        for t in &self.trunk_tables {
            let _ = writeln!(s, "[[trunk]]\n{}\n", t.trim_end());
        }
        let backend = if self.dpdk.is_some() {
            "dpdk"
        } else {
            "socket"
        };
        let _ = writeln!(
            s,
            "[media]\nbackend = \"{backend}\"\naddress = \"{}\"\nports = \"{}-{}\"",
            self.media_address, self.media_ports.0, self.media_ports.1
        );
        if !self.extra_addresses.is_empty() {
            let list: Vec<String> = self
                .extra_addresses
                .iter()
                .map(|a| quote(&a.to_string()))
                .collect();
            let _ = writeln!(s, "extra_addresses = [{}]", list.join(", "));
        }
        if !self.media_extra.is_empty() {
            let _ = writeln!(s, "{}", self.media_extra.trim_end());
        }
        s.push('\n');
        if let Some(d) = &self.dpdk {
            d.render(&mut s);
        }
        for (id, name) in &self.businesses {
            let extra: String = self
                .business_extra
                .iter()
                .filter(|(b, _)| b == id)
                .map(|(_, t)| format!("{t}\n"))
                .collect();
            let (keys, tables) = split_tables(&extra);
            let _ = writeln!(
                s,
                "[[business]]\nid = {}\nname = {}\n{keys}",
                quote(id),
                quote(name)
            );
            if !tables.contains("[business.retry]") {
                let _ = writeln!(s, "[business.retry]\nattempts = 1\n");
            }
            if !tables.is_empty() {
                let _ = writeln!(s, "{tables}");
            }
        }
        for a in &self.agents {
            let bs: Vec<String> = a.businesses.iter().map(|b| quote(b)).collect();
            let _ = writeln!(
                s,
                "[[agent]]\nid = {}\ncontact = {}\nbusinesses = [{}]\n{}",
                quote(&a.id),
                quote(&a.contact),
                bs.join(", "),
                a.extra
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
        if !self.extra.is_empty() {
            let _ = writeln!(s, "\n{}", self.extra);
        }
        s
    }

    /// Adds raw TOML lines to business `id`'s table (keys first, then `[business.x]` tables).
    #[must_use]
    pub fn business_toml(mut self, id: &str, toml: &str) -> Self {
        self.business_extra.push((id.into(), toml.into()));
        self
    }

    /// Adds raw TOML lines to the `[media]` table (see [`Config::media_extra`]).
    #[must_use]
    pub fn media_toml(mut self, toml: &str) -> Self {
        self.media_extra.push_str(toml);
        self.media_extra.push('\n');
        self
    }

    /// Appends raw TOML (see [`Config::extra`]).
    #[must_use]
    pub fn with_toml(mut self, toml: &str) -> Self {
        self.extra.push_str(toml);
        self.extra.push('\n');
        self
    }
}

/// Splits raw TOML lines into the plain keys and the sub-tables (from the first `[` header
/// on), so keys land in the table itself.
fn split_tables(extra: &str) -> (String, String) {
    match extra
        .find("\n[")
        .map(|i| i + 1)
        .or_else(|| extra.starts_with('[').then_some(0))
    {
        Some(i) => (extra[..i].to_owned(), extra[i..].to_owned()),
        None => (extra.to_owned(), String::new()),
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
        assert!(text.contains("[media]\nbackend = \"socket\"\naddress = \"127.0.0.1\"\n"));
        let nat = cfg.clone().media_toml("nat_window_ms = 3000").render();
        assert!(nat.contains(&format!(
            "ports = \"{}-{}\"\nnat_window_ms = 3000\n\n",
            block.port(2),
            block.last()
        )));
        assert!(!text.contains("[dpdk]"));
        assert!(!text.contains("extra_addresses"));
        assert_eq!(quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
    }

    #[test]
    fn renders_sip_extra_in_the_sip_table() {
        let block = PortBlock::reserve(Config::BLOCK_LEN);
        let trunk: SocketAddr = "127.0.0.1:5080".parse().unwrap();
        let mut cfg = Config::new(&block, trunk);
        cfg.sip_extra = "dns_servers = [\"127.0.0.1:5353\"]\n".into();
        let text = cfg.render();
        assert!(
            text.contains(
                "trunk_keepalive_secs = 0\ndns_servers = [\"127.0.0.1:5353\"]\n\n[media]\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn renders_extra_addresses() {
        let block = PortBlock::reserve(Config::BLOCK_LEN);
        let trunk: SocketAddr = "127.0.0.1:5080".parse().unwrap();
        let text = Config::new(&block, trunk)
            .extra_addresses(&[
                IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)),
                IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3)),
            ])
            .render();
        assert!(
            text.contains(&format!(
                "[media]\nbackend = \"socket\"\naddress = \"127.0.0.1\"\nports = \"{}-{}\"\n\
                 extra_addresses = [\"127.0.0.2\", \"127.0.0.3\"]\n\n[[business]]",
                block.port(2),
                block.last()
            )),
            "{text}"
        );
    }

    #[test]
    fn renders_the_dpdk_backend() {
        let block = PortBlock::reserve(Config::BLOCK_LEN);
        let trunk: SocketAddr = "198.18.1.2:5080".parse().unwrap();
        let mut d = Dpdk::new("net_af_packet0,iface=cbdA1", "cbe2e1");
        d.no_huge = true;
        d.memory_mb = Some(512);
        d.mbufs = Some(4095);
        let text = Config::new(&block, trunk)
            .dpdk(Ipv4Addr::new(198, 18, 0, 1), d)
            .render();
        assert!(
            text.contains(&format!(
            "[media]\nbackend = \"dpdk\"\naddress = \"198.18.0.1\"\nports = \"{}-{}\"\n\n[dpdk]\n",
            block.port(2),
            block.last()
        )),
            "{text}"
        );
        assert!(
            text.contains(
                "devices = [\"net_af_packet0,iface=cbdA1\"]\nmain_core = 0\nworker_cores = [1]\n\
             prefix_len = 24\nno_huge = true\nmemory_mb = 512\nmbufs = 4095\n\
             file_prefix = \"cbe2e1\"\neal_args = []\n"
            ),
            "{text}"
        );
        assert!(!text.contains("rx_desc"), "{text}");
    }
}
