//! Opening a TCP link to lond without a blocking pool: the socket is made and checked
//! against the descriptor reserve as in the std daemon
//! ([`lonc_host::link_socket::start_connect`]), registered with the reactor and awaited
//! writable, within the connect timeout. Only a name (not an address) in hosts.tab's ip
//! field is resolved, off the executor (`smol::unblock`).

use std::io;
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::AsFd;
use std::time::Duration;

use lonc_host::link_socket::{connect_result, connect_timed_out, no_address, start_connect};
use lonc_host::local_error::is_local_resource_error;
use smol::future::FutureExt;
use smol::{Async, Timer};

/// Connects to the first address of `host` that answers, each within `timeout`.
pub async fn open_tcp(host: String, port: u16, timeout: Duration) -> io::Result<Async<TcpStream>> {
    let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => {
            let name = host.clone();
            smol::unblock(move || (name.as_str(), port).to_socket_addrs().map(Vec::from_iter))
                .await?
        }
    };
    let mut last = no_address(&host);
    for addr in addrs {
        match connect(&addr, timeout).await {
            Ok(stream) => return Ok(stream),
            // Another address would meet the same shortage.
            Err(e) if is_local_resource_error(&e) => return Err(e),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Connects to `addr` within `timeout`.
async fn connect(addr: &SocketAddr, timeout: Duration) -> io::Result<Async<TcpStream>> {
    let (stream, in_progress) = start_connect(addr)?;
    let stream = Async::new(stream)?;
    if in_progress {
        let writable = async { stream.writable().await.map(|()| true) };
        let expired = async {
            Timer::after(timeout).await;
            Ok(false)
        };
        if !writable.or(expired).await? {
            return Err(connect_timed_out());
        }
        connect_result(stream.get_ref().as_fd())?;
    }
    Ok(stream)
}
