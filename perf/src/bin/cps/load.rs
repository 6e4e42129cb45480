//! One phase of calls: SIPp customers and agents, a fresh callbridge, requests sent open-loop
//! at a fixed rate from several HTTP connections, and every call's outcome read back from the
//! API afterwards (its status and its events' timestamps).

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use callbridge_perf::harness::{event_times, send_paced, Callbridge, CbConfig, Http, Sent, Sipp};
use hdrhistogram::Histogram;
use serde_json::{json, Value};

/// The loopback addresses of this scenario: control (HTTP, SIP, the SIPp peers) on
/// 127.0.20.1, media on 127.0.20.11-13 (so nothing collides with other users of 127.0.0.1).
const CONTROL: Ipv4Addr = Ipv4Addr::new(127, 0, 20, 1);
const MEDIA: [Ipv4Addr; 3] = [
    Ipv4Addr::new(127, 0, 20, 11),
    Ipv4Addr::new(127, 0, 20, 12),
    Ipv4Addr::new(127, 0, 20, 13),
];
/// RTP/RTCP ports on each media address: 11 000 legs per address, 33 000 in all.
pub(crate) const MEDIA_PORTS: (u16, u16) = (10_000, 31_999);
/// Legs the media port range holds (two ports each, on every address).
pub(crate) const MEDIA_LEGS: usize = (MEDIA_PORTS.1 - MEDIA_PORTS.0 + 1) as usize / 2 * MEDIA.len();

/// What every phase of a run shares.
pub(crate) struct Rig<'a> {
    /// The callbridge binary.
    pub(crate) bin: &'a Path,
    /// SIPp processes per role.
    pub(crate) sipps: usize,
    /// HTTP connections sending requests.
    pub(crate) senders: usize,
    /// HTTP connections sending the sweep's requests (fewer: each request in flight may hold a
    /// blocking-pool thread of callbridge, whose heap would count in the RSS per call).
    pub(crate) sweep_senders: usize,
    /// Where the stores go (`None`: beside each phase's config, on the work directory's disk).
    pub(crate) store_dir: Option<&'a Path>,
}

impl Rig<'_> {
    /// The store file of phase `tag`.
    pub(crate) fn store(&self, tag: &str) -> Option<PathBuf> {
        self.store_dir.map(|d| d.join(format!("{tag}.db")))
    }
}

/// Which API sets the calls up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Api {
    /// `POST /v1/bridges {"customer", "agent"}`: both parties given, no queue.
    Bridges,
    /// `POST /v1/call-requests {"business", "customer"}`: the agent queue picks an agent.
    CallRequests,
}

impl Api {
    /// The collection's path.
    pub(crate) const fn path(self) -> &'static str {
        match self {
            Self::Bridges => "/v1/bridges",
            Self::CallRequests => "/v1/call-requests",
        }
    }

    /// The name in the report.
    pub(crate) const fn name(self) -> &'static str {
        match self {
            Self::Bridges => "bridges",
            Self::CallRequests => "call-requests",
        }
    }
}

/// A running phase: the SIPp peers and callbridge, all stopped when dropped.
pub(crate) struct Phase {
    // Dropped in this order: callbridge first (so it does not see the peers vanish mid-call).
    pub(crate) cb: Callbridge,
    customers: Vec<Sipp>,
    agents: Vec<Sipp>,
    pub(crate) api: Api,
}

impl Phase {
    /// Starts `sipps` customer SIPps (answer at once, BYE after `hold_ms`), `sipps` agent
    /// SIPps (answer at once, wait for the BYE) and callbridge with `agents` agents spread
    /// over the agent SIPps (for [`Api::CallRequests`]).
    pub(crate) fn start(
        bin: &Path,
        dir: PathBuf,
        api: Api,
        sipps: usize,
        hold_ms: u64,
        agents: usize,
        store: Option<PathBuf>,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut customers = Vec::new();
        let mut agent_sipps = Vec::new();
        for k in 0..sipps {
            let k16 = u16::try_from(k)?;
            customers.push(Sipp::uas(
                &dir,
                &format!("customer{k}"),
                "uas_answer_hold_bye.xml",
                SocketAddr::new(CONTROL.into(), 5100 + k16),
                6100 + 10 * k16,
                &[("hold_ms", hold_ms.to_string())],
            )?);
            agent_sipps.push(Sipp::uas(
                &dir,
                &format!("agent{k}"),
                "uas_answer_wait_bye.xml",
                SocketAddr::new(CONTROL.into(), 5200 + k16),
                6500 + 10 * k16,
                &[],
            )?);
        }
        let config = CbConfig {
            http: SocketAddr::new(CONTROL.into(), 8080),
            sip: SocketAddr::new(CONTROL.into(), 5060),
            media: MEDIA.to_vec(),
            ports: MEDIA_PORTS,
            agents: (0..agents)
                .map(|i| {
                    (
                        format!("a{i}"),
                        agent_sipps[i % sipps].uri(&format!("a{i}")),
                    )
                })
                .collect(),
            agent_ring_secs: 20,
            store,
            dpdk: None,
        };
        let cb = Callbridge::start(bin, &dir, &config)?;
        Ok(Self {
            cb,
            customers,
            agents: agent_sipps,
            api,
        })
    }

    /// The request body of call `i`.
    fn body(&self, i: usize) -> String {
        let k = i % self.customers.len();
        let customer = self.customers[k].uri(&format!("c{i}"));
        match self.api {
            Api::Bridges => {
                json!({"customer": customer, "agent": self.agents[k].uri(&format!("a{i}"))})
            }
            Api::CallRequests => json!({"business": "acme", "customer": customer}),
        }
        .to_string()
    }

    /// Fails if callbridge or a SIPp has exited.
    pub(crate) fn check_alive(&mut self) -> anyhow::Result<()> {
        self.cb.check_alive()?;
        for s in self.customers.iter_mut().chain(self.agents.iter_mut()) {
            s.check_alive()?;
        }
        Ok(())
    }

    /// Sends `n` requests at `rate` per second from `senders` connections (see
    /// [`send_paced`]).
    pub(crate) fn send(&self, n: usize, rate: f64, senders: usize, max_time: Duration) -> Sent {
        send_paced(
            self.cb.http(),
            self.api.path(),
            n,
            rate,
            senders,
            max_time,
            |i| self.body(i),
        )
    }

    /// `live_calls` of `GET /v1/stats` plus what waits in the queue.
    pub(crate) fn live(&self, http: &mut Http) -> anyhow::Result<u64> {
        let v = http.get_json("/v1/stats")?;
        let live = v["live_calls"]
            .as_u64()
            .context("no live_calls in /v1/stats")?;
        let b = &v["businesses"]["acme"];
        Ok(live + b["queued"].as_u64().unwrap_or(0))
    }

    /// Waits until no call is live or queued, at most `deadline`; `Ok(false)` when it passed.
    pub(crate) fn wait_idle(&mut self, deadline: Duration) -> anyhow::Result<bool> {
        let start = Instant::now();
        let mut http = Http::new(self.cb.http());
        // Requests accepted last may not be claimed by the scheduler yet (not live until then).
        std::thread::sleep(Duration::from_millis(500));
        loop {
            self.check_alive()?;
            if self.live(&mut http)? == 0 {
                return Ok(true);
            }
            if start.elapsed() > deadline {
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Every accepted call's record (`GET <collection>/{id}`), read by `threads` connections.
    pub(crate) fn collect(
        &self,
        ids: &[(usize, String)],
        threads: usize,
    ) -> anyhow::Result<Vec<Value>> {
        let chunks: Vec<&[(usize, String)]> =
            ids.chunks(ids.len().div_ceil(threads).max(1)).collect();
        let parts: Vec<anyhow::Result<Vec<Value>>> = std::thread::scope(|s| {
            let hs: Vec<_> = chunks
                .into_iter()
                .map(|c| {
                    s.spawn(move || {
                        let mut http = Http::new(self.cb.http());
                        c.iter()
                            .map(|(_, id)| http.get_json(&format!("{}/{id}", self.api.path())))
                            .collect::<anyhow::Result<Vec<Value>>>()
                    })
                })
                .collect();
            hs.into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(anyhow::anyhow!("reader panicked")))
                })
                .collect()
        });
        let mut all = Vec::with_capacity(ids.len());
        for p in parts {
            all.extend(p?);
        }
        Ok(all)
    }
}

/// The outcome of a set of calls read back from the API.
pub(crate) struct Outcome {
    /// Calls that ended `completed` having been bridged.
    pub(crate) completed: usize,
    /// Failures by `status/reason` (a refused request counts as `refused`).
    pub(crate) failures: BTreeMap<String, usize>,
    /// Set-up latency (first event, committed before the `202` → the `bridged` event), ms.
    pub(crate) setup_ms: Histogram<u64>,
    /// (bridged at, ended at) ms since the epoch of every bridged call.
    pub(crate) spans: Vec<(i64, i64)>,
}

impl Outcome {
    /// Judges `records` (plus the `refused` requests).
    pub(crate) fn of(records: &[Value], refused: usize) -> Self {
        let mut o = Self {
            completed: 0,
            failures: BTreeMap::new(),
            setup_ms: Histogram::new_with_bounds(1, 3_600_000, 3).expect("histogram bounds"),
            spans: Vec::new(),
        };
        if refused > 0 {
            o.failures.insert("refused".into(), refused);
        }
        for r in records {
            let (first, bridged) = event_times(r, "bridged");
            let (_, completed) = event_times(r, "completed");
            let status = r["status"].as_str().unwrap_or("?");
            match (status, first, bridged) {
                ("completed", Some(f), Some(b)) => {
                    o.completed += 1;
                    let _ = o.setup_ms.record(u64::try_from(b - f).unwrap_or(0).max(1));
                    o.spans.push((b, completed.unwrap_or(i64::MAX)));
                }
                _ => {
                    let key = format!("{status}/{}", r["reason"].as_str().unwrap_or("-"));
                    *o.failures.entry(key).or_default() += 1;
                }
            }
        }
        o
    }

    /// Failed calls in all.
    pub(crate) fn failed(&self) -> usize {
        self.failures.values().sum()
    }

    /// Calls bridged at `t` (ms since the epoch).
    pub(crate) fn bridged_at(&self, t: i64) -> usize {
        self.spans.iter().filter(|(b, e)| *b <= t && t < *e).count()
    }

    /// p50/p90/p99/max of the set-up latency as JSON (`null` without calls).
    pub(crate) fn setup_json(&self) -> Value {
        if self.setup_ms.is_empty() {
            return json!(null);
        }
        let h = &self.setup_ms;
        json!({"p50": h.value_at_quantile(0.5), "p90": h.value_at_quantile(0.9),
               "p99": h.value_at_quantile(0.99), "max": h.max(), "mean": (h.mean() * 10.0).round() / 10.0})
    }
}

/// Checks that the SIPp scenarios of `perf/sipp/` this binary needs are there.
pub(crate) fn require_scenarios() -> anyhow::Result<()> {
    for f in ["uas_answer_hold_bye.xml", "uas_answer_wait_bye.xml"] {
        let p = callbridge_perf::harness::sipp_scenario(f);
        if !p.is_file() {
            bail!("SIPp scenario {} is missing", p.display());
        }
    }
    Ok(())
}
