//! Graceful drain (issue 10, "Upgrades without dropped calls"): SIGTERM puts callbridge into
//! `draining`. New call requests get `503` with `Retry-After`, `/healthz` says `draining`, the
//! live calls go on with their media to their natural end, and the process exits 0 when the
//! last one has ended. `drain.max_seconds` bounds the wait (the calls left are hung up), and a
//! second SIGTERM ends them at once.
//!
//! The final records are read from the store by a second callbridge started on the same
//! directory after the first one exited (which also shows the next process sees them as they
//! ended: `completed`, not `interrupted`).

use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use callbridge_tests::record::{self, check_full_call_media, is_terminal, passes_through};
use callbridge_tests::scenario::FULL_CALL_PATH;
use callbridge_tests::{
    Agent, Callbridge, Config, PortBlock, Scenario, Sipp, SippOptions, Workdir, CALL_DEADLINE,
    POLL_INTERVAL, SIPP_EXIT_DEADLINE,
};

/// Live calls drained in the main test.
const CALLS: u32 = 20;
/// Media ports: room for every call's two legs (RTP + RTCP each), with spare.
const MEDIA_PORTS: u16 = 4 * CALLS as u16 + 20;
/// `hangup_ms` of the agents' [`Scenario::AnswerByeLongRtp`]: they talk 13 s plus this, their
/// RTP flowing until the BYE (all 20 calls must be bridged before the first one ends, also
/// on a loaded machine).
const TALK_MS: u32 = 4000;
/// Deadline for the drained process to exit.
const EXIT_DEADLINE: Duration = Duration::from_secs(60);

/// One customer SIPp (the trunk), one agent SIPp playing `agents` configured agents, and
/// callbridge with `extra_toml` appended to its configuration.
struct Lab {
    cb: Callbridge,
    agent: Sipp,
    customer: Sipp,
    config: Config,
    _ports: PortBlock,
    dir: Workdir,
}

impl Lab {
    fn start(
        test: &str,
        calls: u32,
        agent: (Scenario, SippOptions),
        business_toml: &str,
        extra_toml: &str,
    ) -> Self {
        let dir = Workdir::new(test);
        let customer = Sipp::spawn(
            &dir,
            "customer",
            Scenario::Answer,
            &SippOptions {
                calls,
                ..SippOptions::default()
            },
        );
        let agent_sipp = Sipp::spawn(&dir, "agent", agent.0, &SippOptions { calls, ..agent.1 });
        let ports = PortBlock::reserve(2 + MEDIA_PORTS);
        let mut config = Config::new(&ports, customer.sip_addr());
        config.media_ports = (ports.port(2), ports.last());
        for i in 0..calls {
            let id = format!("agent{i:02}");
            config = config.agent(Agent::new(&id, &agent_sipp.sip_uri(&id)));
        }
        let config = config
            .business_toml("acme", business_toml)
            .with_toml(extra_toml);
        let cb = Callbridge::start(&dir, &config);
        Self {
            cb,
            agent: agent_sipp,
            customer,
            config,
            _ports: ports,
            dir,
        }
    }

    /// Places `n` call requests (distinct customer numbers) and waits until every one is
    /// `bridged`; fails if any ended before all were bridged.
    fn bridged_calls(&mut self, n: u32) -> Vec<String> {
        let ids: Vec<String> = (0..n)
            .map(|i| self.cb.call(&format!("+1555100{i:04}")))
            .collect();
        for id in &ids {
            let r =
                self.cb
                    .wait_for_status(id, |s| s == "bridged" || is_terminal(s), CALL_DEADLINE);
            if record::status(&r) != "bridged" {
                let why = if passes_through(&r, &["bridged"]) {
                    "ended before every call was bridged (the machine is too slow for the agents' talk time?)"
                } else {
                    "never bridged"
                };
                self.cb.fail(&format!("{id} {why}: {r:#}"));
            }
        }
        for id in &ids {
            let r = self.cb.call_request(id);
            if record::status(&r) != "bridged" {
                self.cb.fail(&format!(
                    "{id} is no longer bridged before the drain started (the machine is too slow for the agents' talk time?): {r:#}"
                ));
            }
        }
        ids
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.cb.pid().to_string())
            .stdin(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            self.cb
                .fail(&format!("kill -{sig} {} failed", self.cb.pid()));
        }
    }

    /// Waits for the server to exit; fails unless it does within `deadline`.
    fn wait_exit(&mut self, deadline: Duration) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.cb.try_wait() {
                return status;
            }
            if start.elapsed() > deadline {
                self.cb.fail(&format!(
                    "callbridge did not exit within {deadline:?} of the drain"
                ));
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Starts a second callbridge on the same directory and store (the drained one's log
    /// is kept as `callbridge-drained.log`) to read the final records.
    fn restart(&mut self) {
        let log = self.dir.file("callbridge.log");
        let kept = self.dir.file("callbridge-drained.log");
        let _ = std::fs::rename(&log, &kept);
        self.cb = Callbridge::start(&self.dir, &self.config);
    }

    /// A new call request is refused with 503, `Retry-After` and the reason `draining`; so is
    /// a bridge; `/healthz` and `/v1/admin/status` say `draining`.
    fn expect_refusing(&self) {
        // The signal is handled asynchronously: wait until the process says it drains
        // (`/healthz` 503) before asking it for new work.
        let t0 = Instant::now();
        while self.cb.get("/healthz").status != 503 {
            if t0.elapsed() > CALL_DEADLINE {
                self.cb
                    .fail("GET /healthz never answered 503 after the drain was asked for");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        for (path, body) in [
            (
                "/v1/call-requests",
                json!({"business": "acme", "customer": "+15551999999"}),
            ),
            (
                "/v1/bridges",
                json!({"customer": "+15551999998", "agent": "agent00"}),
            ),
        ] {
            let r = self.cb.post(path, &body);
            let retry = r.header("retry-after").and_then(|v| v.parse::<u64>().ok());
            let v = r.json();
            if r.status != 503 || retry.is_none() || v["reason"] != "draining" {
                self.cb.fail(&format!(
                    "POST {path} while draining answered {} (Retry-After {:?}) {v}; expected 503 with Retry-After and reason \"draining\"",
                    r.status,
                    r.header("retry-after")
                ));
            }
            if !v["error"].as_str().unwrap_or_default().contains("draining") {
                self.cb
                    .fail(&format!("the 503's error does not say draining: {v}"));
            }
        }
        let h = self.cb.get("/healthz");
        if h.status != 503 || h.json()["status"] != "draining" {
            self.cb.fail(&format!(
                "GET /healthz while draining answered {} {:?}; expected 503 {{\"status\":\"draining\"}}",
                h.status, h.body
            ));
        }
        let s = self.cb.get_json("/v1/admin/status");
        if s["state"] != "draining" || s["pid"] != json!(self.cb.pid()) {
            self.cb
                .fail(&format!("GET /v1/admin/status while draining: {s}"));
        }
    }
}

/// `media.<party>.<counter>` of the live call `id`.
fn live_counter(cb: &Callbridge, id: &str, party: &str, counter: &str) -> u64 {
    record::media(&cb.call_request(id), party, counter)
}

#[test]
fn twenty_bridged_calls_complete_while_draining_and_the_process_exits_0() {
    let mut lab = Lab::start(
        "drain_twenty",
        CALLS,
        (
            Scenario::AnswerByeLongRtp,
            SippOptions {
                ring_ms: 500,
                hangup_ms: TALK_MS,
                ..SippOptions::default()
            },
        ),
        "",
        "",
    );
    let ids = lab.bridged_calls(CALLS);
    let s = lab.cb.get_json("/v1/admin/status");
    if s["state"] != "serving" || s["live_calls"] != json!(CALLS) {
        lab.cb
            .fail(&format!("GET /v1/admin/status before the drain: {s}"));
    }
    lab.signal("TERM");
    let sigterm = Instant::now();
    lab.expect_refusing();
    // The live counters are refreshed every second: read them once they were measured
    // after the SIGTERM, so that a later increase is media relayed after it.
    std::thread::sleep(Duration::from_millis(1200));
    let at_drain: Vec<(u64, u64)> = ids
        .iter()
        .map(|id| {
            (
                live_counter(&lab.cb, id, "customer", "tx_packets"),
                live_counter(&lab.cb, id, "agent", "rx_packets"),
            )
        })
        .collect();
    let status = lab.wait_exit(EXIT_DEADLINE);
    eprintln!(
        "drained and exited with {status} after {:?}",
        sigterm.elapsed()
    );
    if !status.success() {
        lab.cb.fail(&format!(
            "the drained callbridge exited with {status}, expected 0"
        ));
    }
    lab.agent.assert_passed(SIPP_EXIT_DEADLINE);
    lab.customer.assert_passed(SIPP_EXIT_DEADLINE);

    lab.restart();
    for (id, (tx0, rx0)) in ids.iter().zip(at_drain) {
        let done = lab.cb.call_request(id);
        if record::status(&done) != "completed" || !passes_through(&done, &FULL_CALL_PATH) {
            lab.cb.fail(&format!(
                "{id}: expected completed through {FULL_CALL_PATH:?} after the drain, got: {done:#}"
            ));
        }
        if let Err(e) = check_full_call_media(&done) {
            lab.cb.fail(&format!("{id}: {e}"));
        }
        // The agent's RTP reached callbridge and was relayed to the customer after the
        // SIGTERM: at least half a second of 20 ms packets.
        let (tx1, rx1) = (
            record::media(&done, "customer", "tx_packets"),
            record::media(&done, "agent", "rx_packets"),
        );
        if tx1 < tx0 + 25 || rx1 < rx0 + 25 {
            lab.cb.fail(&format!(
                "{id}: little media after the SIGTERM: customer.tx_packets {tx0} -> {tx1}, agent.rx_packets {rx0} -> {rx1}: {done:#}"
            ));
        }
    }
}

#[test]
fn drain_max_seconds_ends_the_calls_left_and_the_process_exits_0() {
    const N: u32 = 3;
    let mut lab = Lab::start(
        "drain_max_seconds",
        N,
        // The agents never hang up: the drain's deadline must.
        (Scenario::Answer, SippOptions::default()),
        "",
        "[drain]\nmax_seconds = 2\n",
    );
    let ids = lab.bridged_calls(N);
    lab.signal("TERM");
    let sigterm = Instant::now();
    lab.expect_refusing();
    let status = lab.wait_exit(EXIT_DEADLINE);
    let took = sigterm.elapsed();
    eprintln!("exited with {status} after {took:?}");
    if !status.success() || took < Duration::from_secs(2) {
        lab.cb.fail(&format!(
            "expected exit 0 no sooner than drain.max_seconds (2 s) after SIGTERM, got {status} after {took:?}"
        ));
    }
    if !lab.cb.log().contains("drain.max_seconds reached") {
        lab.cb
            .fail("the log does not say drain.max_seconds was reached");
    }
    // Both sides got their BYE (the scenarios wait for it).
    lab.agent.assert_passed(SIPP_EXIT_DEADLINE);
    lab.customer.assert_passed(SIPP_EXIT_DEADLINE);
    lab.restart();
    for id in &ids {
        let done = lab.cb.call_request(id);
        if record::status(&done) != "cancelled" || !passes_through(&done, &["bridged"]) {
            lab.cb.fail(&format!(
                "{id}: expected cancelled after bridged (hung up at drain.max_seconds): {done:#}"
            ));
        }
    }
}

#[test]
fn a_second_sigterm_ends_the_calls_at_once() {
    const N: u32 = 2;
    let mut lab = Lab::start(
        "drain_second_signal",
        N,
        (Scenario::Answer, SippOptions::default()),
        "",
        "",
    );
    let ids = lab.bridged_calls(N);
    lab.signal("TERM");
    // The first signal was taken (the status says so) before the second is sent.
    let drained: Value = lab.cb.wait_for(
        "/v1/admin/status",
        "the state draining",
        |v| v["state"] == "draining",
        CALL_DEADLINE,
    );
    eprintln!("status: {drained}");
    lab.signal("TERM");
    let status = lab.wait_exit(Duration::from_secs(20));
    if !status.success() {
        lab.cb.fail(&format!(
            "expected exit 0 after a second SIGTERM, got {status}"
        ));
    }
    lab.agent.assert_passed(SIPP_EXIT_DEADLINE);
    lab.customer.assert_passed(SIPP_EXIT_DEADLINE);
    lab.restart();
    for id in &ids {
        let done = lab.cb.call_request(id);
        if record::status(&done) != "cancelled" {
            lab.cb.fail(&format!("{id}: expected cancelled: {done:#}"));
        }
    }
}

#[test]
fn post_admin_drain_drains_like_sigterm() {
    let mut lab = Lab::start(
        "drain_api",
        1,
        (
            Scenario::AnswerBye,
            SippOptions {
                hangup_ms: 3000,
                ..SippOptions::default()
            },
        ),
        "",
        "",
    );
    let ids = lab.bridged_calls(1);
    // A request for later: left in the store for the next process, untouched by the drain.
    let later = Command::new("date")
        .args(["-u", "-d", "+1 hour", "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let scheduled = lab.cb.create_call_request(
        &json!({"business": "acme", "customer": "+15551888888", "contact_time": later}),
    );
    let r = lab.cb.post("/v1/admin/drain", &json!({}));
    let v = r.json();
    if r.status != 202 || v["state"] != "draining" || v["live_calls"] != 1 {
        lab.cb
            .fail(&format!("POST /v1/admin/drain answered {} {v}", r.status));
    }
    // Idempotent.
    let again = lab.cb.post("/v1/admin/drain", &json!({}));
    if again.status != 202 {
        lab.cb.fail(&format!(
            "a second POST /v1/admin/drain answered {} {:?}",
            again.status, again.body
        ));
    }
    lab.expect_refusing();
    let status = lab.wait_exit(EXIT_DEADLINE);
    if !status.success() {
        lab.cb.fail(&format!("expected exit 0, got {status}"));
    }
    lab.agent.assert_passed(SIPP_EXIT_DEADLINE);
    lab.customer.assert_passed(SIPP_EXIT_DEADLINE);
    lab.restart();
    let done = lab.cb.call_request(&ids[0]);
    if record::status(&done) != "completed" {
        lab.cb.fail(&format!("expected completed: {done:#}"));
    }
    let waiting = lab.cb.call_request(&scheduled);
    if record::status(&waiting) != "scheduled"
        || record::statuses(&waiting)
            .iter()
            .any(|s| s == "interrupted")
    {
        lab.cb.fail(&format!(
            "the request for later should still be scheduled, untouched by the drain: {waiting:#}"
        ));
    }
}

#[test]
fn an_inbound_invite_while_draining_gets_503_with_retry_after() {
    const NUMBER: &str = "+15550001000";
    let mut lab = Lab::start(
        "drain_inbound",
        1,
        // The call stays up: the process keeps draining while the INVITE comes.
        (Scenario::Answer, SippOptions::default()),
        &format!("inbound_numbers = [\"{NUMBER}\"]"),
        "",
    );
    lab.bridged_calls(1);
    lab.signal("TERM");
    lab.expect_refusing();
    // The trunk is 127.0.0.1 (the customer SIPp), where SIPp's UAC sends from.
    let mut caller = Sipp::spawn(
        &lab.dir,
        "caller",
        Scenario::BuiltinUac,
        &SippOptions {
            remote: Some(lab.config.sip),
            service: Some(NUMBER.into()),
            pause_ms: 100,
            ..SippOptions::default()
        },
    );
    let _ = caller.wait_exit(Duration::from_secs(30));
    let log = caller.messages();
    let refusal = log
        .split("SIP/2.0 503")
        .nth(1)
        .and_then(|rest| rest.split("\n\n").next())
        .unwrap_or_default();
    if !refusal.to_ascii_lowercase().contains("retry-after:") {
        lab.cb.fail(&format!(
            "an INVITE while draining should get 503 with Retry-After; the caller saw:\n{log}"
        ));
    }
    // The live call is still up (the second SIGTERM of the harness's stop ends it).
    if lab.cb.get_json("/v1/admin/status")["live_calls"] != 1 {
        lab.cb.fail("the drain lost the live call");
    }
}
