//! Per-core TCP listeners: every core binds the same address with
//! `SO_REUSEPORT` and the kernel spreads connections across them.
//!
//! Lives on: each core binds and owns its own listener.

use std::net::SocketAddr;
use std::os::fd::IntoRawFd;

use socket2::{Domain, Protocol, Socket, Type};

use crate::constants::LISTEN_BACKLOG;

/// Binds a nonblocking listening socket with `SO_REUSEADDR` + `SO_REUSEPORT` and
/// backlog `LISTEN_BACKLOG`, owned by the calling core's executor.
///
/// Must be called inside a glommio executor. For port 0, bind one core first,
/// read `local_addr()`, then bind the other cores to that port.
pub fn bind(addr: SocketAddr) -> std::io::Result<glommio::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    let fd = socket.into_raw_fd();
    // SAFETY: `fd` is a bound, listening TCP socket whose ownership we hand over.
    Ok(unsafe { <glommio::net::TcpListener as std::os::fd::FromRawFd>::from_raw_fd(fd) })
}
