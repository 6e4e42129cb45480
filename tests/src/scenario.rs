//! The flows the call tests share: a two-party lab ([`TwoPartyCall`]: a SIPp customer behind
//! the trunk, a SIPp agent, callbridge) and the checks on call records that they all make
//! (waiting for `bridged` / a terminal status, a completed full call, a failure reason, the
//! announcement, a silent agent).
//!
//! Every check fails through [`Callbridge::fail`] (the server log in the panic message) or the
//! SIPp's own report, exactly like the checks written out in each test did.

use std::net::{SocketAddr, UdpSocket};

use serde_json::Value;

use crate::dpdk::{self, DpdkLab};
use crate::record::{self, check_full_call_media, is_terminal, passes_through};
use crate::{
    Agent, Callbridge, Config, Flow, PortBlock, RtpPeer, Scenario, Sipp, SippOptions, Workdir,
    CALL_DEADLINE, SIPP_EXIT_DEADLINE,
};

/// The statuses a full call passes through, in order.
pub const FULL_CALL_PATH: [&str; 5] = [
    "calling_customer",
    "announcing",
    "calling_agent",
    "bridged",
    "completed",
];

/// The customer number the single-call tests dial (through the trunk).
pub const CUSTOMER: &str = "+15551234567";

/// SIPp options for a UAS that rings `ring_ms` before answering.
#[must_use]
pub fn rings(ring_ms: u32) -> SippOptions {
    SippOptions {
        ring_ms,
        ..SippOptions::default()
    }
}

/// SIPp options for a UAS that rings `ring_ms`, answers and hangs up `hangup_ms` later
/// ([`Scenario::AnswerBye`]).
#[must_use]
pub fn rings_then_hangs_up(ring_ms: u32, hangup_ms: u32) -> SippOptions {
    SippOptions {
        ring_ms,
        hangup_ms,
        ..SippOptions::default()
    }
}

/// Which API a record id belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// `/v1/call-requests/{id}`.
    CallRequests,
    /// `/v1/bridges/{id}`.
    Bridges,
}

impl Callbridge {
    fn wait_for_status_of(&mut self, api: Api, id: &str, pred: impl FnMut(&str) -> bool) -> Value {
        match api {
            Api::CallRequests => self.wait_for_status(id, pred, CALL_DEADLINE),
            Api::Bridges => self.wait_for_bridge_status(id, pred, CALL_DEADLINE),
        }
    }

    /// Waits (up to [`CALL_DEADLINE`]) until the record is `bridged` or terminal; fails unless
    /// it is `bridged`. Returns that record.
    pub fn wait_bridged(&mut self, api: Api, id: &str) -> Value {
        let bridged = self.wait_for_status_of(api, id, |s| s == "bridged" || is_terminal(s));
        if record::status(&bridged) != "bridged" {
            self.fail(&format!("{id} never bridged: {bridged:#}"));
        }
        bridged
    }

    /// Waits (up to [`CALL_DEADLINE`]) for a terminal status; prints and returns the record.
    pub fn wait_done(&mut self, api: Api, id: &str) -> Value {
        let done = self.wait_for_status_of(api, id, is_terminal);
        eprintln!("final record: {done:#}");
        done
    }

    /// A completed full call: status `completed`, events through [`FULL_CALL_PATH`], and the
    /// media counters of [`check_full_call_media`] (announcement, RTP both ways). `ctx`
    /// prefixes the failure message (e.g. which of several calls).
    pub fn expect_full_call(&self, done: &Value, ctx: &str) {
        if record::status(done) != "completed" {
            self.fail(&format!("{ctx}expected completed, got: {done:#}"));
        }
        if !passes_through(done, &FULL_CALL_PATH) {
            self.fail(&format!(
                "{ctx}events {:?} do not pass through {FULL_CALL_PATH:?}: {done:#}",
                record::statuses(done)
            ));
        }
        if let Err(e) = check_full_call_media(done) {
            self.fail(&format!("{ctx}{e}"));
        }
    }

    /// Status `failed` with `reason`.
    pub fn expect_failed(&self, done: &Value, reason: &str) {
        if record::status(done) != "failed" || record::reason(done) != Some(reason) {
            self.fail(&format!("expected failed/{reason}, got: {done:#}"));
        }
    }

    /// The events pass through `path` in this order.
    pub fn expect_path(&self, done: &Value, path: &[&str]) {
        if !passes_through(done, path) {
            self.fail(&format!(
                "unexpected status path {:?} (expected through {path:?}): {done:#}",
                record::statuses(done)
            ));
        }
    }

    /// None of `statuses` occurs in the events; `why` says why it must not.
    pub fn expect_never(&self, done: &Value, statuses: &[&str], why: &str) {
        if record::statuses(done)
            .iter()
            .any(|s| statuses.contains(&s.as_str()))
        {
            self.fail(&format!("{why}: {done:#}"));
        }
    }

    /// `media.customer.announcement_packets >= min`; `during` says when it played.
    pub fn expect_announcement(&self, done: &Value, min: u64, during: &str) {
        let ann = record::media(done, "customer", "announcement_packets");
        if ann < min {
            self.fail(&format!(
                "only {ann} announcement packets (at least {min} expected) {during}: {done:#}"
            ));
        }
    }
}

/// Asserts that `sipp` received an INVITE whose request line is `INVITE {uri} SIP/2.0`.
///
/// # Panics
/// If it did not (with the SIPp's report).
pub fn expect_invite_to(sipp: &Sipp, uri: &str) {
    let ruri = format!("INVITE {uri} SIP/2.0");
    if !sipp.messages().contains(&ruri) {
        sipp.fail(&format!("expected an INVITE with Request-URI {ruri}"));
    }
}

/// Asserts that `sipp` received a `method` request; `why` names what that shows.
///
/// # Panics
/// If it did not (with the SIPp's report).
pub fn expect_request(sipp: &Sipp, method: &str, why: &str) {
    if !sipp.received_request(method) {
        sipp.fail(&format!("no {method} received: expected {why}"));
    }
}

/// An agent contact that must never be reached: a plain UDP socket bound to a reserved port.
#[derive(Debug)]
pub struct SilentAgent {
    socket: UdpSocket,
    ports: PortBlock,
}

impl SilentAgent {
    /// Binds the socket (non-blocking).
    ///
    /// # Panics
    /// If it cannot be bound.
    #[must_use]
    pub fn bind() -> Self {
        let ports = PortBlock::reserve(2);
        let socket = UdpSocket::bind(ports.addr(0))
            .unwrap_or_else(|e| panic!("cannot bind {}: {e}", ports.addr(0)));
        socket
            .set_nonblocking(true)
            .unwrap_or_else(|e| panic!("cannot make {} non-blocking: {e}", ports.addr(0)));
        Self { socket, ports }
    }

    /// `sip:{user}@ADDR`.
    #[must_use]
    pub fn sip_uri(&self, user: &str) -> String {
        format!("sip:{user}@{}", self.ports.addr(0))
    }

    /// Fails (with the server log) if anything arrived on the socket.
    pub fn expect_untouched(&self, cb: &Callbridge) {
        let mut buf = [0u8; 2048];
        if let Ok((n, from)) = self.socket.recv_from(&mut buf) {
            cb.fail(&format!(
                "the agent was contacted ({n} bytes from {from}): {}",
                String::from_utf8_lossy(&buf[..n])
            ));
        }
    }
}

/// A customer SIPp behind the trunk, one agent SIPp (configured as agent `alice`, contact
/// `sip:alice@…`, unless [`TwoPartyBuilder::agent_ids`] says otherwise), perhaps further agent
/// SIPps, and callbridge, for `business = "acme"`.
///
/// Fields drop in declaration order: callbridge first, then the SIPps, then the directory
/// (kept when the test failed).
#[derive(Debug)]
pub struct TwoPartyCall {
    /// The server.
    pub cb: Callbridge,
    /// Further agents' SIPps ([`TwoPartyBuilder::extra_agent`]), in the order added.
    pub extra_agents: Vec<Sipp>,
    /// The agent's SIPp.
    pub agent: Sipp,
    /// The customer's SIPp.
    pub customer: Sipp,
    ports: PortBlock,
    spare: Option<PortBlock>,
    /// The test's scratch directory.
    pub dir: Workdir,
}

/// Builds a [`TwoPartyCall`]; see [`TwoPartyCall::builder`].
#[derive(Debug)]
pub struct TwoPartyBuilder<'a> {
    test: String,
    customer: (Scenario, SippOptions),
    agent: (Scenario, SippOptions),
    agent_ids: Vec<String>,
    extra_agents: Vec<(String, Scenario, SippOptions)>,
    flow: Option<Flow>,
    media_toml: String,
    business_toml: String,
    unreachable_trunk: bool,
    unreachable_agent_config: bool,
    dpdk: Option<&'a DpdkLab>,
}

impl TwoPartyCall {
    /// A lab for the test `test`: by default both SIPps answer at once ([`Scenario::Answer`]),
    /// default `[flow]`, loopback, the kernel media backend.
    #[must_use]
    pub fn builder(test: &str) -> TwoPartyBuilder<'static> {
        TwoPartyBuilder {
            test: test.into(),
            customer: (Scenario::Answer, SippOptions::default()),
            agent: (Scenario::Answer, SippOptions::default()),
            agent_ids: vec!["alice".into()],
            extra_agents: Vec::new(),
            flow: None,
            media_toml: String::new(),
            business_toml: String::new(),
            unreachable_trunk: false,
            unreachable_agent_config: false,
            dpdk: None,
        }
    }

    /// The port block callbridge listens on.
    #[must_use]
    pub const fn ports(&self) -> &PortBlock {
        &self.ports
    }

    /// The address of the unreachable trunk or configured agent, if one was asked for.
    #[must_use]
    pub fn spare_addr(&self) -> Option<SocketAddr> {
        self.spare.as_ref().map(|p| p.addr(0))
    }

    /// The full call through the trunk to [`CUSTOMER`] with the agent ringing ~2 s: a call
    /// request that reaches `bridged`, then [`Callbridge::expect_full_call`], `business` is
    /// `acme`, and at least 50 announcement packets (one second's worth at 20 ms per packet)
    /// reached the customer while the agent rang. Returns the final record.
    pub fn expect_full_call_with_two_second_ring(&mut self) -> Value {
        self.expect_full_call_with_ring(50, "during a 2 s agent ring")
    }

    /// [`Self::expect_full_call_with_two_second_ring`] with at least `min_announcement`
    /// announcement packets `during` the ring (a data plane whose pacing depends on the
    /// scheduler, e.g. two busy-polling workers sharing one core, asks for fewer: pacing is
    /// measured by `scripts/perf announce`, not asserted in tests).
    pub fn expect_full_call_with_ring(&mut self, min_announcement: u64, during: &str) -> Value {
        let id = self.cb.call(CUSTOMER);
        self.cb.wait_bridged(Api::CallRequests, &id);
        let done = self.cb.wait_done(Api::CallRequests, &id);
        self.cb.expect_full_call(&done, "");
        if done["business"] != "acme" {
            self.cb
                .fail(&format!("expected business acme, got: {done:#}"));
        }
        self.cb.expect_announcement(&done, min_announcement, during);
        done
    }

    /// Every SIPp finished its scenario successfully (extra agents, agent, then customer).
    ///
    /// The talk of a call whose RTP goes to test-owned sockets (SIPp does SIP only, e.g.
    /// [`Scenario::AnswerExternalMedia`]): places a call request, waits for the
    /// announcement, starts the customer's stream (`customer.1` SSRC, 250 packets), waits
    /// for the bridge, calls `at_bridge`, starts the agent's stream (`agent.1` SSRC, 100
    /// packets), waits until the call is `completed` and both SIPps passed, and returns the
    /// final record.
    ///
    /// # Panics
    /// If the call ends before the announcement, never bridges, ends otherwise than
    /// `completed`, or a SIPp fails.
    pub fn talk_through(
        &mut self,
        customer: (&mut RtpPeer, u32),
        agent: (&mut RtpPeer, u32),
        at_bridge: impl FnOnce(),
    ) -> Value {
        let cb = &mut self.cb;
        let id = cb.call(CUSTOMER);
        let announcing = cb.wait_for_status(
            &id,
            |s| s == "announcing" || s == "calling_agent" || s == "bridged" || is_terminal(s),
            CALL_DEADLINE,
        );
        if is_terminal(record::status(&announcing)) {
            cb.fail(&format!(
                "call ended before the announcement: {announcing:#}"
            ));
        }
        let relay_customer = self
            .customer
            .received_sdp_audio("INVITE")
            .unwrap_or_else(|| {
                self.customer
                    .fail("no SDP audio address in callbridge's INVITE")
            });
        // The customer talks from now on; before the bridge there is nobody to relay it to.
        customer.0.start_sending(relay_customer, customer.1, 250);
        cb.wait_bridged(Api::CallRequests, &id);
        at_bridge();
        let relay_agent = self.agent.received_sdp_audio("INVITE").unwrap_or_else(|| {
            self.agent
                .fail("no SDP audio address in callbridge's INVITE")
        });
        agent.0.start_sending(relay_agent, agent.1, 100);
        let done = cb.wait_done(Api::CallRequests, &id);
        if record::status(&done) != "completed" {
            cb.fail(&format!("expected completed, got: {done:#}"));
        }
        self.expect_sipps_passed();
        done
    }

    /// # Panics
    /// If either failed or did not exit within [`SIPP_EXIT_DEADLINE`].
    pub fn expect_sipps_passed(&mut self) {
        for extra in &mut self.extra_agents {
            extra.assert_passed(SIPP_EXIT_DEADLINE);
        }
        self.agent.assert_passed(SIPP_EXIT_DEADLINE);
        self.customer.assert_passed(SIPP_EXIT_DEADLINE);
    }
}

impl<'a> TwoPartyBuilder<'a> {
    /// The customer's scenario and options.
    #[must_use]
    pub fn customer(mut self, scenario: Scenario, opts: SippOptions) -> Self {
        self.customer = (scenario, opts);
        self
    }

    /// The agent's scenario and options.
    #[must_use]
    pub fn agent(mut self, scenario: Scenario, opts: SippOptions) -> Self {
        self.agent = (scenario, opts);
        self
    }

    /// The configured agents played by the agent SIPp (default: just `alice`); each is
    /// `sip:ID@` the agent SIPp, in this order.
    #[must_use]
    pub fn agent_ids(mut self, ids: impl IntoIterator<Item = String>) -> Self {
        self.agent_ids = ids.into_iter().collect();
        self
    }

    /// A further configured agent `id` (after those of the agent SIPp), played by its own SIPp
    /// named `id`.
    #[must_use]
    pub fn extra_agent(mut self, id: &str, scenario: Scenario, opts: SippOptions) -> Self {
        self.extra_agents.push((id.into(), scenario, opts));
        self
    }

    /// The `[flow]` table.
    #[must_use]
    pub const fn flow(mut self, flow: Flow) -> Self {
        self.flow = Some(flow);
        self
    }

    /// Raw TOML lines for the `[media]` table (see [`Config::media_toml`]).
    #[must_use]
    pub fn media_toml(mut self, toml: &str) -> Self {
        self.media_toml.push_str(toml);
        self.media_toml.push('\n');
        self
    }

    /// Raw TOML lines for business `acme`'s table (see [`Config::business_toml`]).
    #[must_use]
    pub fn business_toml(mut self, toml: &str) -> Self {
        self.business_toml.push_str(toml);
        self.business_toml.push('\n');
        self
    }

    /// The trunk is a reserved port nothing listens on (the customer must be reached another
    /// way, e.g. by its SIP URI).
    #[must_use]
    pub const fn unreachable_trunk(mut self) -> Self {
        self.unreachable_trunk = true;
        self
    }

    /// The configured agent `alice` is a reserved port nothing listens on (the SIPp agent is
    /// named to callbridge some other way, e.g. `POST /v1/bridges`).
    #[must_use]
    pub const fn unreachable_configured_agent(mut self) -> Self {
        self.unreachable_agent_config = true;
        self
    }

    /// Runs both SIPps in `lab`'s namespace and callbridge with its DPDK media backend
    /// ([`dpdk::bin_path`], checked to be a DPDK build).
    #[must_use]
    pub fn dpdk<'b>(self, lab: &'b DpdkLab) -> TwoPartyBuilder<'b> {
        TwoPartyBuilder {
            test: self.test,
            customer: self.customer,
            agent: self.agent,
            agent_ids: self.agent_ids,
            extra_agents: self.extra_agents,
            flow: self.flow,
            media_toml: self.media_toml,
            business_toml: self.business_toml,
            unreachable_trunk: self.unreachable_trunk,
            unreachable_agent_config: self.unreachable_agent_config,
            dpdk: Some(lab),
        }
    }

    /// Spawns the SIPps, writes the config and starts callbridge (waits for `/healthz`).
    ///
    /// # Panics
    /// If any of them cannot be started.
    #[must_use]
    pub fn start(self) -> TwoPartyCall {
        let dir = Workdir::new(&self.test);
        let opts = |o: SippOptions| match self.dpdk {
            Some(lab) => lab.sipp_options(o),
            None => o,
        };
        let (scenario, o) = self.customer;
        let customer = Sipp::spawn(&dir, "customer", scenario, &opts(o));
        let (scenario, o) = self.agent;
        let agent = Sipp::spawn(&dir, "agent", scenario, &opts(o));
        let extra_agents: Vec<(String, Sipp)> = self
            .extra_agents
            .into_iter()
            .map(|(id, scenario, o)| {
                let sipp = Sipp::spawn(&dir, &id, scenario, &opts(o));
                (id, sipp)
            })
            .collect();

        let ports = PortBlock::reserve(Config::BLOCK_LEN);
        let spare = (self.unreachable_trunk || self.unreachable_agent_config)
            .then(|| PortBlock::reserve(2));
        let nobody = spare.as_ref().map(|p| p.addr(0));
        let trunk = match nobody {
            Some(addr) if self.unreachable_trunk => addr,
            _ => customer.sip_addr(),
        };
        let mut config = Config::new(&ports, trunk);
        if customer.is_tcp() && !self.unreachable_trunk {
            // The trunk speaks TCP; callbridge listens on TCP too (same port as its UDP).
            config.trunk_transport = Some("tcp");
        }
        if customer.is_tcp() || agent.is_tcp() {
            config.sip_extra_listen.push(format!("tcp:{}", config.sip));
        }
        for id in &self.agent_ids {
            let contact = match nobody {
                Some(addr) if self.unreachable_agent_config => format!("sip:{id}@{addr}"),
                _ => agent.sip_uri(id),
            };
            config = config.agent(Agent::new(id, &contact));
        }
        for (id, sipp) in &extra_agents {
            config = config.agent(Agent::new(id, &sipp.sip_uri(id)));
        }
        if let Some(flow) = self.flow {
            config = config.flow(flow);
        }
        if !self.media_toml.is_empty() {
            config = config.media_toml(&self.media_toml);
        }
        if !self.business_toml.is_empty() {
            config = config.business_toml("acme", &self.business_toml);
        }
        let cb = match self.dpdk {
            Some(lab) => {
                let config = lab.callbridge_config(config);
                let bin = dpdk::bin_path();
                dpdk::require_dpdk_build(&bin, &dir, &config);
                Callbridge::start_bin(&dir, &config, &bin)
            }
            None => Callbridge::start(&dir, &config),
        };
        TwoPartyCall {
            cb,
            extra_agents: extra_agents.into_iter().map(|(_, sipp)| sipp).collect(),
            agent,
            customer,
            ports,
            spare,
            dir,
        }
    }
}

/// A customer SIPp behind the trunk, one configured agent `alice` that is a [`SilentAgent`]
/// (no agent may be contacted), and callbridge: for calls that must end before any agent.
#[derive(Debug)]
pub struct CustomerOnlyCall {
    /// The server.
    pub cb: Callbridge,
    /// The customer's SIPp.
    pub customer: Sipp,
    /// The agent nobody may call.
    pub agent: SilentAgent,
    ports: PortBlock,
    /// The test's scratch directory.
    pub dir: Workdir,
}

impl CustomerOnlyCall {
    /// Spawns the customer running `scenario`, binds the silent agent and starts callbridge
    /// (with `flow`, or the default `[flow]`).
    ///
    /// # Panics
    /// If any of them cannot be started.
    #[must_use]
    pub fn start(test: &str, scenario: Scenario, flow: Option<Flow>) -> Self {
        let dir = Workdir::new(test);
        let customer = Sipp::uas(&dir, "customer", scenario);
        let agent = SilentAgent::bind();
        let ports = PortBlock::reserve(Config::BLOCK_LEN);
        let mut config = Config::new(&ports, customer.sip_addr())
            .agent(Agent::new("alice", &agent.sip_uri("alice")));
        if let Some(flow) = flow {
            config = config.flow(flow);
        }
        let cb = Callbridge::start(&dir, &config);
        Self {
            cb,
            customer,
            agent,
            ports,
            dir,
        }
    }

    /// The port block callbridge listens on.
    #[must_use]
    pub const fn ports(&self) -> &PortBlock {
        &self.ports
    }
}
