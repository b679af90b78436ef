//! SDP for H.264 over RTP (RFC 6184 §8) and the tracks beside it: the description livefeed
//! offers to readers, and the stream it accepts from publishers (ANNOUNCE): one H.264 video
//! track and any other tracks, each kept as a [`TrackDescription`] and offered back as it was.
//! Parsing and writing of SDP lines is done by `sdp-types`; this module only knows which lines
//! matter.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use bytes::Bytes;
use sdp_types::{Attribute, Connection, Media, Origin, Session, Time};

use crate::h264::{nal_type, nal_unit_type};
use crate::track::TrackDescription;

/// Media sections a publisher's SDP may have at most (one video and a few audio tracks in
/// practice).
pub const MAX_TRACKS: usize = 8;

/// The H.264 video track of a stream, as SDP describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct H264Track {
    /// RTP payload type (dynamic, 96..=127 in practice).
    pub payload_type: u8,
    /// The track's `a=control` value (relative or absolute URL), if given.
    pub control: Option<String>,
    /// SPS from `sprop-parameter-sets`, if given.
    pub sps: Option<Bytes>,
    /// PPS from `sprop-parameter-sets`, if given.
    pub pps: Option<Bytes>,
    /// `profile-level-id`, if given.
    pub profile_level_id: Option<String>,
}

/// Why a publisher's SDP was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SdpError {
    /// The SDP lines could not be parsed.
    #[error("invalid SDP: {0}")]
    Syntax(String),
    /// No `m=video` section.
    #[error("SDP has no video media section")]
    NoVideo,
    /// A video section exists, but none is H.264 with a 90 kHz clock.
    #[error("SDP video is not H.264/90000 (rtpmap: {0})")]
    NotH264(String),
    /// `a=rtpmap` without a clock rate.
    #[error("SDP rtpmap for payload type {0} has no clock rate")]
    MissingClockRate(u8),
    /// `sprop-parameter-sets` holds something that is not base64.
    #[error("sprop-parameter-sets is not base64: {0:?}")]
    BadParameterSets(String),
    /// More media sections than [`MAX_TRACKS`].
    #[error("SDP has {0} media sections; at most {MAX_TRACKS} are accepted")]
    TooManyTracks(usize),
    /// A section livefeed cannot carry (no payload type, or no clock rate).
    #[error("SDP media section {index} ({media}) has no payload type with a known clock rate")]
    UnusableTrack {
        /// Position of the section in the SDP, from 0.
        index: usize,
        /// Its media type.
        media: String,
    },
}

/// What a publisher announced: its H.264 video track and every other track.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnouncedStream {
    /// The H.264 video track.
    pub video: H264Track,
    /// The other tracks, in the order of the SDP (offered as tracks 1, 2, …).
    pub others: Vec<TrackDescription>,
}

impl AnnouncedStream {
    /// The `a=control` of every track as announced: the video first, then the others (`None`
    /// where the section had none).
    pub fn controls(&self) -> Vec<Option<&str>> {
        std::iter::once(self.video.control.as_deref())
            .chain(self.others.iter().map(|t| t.control.as_deref()))
            .collect()
    }
}

/// What the offered SDP says about the stream.
#[derive(Debug, Clone)]
pub struct OfferParams<'a> {
    /// SPS NAL unit of the stream.
    pub sps: &'a [u8],
    /// PPS NAL unit of the stream.
    pub pps: &'a [u8],
    /// Payload type to use (96 by convention).
    pub payload_type: u8,
    /// Address written in the origin line.
    pub origin_address: String,
    /// The `a=control` value of the video track, relative to the session URL.
    pub track_control: &'a str,
    /// Other tracks, offered after the video with `a=control:trackID=1`, `trackID=2`, …
    pub others: &'a [TrackDescription],
}

/// Builds the SDP livefeed answers DESCRIBE with: the H.264 track (`trackID=0`),
/// packetization-mode 1, `profile-level-id` from the SPS, `sprop-parameter-sets` with SPS and
/// PPS; then the other tracks as the publisher described them (`trackID=1`, …).
pub fn offer_h264(params: &OfferParams<'_>) -> String {
    let mut session = Session::new(
        Origin::new(
            "0",
            0,
            sdp_types::NetType::In,
            sdp_types::AddrType::Ip4,
            params.origin_address.clone(),
        ),
        "livefeed",
    );
    session.connection = Some(Connection::new(
        sdp_types::NetType::In,
        sdp_types::AddrType::Ip4,
        "0.0.0.0",
    ));
    session.times.push(Time::new(0, 0));
    session
        .attributes
        .push(Attribute::with_value("tool", "livefeed"));
    session
        .attributes
        .push(Attribute::with_value("control", "*"));
    session.medias.push(video_media(params));
    for (i, track) in params.others.iter().enumerate() {
        session
            .medias
            .push(track_media(track, &format!("trackID={}", i + 1)));
    }
    let mut out = Vec::new();
    // Writing into a Vec cannot fail.
    let _ = session.write(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn video_media(params: &OfferParams<'_>) -> Media {
    let pt = params.payload_type;
    let mut media = Media::new(
        sdp_types::MediaType::Video,
        0,
        sdp_types::TransportProto::RtpAvp,
        pt,
    );
    let profile_level_id = params
        .sps
        .get(1..4)
        .map(|b| format!("{:02X}{:02X}{:02X}", b[0], b[1], b[2]))
        .unwrap_or_else(|| "42C01F".to_string());
    let sprop = format!(
        "{},{}",
        BASE64.encode(params.sps),
        BASE64.encode(params.pps)
    );
    media
        .attributes
        .push(Attribute::with_value("rtpmap", format!("{pt} H264/90000")));
    media.attributes.push(Attribute::with_value(
        "fmtp",
        format!(
            "{pt} packetization-mode=1;profile-level-id={profile_level_id};sprop-parameter-sets={sprop}"
        ),
    ));
    media
        .attributes
        .push(Attribute::with_value("control", params.track_control));
    media
}

/// The media section of a track other than the video, as the publisher described it.
fn track_media(track: &TrackDescription, control: &str) -> Media {
    let pt = track.payload_type;
    let mut media = Media {
        media: track.media.clone(),
        port: 0,
        num_ports: None,
        proto: "RTP/AVP".into(),
        fmt: pt.to_string(),
        media_title: None,
        connections: Vec::new(),
        bandwidths: Vec::new(),
        key: None,
        attributes: Vec::new(),
    };
    if let Some(rtpmap) = &track.rtpmap {
        media
            .attributes
            .push(Attribute::with_value("rtpmap", format!("{pt} {rtpmap}")));
    }
    if let Some(fmtp) = &track.fmtp {
        media
            .attributes
            .push(Attribute::with_value("fmtp", format!("{pt} {fmtp}")));
    }
    media
        .attributes
        .push(Attribute::with_value("control", control));
    media
}

/// Reads a publisher's SDP: its first H.264/90000 video track, and every other media section
/// as a [`TrackDescription`] (its first payload type).
pub fn parse_announced(sdp: &[u8]) -> Result<AnnouncedStream, SdpError> {
    let session = Session::parse(sdp).map_err(|e| SdpError::Syntax(e.to_string()))?;
    if session.medias.len() > MAX_TRACKS {
        return Err(SdpError::TooManyTracks(session.medias.len()));
    }
    let video = h264_of(&session)?;
    let mut others = Vec::new();
    for (index, media) in session.medias.iter().enumerate() {
        if std::ptr::eq(media, video.1) {
            continue;
        }
        let unusable = || SdpError::UnusableTrack {
            index,
            media: truncate(&media.media, 32),
        };
        let pt = media
            .fmt
            .split_whitespace()
            .next()
            .and_then(|f| f.parse::<u8>().ok())
            .filter(|pt| *pt < 128)
            .ok_or_else(unusable)?;
        let control = media.get_first_attribute_value("control").flatten();
        let track = TrackDescription::new(
            &media.media,
            pt,
            attribute_of(media, "rtpmap", pt),
            attribute_of(media, "fmtp", pt),
            control,
        )
        .ok_or_else(unusable)?;
        others.push(track);
    }
    Ok(AnnouncedStream {
        video: video.0,
        others,
    })
}

/// The value of `a=<name>:<pt> <value>` in `media`.
fn attribute_of<'m>(media: &'m Media, name: &'m str, pt: u8) -> Option<&'m str> {
    let prefix = format!("{pt} ");
    media
        .get_attribute_values(name)
        .flatten()
        .find_map(|v| v.strip_prefix(prefix.as_str()))
}

/// Reads the first H.264/90000 video track from a publisher's SDP.
pub fn parse_h264_track(sdp: &[u8]) -> Result<H264Track, SdpError> {
    let session = Session::parse(sdp).map_err(|e| SdpError::Syntax(e.to_string()))?;
    h264_of(&session).map(|(track, _)| track)
}

/// The first H.264/90000 video track of a session, and its media section.
fn h264_of(session: &Session) -> Result<(H264Track, &Media), SdpError> {
    let videos: Vec<&Media> = session
        .medias
        .iter()
        .filter(|m| m.media == "video")
        .collect();
    if videos.is_empty() {
        return Err(SdpError::NoVideo);
    }
    let mut last_rtpmap = String::new();
    for media in videos {
        for value in media.get_attribute_values("rtpmap").flatten() {
            last_rtpmap = value.to_string();
            if let Some(pt) = h264_payload_type(value)? {
                return Ok((track_from_media(media, pt)?, media));
            }
        }
    }
    Err(SdpError::NotH264(last_rtpmap))
}

/// `96 H264/90000` → `Some(96)`; another codec → `None`; H264 without clock rate → error.
fn h264_payload_type(rtpmap: &str) -> Result<Option<u8>, SdpError> {
    let (pt, encoding) = match rtpmap.trim().split_once(' ') {
        Some(parts) => parts,
        None => return Ok(None),
    };
    let Ok(pt) = pt.parse::<u8>() else {
        return Ok(None);
    };
    let mut fields = encoding.trim().split('/');
    if !fields
        .next()
        .is_some_and(|n| n.eq_ignore_ascii_case("H264"))
    {
        return Ok(None);
    }
    match fields.next().map(str::trim) {
        Some("90000") => Ok(Some(pt)),
        Some("") | None => Err(SdpError::MissingClockRate(pt)),
        Some(_) => Ok(None),
    }
}

fn track_from_media(media: &Media, pt: u8) -> Result<H264Track, SdpError> {
    let control = media
        .get_first_attribute_value("control")
        .flatten()
        .map(str::to_string);
    let mut track = H264Track {
        payload_type: pt,
        control,
        sps: None,
        pps: None,
        profile_level_id: None,
    };
    let prefix = format!("{pt} ");
    let fmtp = media
        .get_attribute_values("fmtp")
        .flatten()
        .find_map(|v| v.strip_prefix(&prefix));
    if let Some(fmtp) = fmtp {
        apply_fmtp(&mut track, fmtp)?;
    }
    Ok(track)
}

fn apply_fmtp(track: &mut H264Track, fmtp: &str) -> Result<(), SdpError> {
    for param in fmtp.split(';') {
        let Some((key, value)) = param.trim().split_once('=') else {
            continue;
        };
        match key.trim().to_ascii_lowercase().as_str() {
            "profile-level-id" => track.profile_level_id = Some(value.trim().to_string()),
            "sprop-parameter-sets" => apply_parameter_sets(track, value)?,
            _ => {}
        }
    }
    Ok(())
}

fn apply_parameter_sets(track: &mut H264Track, value: &str) -> Result<(), SdpError> {
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let nal = BASE64
            .decode(item)
            .map_err(|_| SdpError::BadParameterSets(truncate(item, 64)))?;
        match nal_unit_type(&nal) {
            Some(nal_type::SPS) => track.sps = Some(Bytes::from(nal)),
            Some(nal_type::PPS) => track.pps = Some(Bytes::from(nal)),
            _ => {}
        }
    }
    Ok(())
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPS: &[u8] = &[0x67, 0x42, 0xc0, 0x1e, 0x8c, 0x8d, 0x40];
    const PPS: &[u8] = &[0x68, 0xce, 0x3c, 0x80];

    fn offer() -> String {
        offer_h264(&OfferParams {
            sps: SPS,
            pps: PPS,
            payload_type: 96,
            origin_address: "127.0.0.1".into(),
            track_control: "trackID=0",
            others: &[],
        })
    }

    #[test]
    fn offer_parses_back_to_the_same_track() {
        let sdp = offer();
        assert!(sdp.contains("m=video 0 RTP/AVP 96\r\n"), "{sdp}");
        assert!(sdp.contains("a=rtpmap:96 H264/90000\r\n"), "{sdp}");
        assert!(sdp.contains("profile-level-id=42C01E"), "{sdp}");
        let track = parse_h264_track(sdp.as_bytes()).expect("own offer parses");
        assert_eq!(track.payload_type, 96);
        assert_eq!(track.control.as_deref(), Some("trackID=0"));
        assert_eq!(track.sps.as_deref(), Some(SPS));
        assert_eq!(track.pps.as_deref(), Some(PPS));
        assert_eq!(track.profile_level_id.as_deref(), Some("42C01E"));
    }

    /// What ffmpeg 5.1 (`-f rtsp`, libx264) sends in ANNOUNCE.
    const FFMPEG_ANNOUNCE_SDP: &str = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=No Name\r\n\
c=IN IP4 127.0.0.1\r\nt=0 0\r\na=tool:libavformat 59.27.100\r\nm=video 0 RTP/AVP 96\r\n\
a=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1; sprop-parameter-sets=Z2QAHqzZQKA9oQAAAwABAAADADIPFi2W,aOvjyyLA; profile-level-id=64001E\r\n\
a=control:streamid=0\r\n";

    #[test]
    fn ffmpeg_5_1_announce_sdp_is_understood() {
        let track = parse_h264_track(FFMPEG_ANNOUNCE_SDP.as_bytes()).expect("parses");
        assert_eq!(track.payload_type, 96);
        assert_eq!(track.control.as_deref(), Some("streamid=0"));
        assert_eq!(track.sps.as_ref().map(|s| s[0]), Some(0x67));
        assert_eq!(track.pps.as_ref().map(|s| s[0]), Some(0x68));
        assert_eq!(track.profile_level_id.as_deref(), Some("64001E"));
    }

    #[test]
    fn sdp_without_video_is_refused() {
        let sdp = "v=0\r\no=- 0 0 IN IP4 1.2.3.4\r\ns=x\r\nt=0 0\r\nm=audio 0 RTP/AVP 0\r\n";
        assert_eq!(parse_h264_track(sdp.as_bytes()), Err(SdpError::NoVideo));
    }

    #[test]
    fn sdp_with_other_codec_is_refused() {
        let sdp = "v=0\r\no=- 0 0 IN IP4 1.2.3.4\r\ns=x\r\nt=0 0\r\nm=video 0 RTP/AVP 97\r\na=rtpmap:97 VP8/90000\r\n";
        assert!(matches!(
            parse_h264_track(sdp.as_bytes()),
            Err(SdpError::NotH264(_))
        ));
    }

    #[test]
    fn rtpmap_without_clock_rate_is_refused() {
        let sdp = "v=0\r\no=- 0 0 IN IP4 1.2.3.4\r\ns=x\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264\r\n";
        assert_eq!(
            parse_h264_track(sdp.as_bytes()),
            Err(SdpError::MissingClockRate(96))
        );
    }

    #[test]
    fn empty_sprop_is_accepted_and_garbage_sprop_is_refused() {
        let base = "v=0\r\no=- 0 0 IN IP4 1.2.3.4\r\ns=x\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n";
        let empty = format!("{base}a=fmtp:96 packetization-mode=1;sprop-parameter-sets=\r\n");
        let track = parse_h264_track(empty.as_bytes()).expect("empty sprop is fine");
        assert_eq!(track.sps, None);
        let garbage = format!("{base}a=fmtp:96 sprop-parameter-sets=%%%not-base64!!\r\n");
        assert!(matches!(
            parse_h264_track(garbage.as_bytes()),
            Err(SdpError::BadParameterSets(_))
        ));
    }

    #[test]
    fn invalid_lines_and_hundreds_of_formats_do_not_panic() {
        assert!(parse_h264_track(b"this is not sdp").is_err());
        assert!(parse_h264_track(b"").is_err());
        let mut sdp =
            String::from("v=0\r\no=- 0 0 IN IP4 1.2.3.4\r\ns=x\r\nt=0 0\r\nm=video 0 RTP/AVP");
        for pt in 0..300 {
            sdp.push_str(&format!(" {}", pt % 128));
        }
        sdp.push_str("\r\n");
        for pt in 0..300 {
            sdp.push_str(&format!("a=rtpmap:{} X{pt}/90000\r\n", pt % 128));
        }
        sdp.push_str(&format!("a=fmtp:96 {}\r\n", "x=y;".repeat(5000)));
        assert!(matches!(
            parse_h264_track(sdp.as_bytes()),
            Err(SdpError::NotH264(_))
        ));
    }

    #[test]
    fn a_huge_h264_fmtp_is_parsed_without_panic() {
        let head = "v=0\r\no=- 0 0 IN IP4 1.2.3.4\r\ns=x\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n";
        // 20 000 parameters, then sprop-parameter-sets of 60 KB of base64 garbage.
        let params = "x=y;".repeat(20_000);
        let huge = format!("{head}a=fmtp:96 packetization-mode=1;{params}\r\n");
        let track = parse_h264_track(huge.as_bytes()).expect("the H.264 track is still found");
        assert_eq!(track.payload_type, 96);
        let garbage = format!(
            "{head}a=fmtp:96 sprop-parameter-sets={},{}\r\n",
            "A".repeat(60_000),
            "!".repeat(1000)
        );
        match parse_h264_track(garbage.as_bytes()) {
            Ok(t) => assert!(t.sps.as_ref().is_none_or(|s| s.len() <= 45_000)),
            Err(e) => assert!(!e.to_string().is_empty()),
        }
    }

    /// What ffmpeg 5.1 sends for `-c:v libx264 -c:a aac -f rtsp`.
    const FFMPEG_AV_SDP: &str = "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=No Name\r\n\
c=IN IP4 127.0.0.1\r\nt=0 0\r\na=tool:libavformat 59.27.100\r\nm=video 0 RTP/AVP 96\r\n\
a=rtpmap:96 H264/90000\r\na=fmtp:96 packetization-mode=1; sprop-parameter-sets=Z2QAHqzZQKA9oQAAAwABAAADADIPFi2W,aOvjyyLA; profile-level-id=64001E\r\n\
a=control:streamid=0\r\nm=audio 0 RTP/AVP 97\r\nb=AS:128\r\n\
a=rtpmap:97 MPEG4-GENERIC/44100/2\r\n\
a=fmtp:97 profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3; config=121056E500\r\n\
a=control:streamid=1\r\n";

    #[test]
    fn an_audio_track_beside_the_video_is_kept_and_offered_back() {
        let stream = parse_announced(FFMPEG_AV_SDP.as_bytes()).expect("parses");
        assert_eq!(stream.video.control.as_deref(), Some("streamid=0"));
        assert_eq!(stream.others.len(), 1);
        let aac = &stream.others[0];
        assert_eq!(aac.codec, crate::track::Codec::Aac);
        assert_eq!(aac.clock_rate, 44_100);
        assert_eq!(
            stream.controls(),
            vec![Some("streamid=0"), Some("streamid=1")]
        );
        let offer = offer_h264(&OfferParams {
            sps: SPS,
            pps: PPS,
            payload_type: 96,
            origin_address: "127.0.0.1".into(),
            track_control: "trackID=0",
            others: &stream.others,
        });
        assert!(offer.contains("m=audio 0 RTP/AVP 97\r\n"), "{offer}");
        assert!(
            offer.contains("a=rtpmap:97 MPEG4-GENERIC/44100/2\r\n"),
            "{offer}"
        );
        assert!(
            offer.contains("config=121056E500\r\na=control:trackID=1\r\n"),
            "{offer}"
        );
        let back = parse_announced(offer.as_bytes()).expect("own offer parses");
        assert_eq!(back.others[0].fmtp, aac.fmtp);
        assert_eq!(back.others[0].control.as_deref(), Some("trackID=1"));
    }

    #[test]
    fn audio_first_then_video_is_understood() {
        let sdp = "v=0\r\no=- 0 0 IN IP4 1.2.3.4\r\ns=x\r\nt=0 0\r\nm=audio 0 RTP/AVP 0\r\n\
a=control:a\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=control:v\r\n";
        let stream = parse_announced(sdp.as_bytes()).expect("parses");
        assert_eq!(stream.video.control.as_deref(), Some("v"));
        assert_eq!(stream.others[0].codec, crate::track::Codec::Pcmu);
    }

    #[test]
    fn unusable_or_too_many_sections_are_refused() {
        let head = "v=0\r\no=- 0 0 IN IP4 1.2.3.4\r\ns=x\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n";
        let no_rate = format!("{head}m=audio 0 RTP/AVP 97\r\n");
        assert!(matches!(
            parse_announced(no_rate.as_bytes()),
            Err(SdpError::UnusableTrack { index: 1, .. })
        ));
        let many = format!("{head}{}", "m=audio 0 RTP/AVP 0\r\n".repeat(MAX_TRACKS));
        assert!(matches!(
            parse_announced(many.as_bytes()),
            Err(SdpError::TooManyTracks(9))
        ));
        let no_video = "v=0\r\no=- 0 0 IN IP4 1.2.3.4\r\ns=x\r\nt=0 0\r\nm=audio 0 RTP/AVP 0\r\n";
        assert_eq!(parse_announced(no_video.as_bytes()), Err(SdpError::NoVideo));
    }
}
