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
    // SAFETY: daemon::run calls this first, on the main thread, before it
    // or the CLI starts any other thread: nothing reads or writes the
    // environment concurrently.
    unsafe {
        std::env::remove_var("LISTEN_PID");
        std::env::remove_var("LISTEN_FDS");
        std::env::remove_var("LISTEN_FDNAMES");
    }
    if !is_unix_stream_listener(SD_LISTEN_FDS_START) {
        tracing::warn!(
            "LISTEN_FDS names fd 3, but it is not a listening Unix stream socket; binding our own"
        );
        return None;
    }
    // SAFETY: fd 3 is an open listening Unix stream socket (checked above)
    // that systemd handed to us.
    Some(unsafe { UnixListener::from_raw_fd(SD_LISTEN_FDS_START) })
}

/// Whether `fd` is an AF_UNIX SOCK_STREAM socket in the listening state.
fn is_unix_stream_listener(fd: RawFd) -> bool {
    let opt = |name: libc::c_int| -> Option<libc::c_int> {
        let mut v: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: `v` is a writable c_int of `len` bytes.
        let rc =
            unsafe { libc::getsockopt(fd, libc::SOL_SOCKET, name, (&raw mut v).cast(), &mut len) };
        (rc == 0).then_some(v)
    };
    opt(libc::SO_DOMAIN) == Some(libc::AF_UNIX)
        && opt(libc::SO_TYPE) == Some(libc::SOCK_STREAM)
        && opt(libc::SO_ACCEPTCONN) == Some(1)
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
    fn only_a_listening_unix_stream_socket_counts_as_activated() {
        use std::os::fd::AsRawFd;
        let d = tempfile::tempdir().unwrap();
        let l = UnixListener::bind(d.path().join("l")).unwrap();
        assert!(is_unix_stream_listener(l.as_raw_fd()));
        let f = std::fs::File::create(d.path().join("f")).unwrap();
        assert!(!is_unix_stream_listener(f.as_raw_fd()));
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        assert!(!is_unix_stream_listener(a.as_raw_fd()));
    }

    #[test]
    fn a_missing_socket_is_an_error_not_a_panic() {
        let e = send(std::ffi::OsStr::new("/nonexistent/kw-notify"), "READY=1");
        assert!(e.is_err());
    }
}
