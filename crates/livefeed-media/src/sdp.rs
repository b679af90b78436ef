//! SDP for H.264 (RFC 6184 §8) and H.265 (RFC 7798 §7) over RTP and the tracks beside them: the
//! description livefeed offers to readers, and the stream it accepts from publishers
//! (ANNOUNCE): one H.264 or H.265 video track and any other tracks, each kept as a
//! [`TrackDescription`] and offered back as it was.
//! Parsing and writing of SDP lines is done by `sdp-types`; this module only knows which lines
//! matter.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use bytes::Bytes;
use sdp_types::{Attribute, Connection, Media, Origin, Session, Time};

use crate::h264::{nal_type, nal_unit_type};
use crate::h265;
use crate::track::TrackDescription;
use crate::VideoCodec;

/// Media sections a publisher's SDP may have at most (one video and a few audio tracks in
/// practice).
pub const MAX_TRACKS: usize = 8;

/// The video track of a stream, as SDP describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoTrack {
    /// H.264 or H.265.
    pub codec: VideoCodec,
    /// RTP payload type (dynamic, 96..=127 in practice).
    pub payload_type: u8,
    /// The track's `a=control` value (relative or absolute URL), if given.
    pub control: Option<String>,
    /// H.265 VPS from `sprop-vps`, if given.
    pub vps: Option<Bytes>,
    /// SPS from `sprop-parameter-sets` (H.264) or `sprop-sps` (H.265), if given.
    pub sps: Option<Bytes>,
    /// PPS from `sprop-parameter-sets` (H.264) or `sprop-pps` (H.265), if given.
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
    /// A video section exists, but none is H.264 or H.265 with a 90 kHz clock.
    #[error("SDP video is neither H.264/90000 nor H.265/90000 (rtpmap: {0})")]
    UnsupportedVideo(String),
    /// The video is H.265, but the client reading it takes only H.264.
    #[error("SDP video is H.265; this client reads H.264 only")]
    NotH264,
    /// H.265 with decoding order numbers (`sprop-max-don-diff` > 0), which livefeed does not
    /// reorder.
    #[error("H.265 sprop-max-don-diff={0}: decoding order numbers are not supported")]
    DecodingOrderNumbers(String),
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

/// What a publisher announced: its video track and every other track.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnouncedStream {
    /// The video track.
    pub video: VideoTrack,
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
    /// The video codec.
    pub codec: VideoCodec,
    /// VPS NAL unit of an H.265 stream (empty for H.264).
    pub vps: &'a [u8],
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

/// Builds the SDP livefeed answers DESCRIBE with: the video track (`trackID=0`) — H.264 with
/// packetization-mode 1, `profile-level-id` from the SPS and `sprop-parameter-sets`; H.265 with
/// `sprop-vps`, `sprop-sps` and `sprop-pps` — then the other tracks as the publisher described
/// them (`trackID=1`, …).
pub fn offer(params: &OfferParams<'_>) -> String {
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
    let (rtpmap, fmtp) = match params.codec {
        VideoCodec::H264 => h264_rtpmap_fmtp(params),
        VideoCodec::H265 => (
            format!("{pt} H265/90000"),
            format!(
                "{pt} sprop-vps={};sprop-sps={};sprop-pps={}",
                BASE64.encode(params.vps),
                BASE64.encode(params.sps),
                BASE64.encode(params.pps)
            ),
        ),
    };
    media
        .attributes
        .push(Attribute::with_value("rtpmap", rtpmap));
    media.attributes.push(Attribute::with_value("fmtp", fmtp));
    media
        .attributes
        .push(Attribute::with_value("control", params.track_control));
    media
}

/// The H.264 `rtpmap` and `fmtp` values.
fn h264_rtpmap_fmtp(params: &OfferParams<'_>) -> (String, String) {
    let pt = params.payload_type;
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
    (
        format!("{pt} H264/90000"),
        format!(
            "{pt} packetization-mode=1;profile-level-id={profile_level_id};sprop-parameter-sets={sprop}"
        ),
    )
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

/// Reads a publisher's SDP: its first H.264/90000 or H.265/90000 video track, and every other
/// media section as a [`TrackDescription`] (its first payload type).
pub fn parse_announced(sdp: &[u8]) -> Result<AnnouncedStream, SdpError> {
    let session = Session::parse(sdp).map_err(|e| SdpError::Syntax(e.to_string()))?;
    if session.medias.len() > MAX_TRACKS {
        return Err(SdpError::TooManyTracks(session.medias.len()));
    }
    let video = video_of(&session)?;
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

/// Reads the first video track from an SDP (a server's DESCRIBE answer) for a client that
/// decodes H.264 only: an H.265 track is [`SdpError::NotH264`].
pub fn parse_h264_track(sdp: &[u8]) -> Result<VideoTrack, SdpError> {
    let session = Session::parse(sdp).map_err(|e| SdpError::Syntax(e.to_string()))?;
    let (track, _) = video_of(&session)?;
    if track.codec != VideoCodec::H264 {
        return Err(SdpError::NotH264);
    }
    Ok(track)
}

/// The first H.264/90000 or H.265/90000 video track of a session, and its media section.
fn video_of(session: &Session) -> Result<(VideoTrack, &Media), SdpError> {
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
            if let Some((pt, codec)) = video_payload_type(value)? {
                return Ok((track_from_media(media, pt, codec)?, media));
            }
        }
    }
    Err(SdpError::UnsupportedVideo(truncate(&last_rtpmap, 64)))
}

/// `96 H264/90000` → `Some((96, H264))`, likewise H265; another codec → `None`; H.264 or H.265
/// without clock rate → error.
fn video_payload_type(rtpmap: &str) -> Result<Option<(u8, VideoCodec)>, SdpError> {
    let (pt, encoding) = match rtpmap.trim().split_once(' ') {
        Some(parts) => parts,
        None => return Ok(None),
    };
    let Ok(pt) = pt.parse::<u8>() else {
        return Ok(None);
    };
    let mut fields = encoding.trim().split('/');
    let codec = match fields.next() {
        Some(n) if n.eq_ignore_ascii_case("H264") => VideoCodec::H264,
        Some(n) if n.eq_ignore_ascii_case("H265") => VideoCodec::H265,
        _ => return Ok(None),
    };
    match fields.next().map(str::trim) {
        Some("90000") => Ok(Some((pt, codec))),
        Some("") | None => Err(SdpError::MissingClockRate(pt)),
        Some(_) => Ok(None),
    }
}

fn track_from_media(media: &Media, pt: u8, codec: VideoCodec) -> Result<VideoTrack, SdpError> {
    let control = media
        .get_first_attribute_value("control")
        .flatten()
        .map(str::to_string);
    let mut track = VideoTrack {
        codec,
        payload_type: pt,
        control,
        vps: None,
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

fn apply_fmtp(track: &mut VideoTrack, fmtp: &str) -> Result<(), SdpError> {
    for param in fmtp.split(';') {
        let Some((key, value)) = param.trim().split_once('=') else {
            continue;
        };
        let h265 = track.codec == VideoCodec::H265;
        match key.trim().to_ascii_lowercase().as_str() {
            "profile-level-id" => track.profile_level_id = Some(truncate(value.trim(), 64)),
            "sprop-parameter-sets" if !h265 => apply_parameter_sets(track, value)?,
            "sprop-vps" if h265 => track.vps = first_parameter_set(value)?,
            "sprop-sps" if h265 => track.sps = first_parameter_set(value)?,
            "sprop-pps" if h265 => track.pps = first_parameter_set(value)?,
            "sprop-max-don-diff" if h265 && value.trim() != "0" => {
                return Err(SdpError::DecodingOrderNumbers(truncate(value.trim(), 16)));
            }
            _ => {}
        }
    }
    if track.codec == VideoCodec::H265 {
        // Keep only parameter sets of the right type.
        let is = |nal: &Option<Bytes>, t: u8| {
            nal.as_deref()
                .is_some_and(|n| h265::nal_unit_type(n) == Some(t))
        };
        if !is(&track.vps, h265::nal_type::VPS) {
            track.vps = None;
        }
        if !is(&track.sps, h265::nal_type::SPS) {
            track.sps = None;
        }
        if !is(&track.pps, h265::nal_type::PPS) {
            track.pps = None;
        }
    }
    Ok(())
}

/// The first NAL unit of an H.265 `sprop-vps`/`sprop-sps`/`sprop-pps` value (a comma-separated
/// base64 list); `None` for an empty value.
fn first_parameter_set(value: &str) -> Result<Option<Bytes>, SdpError> {
    let Some(item) = value.split(',').map(str::trim).find(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let nal = BASE64
        .decode(item)
        .map_err(|_| SdpError::BadParameterSets(truncate(item, 64)))?;
    Ok(Some(Bytes::from(nal)))
}

fn apply_parameter_sets(track: &mut VideoTrack, value: &str) -> Result<(), SdpError> {
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

    fn h264_offer() -> String {
        offer(&OfferParams {
            codec: VideoCodec::H264,
            vps: &[],
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
        let sdp = h264_offer();
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
            Err(SdpError::UnsupportedVideo(_))
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
            Err(SdpError::UnsupportedVideo(_))
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
        let offer = offer(&OfferParams {
            codec: VideoCodec::H264,
            vps: &[],
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

    /// What ffmpeg sends for `-c:v libx265 -c:a aac -f rtsp` (parameter sets of a real stream).
    fn ffmpeg_h265_sdp(fmtp: &str) -> String {
        format!(
            "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=No Name\r\nt=0 0\r\n\
m=video 0 RTP/AVP 96\r\na=rtpmap:96 H265/90000\r\n{fmtp}a=control:streamid=0\r\n\
m=audio 0 RTP/AVP 97\r\na=rtpmap:97 MPEG4-GENERIC/44100/1\r\n\
a=fmtp:97 profile-level-id=1;mode=AAC-hbr;sizelength=13;indexlength=3;indexdeltalength=3; config=120856E500\r\n\
a=control:streamid=1\r\n"
        )
    }

    #[test]
    fn an_h265_stream_is_read_and_offered_back_with_its_parameter_sets() {
        use crate::h265::samples::{PPS, SPS_320X240, VPS};
        let fmtp = format!(
            "a=fmtp:96 sprop-vps={}; sprop-sps={}; sprop-pps={}\r\n",
            BASE64.encode(VPS),
            BASE64.encode(SPS_320X240),
            BASE64.encode(PPS)
        );
        let stream = parse_announced(ffmpeg_h265_sdp(&fmtp).as_bytes()).expect("parses");
        assert_eq!(stream.video.codec, VideoCodec::H265);
        assert_eq!(stream.video.vps.as_deref(), Some(VPS));
        assert_eq!(stream.video.sps.as_deref(), Some(SPS_320X240));
        assert_eq!(stream.video.pps.as_deref(), Some(PPS));
        assert_eq!(stream.others.len(), 1);
        let sdp = offer(&OfferParams {
            codec: VideoCodec::H265,
            vps: VPS,
            sps: SPS_320X240,
            pps: PPS,
            payload_type: 96,
            origin_address: "127.0.0.1".into(),
            track_control: "trackID=0",
            others: &stream.others,
        });
        assert!(sdp.contains("a=rtpmap:96 H265/90000\r\n"), "{sdp}");
        let back = parse_announced(sdp.as_bytes()).expect("own offer parses");
        assert_eq!(
            back.video,
            VideoTrack {
                control: Some("trackID=0".into()),
                ..stream.video.clone()
            }
        );
        assert_eq!(
            parse_h264_track(sdp.as_bytes()),
            Err(SdpError::NotH264),
            "an H.264-only client is told why"
        );
    }

    #[test]
    fn h265_without_sprops_is_accepted_and_with_don_is_refused() {
        let stream = parse_announced(ffmpeg_h265_sdp("").as_bytes()).expect("parses");
        assert_eq!(stream.video.codec, VideoCodec::H265);
        assert_eq!(stream.video.sps, None);
        let don = ffmpeg_h265_sdp("a=fmtp:96 sprop-max-don-diff=2\r\n");
        assert_eq!(
            parse_announced(don.as_bytes()),
            Err(SdpError::DecodingOrderNumbers("2".into()))
        );
        // A parameter set of the wrong type is ignored, not trusted.
        let wrong = format!(
            "a=fmtp:96 sprop-sps={}\r\n",
            BASE64.encode(crate::h265::samples::PPS)
        );
        let stream = parse_announced(ffmpeg_h265_sdp(&wrong).as_bytes()).expect("parses");
        assert_eq!(stream.video.sps, None);
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
