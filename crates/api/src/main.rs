//! `daikai-api`: read the configuration, serve until SIGINT/SIGTERM, drain, exit.

use anyhow::Context;
use api::{Application, Config};
use runtime::{shutdown::cancel_on_signal, telemetry};
use tokio_util::sync::CancellationToken;

// Every request allocates a few short-lived buffers (JSON in and out); mimalloc keeps that cheap
// under many concurrent requests, as in the ingress.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let config = Config::from_env().context("invalid configuration")?;
    telemetry::init(config.log_format, &config.log_filter)?;
    let app = Application::build(config).await?;
    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    app.run_until_stopped(shutdown).await
}
