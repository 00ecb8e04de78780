//! Telling systemd how the server is doing (`Type=notify`, sd_notify(3)): `READY=1` once every
//! listener accepts, `RELOADING=1` and `READY=1` around a SIGHUP reload, `STOPPING=1` on the way
//! out. Written here: the protocol is one datagram of `KEY=VALUE` lines to the Unix socket
//! named by `$NOTIFY_SOCKET` (a path, or `@name` in the abstract namespace), and the crates for
//! it either link libsystemd or add nothing over these lines. Without `$NOTIFY_SOCKET` (not
//! started by systemd) every call does nothing.

use std::os::unix::net::UnixDatagram;

/// Sends `state` (newline-separated assignments) to systemd, if it is listening. A failure is
/// logged, never fatal: the server works the same without its supervisor's bookkeeping.
pub fn notify(state: &str) {
    let Some(target) = std::env::var_os("NOTIFY_SOCKET") else { return };
    let result = (|| {
        let socket = UnixDatagram::unbound()?;
        let bytes = target.as_encoded_bytes();
        if let Some(name) = bytes.strip_prefix(b"@") {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            socket.send_to_addr(state.as_bytes(), &addr)?;
        } else {
            socket.send_to(state.as_bytes(), &target)?;
        }
        std::io::Result::Ok(())
    })();
    if let Err(e) = result {
        tracing::warn!(event = "systemd_notify_failed", error = %e);
    }
}

/// Monotonic time in microseconds, which `RELOADING=1` carries for `Type=notify-reload`.
pub fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime only writes the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1_000
}
