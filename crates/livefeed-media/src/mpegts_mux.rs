//! MPEG-TS out (what SRT readers take: ffmpeg, ffplay, VLC, OBS's media source): one program
//! with a video stream (H.264 or H.265) and, when the path has one, an AAC stream (ADTS).
//!
//! ## Contract
//!
//! [`TsMuxer`] turns whole frames into 188-byte TS packets and nothing else (no I/O, no clock
//! of its own). Times in are 90 kHz on the path's timeline; out, they start at
//! [`START_TICKS`] from the first video frame written and wrap at 33 bits, as TS times do. The
//! PAT and PMT come before the first frame and before every keyframe (where a reader can
//! join); the keyframe's parameter sets are written in-band when its access unit lacks them
//! (RTSP publishers send them out of band); every video PES starts with an access unit
//! delimiter and carries the PCR ([`PCR_LEAD_TICKS`] before its time), and a keyframe's is
//! flagged random access. Nothing is written before the first keyframe; audio before the first
//! video frame is dropped. PIDs and stream types are the ones ffmpeg's muxer uses (PMT 0x1000,
//! video 0x100, audio 0x101).
//!
//! Written by hand rather than with a crate: mpeg2ts-reader (the demuxer's crate) only reads,
//! and the muxing needed (PSI sections, PES headers, packetization) is short and checked here
//! by reading back with [`crate::mpegts::TsDemuxer`] and, in the server's tests, with ffmpeg.

use crate::aac::AacConfig;
use crate::VideoCodec;

/// Size of a TS packet.
pub const TS_PACKET_SIZE: usize = 188;
/// The first video frame's time out (90 kHz): 1.4 s, as ffmpeg starts.
pub const START_TICKS: u64 = 126_000;
/// How far the PCR runs ahead of a frame's presentation time (90 kHz): 300 ms, so that audio
/// arriving a little after the video of the same time is not late for a strict player.
pub const PCR_LEAD_TICKS: u64 = 27_000;

const PAT_PID: u16 = 0;
const PMT_PID: u16 = 0x1000;
const VIDEO_PID: u16 = 0x100;
const AUDIO_PID: u16 = 0x101;
const PROGRAM_NUMBER: u16 = 1;
const STREAM_TYPE_H264: u8 = 0x1b;
const STREAM_TYPE_H265: u8 = 0x24;
const STREAM_TYPE_AAC_ADTS: u8 = 0x0f;
const TIME_MASK: u64 = (1 << 33) - 1;
const PAYLOAD_SIZE: usize = TS_PACKET_SIZE - 4;
const MPEG2_CRC: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_MPEG_2);

/// Muxes one path's frames into a transport stream.
pub struct TsMuxer {
    codec: VideoCodec,
    /// The parameter sets written before a keyframe that lacks them (VPS, SPS, PPS).
    parameter_sets: Vec<Vec<u8>>,
    aac: Option<AacConfig>,
    /// The first video frame's time in: the zero of the times out.
    base: Option<u64>,
    continuity: [u8; 4],
}

impl TsMuxer {
    /// A muxer of `codec` video (with `parameter_sets` for keyframes that lack them) and, when
    /// `aac` is given and ADTS can describe it (see [`adts_header`]), AAC.
    pub fn new(codec: VideoCodec, parameter_sets: Vec<Vec<u8>>, aac: Option<AacConfig>) -> Self {
        TsMuxer {
            codec,
            parameter_sets,
            aac: aac.filter(|c| adts_header(c, 0).is_some()),
            base: None,
            continuity: [0; 4],
        }
    }

    /// Whether the stream has an audio stream (the AAC given to [`TsMuxer::new`] fits ADTS).
    pub fn has_audio(&self) -> bool {
        self.aac.is_some()
    }

    /// Appends a video access unit (NAL units without start codes) presented at `pts`.
    /// Returns `false` (and writes nothing) before the first keyframe.
    pub fn video(&mut self, nals: &[&[u8]], pts: u64, keyframe: bool, out: &mut Vec<u8>) -> bool {
        if self.base.is_none() && !keyframe {
            return false;
        }
        let base = *self.base.get_or_insert(pts);
        let time = pts.wrapping_sub(base).wrapping_add(START_TICKS) & TIME_MASK;
        if keyframe {
            self.write_tables(out);
        }
        let mut es = Vec::with_capacity(nals.iter().map(|n| n.len() + 4).sum::<usize>() + 64);
        push_nal(&mut es, self.access_unit_delimiter());
        let has_parameter_sets = nals.iter().any(|n| self.codec.is_parameter_set(n));
        if keyframe && !has_parameter_sets {
            for set in &self.parameter_sets {
                push_nal(&mut es, set);
            }
        }
        for nal in nals {
            if !self.codec.is_access_unit_delimiter(nal) {
                push_nal(&mut es, nal);
            }
        }
        let pes = pes_packet(0xe0, time, &es, false);
        let pcr = time.wrapping_sub(PCR_LEAD_TICKS) & TIME_MASK;
        let mut first = vec![if keyframe { 0x50 } else { 0x10 }];
        first.extend_from_slice(&pcr_bytes(pcr));
        self.packetize(VIDEO_PID, &pes, &first, out);
        true
    }

    /// Appends one raw AAC frame presented at `pts` (90 kHz, the video's timeline). Returns
    /// `false` (and writes nothing) when the stream has no audio, before the first video
    /// frame, for a frame before it, or for a frame ADTS cannot carry (≥ 8185 bytes).
    pub fn aac(&mut self, frame: &[u8], pts: u64, out: &mut Vec<u8>) -> bool {
        let (Some(config), Some(base)) = (self.aac.as_ref(), self.base) else {
            return false;
        };
        let Some(since) = pts.checked_sub(base) else {
            return false;
        };
        let Some(header) = adts_header(config, frame.len()) else {
            return false;
        };
        let time = since.wrapping_add(START_TICKS) & TIME_MASK;
        let mut es = Vec::with_capacity(header.len() + frame.len());
        es.extend_from_slice(&header);
        es.extend_from_slice(frame);
        let pes = pes_packet(0xc0, time, &es, true);
        self.packetize(AUDIO_PID, &pes, &[], out);
        true
    }

    fn access_unit_delimiter(&self) -> &'static [u8] {
        match self.codec {
            VideoCodec::H264 => &[0x09, 0xf0],
            VideoCodec::H265 => &[0x46, 0x01, 0x50],
        }
    }

    /// The PAT and the PMT.
    fn write_tables(&mut self, out: &mut Vec<u8>) {
        let mut pat = Vec::new();
        pat.extend_from_slice(&PROGRAM_NUMBER.to_be_bytes());
        pat.extend_from_slice(&(0xe000 | PMT_PID).to_be_bytes());
        let pat = psi_section(0x00, 1, &pat);
        self.packetize(PAT_PID, &pat, &[], out);

        let mut pmt = Vec::new();
        pmt.extend_from_slice(&(0xe000 | VIDEO_PID).to_be_bytes()); // PCR PID
        pmt.extend_from_slice(&0xf000u16.to_be_bytes()); // no program descriptors
        let video_type = match self.codec {
            VideoCodec::H264 => STREAM_TYPE_H264,
            VideoCodec::H265 => STREAM_TYPE_H265,
        };
        let mut streams = vec![(video_type, VIDEO_PID)];
        if self.aac.is_some() {
            streams.push((STREAM_TYPE_AAC_ADTS, AUDIO_PID));
        }
        for (stream_type, pid) in streams {
            pmt.push(stream_type);
            pmt.extend_from_slice(&(0xe000 | pid).to_be_bytes());
            pmt.extend_from_slice(&0xf000u16.to_be_bytes());
        }
        let pmt = psi_section(0x02, PROGRAM_NUMBER, &pmt);
        self.packetize(PMT_PID, &pmt, &[], out);
    }

    /// Splits `payload` (a PES packet, or a PSI section behind its pointer field) into TS
    /// packets of `pid`; the first carries `adaptation` (flags and fields, without the length
    /// byte) when given; the last is filled out with adaptation-field stuffing.
    fn packetize(&mut self, pid: u16, payload: &[u8], adaptation: &[u8], out: &mut Vec<u8>) {
        let mut rest = payload;
        let mut first = true;
        while first || !rest.is_empty() {
            let counter = self.next_continuity(pid);
            let start: u16 = if first { 0x4000 } else { 0 };
            out.push(0x47);
            out.extend_from_slice(&(start | pid).to_be_bytes());
            let adaptation = if first { adaptation } else { &[] };
            if adaptation.is_empty() && rest.len() >= PAYLOAD_SIZE {
                out.push(0x10 | counter);
                out.extend_from_slice(&rest[..PAYLOAD_SIZE]);
                rest = &rest[PAYLOAD_SIZE..];
            } else {
                let mut field = adaptation.to_vec();
                let room = PAYLOAD_SIZE - 1 - field.len();
                let take = rest.len().min(room);
                let mut stuffing = room - take;
                if stuffing > 0 && field.is_empty() {
                    field.push(0x00); // no flags
                    stuffing -= 1;
                }
                field.resize(field.len() + stuffing, 0xff);
                out.push(0x30 | counter);
                out.push(field.len() as u8);
                out.extend_from_slice(&field);
                out.extend_from_slice(&rest[..take]);
                rest = &rest[take..];
            }
            first = false;
        }
    }

    fn next_continuity(&mut self, pid: u16) -> u8 {
        let slot = match pid {
            PAT_PID => 0,
            PMT_PID => 1,
            VIDEO_PID => 2,
            _ => 3,
        };
        let counter = self.continuity[slot];
        self.continuity[slot] = (counter + 1) & 0x0f;
        counter
    }
}

fn push_nal(es: &mut Vec<u8>, nal: &[u8]) {
    es.extend_from_slice(&[0, 0, 0, 1]);
    es.extend_from_slice(nal);
}

/// A PES packet of `stream_id` with a PTS. Video PES leave the length 0 (unbounded, as a
/// frame may be over 64 KiB); audio ones set it.
fn pes_packet(stream_id: u8, pts: u64, es: &[u8], bounded: bool) -> Vec<u8> {
    let mut pes = Vec::with_capacity(es.len() + 14);
    pes.extend_from_slice(&[0, 0, 1, stream_id]);
    let length = if bounded { 8 + es.len() } else { 0 };
    pes.extend_from_slice(&u16::try_from(length).unwrap_or(0).to_be_bytes());
    pes.extend_from_slice(&[0x84, 0x80, 5]); // data aligned; PTS only; 5 header bytes
    pes.extend_from_slice(&[
        0x21 | ((pts >> 29) & 0x0e) as u8,
        (pts >> 22) as u8,
        0x01 | ((pts >> 14) & 0xfe) as u8,
        (pts >> 7) as u8,
        0x01 | ((pts << 1) & 0xfe) as u8,
    ]);
    pes.extend_from_slice(es);
    pes
}

/// A PCR field: the 33-bit base at 90 kHz, reserved bits, a zero 27 MHz extension.
fn pcr_bytes(base: u64) -> [u8; 6] {
    [
        (base >> 25) as u8,
        (base >> 17) as u8,
        (base >> 9) as u8,
        (base >> 1) as u8,
        (((base & 1) << 7) as u8) | 0x7e,
        0x00,
    ]
}

/// A PSI section (`table_id`, `id` as its table id extension, version 0, one section) behind
/// its pointer field, CRC included, filled out to a packet's payload with 0xff.
fn psi_section(table_id: u8, id: u16, body: &[u8]) -> Vec<u8> {
    let length = 5 + body.len() + 4;
    let mut section = vec![0x00, table_id]; // pointer field, table id
    section.extend_from_slice(&(0xb000 | length as u16).to_be_bytes());
    section.extend_from_slice(&id.to_be_bytes());
    section.extend_from_slice(&[0xc1, 0x00, 0x00]); // version 0, current; section 0 of 0
    section.extend_from_slice(body);
    let crc = MPEG2_CRC.checksum(&section[1..]);
    section.extend_from_slice(&crc.to_be_bytes());
    section.resize(section.len().max(PAYLOAD_SIZE), 0xff); // stuffing after the section
    section
}

/// The 7-byte ADTS header (no CRC) of a `frame_len`-byte raw AAC frame, or `None` when ADTS
/// cannot describe the stream (object type outside 1–4, a non-standard rate, channels not 1 to
/// 7, 960-sample frames) or the frame (over 13 bits of length).
pub fn adts_header(config: &AacConfig, frame_len: usize) -> Option<[u8; 7]> {
    let profile = config.object_type.checked_sub(1).filter(|p| *p < 4)?;
    let rate_index = crate::aac::sampling_frequency_index(config.sample_rate)?;
    let channels = Some(config.channels).filter(|c| (1..=7).contains(c))?;
    if config.frame_length != 1024 {
        return None; // ADTS has no way to say 960
    }
    let length = frame_len + 7;
    if length >= 1 << 13 {
        return None;
    }
    Some([
        0xff,
        0xf1, // MPEG-4, layer 0, no CRC
        (profile << 6) | (rate_index << 2) | (channels >> 2),
        ((channels & 3) << 6) | (length >> 11) as u8,
        (length >> 3) as u8,
        (((length & 7) << 5) as u8) | 0x1f,
        0xfc, // buffer fullness 0x7ff (variable), one raw data block
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mpegts::{TsDemuxer, TsFrame};
    use bytes::Bytes;

    const SPS: &[u8] = &[0x67, 0x42, 0xc0, 0x1e, 0xda, 0x02, 0x80, 0xbf, 0xe5, 0x84];
    const PPS: &[u8] = &[0x68, 0xce, 0x3c, 0x80];

    fn aac_lc_48k_stereo() -> AacConfig {
        AacConfig::from_audio_specific_config(Bytes::from_static(&[0x11, 0x90]))
            .expect("AAC-LC 48 kHz stereo")
    }

    /// A keyframe of `len` bytes of slice data and a P-frame, then audio.
    fn mux_some(muxer: &mut TsMuxer, len: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let idr: Vec<u8> = [0x65]
            .into_iter()
            .chain((0..len).map(|i| i as u8 | 1))
            .collect();
        let p = [0x41, 0x9a, 0x02, 0x03];
        assert!(
            !muxer.video(&[&p], 1_000, false, &mut out),
            "before a keyframe"
        );
        assert!(!muxer.aac(&[1, 2, 3], 1_000, &mut out), "before any video");
        assert!(out.is_empty());
        assert!(muxer.video(&[&idr], 10_000, true, &mut out));
        assert!(muxer.aac(&[0x21, 0x10, 0x04], 10_000, &mut out));
        assert!(muxer.video(&[&p], 13_000, false, &mut out));
        assert!(muxer.aac(&[0x21, 0x10, 0x05], 11_920, &mut out));
        assert!(
            !muxer.aac(&[0x21], 9_000, &mut out),
            "before the first frame"
        );
        // A third video frame, so that the demuxer (one PES late) gives the second.
        assert!(muxer.video(&[&p], 16_000, false, &mut out));
        assert!(muxer.aac(&[0x21, 0x10, 0x06], 13_840, &mut out));
        out
    }

    #[test]
    fn frames_read_back_whole_with_their_times_parameter_sets_and_audio() {
        // The PES before the slice is 47 bytes and the first packet carries 176: a slice of 129
        // ends the first packet, 311 and 312 leave 182 and 183 bytes for the second (the
        // adaptation field with no flags byte, or an empty one), 313 fills two whole packets.
        for len in [
            0, 128, 129, 130, 150, 183, 184, 310, 311, 312, 313, 497, 5_000, 70_000,
        ] {
            let mut muxer = TsMuxer::new(
                VideoCodec::H264,
                vec![SPS.to_vec(), PPS.to_vec()],
                Some(aac_lc_48k_stereo()),
            );
            let ts = mux_some(&mut muxer, len);
            assert_eq!(ts.len() % TS_PACKET_SIZE, 0, "whole packets ({len})");
            assert!(ts.chunks(TS_PACKET_SIZE).all(|p| p[0] == 0x47));
            let mut demuxer = TsDemuxer::default();
            let frames = demuxer.push(&ts);
            let video: Vec<_> = frames
                .iter()
                .filter_map(|f| match f {
                    TsFrame::Video {
                        annex_b,
                        pts,
                        lost_before,
                        ..
                    } => Some((annex_b.clone(), *pts, *lost_before)),
                    TsFrame::Aac { .. } => None,
                })
                .collect();
            assert_eq!(video.len(), 2, "one PES late ({len})");
            let (first, pts, lost) = &video[0];
            assert_eq!(*pts, START_TICKS);
            assert!(!lost);
            let nals = crate::h264::split_annex_b(first);
            assert_eq!(nals[0], [0x09, 0xf0], "access unit delimiter first");
            assert_eq!((nals[1], nals[2]), (SPS, PPS), "parameter sets in-band");
            assert_eq!(nals[3].len(), len + 1, "the slice whole ({len})");
            assert_eq!(video[1].1, START_TICKS + 3_000);
            let audio: Vec<_> = frames
                .iter()
                .filter_map(|f| match f {
                    TsFrame::Aac {
                        audio_specific_config,
                        frame,
                        pts,
                    } => Some((*audio_specific_config, frame.to_vec(), *pts)),
                    TsFrame::Video { .. } => None,
                })
                .collect();
            assert_eq!(
                audio,
                [
                    ([0x11, 0x90], vec![0x21, 0x10, 0x04], START_TICKS),
                    ([0x11, 0x90], vec![0x21, 0x10, 0x05], START_TICKS + 1_920),
                ],
                "ADTS describes the config; the last frame is one PES late"
            );
            assert_eq!(demuxer.dropped(), 0);
        }
    }

    #[test]
    fn a_keyframe_with_its_own_parameter_sets_gets_no_second_copy_and_tables_come_again() {
        let mut muxer = TsMuxer::new(VideoCodec::H264, vec![SPS.to_vec(), PPS.to_vec()], None);
        let mut out = Vec::new();
        let idr = [0x65, 0x88, 0x84];
        for pts in [0, 3_000] {
            assert!(muxer.video(&[SPS, PPS, &idr], pts, true, &mut out));
        }
        let pat_packets = out
            .chunks(TS_PACKET_SIZE)
            .filter(|p| p[1] & 0x1f == 0 && p[2] == 0)
            .count();
        assert_eq!(pat_packets, 2, "a PAT before each keyframe");
        let mut demuxer = TsDemuxer::default();
        let mut next = Vec::new();
        assert!(muxer.video(&[&idr], 6_000, true, &mut next));
        out.extend_from_slice(&next);
        let frames = demuxer.push(&out);
        let TsFrame::Video { annex_b, .. } = &frames[0] else {
            panic!("a video frame first: {frames:?}");
        };
        let sps_count = crate::h264::split_annex_b(annex_b)
            .iter()
            .filter(|n| n.first() == Some(&0x67))
            .count();
        assert_eq!(sps_count, 1);
        assert!(!demuxer.has_audio(), "no audio stream when there is no AAC");
    }

    #[test]
    fn times_count_from_the_first_frame_near_u64_max_and_continuity_counters_run_per_pid() {
        let mut muxer = TsMuxer::new(VideoCodec::H265, Vec::new(), None);
        let mut out = Vec::new();
        let idr = [0x26, 0x01, 0xaf];
        let start = u64::MAX - 10;
        assert!(muxer.video(&[&idr], start, true, &mut out));
        for i in 1..40u64 {
            assert!(muxer.video(
                &[&[0x02, 0x01, 0xd0]],
                start.wrapping_add(i * 3_000),
                false,
                &mut out
            ));
        }
        let mut last = std::collections::HashMap::new();
        for packet in out.chunks(TS_PACKET_SIZE) {
            let pid = (u16::from(packet[1] & 0x1f) << 8) | u16::from(packet[2]);
            let counter = packet[3] & 0x0f;
            if let Some(previous) = last.insert(pid, counter) {
                assert_eq!(counter, (previous + 1) & 0x0f, "pid {pid:#x}");
            }
        }
        let frames = TsDemuxer::default().push(&out);
        assert_eq!(frames.len(), 39);
        assert!(frames.iter().all(|f| matches!(
            f,
            TsFrame::Video {
                codec: VideoCodec::H265,
                lost_before: false,
                ..
            }
        )));
    }

    #[test]
    fn adts_headers_describe_only_what_adts_can() {
        let config = aac_lc_48k_stereo();
        assert_eq!(
            adts_header(&config, 100),
            Some([0xff, 0xf1, 0x4c, 0x80, 0x0d, 0x7f, 0xfc])
        );
        assert_eq!(adts_header(&config, 8_185), None, "13-bit length");
        let he_aac =
            AacConfig::from_audio_specific_config(Bytes::from_static(&[0x2b, 0x92, 0x08, 0x00]))
                .expect("HE-AAC config");
        assert_eq!(adts_header(&he_aac, 100), None, "object type 5");
        // AAC-LC 48 kHz stereo with 960-sample frames (frameLengthFlag set).
        let short = AacConfig::from_audio_specific_config(Bytes::from_static(&[0x11, 0x94]))
            .expect("960-sample AAC-LC");
        assert_eq!(short.frame_length, 960);
        assert_eq!(adts_header(&short, 100), None, "ADTS cannot say 960");
        let muxer = TsMuxer::new(VideoCodec::H264, Vec::new(), Some(he_aac));
        assert!(!muxer.has_audio());
    }
}
