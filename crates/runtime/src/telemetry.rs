//! Logging setup for a service binary: JSON lines (with the current span, hence the request or
//! correlation id) or pretty text, filtered by `RUST_LOG`. Libraries only emit `tracing` events;
//! installing the global subscriber is the binary's job, done once in `main`.

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Installs the global subscriber. Fails if the filter does not parse or one is already set.
pub fn init(format: LogFormat, filter: &str) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(filter)
        .map_err(|e| anyhow::anyhow!("RUST_LOG: invalid filter: {e}"))?
        // lapin logs every message the broker returns (an unroutable mandatory publish) at
        // `warn` with its body, and a body can carry an AuthCode: that line never gets through,
        // whatever RUST_LOG says (the bus reports returns itself, without the body). The bus's
        // test `returned_log` fails if a lapin upgrade logs it under another target.
        .add_directive("lapin::returned_messages=error".parse()?);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stdout);
    let installed = match format {
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .flatten_event(true)
            .try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
    installed.map_err(|e| anyhow::anyhow!("cannot install the log subscriber: {e}"))
}
