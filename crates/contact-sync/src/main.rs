//! `daikai-contact-sync`: read the configuration, consume until SIGINT/SIGTERM, drain, exit.

use anyhow::Context;
use contact_sync::{Application, Config};
use runtime::{shutdown::cancel_on_signal, telemetry};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::from_env().context("invalid configuration")?;
    telemetry::init(config.log_format, &config.log_filter)?;
    let app = Application::build(config).await?;
    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    app.run(shutdown).await
}
