//! Telling a service manager how far GOIM got: systemd's `Type=notify` protocol
//! (`READY=1` once the listener is bound and the database migrated, `STOPPING=1` when
//! the drain begins). Without `NOTIFY_SOCKET` (not under systemd) nothing is sent.

/// The server accepts connections.
pub fn ready() {
    notify("READY=1");
}

/// The server has begun its graceful stop.
pub fn stopping() {
    notify("STOPPING=1");
}

#[cfg(target_os = "linux")]
fn notify(state: &str) {
    use std::os::{linux::net::SocketAddrExt, unix::net::UnixDatagram};
    let Some(target) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let target = target.to_string_lossy().into_owned();
    // A leading '@' names a socket in the abstract namespace.
    let address = match target.strip_prefix('@') {
        Some(name) => std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()),
        None => std::os::unix::net::SocketAddr::from_pathname(&target),
    };
    let sent = address.and_then(|address| UnixDatagram::unbound()?.send_to_addr(state.as_bytes(), &address));
    if let Err(error) = sent {
        tracing::warn!(%error, socket = %target, state, "cannot notify the service manager");
    }
}

#[cfg(not(target_os = "linux"))]
fn notify(_state: &str) {}
