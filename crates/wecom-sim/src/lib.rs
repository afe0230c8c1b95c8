//! wecom-sim: a local WeCom for tests, demos and docker-compose.
//!
//! The real WeCom cannot be reached from a test, and no provider can exercise a 代开发 flow
//! without a real enterprise scanning a QR code. This crate plays WeCom's part:
//!
//! - the server APIs under `/cgi-bin/…`, serving the `wecom::api` types themselves, with
//!   WeCom's token, AuthCode and ticket rules, errcodes, scope and grants;
//! - WeCom's side of the callbacks: events built with `wecom::event`, encrypted with
//!   `wecom::crypto` exactly as WeCom does, POSTed to the ingress with WeCom's retries;
//! - a control API under `/sim/…` to drive the whole lifecycle, mutate the directory, inject
//!   faults and move the clock;
//! - deterministic directories big enough for load tests.
//!
//! docs/wecom-sim.md documents the routes, the configuration and the rules.
//!
//! Use it in-process: [`build`] binds (port 0 is fine), [`App::run`] serves until the
//! cancellation token fires. The `wecom-sim` binary is a thin wrapper around the same calls.
//!
//! The public surface is small, and everything in it is re-exported here:
//! - starting: [`build`], [`App`], [`StartError`];
//! - configuring: [`SimConfig`] (and [`ConfigError`], [`USAGE`]) with the types of its fields:
//!   [`Ttls`], [`DeliveryConfig`], [`FaultConfig`] ([`RateLimit`]), [`CorpSpec`]
//!   ([`AuthorizeWith`], [`Scope`]);
//! - driving it directly: [`Sim`] (from [`App::sim`]), its options [`PushOpts`] and
//!   [`ScopeChange`], its answers [`CorpSummary`] ([`SeedSpec`], [`Authorization`],
//!   [`AuthStatus`]), [`AuthGranted`], [`AppSwitched`], [`TicketIssued`], the pushes they queue
//!   ([`Pending`], [`Queued`], [`DeliveryReport`]) and its errors ([`ControlError`],
//!   [`StateError`], [`DirectoryError`]);
//! - its clock, counters and faults: [`Clock`], [`Stats`] ([`StatsSnapshot`], [`TokenCounts`],
//!   [`AuthCodeCounts`], [`CallbackCounts`]), [`Faults`];
//! - checking a JS-SDK ticket through [`Sim::read`]: [`AppRef`], [`TicketKind`].

mod api;
mod clock;
mod config;
mod control;
mod directory;
mod errcode;
mod faults;
mod push;
mod rng;
mod scope;
mod sim;
mod state;
mod stats;

/// Typed ids from literals, for unit tests.
#[cfg(test)]
pub(crate) mod test_ids {
    use wecom::ids::{DepartmentId, TagId, UserId};

    /// A department id.
    pub(crate) fn dept(id: i64) -> DepartmentId {
        DepartmentId::new(id).unwrap()
    }

    /// A tag id.
    pub(crate) fn tag(id: i64) -> TagId {
        TagId::new(id).unwrap()
    }

    /// A userid.
    pub(crate) fn user(id: &str) -> UserId {
        UserId::parse(id).unwrap()
    }
}

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use actix_web::{App as ActixApp, HttpResponse, HttpServer, web};
use tokio_util::sync::CancellationToken;
use wecom::ids::{CorpId, SuiteId};

// The public surface: everything else is private to the crate.

/// Why a configuration was rejected.
pub use config::ConfigError;
/// The configuration: flags, `SIM_*` variables and TOML (see [`SimConfig::load`]).
pub use config::SimConfig;
/// The `--help` text of the `wecom-sim` binary (flags and variables).
pub use config::USAGE;
/// Injected faults: rate limits, errors, latency ([`SimConfig::faults`], [`Faults::set`]).
pub use faults::FaultConfig;
/// A rate limit of a [`FaultConfig`].
pub use faults::RateLimit;
/// Callback delivery: where to push, timeouts, retries, duplicates, reordering
/// ([`SimConfig::delivery`]).
pub use push::DeliveryConfig;
/// An app's visibility scope (departments, members, tags): [`CorpSpec::scope`], [`ScopeChange`].
pub use scope::Scope;
/// Whether (and for which suites) a [`CorpSpec`] is authorized once created.
pub use state::AuthorizeWith;
/// A corp to create, at start ([`SimConfig::corps`]) or with [`Sim::create_corp`].
pub use state::CorpSpec;
/// Token, AuthCode and ticket lifetimes ([`SimConfig::ttl`]).
pub use state::Ttls;

/// Behind [`Sim::clock`]; advance it instead of sleeping.
pub use clock::Clock;
/// Why a [`Sim`] call (or a control request) failed.
pub use control::ControlError;
/// A directory rule a change broke ([`ControlError::Directory`]).
pub use directory::DirectoryError;
/// How a corp's directory was seeded ([`CorpSummary::seeded`]).
pub use directory::seed::SeedSpec;
/// Behind [`Sim::faults`].
pub use faults::Faults;
/// How the delivery of one callback push (one copy) ended.
pub use push::DeliveryReport;
/// A queued callback push; await its [`Pending::done`] for the [`DeliveryReport`].
pub use push::Pending;
/// Which push a [`Pending`] is.
pub use push::Queued;
/// What [`Sim::disable`] and [`Sim::enable`] did.
pub use sim::AppSwitched;
/// What [`Sim::authorize`] and [`Sim::reset_secret`] did.
pub use sim::AuthGranted;
/// Whether a [`Sim`] call pushes its callback, and whether it waits for the delivery.
pub use sim::PushOpts;
/// A scope and/or grants change, for [`Sim::change_scope`].
pub use sim::ScopeChange;
/// For direct calls from in-process tests ([`App::sim`]).
pub use sim::Sim;
/// What [`Sim::push_ticket`] did.
pub use sim::TicketIssued;
/// For `sim.read().js_ticket_valid(…)` ([`Sim::read`]).
pub use state::AppRef;
/// Whether an [`Authorization`] is active or cancelled.
pub use state::AuthStatus;
/// A suite's app in a corp, with its permanent code ([`CorpSummary::authorizations`]).
pub use state::Authorization;
/// A corp as [`Sim::create_corp`] and [`Sim::change_scope`] describe it.
pub use state::CorpSummary;
/// A state rule a [`Sim`] call broke ([`ControlError::State`]).
pub use state::StateError;
/// For `sim.read().js_ticket_valid(…)`: the corp's JS-SDK ticket or the app's.
pub use state::TicketKind;
/// AuthCodes issued, consumed and rejected, in a [`StatsSnapshot`].
pub use stats::AuthCodeCounts;
/// Callback pushes queued, delivered and failed, in a [`StatsSnapshot`].
pub use stats::CallbackCounts;
/// Behind [`Sim::stats`].
pub use stats::Stats;
/// A copy of the counters ([`Stats::snapshot`]).
pub use stats::StatsSnapshot;
/// Tokens issued, in a [`StatsSnapshot`].
pub use stats::TokenCounts;

use crate::push::{Dispatcher, Pusher};
use crate::state::World;

/// Why the simulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is inconsistent.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A corp of the configuration could not be created.
    #[error("corp {index} of the configuration: {source}")]
    Corp {
        /// Its position in `corps`.
        index: usize,
        /// Why.
        source: control::ControlError,
    },
}

/// A built simulator: bound, corps created, not serving yet.
#[derive(Debug)]
pub struct App {
    addr: SocketAddr,
    sim: Arc<Sim>,
    listener: TcpListener,
    workers: usize,
    dispatcher: Dispatcher,
    ticket_interval: Duration,
    ticket_on_start: bool,
    authorize_at_start: Vec<(CorpId, AuthorizeWith, Option<String>)>,
}

/// Builds the simulator: state, corps of the configuration (seeded), and the bound listener.
pub fn build(config: SimConfig) -> Result<App, StartError> {
    config.validate()?;
    let stats = Arc::new(Stats::default());
    let world = World::new(
        config.suites,
        config.ttl,
        &config.provider_corp_id,
        config.provider_secret.as_deref(),
    );
    let faults = Faults::new(config.faults, config.seed);
    let (pusher, dispatcher) = Pusher::new(config.delivery, Arc::clone(&stats), config.seed);
    let sim = Arc::new(Sim::new(world, stats, faults, pusher, config.seed));
    let mut authorize_at_start = Vec::new();
    for (index, mut spec) in config.corps.into_iter().enumerate() {
        // Authorizations push callbacks, so they wait until the server runs.
        let authorize = spec.authorize.take();
        let (summary, _) = sim
            .create_corp(&spec, PushOpts::default())
            .map_err(|source| StartError::Corp { index, source })?;
        if let Some(authorize) = authorize {
            authorize_at_start.push((summary.corp_id, authorize, spec.state));
        }
    }
    let listener = TcpListener::bind(config.addr).map_err(|source| StartError::Bind {
        addr: config.addr,
        source,
    })?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        addr: config.addr,
        source,
    })?;
    Ok(App {
        addr,
        sim,
        listener,
        workers: config.workers,
        dispatcher,
        ticket_interval: config.ticket_interval,
        ticket_on_start: config.ticket_on_start,
        authorize_at_start,
    })
}

impl App {
    /// The bound address (the real port when the configuration said 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:{port}` (or the bound IP when it is not unspecified).
    pub fn base_url(&self) -> String {
        let ip = if self.addr.ip().is_unspecified() {
            std::net::IpAddr::from([127, 0, 0, 1])
        } else {
            self.addr.ip()
        };
        format!("http://{}", SocketAddr::new(ip, self.addr.port()))
    }

    /// The simulator itself, for in-process tests (clock, stats, direct calls).
    pub fn sim(&self) -> Arc<Sim> {
        Arc::clone(&self.sim)
    }

    /// Serves until `shutdown` is cancelled: HTTP, callback delivery, suite tickets.
    pub async fn run(self, shutdown: CancellationToken) -> std::io::Result<()> {
        let data = web::Data::from(Arc::clone(&self.sim));
        let server = HttpServer::new(move || {
            ActixApp::new()
                .app_data(data.clone())
                .route(
                    "/healthz",
                    web::get().to(|| async { HttpResponse::Ok().body("ok") }),
                )
                .configure(api::routes)
                .configure(control::routes)
        })
        .workers(self.workers)
        .disable_signals()
        .shutdown_timeout(2)
        .listen(self.listener)?
        .run();
        let handle = server.handle();
        let mut server = tokio::spawn(server);
        tokio::spawn(self.dispatcher.run(shutdown.clone()));
        tracing::info!(addr = %self.addr, "wecom-sim listening");
        start_up(&self.sim, self.ticket_on_start, &self.authorize_at_start);
        tokio::spawn(ticket_loop(
            Arc::clone(&self.sim),
            self.ticket_interval,
            shutdown.clone(),
        ));
        tokio::select! {
            () = shutdown.cancelled() => {
                handle.stop(true).await;
                join(server.await)
            }
            result = &mut server => join(result),
        }
    }
}

fn join(result: Result<std::io::Result<()>, tokio::task::JoinError>) -> std::io::Result<()> {
    result.map_err(std::io::Error::other)?
}

/// The pushes of a fresh start: a ticket per suite, then the configured authorizations.
fn start_up(
    sim: &Sim,
    ticket_on_start: bool,
    authorize: &[(CorpId, AuthorizeWith, Option<String>)],
) {
    if ticket_on_start {
        push_tickets(sim);
    }
    for (corp_id, with, state) in authorize {
        let suites: Vec<Option<SuiteId>> = match with {
            AuthorizeWith::Flag(false) => Vec::new(),
            AuthorizeWith::Flag(true) => vec![None],
            AuthorizeWith::Suites(ids) => ids.iter().cloned().map(Some).collect(),
        };
        for suite in suites {
            if let Err(err) =
                sim.authorize(corp_id, suite.as_ref(), state.clone(), PushOpts::default())
            {
                tracing::error!(%corp_id, error = %err, "cannot authorize at start");
            }
        }
    }
}

fn push_tickets(sim: &Sim) {
    let suites: Vec<SuiteId> = sim.read().suites().map(|s| s.suite_id.clone()).collect();
    for suite_id in suites {
        if let Err(err) = sim.push_ticket(Some(&suite_id), PushOpts::default()) {
            tracing::error!(%suite_id, error = %err, "cannot issue suite ticket");
        }
    }
}

/// Pushes a fresh ticket for every suite every `interval` (never, when zero).
async fn ticket_loop(sim: Arc<Sim>, interval: Duration, shutdown: CancellationToken) {
    if interval.is_zero() {
        return;
    }
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticker.tick() => push_tickets(&sim),
        }
    }
}
