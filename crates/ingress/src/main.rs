//! `daikai-ingress`: read the configuration, serve until SIGINT/SIGTERM, drain, exit.

use anyhow::Context;
use ingress::{Application, Config, telemetry};
use tokio_util::sync::CancellationToken;

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
