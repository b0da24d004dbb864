//! Waiting for the operator's stop signal: Ctrl+C everywhere, SIGTERM on Unix,
//! Ctrl+Break on Windows.

use std::future::Future;

/// Installs the handlers now and returns a future that resolves when the process is
/// asked to stop. Installing eagerly matters: a handler installed only when a spawned
/// task first runs leaves a window after start-up in which SIGTERM still kills the
/// process outright (no graceful shutdown, managed PostgreSQL left to its guard).
pub fn signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let handlers = {
        use tokio::signal::unix::{SignalKind, signal};
        (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
    };
    #[cfg(windows)]
    let handlers = (tokio::signal::windows::ctrl_break(), tokio::signal::windows::ctrl_c());
    async move {
        #[cfg(any(unix, windows))]
        match handlers {
            (Ok(mut stop), Ok(mut interrupt)) => {
                tokio::select! {
                    _ = stop.recv() => {}
                    _ = interrupt.recv() => {}
                }
            }
            (stop, interrupt) => {
                let error = stop.err().or(interrupt.err()).map(|e| e.to_string()).unwrap_or_default();
                tracing::warn!(%error, "cannot install every stop signal handler; only Ctrl+C stops GOIM");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
        #[cfg(not(any(unix, windows)))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
