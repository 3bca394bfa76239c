//! Binding the TCP listeners: a given socket by its [`SocketName`] when the
//! process was handed one, else a new one; `[::]` as a dual stack; and the
//! usual reasons a bind fails, each with what to do about it.

use std::net::SocketAddr;

use anyhow::Context;
use tokio::net::TcpListener;

use super::{Inherited, SocketName};

/// A listener that could not be bound: which, where, and why, so that
/// `quire serve` can say where to choose another address.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr} ({name}); {}", bind_hint(*.addr, *.name, .source))]
pub struct BindError {
    pub name: SocketName,
    pub addr: SocketAddr,
    #[source]
    pub source: std::io::Error,
}

fn bind_hint(addr: SocketAddr, key: SocketName, e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::AddrInUse => format!(
            "another process already listens on {addr}; stop it, or set [listen] {key} in the config to a free address"
        ),
        std::io::ErrorKind::PermissionDenied => format!(
            "binding {addr} needs privileges; allow it with `sudo setcap cap_net_bind_service=+ep $(command -v quire)` (or use the systemd unit in deploy/), or use a port above 1023"
        ),
        std::io::ErrorKind::AddrNotAvailable => format!(
            "{addr} is not an address of this machine; set [listen] {key} to one of its addresses"
        ),
        _ => format!("check [listen] {key} in the config"),
    }
}

/// Binds a listener, explaining the usual reasons it fails.
pub async fn bind(addr: SocketAddr, key: SocketName) -> Result<TcpListener, BindError> {
    let bound = match addr {
        // Every address, IPv6 and IPv4 alike, whatever net.ipv6.bindv6only
        // says; IPv4 only on a machine without IPv6.
        SocketAddr::V6(v6) if v6.ip().is_unspecified() => match bind_dual_stack(addr) {
            Err(e) if is_ipv6_missing(&e) => {
                let ipv4 = SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, addr.port()));
                tracing::warn!(
                    "IPv6 is not available here ({e}); [listen] {key} listens on {ipv4}, IPv4 only"
                );
                TcpListener::bind(ipv4).await
            }
            bound => bound,
        },
        _ => TcpListener::bind(addr).await,
    };
    bound.map_err(|source| BindError {
        name: key,
        addr,
        source,
    })
}

/// A listener on `[::]:port` that takes IPv4 connections too.
fn bind_dual_stack(addr: SocketAddr) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::IPV6, Type::STREAM, Some(Protocol::TCP))?;
    socket.set_only_v6(false)?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    TcpListener::from_std(socket.into())
}

fn is_ipv6_missing(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EAFNOSUPPORT | libc::EADDRNOTAVAIL)
    )
}

/// The socket for `[listen] key`: the one given at start under that name
/// (or bound to `addr`), else a new one bound to `addr`.
pub async fn listen(
    addr: SocketAddr,
    key: SocketName,
    sockets: &mut Inherited,
) -> anyhow::Result<TcpListener> {
    let Some(given) = sockets.take_tcp(key, addr)? else {
        return Ok(bind(addr, key).await?);
    };
    let bound = given.local_addr()?;
    // [::] falls back to 0.0.0.0 where there is no IPv6.
    let every_address = |a: SocketAddr| a.ip().is_unspecified();
    let same = bound == addr
        || (every_address(bound) && every_address(addr) && bound.port() == addr.port());
    if addr.port() != 0 && !same {
        tracing::warn!(
            "the [listen] {key} socket this process was given is bound to {bound}, not {addr} as the config says; restart quire (not upgrade) to move it"
        );
    }
    TcpListener::from_std(given).with_context(|| format!("using the given {key} socket"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_taken_port_is_named_with_its_listen_key_and_a_way_out() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let e = bind(addr, SocketName::Https).await.unwrap_err().to_string();
        assert!(
            e.contains(&format!("cannot listen on {addr} (https)")),
            "{e}"
        );
        assert!(e.contains("set [listen] https"), "{e}");
    }

    #[tokio::test]
    async fn every_address_listens_on_ipv6_and_ipv4_alike() {
        let any = SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0));
        let socket = bind(any, SocketName::Http).await.unwrap();
        let port = socket.local_addr().unwrap().port();
        // Where there is no IPv6 the fallback is IPv4 only; either way IPv4 connects.
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn without_a_given_socket_listen_binds_the_configured_address() {
        let mut none = Inherited::default();
        let addr = SocketAddr::from(([127, 0, 0, 1], 0));
        let socket = listen(addr, SocketName::Metrics, &mut none).await.unwrap();
        assert!(socket.local_addr().unwrap().ip().is_loopback());
    }
}
