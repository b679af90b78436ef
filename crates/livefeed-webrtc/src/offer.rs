//! First look at a WHEP offer, before str0m parses it: size, "is it SDP", "is there video",
//! "is there H.264 we can send". Each problem gets its own [`WhepError`] so the viewer learns
//! exactly what is wrong.
//!
//! This is a line scan of the SDP text, not a parser: str0m parses the offer afterwards and
//! reports syntax errors as [`WhepError::InvalidSdp`]. The scan never panics and looks at
//! nothing beyond [`MAX_OFFER_BYTES`].

use livefeed_media::VideoCodec;

use crate::error::WhepError;

/// Largest offer accepted, in bytes. Browser offers are 3–10 KiB.
pub const MAX_OFFER_BYTES: usize = 64 * 1024;

/// One enabled `m=video` section of an offer.
#[derive(Debug, Default)]
struct VideoSection {
    /// `sendrecv` unless the section says otherwise (RFC 8866 §6.7).
    direction: Option<String>,
    /// `a=mid`.
    mid: Option<String>,
    /// `(payload type, encoding name)` from `a=rtpmap`.
    rtpmaps: Vec<(u8, String)>,
    /// `(payload type, parameters)` from `a=fmtp`.
    fmtps: Vec<(u8, String)>,
}

impl VideoSection {
    fn direction(&self) -> &str {
        self.direction.as_deref().unwrap_or("sendrecv")
    }

    fn receives(&self) -> bool {
        matches!(self.direction(), "recvonly" | "sendrecv")
    }

    fn sends(&self) -> bool {
        matches!(self.direction(), "sendonly" | "sendrecv")
    }

    fn fmtp(&self, pt: u8) -> Option<&str> {
        self.fmtps
            .iter()
            .find(|(p, _)| *p == pt)
            .map(|(_, f)| f.as_str())
    }

    /// Whether some payload type is H.264 with packetization-mode=1 (any profile: whether the
    /// profile fits is str0m's negotiation, checked after it).
    fn has_h264_mode1(&self) -> bool {
        self.rtpmaps.iter().any(|(pt, name)| {
            name.eq_ignore_ascii_case("H264")
                && self
                    .fmtp(*pt)
                    .and_then(|f| fmtp_value(f, "packetization-mode"))
                    == Some("1")
        })
    }

    /// Whether some payload type is H.265.
    fn has_h265(&self) -> bool {
        self.rtpmaps
            .iter()
            .any(|(_, name)| name.eq_ignore_ascii_case("H265"))
    }

    /// Whether the section offers `codec` in a form livefeed can send.
    fn offers(&self, codec: VideoCodec) -> bool {
        match codec {
            VideoCodec::H264 => self.has_h264_mode1(),
            VideoCodec::H265 => self.has_h265(),
        }
    }

    /// The offered video codecs in words: `VP8, H264 (42e01f, mode 1), rtx`.
    fn describe(&self, out: &mut Vec<String>) {
        for (pt, name) in &self.rtpmaps {
            let text = if name.eq_ignore_ascii_case("H264") {
                let fmtp = self.fmtp(*pt).unwrap_or("");
                let profile = fmtp_value(fmtp, "profile-level-id").unwrap_or("no profile-level-id");
                let mode = fmtp_value(fmtp, "packetization-mode").unwrap_or("0");
                format!("H264 ({profile}, mode {mode})")
            } else {
                name.clone()
            };
            if !out.contains(&text) {
                out.push(text);
            }
        }
    }
}

/// What [`precheck`] learnt from an acceptable offer.
#[derive(Debug)]
pub(crate) struct Precheck {
    /// The offered video codecs in words, for a later [`WhepError::NoH264`].
    pub(crate) offered: String,
    /// `a=mid` of the receiving video sections that offer H.264 mode 1, in offer order.
    pub(crate) video_mids: Vec<String>,
}

/// Checks that the body may be an SDP offer at all: small enough, starting with `v=0`.
pub(crate) fn check_envelope(offer: &str) -> Result<(), WhepError> {
    if offer.len() > MAX_OFFER_BYTES {
        return Err(WhepError::TooLarge {
            size: offer.len(),
            limit: MAX_OFFER_BYTES,
        });
    }
    if !offer.starts_with("v=0") {
        let head: String = offer.chars().take(16).collect();
        return Err(WhepError::NotSdp(format!("{head:?}")));
    }
    Ok(())
}

/// Checks the video of an offer (that str0m could parse): a receiving video section with the
/// stream's codec (H.264 with packetization-mode 1, or H.265).
pub(crate) fn check_video(offer: &str, codec: VideoCodec) -> Result<Precheck, WhepError> {
    let sections = video_sections(offer);
    if sections.is_empty() {
        return Err(WhepError::NoVideo);
    }
    let receiving: Vec<&VideoSection> = sections.iter().filter(|s| s.receives()).collect();
    if receiving.is_empty() {
        return Err(WhepError::VideoNotReceiving {
            direction: sections[0].direction().to_owned(),
        });
    }
    let mut offered = Vec::new();
    for s in &receiving {
        s.describe(&mut offered);
    }
    let offered = if offered.is_empty() {
        "no codec".to_owned()
    } else {
        offered.join(", ")
    };
    let video_mids: Vec<String> = receiving
        .iter()
        .filter(|s| s.offers(codec))
        .filter_map(|s| s.mid.clone())
        .collect();
    if video_mids.is_empty() {
        return Err(match codec {
            VideoCodec::H264 => WhepError::NoH264 { offered },
            VideoCodec::H265 => WhepError::NoH265 { offered },
        });
    }
    Ok(Precheck {
        offered,
        video_mids,
    })
}

/// Checks the video of a WHIP publisher's offer: a sending video section with H.264
/// (packetization-mode 1, any profile) or else H.265. Returns the codec to receive and the
/// mids of the sections that send it, in offer order.
pub(crate) fn check_publish_video(offer: &str) -> Result<(VideoCodec, Precheck), WhepError> {
    let sections = video_sections(offer);
    if sections.is_empty() {
        return Err(WhepError::NoVideo);
    }
    let sending: Vec<&VideoSection> = sections.iter().filter(|s| s.sends()).collect();
    if sending.is_empty() {
        return Err(WhepError::VideoNotSending {
            direction: sections[0].direction().to_owned(),
        });
    }
    let mut offered = Vec::new();
    for s in &sending {
        s.describe(&mut offered);
    }
    let offered = if offered.is_empty() {
        "no codec".to_owned()
    } else {
        offered.join(", ")
    };
    for codec in [VideoCodec::H264, VideoCodec::H265] {
        let video_mids: Vec<String> = sending
            .iter()
            .filter(|s| s.offers(codec))
            .filter_map(|s| s.mid.clone())
            .collect();
        if !video_mids.is_empty() {
            return Ok((
                codec,
                Precheck {
                    offered,
                    video_mids,
                },
            ));
        }
    }
    Err(WhepError::NoPublishableVideo { offered })
}

/// The mids of the enabled (port ≠ 0) `m=audio` sections of an SDP text, in order.
pub(crate) fn audio_mids(sdp: &str) -> Vec<String> {
    let mut mids = Vec::new();
    let mut in_audio = false;
    for line in sdp.lines().map(|l| l.trim_end_matches('\r')) {
        if let Some(m) = line.strip_prefix("m=") {
            let mut fields = m.split_ascii_whitespace();
            in_audio = fields.next() == Some("audio") && fields.next().is_some_and(|p| p != "0");
            continue;
        }
        if let Some(mid) = line.strip_prefix("a=mid:").filter(|_| in_audio) {
            mids.push(mid.trim().to_owned());
        }
    }
    mids
}

/// The enabled (port ≠ 0) `m=video` sections of an SDP text.
fn video_sections(sdp: &str) -> Vec<VideoSection> {
    let mut sections = Vec::new();
    let mut current: Option<VideoSection> = None;
    for line in sdp.lines().map(|l| l.trim_end_matches('\r')) {
        if let Some(m) = line.strip_prefix("m=") {
            sections.extend(current.take());
            let mut fields = m.split_ascii_whitespace();
            let kind = fields.next().unwrap_or("");
            let port = fields.next().unwrap_or("0");
            if kind == "video" && port != "0" {
                current = Some(VideoSection::default());
            }
            continue;
        }
        let Some(section) = current.as_mut() else {
            continue;
        };
        let Some(attr) = line.strip_prefix("a=") else {
            continue;
        };
        match attr {
            "sendrecv" | "sendonly" | "recvonly" | "inactive" => {
                section.direction = Some(attr.to_owned());
            }
            _ => {
                if let Some(mid) = attr.strip_prefix("mid:") {
                    section.mid = Some(mid.trim().to_owned());
                } else if let Some(rest) = attr.strip_prefix("rtpmap:") {
                    if let Some((pt, value)) = pt_and_value(rest) {
                        let name = value.split('/').next().unwrap_or("").trim();
                        section.rtpmaps.push((pt, name.to_owned()));
                    }
                } else if let Some(rest) = attr.strip_prefix("fmtp:") {
                    if let Some((pt, value)) = pt_and_value(rest) {
                        section.fmtps.push((pt, value.to_owned()));
                    }
                }
            }
        }
    }
    sections.extend(current);
    sections
}

/// `"96 VP8/90000"` → `(96, "VP8/90000")`.
fn pt_and_value(s: &str) -> Option<(u8, &str)> {
    let (pt, value) = s.split_once(' ')?;
    Some((pt.trim().parse().ok()?, value.trim()))
}

/// The value of `key` in `a=fmtp` parameters `k1=v1;k2=v2` (keys case-insensitive).
fn fmtp_value<'a>(fmtp: &'a str, key: &str) -> Option<&'a str> {
    fmtp.split(';').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        k.trim().eq_ignore_ascii_case(key).then_some(v.trim())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_publisher_must_send_h264_or_h265() {
        let offer = |direction: &str, codecs: &str| {
            format!(
                "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96 102\r\na=mid:0\r\na={direction}\r\n{codecs}"
            )
        };
        let h264 = "a=rtpmap:96 VP8/90000\r\na=rtpmap:102 H264/90000\r\na=fmtp:102 profile-level-id=640c1f;packetization-mode=1\r\n";
        let (codec, checked) = check_publish_video(&offer("sendonly", h264)).expect("H.264");
        assert_eq!(codec, VideoCodec::H264);
        assert_eq!(checked.video_mids, ["0"]);
        assert!(matches!(
            check_publish_video(&offer("recvonly", h264)),
            Err(WhepError::VideoNotSending { .. })
        ));
        let vp8 = "a=rtpmap:96 VP8/90000\r\n";
        assert!(matches!(
            check_publish_video(&offer("sendonly", vp8)),
            Err(WhepError::NoPublishableVideo { offered }) if offered == "VP8"
        ));
        let h265 = "a=rtpmap:96 H265/90000\r\n";
        let (codec, _) = check_publish_video(&offer("sendrecv", h265)).expect("H.265");
        assert_eq!(codec, VideoCodec::H265);
    }

    fn precheck(offer: &str) -> Result<Precheck, WhepError> {
        check_envelope(offer)?;
        check_video(offer, VideoCodec::H264)
    }

    const CHROME_LIKE: &str = "v=0\r\n\
        o=- 1 2 IN IP4 127.0.0.1\r\n\
        s=-\r\n\
        t=0 0\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n\
        a=recvonly\r\n\
        a=rtpmap:111 opus/48000/2\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96 97 102 103\r\n\
        a=mid:1\r\n\
        a=recvonly\r\n\
        a=rtpmap:96 VP8/90000\r\n\
        a=rtpmap:97 rtx/90000\r\n\
        a=fmtp:97 apt=96\r\n\
        a=rtpmap:102 H264/90000\r\n\
        a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n\
        a=rtpmap:103 rtx/90000\r\n\
        a=fmtp:103 apt=102\r\n";

    #[test]
    fn browser_offer_passes_and_lists_codecs() {
        let checked = precheck(CHROME_LIKE).unwrap();
        assert_eq!(checked.offered, "VP8, rtx, H264 (42e01f, mode 1)");
        assert_eq!(checked.video_mids, vec!["1".to_owned()]);
    }

    #[test]
    fn h265_stream_needs_an_offer_with_h265() {
        let err = check_video(CHROME_LIKE, VideoCodec::H265).unwrap_err();
        assert!(matches!(err, WhepError::NoH265 { .. }), "{err}");
        assert!(err.is_codec_mismatch());
        assert!(err.to_string().contains("H264 (42e01f, mode 1)"), "{err}");
        let with_h265 = format!("{CHROME_LIKE}a=rtpmap:104 H265/90000\r\n")
            .replace("102 103\r\n", "102 103 104\r\n");
        let checked = check_video(&with_h265, VideoCodec::H265).unwrap();
        assert_eq!(checked.video_mids, vec!["1".to_owned()]);
    }

    #[test]
    fn h264_mode_0_only_is_no_h264() {
        let sdp = CHROME_LIKE.replace("packetization-mode=1", "packetization-mode=0");
        let err = precheck(&sdp).unwrap_err();
        assert!(matches!(err, WhepError::NoH264 { .. }), "{err}");
        assert!(err.to_string().contains("H264 (42e01f, mode 0)"), "{err}");
    }

    #[test]
    fn sendonly_video_is_refused() {
        let sdp = CHROME_LIKE.replace("a=recvonly", "a=sendonly");
        let err = precheck(&sdp).unwrap_err();
        assert!(
            matches!(&err, WhepError::VideoNotReceiving { direction } if direction == "sendonly")
        );
        assert!(err.is_client_error());
    }

    #[test]
    fn disabled_video_section_is_no_video() {
        let sdp = CHROME_LIKE.replace("m=video 9", "m=video 0");
        assert!(matches!(precheck(&sdp), Err(WhepError::NoVideo)));
    }

    #[test]
    fn garbage_never_panics() {
        for s in [
            "",
            "v=0",
            "v=0\nm=",
            "v=0\nm=video",
            "v=0\nm=video 9\na=rtpmap:",
            "v=0\nm=video 9\na=rtpmap:x H264",
            "v=0\nm=video 9\na=rtpmap:96 H264/90000\na=fmtp:96 =;;==1",
            "v=0\nm=video 9\na=rtpmap:300 H264/90000",
            "\u{feff}v=0",
        ] {
            assert!(precheck(s).is_err(), "{s:?}");
        }
    }

    #[test]
    fn not_sdp_quotes_its_start() {
        let err = precheck("{\"sdp\": \"v=0\"}").unwrap_err();
        assert_eq!(
            err.to_string(),
            "offer is not SDP: it must start with \"v=0\", it starts with \"{\\\"sdp\\\": \\\"v=0\\\"}\""
        );
    }

    #[test]
    fn audio_mids_are_those_of_enabled_audio_sections() {
        let sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\nm=audio 0 UDP/TLS/RTP/SAVPF 0\r\na=mid:2\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:a3\r\n";
        assert_eq!(audio_mids(sdp), ["0", "a3"]);
        assert!(audio_mids("m=video 9 X 96\r\na=mid:0\r\n").is_empty());
    }
}
