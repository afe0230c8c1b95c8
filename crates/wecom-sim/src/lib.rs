//! wecom-sim: a local WeCom for tests, demos and docker-compose.
//!
//! The real WeCom cannot be reached from a test, and no provider can exercise a 代开发 flow
//! without a real enterprise scanning a QR code. This crate plays WeCom's part:
//!
//! - the server APIs under `/cgi-bin/…` ([`api`]), serving the `wecom::api` types themselves,
//!   with WeCom's token, AuthCode and ticket rules, errcodes, scope and grants;
//! - WeCom's side of the callbacks ([`push`]): events built with `wecom::event`, encrypted with
//!   `wecom::crypto` exactly as WeCom does, POSTed to the ingress with WeCom's retries;
//! - a control API under `/sim/…` ([`control`]) to drive the whole lifecycle, mutate the
//!   directory, inject faults and move the clock;
//! - deterministic directories ([`directory`]) big enough for load tests.
//!
//! Use it in-process: [`build`] binds (port 0 is fine), [`App::run`] serves until the
//! cancellation token fires. The `wecom-sim` binary is a thin wrapper around the same calls.

pub mod api;
pub mod clock;
pub mod config;
pub mod control;
pub mod directory;
pub mod errcode;
pub mod faults;
pub mod push;
pub mod rng;
pub mod scope;
pub mod sim;
pub mod state;
pub mod stats;

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

pub use config::{ConfigError, SimConfig};
pub use sim::{PushOpts, Sim};

use crate::faults::Faults;
use crate::push::{Dispatcher, Pusher};
use crate::state::{AuthorizeWith, World};
use crate::stats::Stats;

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
