//! Choosing and validating the RTP transport a peer asks for in SETUP.
//!
//! livefeed accepts unicast `RTP/AVP` over UDP (`client_port=a-b`) and `RTP/AVP/TCP`
//! interleaved (`interleaved=a-b`). RTP must use an even port/channel and RTCP the next one.
//! `destination=` and `source=` are never honoured: media goes only to the address the RTSP
//! connection comes from. Multicast is not offered.

use rtsp_types::headers::{RtpLowerTransport, RtpProfile, Transport, TransportMode, Transports};

/// How RTP/RTCP travel for one track.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LowerTransport {
    /// Interleaved in the RTSP TCP connection on these `$` channels.
    Tcp {
        /// Channel carrying RTP.
        rtp_channel: u8,
        /// Channel carrying RTCP (`rtp_channel + 1`).
        rtcp_channel: u8,
    },
    /// UDP to/from these client ports on the RTSP peer's address.
    Udp {
        /// Client RTP port (even).
        rtp_port: u16,
        /// Client RTCP port (`rtp_port + 1`).
        rtcp_port: u16,
    },
}

/// What a SETUP asked for, after validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransportRequest {
    /// The lower transport and its channels/ports.
    pub lower: LowerTransport,
    /// `mode=record` was given (the client publishes).
    pub record: bool,
}

/// Why a Transport header was refused (answered with 461 Unsupported Transport, or 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// No Transport header.
    #[error("missing Transport header")]
    Missing,
    /// The header could not be parsed.
    #[error("malformed Transport header")]
    Malformed,
    /// None of the offered transports is unicast RTP/AVP over UDP or TCP.
    #[error("no supported transport offered (need unicast RTP/AVP or RTP/AVP/TCP)")]
    NoneSupported,
    /// TCP without `interleaved=`, or UDP without `client_port=`.
    #[error("{0} is required")]
    MissingParameter(&'static str),
    /// Odd RTP channel/port, RTCP not the next one, or port 0.
    #[error("{what} {rtp}-{rtcp} must be an even number and the next one, above 0")]
    BadPair {
        /// `interleaved` or `client_port`.
        what: &'static str,
        /// First value.
        rtp: u32,
        /// Second value.
        rtcp: u32,
    },
}

/// Picks the first acceptable transport from a parsed `Transport` header.
pub fn choose(transports: Option<&Transports>) -> Result<TransportRequest, TransportError> {
    let transports = transports.ok_or(TransportError::Missing)?;
    let mut first_error = None;
    for transport in transports.iter() {
        match accept(transport) {
            Ok(req) => return Ok(req),
            Err(TransportError::NoneSupported) => {}
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    Err(first_error.unwrap_or(TransportError::NoneSupported))
}

fn accept(transport: &Transport) -> Result<TransportRequest, TransportError> {
    let Transport::Rtp(rtp) = transport else {
        return Err(TransportError::NoneSupported);
    };
    if rtp.profile != RtpProfile::Avp || rtp.params.multicast {
        return Err(TransportError::NoneSupported);
    }
    let record = rtp.params.mode.contains(&TransportMode::Record);
    let lower = match rtp.lower_transport {
        Some(RtpLowerTransport::Tcp) => tcp_channels(rtp.params.interleaved)?,
        None | Some(RtpLowerTransport::Udp) => udp_ports(rtp.params.client_port)?,
        Some(RtpLowerTransport::Other(_)) => return Err(TransportError::NoneSupported),
    };
    Ok(TransportRequest { lower, record })
}

fn tcp_channels(interleaved: Option<(u8, Option<u8>)>) -> Result<LowerTransport, TransportError> {
    let (rtp, rtcp) = interleaved.ok_or(TransportError::MissingParameter("interleaved"))?;
    let rtcp = rtcp.map_or(u32::from(rtp) + 1, u32::from);
    check_pair("interleaved", u32::from(rtp), rtcp, 0, 255)?;
    Ok(LowerTransport::Tcp {
        rtp_channel: rtp,
        rtcp_channel: rtp + 1,
    })
}

fn udp_ports(client_port: Option<(u16, Option<u16>)>) -> Result<LowerTransport, TransportError> {
    let (rtp, rtcp) = client_port.ok_or(TransportError::MissingParameter("client_port"))?;
    let rtcp = rtcp.map_or(u32::from(rtp) + 1, u32::from);
    check_pair("client_port", u32::from(rtp), rtcp, 1, 65535)?;
    Ok(LowerTransport::Udp {
        rtp_port: rtp,
        rtcp_port: rtp + 1,
    })
}

fn check_pair(
    what: &'static str,
    rtp: u32,
    rtcp: u32,
    min: u32,
    max: u32,
) -> Result<(), TransportError> {
    if !rtp.is_multiple_of(2) || rtcp != rtp + 1 || rtp < min || rtcp > max {
        return Err(TransportError::BadPair { what, rtp, rtcp });
    }
    Ok(())
}

/// Whether a second track's transport `next` can join a session whose track uses `first`:
/// the same lower transport, and other channels or ports.
pub fn check_compatible(first: &LowerTransport, next: &LowerTransport) -> Result<(), String> {
    match (first, next) {
        (
            LowerTransport::Tcp { rtp_channel: a, .. },
            LowerTransport::Tcp { rtp_channel: b, .. },
        ) if a == b => Err(format!(
            "interleaved channels {b}-{} are already used by another track",
            u16::from(*b) + 1
        )),
        (LowerTransport::Udp { rtp_port: a, .. }, LowerTransport::Udp { rtp_port: b, .. })
            if a == b =>
        {
            Err(format!("client_port {b} is already used by another track"))
        }
        (LowerTransport::Tcp { .. }, LowerTransport::Tcp { .. })
        | (LowerTransport::Udp { .. }, LowerTransport::Udp { .. }) => Ok(()),
        _ => Err("every track of a session must use the same lower transport (TCP or UDP)".into()),
    }
}

/// The `Transport` header value a server answers SETUP with (`ssrc` left out when `None`).
pub fn reply_header(
    lower: &LowerTransport,
    server_ports: Option<(u16, u16)>,
    ssrc: Option<u32>,
    record: bool,
) -> String {
    let mode = if record { ";mode=record" } else { "" };
    let ssrc = ssrc.map(|s| format!(";ssrc={s:08X}")).unwrap_or_default();
    match *lower {
        LowerTransport::Tcp {
            rtp_channel,
            rtcp_channel,
        } => format!("RTP/AVP/TCP;unicast;interleaved={rtp_channel}-{rtcp_channel}{ssrc}{mode}"),
        LowerTransport::Udp {
            rtp_port,
            rtcp_port,
        } => {
            let server = server_ports
                .map(|(a, b)| format!(";server_port={a}-{b}"))
                .unwrap_or_default();
            format!("RTP/AVP;unicast;client_port={rtp_port}-{rtcp_port}{server}{ssrc}{mode}")
        }
    }
}

/// The `Transport` header value a client asks with.
pub fn request_header(lower: &LowerTransport, record: bool) -> String {
    let mode = if record { ";mode=record" } else { "" };
    match *lower {
        LowerTransport::Tcp {
            rtp_channel,
            rtcp_channel,
        } => format!("RTP/AVP/TCP;unicast;interleaved={rtp_channel}-{rtcp_channel}{mode}"),
        LowerTransport::Udp {
            rtp_port,
            rtcp_port,
        } => format!("RTP/AVP;unicast;client_port={rtp_port}-{rtcp_port}{mode}"),
    }
}

/// Reads `server_port=a-b` (UDP) from a server's Transport reply.
pub fn server_ports(transports: &Transports) -> Option<(u16, u16)> {
    transports.iter().find_map(|t| match t {
        Transport::Rtp(rtp) => rtp
            .params
            .server_port
            .map(|(a, b)| (a, b.unwrap_or(a.wrapping_add(1)))),
        Transport::Other(_) => None,
    })
}

/// Reads `interleaved=a-b` from a server's Transport reply.
pub fn interleaved_channels(transports: &Transports) -> Option<(u8, u8)> {
    transports.iter().find_map(|t| match t {
        Transport::Rtp(rtp) => rtp
            .params
            .interleaved
            .map(|(a, b)| (a, b.unwrap_or(a.wrapping_add(1)))),
        Transport::Other(_) => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtsp_types::headers::TypedHeader;

    fn parse(value: &str) -> Transports {
        let req =
            rtsp_types::Request::builder(rtsp_types::Method::Setup, rtsp_types::Version::V1_0)
                .header(rtsp_types::headers::TRANSPORT, value)
                .empty();
        Transports::from_headers(&req)
            .expect("parses")
            .expect("present")
    }

    #[test]
    fn ffmpeg_tcp_record_is_accepted() {
        let t = parse("RTP/AVP/TCP;unicast;interleaved=0-1;mode=record");
        assert_eq!(
            choose(Some(&t)),
            Ok(TransportRequest {
                lower: LowerTransport::Tcp {
                    rtp_channel: 0,
                    rtcp_channel: 1
                },
                record: true
            })
        );
    }

    #[test]
    fn gstreamer_udp_play_is_accepted() {
        let t = parse("RTP/AVP;unicast;client_port=50000-50001");
        assert_eq!(
            choose(Some(&t)).map(|r| r.lower),
            Ok(LowerTransport::Udp {
                rtp_port: 50000,
                rtcp_port: 50001
            })
        );
    }

    #[test]
    fn first_supported_of_several_wins() {
        let t = parse("RTP/SAVP;unicast;client_port=2-3,RTP/AVP/TCP;unicast;interleaved=2-3");
        assert!(matches!(
            choose(Some(&t)).map(|r| r.lower),
            Ok(LowerTransport::Tcp { rtp_channel: 2, .. })
        ));
    }

    #[test]
    fn odd_or_non_consecutive_channels_and_ports_are_refused() {
        for bad in [
            "RTP/AVP/TCP;unicast;interleaved=1-2",
            "RTP/AVP/TCP;unicast;interleaved=0-5",
            "RTP/AVP/TCP;unicast;interleaved=255",
            "RTP/AVP;unicast;client_port=5001-5002",
            "RTP/AVP;unicast;client_port=5000-5005",
            "RTP/AVP;unicast;client_port=0-1",
            "RTP/AVP;unicast;client_port=65534-65535",
        ] {
            let result = choose(Some(&parse(bad)));
            if bad.ends_with("65534-65535") {
                assert!(result.is_ok(), "{bad}: {result:?}");
            } else {
                assert!(
                    matches!(result, Err(TransportError::BadPair { .. })),
                    "{bad}: {result:?}"
                );
            }
        }
    }

    #[test]
    fn missing_parameters_and_multicast_are_refused() {
        assert_eq!(choose(None), Err(TransportError::Missing));
        assert_eq!(
            choose(Some(&parse("RTP/AVP/TCP;unicast"))),
            Err(TransportError::MissingParameter("interleaved"))
        );
        assert_eq!(
            choose(Some(&parse("RTP/AVP;unicast"))),
            Err(TransportError::MissingParameter("client_port"))
        );
        assert_eq!(
            choose(Some(&parse("RTP/AVP;multicast;port=5000-5001"))),
            Err(TransportError::NoneSupported)
        );
    }

    #[test]
    fn destination_is_parsed_but_not_part_of_the_request() {
        let t = parse("RTP/AVP;unicast;destination=203.0.113.9;client_port=6000-6001");
        let req = choose(Some(&t)).expect("accepted");
        // The request carries only ports: media goes to the RTSP peer's own address.
        assert_eq!(
            req.lower,
            LowerTransport::Udp {
                rtp_port: 6000,
                rtcp_port: 6001
            }
        );
    }

    #[test]
    fn replies_carry_channels_ports_and_ssrc() {
        let tcp = LowerTransport::Tcp {
            rtp_channel: 0,
            rtcp_channel: 1,
        };
        assert_eq!(
            reply_header(&tcp, None, Some(0xABCD), false),
            "RTP/AVP/TCP;unicast;interleaved=0-1;ssrc=0000ABCD"
        );
        let udp = LowerTransport::Udp {
            rtp_port: 5000,
            rtcp_port: 5001,
        };
        let reply = parse(&reply_header(&udp, Some((7000, 7001)), Some(1), false));
        assert_eq!(server_ports(&reply), Some((7000, 7001)));
        assert_eq!(
            interleaved_channels(&parse(&reply_header(&tcp, None, None, true))),
            Some((0, 1))
        );
        assert_eq!(
            reply_header(&tcp, None, None, true),
            "RTP/AVP/TCP;unicast;interleaved=0-1;mode=record",
            "no ssrc where the server does not choose it"
        );
    }
}
