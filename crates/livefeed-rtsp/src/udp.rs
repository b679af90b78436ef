//! UDP socket pairs for RTP (even port) and RTCP (the next port).

use std::io;
use std::net::{IpAddr, SocketAddr};
use tokio::net::UdpSocket;

/// How many random ports to try before giving up.
const ATTEMPTS: usize = 64;

/// Binds RTP on an even port and RTCP on the next one, on `ip`. With `first_port` 0 the OS
/// picks; otherwise exactly `first_port` (which must be even) is tried. Binding does not
/// block, so this is a plain function; it must run inside a tokio runtime.
pub fn bind_pair(ip: IpAddr, first_port: u16) -> io::Result<(UdpSocket, UdpSocket)> {
    if first_port != 0 {
        if !first_port.is_multiple_of(2) || first_port == u16::MAX {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "RTP port must be even",
            ));
        }
        let rtp = bind(SocketAddr::new(ip, first_port))?;
        let rtcp = bind(SocketAddr::new(ip, first_port + 1))?;
        return Ok((rtp, rtcp));
    }
    for _ in 0..ATTEMPTS {
        let rtp = bind(SocketAddr::new(ip, 0))?;
        let port = rtp.local_addr()?.port();
        if !port.is_multiple_of(2) || port == u16::MAX {
            continue;
        }
        if let Ok(rtcp) = bind(SocketAddr::new(ip, port + 1)) {
            return Ok((rtp, rtcp));
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AddrInUse,
        format!("no free even/odd UDP port pair on {ip} after {ATTEMPTS} tries"),
    ))
}

fn bind(addr: SocketAddr) -> io::Result<UdpSocket> {
    let socket = std::net::UdpSocket::bind(addr)?;
    socket.set_nonblocking(true)?;
    UdpSocket::from_std(socket)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pairs_are_even_then_odd() {
        let (rtp, rtcp) = bind_pair("127.0.0.1".parse().expect("ip"), 0).expect("bound");
        let a = rtp.local_addr().expect("addr").port();
        let b = rtcp.local_addr().expect("addr").port();
        assert_eq!(a % 2, 0);
        assert_eq!(b, a + 1);
    }
}
