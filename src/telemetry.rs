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
/// actix-http logs every request its parser rejects (a malformed header, a broken
/// connection mid-request) at ERROR, with no request id: a client's mistake or a
/// scanner would page an operator. Those lines are dropped unless `GOIM_LOG` names
/// `actix_http` itself (e.g. `info,actix_http=error` to see them again).
fn quiet_parser_errors(filter: &str) -> String {
    if filter.contains("actix_http") {
        filter.to_owned()
    } else if filter.trim().is_empty() {
        "actix_http::h1::dispatcher=off".to_owned()
    } else {
        format!("{filter},actix_http::h1::dispatcher=off")
    }
}

pub fn init(filter: &str, format: LogFormat) -> Result<(), String> {
    install(filter, format, None)
}

/// [`init`] writing to `file` (appending) instead of standard output: a Windows service
/// has no console.
pub fn init_to_file(filter: &str, format: LogFormat, file: &std::path::Path) -> Result<(), String> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
        .map_err(|e| format!("cannot open the log file {}: {e}", file.display()))?;
    install(filter, format, Some(log))
}

fn install(filter: &str, format: LogFormat, file: Option<std::fs::File>) -> Result<(), String> {
    let filter = EnvFilter::try_new(quiet_parser_errors(filter)).map_err(|e| format!("GOIM_LOG: {e}"))?;
    let registry = tracing_subscriber::registry().with(filter);
    let colours = file.is_none() && colours_wanted();
    let writer = match file {
        Some(file) => fmt::writer::BoxMakeWriter::new(std::sync::Mutex::new(file)),
        None => fmt::writer::BoxMakeWriter::new(std::io::stdout),
    };
    let result = match format {
        LogFormat::Human => {
            registry.with(fmt::layer().with_target(false).with_ansi(colours).with_writer(writer)).try_init()
        }
        LogFormat::Json => registry
            .with(fmt::layer().json().with_current_span(true).with_span_list(false).with_writer(writer))
            .try_init(),
    };
    // Already installed (several apps in one test process): keep the first.
    let _ = result;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::quiet_parser_errors;

    #[test]
    fn parser_errors_are_dropped_unless_the_filter_asks_for_actix_http() {
        assert_eq!(quiet_parser_errors("info"), "info,actix_http::h1::dispatcher=off");
        assert_eq!(quiet_parser_errors(""), "actix_http::h1::dispatcher=off");
        assert_eq!(quiet_parser_errors("info,actix_http=error"), "info,actix_http=error");
    }
}
