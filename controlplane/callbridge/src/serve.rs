//! `callbridge serve`: the composition root. Configuration in, the data-plane workers
//! started, then the tokio control plane (SIP, store, call service, HTTP, lab endpoints), and a
//! graceful drain on SIGINT or SIGTERM ([`crate::drain`]), reloads on SIGHUP ([`crate::reload`]).

use crate::{config, dpstats, drain, lab, metrics, MAX_BLOCKING_THREADS};

/// Installs the log (`[log]`: text or JSON on stderr; see [`crate::logging`]).
///
/// # Errors
/// An invalid filter in `CALLBRIDGE_LOG` or `log.level`, as a sentence.
pub(crate) fn init_tracing(cfg: &config::LogConfig) -> Result<(), String> {
    crate::logging::init(cfg)
}

/// Raises the soft open-file limit to the hard one (`serve`, `media`: the socket backend
/// opens 4 descriptors per call) and logs the figure once.
pub(crate) fn raise_fd_limit() {
    match config::budget::raise_nofile() {
        Ok((before, now)) if before != now => {
            tracing::info!(
                from = before,
                to = now,
                "open-file limit raised to the hard limit"
            );
        }
        Ok((_, now)) => tracing::info!(limit = now, "open-file limit (the hard limit)"),
        Err(e) => tracing::warn!("cannot raise the open-file limit: {e}"),
    }
}

/// Starts the data plane, then the tokio control plane; returns after a graceful drain
/// (SIGINT, SIGTERM or `POST /v1/admin/drain`). `path`: the configuration file (`None`: the
/// built-in configuration).
pub(crate) fn serve(cfg: config::Config, path: Option<std::path::PathBuf>) -> anyhow::Result<()> {
    use anyhow::Context as _;

    let announcement = match &cfg.media.announcement {
        Some(path) => {
            let bytes = std::fs::read(path)
                .with_context(|| format!("reading announcement {}", path.display()))?;
            dp_api::Clip::from_wav(&bytes, path.display().to_string())
                .with_context(|| format!("announcement {}", path.display()))?
        }
        None => dp_api::Clip::builtin_prompt(),
    };
    let announcement = std::sync::Arc::new(announcement);

    // The data plane first: its workers own their cores before tokio starts its threads.
    // With `media.nodes` there is none here: the nodes are driven over ng.
    let (dataplane, handle) = if cfg.media.nodes.is_empty() {
        let (dataplane, handle) = start_dataplane(&cfg)?;
        (
            Some(std::sync::Arc::new(dataplane)),
            Some(std::sync::Arc::new(handle)),
        )
    } else {
        (None, None)
    };

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(MAX_BLOCKING_THREADS)
        .enable_all()
        .thread_name("callbridge-cp")
        .build()
        .context("starting tokio")?;
    let result = rt.block_on(control_plane(
        cfg,
        path,
        handle,
        dataplane.clone(),
        announcement,
    ));
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    match dataplane.map(std::sync::Arc::try_unwrap) {
        None => {}
        Some(Ok(dp)) => {
            let last = dp.shutdown();
            tracing::info!("data plane stopped: {}", dpstats::summary(&last));
            tracing::debug!(stats = %dpstats::to_json(&last), "data plane counters at stop");
        }
        // Dropping the last handle stops the workers too.
        Some(Err(_)) => {
            tracing::warn!("data plane still referenced at shutdown; it stops when released")
        }
    }
    tracing::info!("callbridge stopped");
    result
}

/// Starts the configured data plane (socket or DPDK backend, workers, cores) and logs it.
///
/// # Errors
/// When the workers cannot start (ports, cores, EAL).
pub(crate) fn start_dataplane(
    cfg: &config::Config,
) -> anyhow::Result<(worker::Dataplane, dp_api::DataplaneHandle)> {
    use anyhow::Context as _;
    let mut dp_cfg = worker::DataplaneConfig::new(cfg.media.address, cfg.media.ports.range());
    dp_cfg
        .extra_addresses
        .clone_from(&cfg.media.extra_addresses);
    dp_cfg.workers = cfg.media.workers;
    dp_cfg.cores.clone_from(&cfg.media.cores);
    dp_cfg.socket = cfg.media.socket_options();
    let socket_options = dp_cfg.socket;
    let backend = match &cfg.dpdk {
        Some(d) if cfg.media.backend == config::Backend::Dpdk => {
            dp_cfg.cores = Some(d.worker_cores.clone());
            dp_cfg.burst = d.burst;
            dp_cfg.backend = worker::Backend::Dpdk(d.settings());
            "dpdk"
        }
        _ => "socket",
    };
    let (dataplane, handle) =
        worker::Dataplane::start(dp_cfg).context("starting the data plane")?;
    tracing::info!(
        backend,
        workers = dataplane.workers(),
        address = %cfg.media.address,
        extra_addresses = ?cfg.media.extra_addresses,
        ports = %cfg.media.ports,
        socket_options = ?socket_options,
        "data plane started"
    );
    Ok((dataplane, handle))
}

async fn control_plane(
    cfg: config::Config,
    path: Option<std::path::PathBuf>,
    dp: Option<std::sync::Arc<dp_api::DataplaneHandle>>,
    dataplane: Option<std::sync::Arc<worker::Dataplane>>,
    announcement: std::sync::Arc<dp_api::Clip>,
) -> anyhow::Result<()> {
    use anyhow::Context as _;
    use std::time::Duration;

    let stop = tokio_util::sync::CancellationToken::new();
    let builtin = path.is_none();
    // Caught from now on: SIGHUP must not end the process.
    let signals = drain::Signals::install().context("installing the signal handlers")?;

    // Lab endpoints come up before the B2BUA so that the first call finds them.
    if cfg.lab.endpoints {
        for phone in lab_phones(&cfg) {
            lab::start(phone, stop.child_token()).await?;
        }
    }

    let mut sip_cfg = sip::EndpointConfig::new(std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
    sip_cfg.listen = cfg.sip.listen.addrs();
    sip_cfg.tls = Some(cfg.sip.tls.load().context("loading [sip.tls]")?);
    sip_cfg.user_agent.clone_from(&cfg.sip.user_agent);
    // Re-offers (hold, resume, a moved address) reach the B2BUA, which passes them on.
    sip_cfg.reoffers = sip::ReofferPolicy::Application;
    sip_cfg.use_100rel = cfg.sip.use_100rel;
    sip_cfg.session_timer = sip::SessionTimerConfig {
        session_expires: (cfg.sip.session_expires_secs > 0)
            .then(|| Duration::from_secs(cfg.sip.session_expires_secs)),
        min_se: Duration::from_secs(cfg.sip.min_se_secs),
        ..sip::SessionTimerConfig::default()
    };
    sip_cfg.limits = cfg.sip.limits();
    sip_cfg.bad_sources = cfg.sip.bad_sources();
    // The registrar, when an agent's softphones register (contact = "registered"): only the
    // digest hashes of their passwords are kept.
    let users: Vec<sip::digest::StoredCredential> = cfg
        .agent
        .iter()
        .filter(|a| matches!(a.contact, flows::Target::Registered(_)))
        .filter_map(|a| {
            let (u, p) = (a.sip_username.as_ref()?, a.sip_password.as_ref()?);
            Some(sip::digest::StoredCredential::from_password(
                u,
                &cfg.sip.registrar.realm,
                p.expose(),
            ))
        })
        .collect();
    if !users.is_empty() {
        let r = &cfg.sip.registrar;
        let secret = match &r.secret {
            Some(s) => s.expose().as_bytes().to_vec(),
            None => {
                use rand::RngCore;
                let mut b = vec![0u8; 32];
                rand::thread_rng().fill_bytes(&mut b);
                b
            }
        };
        let mut rc = sip::registrar::RegistrarConfig::new(r.realm.clone(), secret, users);
        rc.min_expires = r.min_expires;
        rc.max_expires = r.max_expires;
        rc.max_bindings_per_user = r.max_bindings_per_user;
        rc.algorithms = r
            .algorithms
            .iter()
            .map(|a| sip::digest::Algorithm::parse(a))
            .collect();
        sip_cfg.registrar = Some(rc);
        sip_cfg.allow_register_from = r.allow_register_from.as_ref().map(|nets| {
            nets.iter()
                .filter_map(|n| sip::guard::Network::parse(n).ok())
                .collect()
        });
    }
    let trunk_uris: Vec<String> = cfg.trunk.iter().map(|t| t.uri.clone()).collect();
    sip_cfg.allow_invite_from = Some(cfg.sip.invite_acl(&trunk_uris));
    let (endpoint, mut incoming) = sip::Endpoint::bind(sip_cfg)
        .await
        .with_context(|| format!("binding SIP on {}", cfg.sip.listen))?;

    let (media, nodes) = media_plane(&cfg, dp).await?;
    // RFC 3263 for trunk and URI host names. Without a usable resolver, IP literals still work.
    let locator = match sip::locate::Locator::new(sip::locate::LocatorConfig {
        name_servers: cfg.sip.dns_servers.clone(),
        ..sip::locate::LocatorConfig::default()
    }) {
        Ok(l) => Some(std::sync::Arc::new(l)),
        Err(e) => {
            tracing::warn!(error = %e, "no DNS resolver: SIP host names cannot be reached");
            None
        }
    };
    let trunks = std::sync::Arc::new(
        b2bua::Trunks::new(config::trunk_specs(&cfg.trunk, &cfg.sip), locator.clone())
            .context("setting up the trunks")?,
    );
    if cfg.sip.trunk_keepalive_secs > 0 {
        trunks.spawn_keepalive(
            endpoint.clone(),
            std::time::Duration::from_secs(cfg.sip.trunk_keepalive_secs),
            stop.child_token(),
        );
    }
    let b2b = b2bua::B2bua::new(
        endpoint.clone(),
        media,
        b2bua::Settings {
            trunks,
            locator,
            from_user: cfg.sip.from_user.clone(),
            outbound_proxy: cfg.sip.outbound_proxy.as_ref().and_then(|uri| {
                let addr = sip::msg::uri_addr(uri).ok()?;
                let transport = sip::msg::uri_transport(uri).unwrap_or(sip::Transport::Udp);
                Some(b2bua::OutboundProxy {
                    uri: uri.clone(),
                    dest: sip::Peer::new(transport, addr),
                    tls_name: None,
                })
            }),
        },
    );
    // `store.url`: PostgreSQL shared with other nodes; otherwise the SQLite file.
    let which = cfg.store.url.as_ref().map_or_else(
        || cfg.store.path.display().to_string(),
        |_| "PostgreSQL (store.url)".to_owned(),
    );
    let store_cfg = cfg.store.clone();
    let db: std::sync::Arc<dyn store::Store> = tokio::task::spawn_blocking(move || {
        Ok::<std::sync::Arc<dyn store::Store>, store::StoreError>(match &store_cfg.url {
            Some(url) => std::sync::Arc::new(store::PgStore::open(url)?),
            None => std::sync::Arc::new(store::SqliteStore::open(&store_cfg.path)?),
        })
    })
    .await
    .context("opening the store")?
    .with_context(|| format!("opening the store {which}"))?;
    tracing::info!(store = %which, "store open");
    let directory = directory(&cfg)?;
    let settings = service::Settings {
        timers: cfg.flow.timers(),
        media: cfg.media.policy(),
        announcement,
        // Requests without a business (bridges) are not retried.
        max_attempts: 1,
        // The ACD waits for a preferred agent as long as the most patient business asks.
        preferred_wait: cfg
            .business
            .iter()
            .map(config::BusinessConfig::preferred_wait)
            .max()
            .unwrap_or(Duration::from_secs(30)),
        limits: cfg.limits.limits(),
        customer_srtp: cfg.media.srtp.policy(),
        // Estimated until measured below, once everything is open.
        admission: cfg.limits.admission(
            config::budget::Budget::new(&cfg, soft_nofile(), config::budget::FIXED_ESTIMATE).calls,
            config::budget::port_calls(&cfg),
        ),
    };
    let svc = service::Service::start(db, b2b, directory, settings, stop.child_token())
        .await
        .context("starting the call service")?;
    // Inbound calls: a trunk's INVITE to a business's number joins its queue; anything else
    // gets the refusal's status (403 not a trunk, 404 unknown number, 503 no capacity).
    let inbound = svc.clone();
    tokio::spawn(async move {
        while let Some(call) = incoming.recv().await {
            let (from, uri) = (call.from.clone(), call.request_uri.clone());
            match inbound.inbound(call) {
                Ok(id) => tracing::info!(call = %id, %from, %uri, "inbound call queued"),
                Err(r) => {
                    tracing::info!(%from, %uri, status = r.status, reason = %r.reason, "inbound call refused")
                }
            }
        }
    });
    let admin = std::sync::Arc::new(drain::Admin::new(
        svc.clone(),
        path,
        &cfg,
        backend_name(&cfg),
        dataplane.as_ref().map_or(0, |d| d.workers()),
    ));
    let state = http_api::AppState {
        calls: std::sync::Arc::new(Api {
            svc: svc.clone(),
            dataplane,
            nodes,
            dpdk: cfg.dpdk.is_some() && cfg.media.backend == config::Backend::Dpdk,
            admin: admin.clone(),
        }),
        operator_key: cfg
            .http
            .operator_key
            .as_ref()
            .map(|k| std::sync::Arc::from(k.expose())),
    };
    let app = http_api::router(state);
    let listener = tokio::net::TcpListener::bind(cfg.http.listen)
        .await
        .with_context(|| format!("binding HTTP on {}", cfg.http.listen))?;
    descriptor_budget(&cfg, &svc);
    tracing::info!(http = %cfg.http.listen, sip = %endpoint.local_addr(), "callbridge ready");
    println!(
        "callbridge ready: http://{} sip:{}",
        cfg.http.listen,
        endpoint.local_addr()
    );
    if builtin {
        // The built-in demo: the agents' desktop tokens are made at start; show them.
        println!(
            "agent desktop: http://{}/agent — sign in as alice with token {} or as bob with token {}",
            cfg.http.listen,
            config::demo_tokens()[0],
            config::demo_tokens()[1]
        );
    }

    let shutdown = stop.clone();
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    // Serves until drained (the HTTP server answers GETs while the calls finish).
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        drain::run(admin, signals).await;
        shutdown.cancel();
    });
    server.await.context("HTTP server")?;
    tracing::info!("shutting down: ending calls");
    svc.shutdown(Duration::from_secs(3)).await;
    endpoint.shutdown();
    Ok(())
}

/// The B2BUA's media plane: this process's data plane, or the media nodes of `media.nodes`
/// over ng (then also returned, for status pages).
async fn media_plane(
    cfg: &config::Config,
    dp: Option<std::sync::Arc<dp_api::DataplaneHandle>>,
) -> anyhow::Result<(
    std::sync::Arc<dyn b2bua::Media>,
    Option<ng::remote::NgMedia>,
)> {
    use anyhow::Context as _;
    if let Some(dp) = dp {
        let m = b2bua::InProcessMedia::start(dp, cfg.media.addresses())
            .context("starting the data-plane event thread")?;
        return Ok((std::sync::Arc::new(m), None));
    }
    let mut ng_cfg = ng::remote::NgMediaConfig::new(cfg.media.node_addrs());
    ng_cfg.client.timeout = std::time::Duration::from_millis(cfg.media.node_timeout_ms);
    ng_cfg.client.retransmit = ng_cfg.client.timeout / 5;
    let nodes = ng::remote::NgMedia::start(ng_cfg)
        .await
        .context("starting the media-node clients (media.nodes)")?;
    for n in nodes.status() {
        if n.healthy {
            tracing::info!(node = %n.addr, free_pairs = n.free, "media node answers");
        } else {
            tracing::warn!(node = %n.addr, "media node does not answer (yet): no calls go there until it does");
        }
    }
    Ok((std::sync::Arc::new(nodes.clone()), Some(nodes)))
}

/// The soft open-file limit now (`u64::MAX`: unlimited or unknown).
fn soft_nofile() -> u64 {
    config::budget::nofile().map_or(u64::MAX, |(soft, _)| soft)
}

/// Measures the descriptors open with everything up but no call, gives the service the
/// calls the rest carries, and logs the admission limits once.
fn descriptor_budget(cfg: &config::Config, svc: &service::Service) {
    use config::budget;
    let fixed = budget::open_fds().unwrap_or(budget::FIXED_ESTIMATE);
    let b = budget::Budget::new(cfg, soft_nofile(), fixed);
    svc.set_descriptor_budget(b.calls);
    let (limit, bound_by) = svc.call_limit();
    let ports = budget::port_calls(cfg);
    tracing::info!(
        descriptors = %b,
        media_port_calls = ports,
        max_calls = limit,
        bound_by,
        max_setups_per_second = cfg.limits.max_setups_per_second,
        "admission limits"
    );
    if let Some(calls) = b.calls.filter(|&c| c < ports) {
        tracing::warn!(
            "media.ports {} holds {ports} calls but the open-file limit carries {calls}: calls beyond are refused (503, reason descriptors); raise LimitNOFILE= or narrow the range",
            cfg.media.ports
        );
    }
}

/// The service's directory from the configuration: businesses with their keys, hours,
/// webhooks and policies; agents with their tokens, skills and wrap-up.
pub(crate) fn directory(cfg: &config::Config) -> anyhow::Result<service::Directory> {
    use anyhow::Context as _;
    let businesses = cfg
        .business
        .iter()
        .map(|b| -> anyhow::Result<service::BusinessEntry> {
            let mut e = service::BusinessEntry::new(b.id.clone(), b.name.clone());
            e.api_keys = b.api_keys.iter().map(|k| k.expose().to_owned()).collect();
            e.widget_key.clone_from(&b.widget_key);
            e.allowed_origins.clone_from(&b.allowed_origins);
            e.time_zone.clone_from(&b.time_zone);
            e.hours.clone_from(&b.opening_hours);
            e.default_country.clone_from(&b.default_country);
            e.webhook = b
                .webhook()
                .map(|(url, secret)| (url.to_owned(), secret.expose().to_owned()));
            e.retry = b.retry.policy();
            e.numbers = b.number_policy.policy();
            e.limits = Some(b.rate_limits(&cfg.limits));
            e.caller_id.clone_from(&b.caller_id);
            e.numbers_inbound.clone_from(&b.inbound_numbers);
            e.agent_early_media = b.agent_early_media;
            e.reservation = b.reservation.into();
            e.hours_spec.clone_from(&b.hours);
            e.holidays_spec.clone_from(&b.holidays);
            e.webhook_secret = b.webhook_secret.as_ref().map(|s| s.expose().to_owned());
            if let Some(path) = &b.announcement {
                let bytes = std::fs::read(path).with_context(|| {
                    format!(
                        "reading business {}'s announcement {}",
                        b.id,
                        path.display()
                    )
                })?;
                let clip = dp_api::Clip::from_wav(&bytes, path.display().to_string())
                    .with_context(|| {
                        format!("business {}'s announcement {}", b.id, path.display())
                    })?;
                e.announcement = Some(std::sync::Arc::new(clip));
            }
            Ok(e)
        })
        .collect::<anyhow::Result<_>>()?;
    let agents = cfg
        .agent
        .iter()
        .map(|a| {
            let mut e =
                service::AgentEntry::new(a.id.clone(), a.contact.clone(), a.businesses.clone());
            a.display_name().clone_into(&mut e.name);
            e.skills.clone_from(&a.skills);
            e.wrap_up = a.wrap_up();
            e.token = a.token.as_ref().map(|t| t.expose().to_owned());
            e.srtp = a.srtp.policy();
            e
        })
        .collect();
    Ok(service::Directory { businesses, agents })
}

/// The HTTP API's view of the service, plus the data plane's counters.
struct Api {
    svc: service::Service,
    /// This process's data plane (`None` with `media.nodes`).
    dataplane: Option<std::sync::Arc<worker::Dataplane>>,
    /// The media nodes (`media.nodes`).
    nodes: Option<ng::remote::NgMedia>,
    /// The DPDK backend runs (its port counters go into `GET /metrics`).
    dpdk: bool,
    admin: std::sync::Arc<drain::Admin>,
}

impl http_api::CallService for Api {
    fn submit(
        &self,
        req: service::Submit,
        origin: &service::Origin,
    ) -> Result<service::Outcome, service::ServiceError> {
        self.svc.accept(req, origin)
    }
    fn bridge(
        &self,
        req: service::Bridge,
        origin: &service::Origin,
    ) -> Result<service::Outcome, service::ServiceError> {
        self.svc.bridge(req, origin)
    }
    fn get(
        &self,
        id: &flows::CallId,
    ) -> Result<Option<service::RequestView>, service::ServiceError> {
        self.svc.get(id)
    }
    fn sale(
        &self,
        id: &flows::CallId,
        sale: &store::Sale,
    ) -> Result<service::RequestView, service::ServiceError> {
        self.svc.sale(id, sale)
    }
    fn records(
        &self,
        filter: &store::RecordFilter,
    ) -> Result<Vec<store::CallRecord>, service::ServiceError> {
        self.svc.records(filter)
    }
    fn businesses(&self) -> Vec<http_api::BusinessInfo> {
        http_api::CallService::businesses(&self.svc)
    }
    fn directory(&self) -> std::sync::Arc<service::Directory> {
        self.svc.directory()
    }
    fn put_agent(
        &self,
        id: &flows::AgentId,
        doc: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<service::AgentEntry, service::ServiceError> {
        self.svc.put_agent(id, doc)
    }
    fn put_business(
        &self,
        id: &flows::BusinessId,
        doc: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<service::BusinessEntry, service::ServiceError> {
        self.svc.put_business(id, doc)
    }
    fn stats(&self) -> serde_json::Value {
        self.svc.stats()
    }
    fn deliveries(
        &self,
        id: &flows::CallId,
    ) -> Result<Vec<store::OutboxItem>, service::ServiceError> {
        self.svc.deliveries(id)
    }
    fn subscribe(&self) -> Option<tokio::sync::broadcast::Receiver<service::Notice>> {
        Some(self.svc.subscribe())
    }
    fn presence(&self, agent: &flows::AgentId) -> Option<service::Presence> {
        self.svc.presence(agent)
    }
    fn devices(&self, agent: &flows::AgentId) -> Option<serde_json::Value> {
        self.svc.devices(agent)
    }
    fn set_presence(
        &self,
        agent: &flows::AgentId,
        p: service::Presence,
    ) -> Result<service::Presence, service::ServiceError> {
        self.svc.set_presence(agent, p)
    }
    fn cancel(&self, id: &flows::CallId) -> Result<service::Cancelled, service::ServiceError> {
        self.svc.cancel(id)
    }
    fn live_ids(&self) -> Vec<flows::CallId> {
        self.svc.live_ids()
    }
    fn dataplane_stats(&self) -> Option<serde_json::Value> {
        match (&self.dataplane, &self.nodes) {
            (Some(d), _) => Some(dpstats::to_json(&d.stats())),
            (None, Some(n)) => Some(serde_json::json!({
                "media_nodes": n.status().iter().map(|s| serde_json::json!({
                    "ng": s.addr.to_string(),
                    "healthy": s.healthy,
                    "live_pairs": s.live,
                    "pooled_pairs": s.pooled,
                    "free_pairs": s.free,
                })).collect::<Vec<_>>(),
            })),
            (None, None) => None,
        }
    }
    fn metrics(&self) -> (&'static str, String) {
        let stats = self
            .dataplane
            .as_ref()
            .map(|d| d.stats())
            .unwrap_or_default();
        let text = metrics::render(&self.svc, &stats, self.dpdk);
        (metrics::CONTENT_TYPE, text)
    }
    fn admin_status(&self) -> Option<serde_json::Value> {
        Some(self.admin.status_json())
    }
    fn draining(&self) -> bool {
        self.svc.is_draining()
    }
    fn drain(&self) -> Option<serde_json::Value> {
        Some(self.admin.drain_json())
    }
    fn reload(&self) -> Result<serde_json::Value, http_api::admin::ReloadRefusal> {
        crate::reload::reload(&self.admin)
    }
    fn sip_trace(&self, id: &flows::CallId) {
        self.svc.sip_trace(id);
    }
}

/// `"socket"` or `"dpdk"`, as the data plane was started.
fn backend_name(cfg: &config::Config) -> &'static str {
    if !cfg.media.nodes.is_empty() {
        return "media nodes (ng)";
    }
    if cfg.dpdk.is_some() && cfg.media.backend == config::Backend::Dpdk {
        "dpdk"
    } else {
        "socket"
    }
}

/// SIGINT or SIGTERM, once (`callbridge media` stops on it; `serve` drains, see
/// [`crate::drain`]).
pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

/// The lab phones for a config: the trunk (answers any number: the customer) and every agent
/// whose contact is a SIP URI on a loopback address.
fn lab_phones(cfg: &config::Config) -> Vec<lab::LabPhone> {
    use std::time::Duration;
    let mut phones = Vec::new();
    if let Some(addr) = loopback_addr(&cfg.sip.trunk) {
        phones.push(lab::LabPhone {
            name: "trunk".into(),
            sip: addr,
            ring: Duration::from_millis(1500),
            talk: Duration::from_secs(120),
            tone_hz: 440.0,
        });
    }
    for a in &cfg.agent {
        if let flows::Target::Sip(uri) = &a.contact {
            if let Some(addr) = loopback_addr(uri) {
                if phones.iter().any(|p| p.sip == addr) {
                    continue;
                }
                phones.push(lab::LabPhone {
                    name: a.id.as_str().to_owned(),
                    sip: addr,
                    ring: Duration::from_secs(3),
                    talk: Duration::from_secs(10),
                    tone_hz: 660.0,
                });
            }
        }
    }
    phones
}

/// `sip:[user@]127.x.y.z[:port]` → the socket address, when it is on loopback.
fn loopback_addr(uri: &str) -> Option<std::net::SocketAddr> {
    let parsed = flows::SipUri::parse(uri).ok()?;
    let host = parsed.host.trim_start_matches('[').trim_end_matches(']');
    let ip: std::net::IpAddr = if host.eq_ignore_ascii_case("localhost") {
        [127, 0, 0, 1].into()
    } else {
        host.parse().ok()?
    };
    let addr = std::net::SocketAddr::new(ip, parsed.port.unwrap_or(5060));
    addr.ip().is_loopback().then_some(addr)
}
