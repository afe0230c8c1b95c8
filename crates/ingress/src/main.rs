//! `daikai-ingress`: read the configuration, serve until SIGINT/SIGTERM, drain, exit.

use anyhow::Context;
use ingress::{Application, Config};
use runtime::{shutdown::cancel_on_signal, telemetry};
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
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    app.run_until_stopped(shutdown).await
}
