//! The `wecom-sim` binary: configuration from flags, `SIM_*` variables and an optional TOML
//! file; serves until SIGINT/SIGTERM. Everything else lives in the library.

use anyhow::Context as _;
use runtime::{LogFormat, shutdown::cancel_on_signal, telemetry};
use tokio_util::sync::CancellationToken;
use wecom_sim::{SimConfig, USAGE};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        print!("{USAGE}");
        return Ok(());
    }
    init_tracing()?;
    let config = SimConfig::load(
        &args,
        |name| std::env::var(name).ok(),
        |path| std::fs::read_to_string(path),
    )
    .context("invalid wecom-sim configuration")?;
    let app = wecom_sim::build(config).context("cannot start wecom-sim")?;
    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    app.run(shutdown).await.context("wecom-sim server failed")
}

/// `RUST_LOG` filters (default `info`); `LOG_FORMAT=json` for containers, else pretty.
fn init_tracing() -> anyhow::Result<()> {
    let format = match std::env::var("LOG_FORMAT") {
        Ok(value) => LogFormat::parse(&value).map_err(|e| anyhow::anyhow!("LOG_FORMAT: {e}"))?,
        Err(_) => LogFormat::Pretty,
    };
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".to_owned());
    telemetry::init(format, &filter)
}
