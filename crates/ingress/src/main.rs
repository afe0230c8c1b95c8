//! `daikai-ingress`: read the configuration, serve until SIGINT/SIGTERM, drain, exit.

use anyhow::Context;
use ingress::{Application, Config, telemetry};
use tokio_util::sync::CancellationToken;

// Every callback allocates a few dozen short-lived buffers (body, plaintext, event, JSON); with
// glibc's allocator that was ~12 % of the ingress's CPU in the load benchmark, with mimalloc a
// third of it (docs/benchmarks.md, ingress section).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

// The HTTP workers are actix's own threads; this runtime only runs the broker connection's I/O,
// the publisher's reconnect loop and signal handling, for which one thread is plenty and fewer
// threads compete with the broker for the CPU.
#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let config = Config::from_env().context("invalid configuration")?;
    telemetry::init(config.log_format, &config.log_filter)?;
    let app = Application::build(config)?;
    let shutdown = CancellationToken::new();
    tokio::spawn(signal_to(shutdown.clone()));
    app.run_until_stopped(shutdown).await
}

/// Cancels `shutdown` on the first SIGINT or SIGTERM.
async fn signal_to(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(error) => {
                    tracing::error!(%error, "cannot listen for SIGTERM; only SIGINT will stop");
                    drop(ctrl_c.await);
                    shutdown.cancel();
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    drop(ctrl_c.await);
    shutdown.cancel();
}
