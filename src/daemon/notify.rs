//! systemd readiness (sd_notify(3)) and socket activation (sd_listen_fds(3)),
//! each a few lines of the documented protocol: no libsystemd needed.

use std::os::fd::{FromRawFd, RawFd};
use std::os::unix::net::{SocketAddr, UnixDatagram, UnixListener};

/// Send `state` (e.g. `READY=1`) to `$NOTIFY_SOCKET`, if set. Returns
/// whether a message was sent; failures are logged, never fatal.
pub fn notify(state: &str) -> bool {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET").filter(|p| !p.is_empty()) else {
        return false;
    };
    let sent = send(&path, state);
    if let Err(e) = &sent {
        tracing::warn!("sd_notify {state:?} to {path:?} failed: {e}");
    }
    sent.is_ok()
}

fn send(path: &std::ffi::OsStr, state: &str) -> std::io::Result<()> {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::ffi::OsStrExt;
    let bytes = path.as_bytes();
    // A leading '@' names a socket in the abstract namespace.
    let addr = match bytes.strip_prefix(b"@") {
        Some(name) => SocketAddr::from_abstract_name(name)?,
        None => SocketAddr::from_pathname(std::path::Path::new(path))?,
    };
    let sock = UnixDatagram::unbound()?;
    sock.send_to_addr(state.as_bytes(), &addr)?;
    Ok(())
}

/// The first socket passed by systemd socket activation (`LISTEN_PID` is us
/// and `LISTEN_FDS` ≥ 1: fd 3), if any. The variables are cleared so child
/// processes do not take the socket for theirs.
pub fn activated_listener() -> Option<UnixListener> {
    const SD_LISTEN_FDS_START: RawFd = 3;
    let pid: u32 = std::env::var("LISTEN_PID").ok()?.parse().ok()?;
    let fds: u32 = std::env::var("LISTEN_FDS").ok()?.parse().ok()?;
    if pid != std::process::id() || fds < 1 {
        return None;
    }
    // SAFETY: called once at startup, before any thread reads the
    // environment.
    unsafe {
        std::env::remove_var("LISTEN_PID");
        std::env::remove_var("LISTEN_FDS");
        std::env::remove_var("LISTEN_FDNAMES");
    }
    // SAFETY: systemd hands us fd 3 as an open listening socket we own.
    Some(unsafe { UnixListener::from_raw_fd(SD_LISTEN_FDS_START) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_to_a_path_socket() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("notify");
        let rx = UnixDatagram::bind(&p).unwrap();
        send(p.as_os_str(), "READY=1").unwrap();
        let mut buf = [0u8; 64];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
    }

    #[test]
    fn a_missing_socket_is_an_error_not_a_panic() {
        let e = send(std::ffi::OsStr::new("/nonexistent/kw-notify"), "READY=1");
        assert!(e.is_err());
    }
}
