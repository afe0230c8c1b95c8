//! The `wecom-sim` binary: configuration from flags, `SIM_*` variables and an optional TOML
//! file; serves until SIGINT/SIGTERM. Everything else lives in the library.

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;
use wecom_sim::config::{SimConfig, USAGE};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        print!("{USAGE}");
        return Ok(());
    }
    init_tracing();
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
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if std::env::var("LOG_FORMAT").is_ok_and(|f| f == "json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn cancel_on_signal(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(
            tokio::signal::unix::SignalKind::terminate(),
        ) {
            Ok(term) => term,
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for SIGTERM; only Ctrl-C stops wecom-sim");
                let _ = ctrl_c.await;
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
    let _ = ctrl_c.await;
    tracing::info!("shutting down");
    shutdown.cancel();
}
