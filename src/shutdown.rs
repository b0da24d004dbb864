//! Waiting for the operator's stop signal: Ctrl+C everywhere, SIGTERM on Unix; on
//! Windows also Ctrl+Break, closing the console window, logoff and system shutdown.

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
    let console_events = windows_console_events();
    async move {
        #[cfg(unix)]
        match handlers {
            (Ok(mut stop), Ok(mut interrupt)) => {
                tokio::select! {
                    _ = stop.recv() => {}
                    _ = interrupt.recv() => {}
                }
            }
            (stop, interrupt) => {
                let error = stop.err().or(interrupt.err()).map(|e| e.to_string()).unwrap_or_default();
                warn_only_ctrl_c(&error);
                let _ = tokio::signal::ctrl_c().await;
            }
        }
        #[cfg(windows)]
        console_events.await;
        #[cfg(not(any(unix, windows)))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Without a handler, closing the console window, logging off and shutting down end
/// GOIM at once. With one, Windows waits while it runs (tokio holds the handler until
/// the process exits; Windows gives up after about 5 s for a closed window, longer at
/// shutdown), so the drain and the PostgreSQL stop get that long; should Windows cut it
/// short, the pg-guard, on a console of its own, stops PostgreSQL.
#[cfg(windows)]
fn windows_console_events() -> impl Future<Output = ()> + Send + 'static {
    use tokio::signal::windows as console;
    let handlers = (
        console::ctrl_c(),
        console::ctrl_break(),
        console::ctrl_close(),
        console::ctrl_logoff(),
        console::ctrl_shutdown(),
    );
    async move {
        match handlers {
            (Ok(mut c), Ok(mut brk), Ok(mut close), Ok(mut logoff), Ok(mut shutdown)) => {
                tokio::select! {
                    _ = c.recv() => {}
                    _ = brk.recv() => {}
                    _ = close.recv() => {}
                    _ = logoff.recv() => {}
                    _ = shutdown.recv() => {}
                }
            }
            (c, brk, close, logoff, shutdown) => {
                let error = [c.err(), brk.err(), close.err(), logoff.err(), shutdown.err()]
                    .into_iter()
                    .flatten()
                    .next()
                    .map(|e| e.to_string())
                    .unwrap_or_default();
                warn_only_ctrl_c(&error);
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
}

#[cfg(any(unix, windows))]
fn warn_only_ctrl_c(error: &str) {
    tracing::warn!(%error, "cannot install every stop signal handler; only Ctrl+C stops GOIM");
}
