//! The tracing subscriber: human-readable or JSON lines, filtered by `GOIM_LOG`.
//! Every line logged inside a request carries the request's span, and so its id.

use tracing_subscriber::{EnvFilter, fmt, prelude::*};

use crate::config::LogFormat;

/// Colour codes only on a terminal, and never when `NO_COLOR` is set (no-color.org): in a
/// file, a pipe or a service log they are noise.
fn colours_wanted() -> bool {
    use std::io::IsTerminal;
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty())
}

/// Installs the global subscriber. Returns an error for an invalid filter instead of
/// panicking; a second call (tests) is a no-op.
pub fn init(filter: &str, format: LogFormat) -> Result<(), String> {
    let filter = EnvFilter::try_new(filter).map_err(|e| format!("GOIM_LOG: {e}"))?;
    let registry = tracing_subscriber::registry().with(filter);
    let result = match format {
        LogFormat::Human => registry.with(fmt::layer().with_target(false).with_ansi(colours_wanted())).try_init(),
        LogFormat::Json => registry.with(fmt::layer().json().with_current_span(true).with_span_list(false)).try_init(),
    };
    // Already installed (several apps in one test process): keep the first.
    let _ = result;
    Ok(())
}
