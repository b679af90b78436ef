//! MPEG-TS in (what SRT publishers send: ffmpeg `-f mpegts`, OBS), demultiplexed with
//! mpeg2ts-reader into whole frames: H.264 or H.265 access units (Annex B, as TS carries them)
//! and AAC frames (ADTS headers removed), each with its PTS unwrapped to 64 bits (90 kHz).
//!
//! ## Contract
//!
//! [`TsDemuxer::push`] takes bytes in any cut (it keeps a partial packet for the next call and
//! skips to the next sync byte after garbage) and returns the frames completed so far. A PES
//! packet is complete when the next one of its stream begins (mpeg2ts-reader's rule, even for
//! a PES whose length is set), so a frame comes out one PES late: a video frame one frame
//! interval late. The first program's first H.264/H.265 stream and first ADTS AAC stream are
//! taken (and kept when a new PAT or PMT version lists them again); other streams are skipped.
//! A frame after a continuity error (lost TS packets) says so ([`TsFrame::Video`]'s
//! `lost_before`). Limits: a PES over [`MAX_PES_BYTES`] is dropped (and
//! counted in [`TsDemuxer::dropped`]); at most [`MAX_PENDING_FRAMES`] frames are returned per
//! call. Never panics on any input.

use bytes::Bytes;
use mpeg2ts_reader::demultiplex::{self, DemuxContext, FilterChangeset, FilterRequest};
use mpeg2ts_reader::{packet, pes, psi, StreamType};

use crate::VideoCodec;

/// The largest PES packet kept (a video access unit): 8 MiB.
pub const MAX_PES_BYTES: usize = 8 * 1024 * 1024;
/// The most frames one [`TsDemuxer::push`] returns; more are dropped (and counted).
pub const MAX_PENDING_FRAMES: usize = 1024;

const TS_PACKET: usize = packet::Packet::SIZE;

/// One whole frame out of the transport stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TsFrame {
    /// A video access unit, Annex B.
    Video {
        /// H.264 or H.265.
        codec: VideoCodec,
        /// The access unit, start codes included.
        annex_b: Bytes,
        /// Presentation time, 90 kHz, unwrapped (counts past the 33-bit wrap).
        pts: u64,
        /// Decoding time, 90 kHz, unwrapped (the PTS when the PES has none).
        dts: u64,
        /// Whether something of this stream was lost since the previous frame.
        lost_before: bool,
    },
    /// An AAC frame.
    Aac {
        /// The 2-byte AudioSpecificConfig its ADTS header describes.
        audio_specific_config: [u8; 2],
        /// The raw frame (no ADTS header).
        frame: Bytes,
        /// Presentation time of the frame, 90 kHz, unwrapped.
        pts: u64,
    },
}

/// Which elementary stream a PES consumer reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Video(VideoCodec),
    Aac,
}

/// The demultiplexer. See the [module docs](self).
pub struct TsDemuxer {
    demux: demultiplex::Demultiplex<Context>,
    ctx: Context,
    partial: Vec<u8>,
}

impl Default for TsDemuxer {
    fn default() -> Self {
        let mut ctx = Context::default();
        let demux = demultiplex::Demultiplex::new(&mut ctx);
        TsDemuxer {
            demux,
            ctx,
            partial: Vec::new(),
        }
    }
}

impl TsDemuxer {
    /// Feeds bytes; returns the frames completed.
    pub fn push(&mut self, mut bytes: &[u8]) -> Vec<TsFrame> {
        if !self.partial.is_empty() {
            let wanted = TS_PACKET - self.partial.len();
            let take = wanted.min(bytes.len());
            self.partial.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.partial.len() == TS_PACKET {
                let packet = std::mem::take(&mut self.partial);
                self.push_aligned(&packet);
            }
        }
        while !bytes.is_empty() {
            // Resynchronise on a sync byte; the demultiplexer stops at the first packet
            // without one.
            let Some(start) = bytes.iter().position(|&b| b == 0x47) else {
                break;
            };
            bytes = &bytes[start..];
            let whole = bytes.len() / TS_PACKET * TS_PACKET;
            let aligned = bytes[..whole]
                .chunks_exact(TS_PACKET)
                .take_while(|p| p[0] == 0x47)
                .count()
                * TS_PACKET;
            if aligned == 0 {
                if whole == 0 {
                    self.partial.extend_from_slice(bytes);
                    break;
                }
                bytes = &bytes[1..];
                continue;
            }
            self.push_aligned(&bytes[..aligned]);
            bytes = &bytes[aligned..];
        }
        std::mem::take(&mut self.ctx.frames)
    }

    /// Whether the stream has an AAC track (its PMT listed one).
    pub fn has_audio(&self) -> bool {
        self.ctx.audio.is_some()
    }

    /// Frames or PES packets dropped so far (over a limit, or unreadable).
    pub fn dropped(&self) -> u64 {
        self.ctx.dropped
    }

    fn push_aligned(&mut self, packets: &[u8]) {
        self.demux.push(&mut self.ctx, packets);
    }
}

/// The demultiplexer's context: which streams are taken, and the frames completed.
#[derive(Default)]
pub struct Context {
    changeset: FilterChangeset<Filter>,
    frames: Vec<TsFrame>,
    dropped: u64,
    /// The PID of the video stream taken, and its kind.
    video: Option<(packet::Pid, Kind)>,
    /// The PID of the AAC stream taken.
    audio: Option<packet::Pid>,
    video_pts: Unwrapper,
    video_dts: Unwrapper,
    audio_pts: Unwrapper,
}

/// The packet filters in use.
pub enum Filter {
    /// PAT (PID 0).
    Pat(demultiplex::PatPacketFilter<Context>),
    /// The first program's PMT.
    Pmt(demultiplex::PmtPacketFilter<Context>),
    /// A stream taken.
    Pes(pes::PesPacketFilter<Context, PesCollector>),
    /// Anything else.
    Null(demultiplex::NullPacketFilter<Context>),
}

impl demultiplex::PacketFilter for Filter {
    type Ctx = Context;

    fn consume(&mut self, ctx: &mut Context, pk: &packet::Packet<'_>) {
        match self {
            Filter::Pat(f) => f.consume(ctx, pk),
            Filter::Pmt(f) => f.consume(ctx, pk),
            Filter::Pes(f) => f.consume(ctx, pk),
            Filter::Null(f) => f.consume(ctx, pk),
        }
    }
}

impl DemuxContext for Context {
    type F = Filter;

    fn filter_changeset(&mut self) -> &mut FilterChangeset<Filter> {
        &mut self.changeset
    }

    fn construct(&mut self, req: FilterRequest<'_, '_>) -> Filter {
        let null = || Filter::Null(demultiplex::NullPacketFilter::default());
        match req {
            FilterRequest::ByPid(psi::pat::PAT_PID) => {
                Filter::Pat(demultiplex::PatPacketFilter::default())
            }
            FilterRequest::ByPid(_) | FilterRequest::Nit { .. } => null(),
            FilterRequest::Pmt {
                pid,
                program_number,
            } => Filter::Pmt(demultiplex::PmtPacketFilter::new(pid, program_number)),
            FilterRequest::ByStream {
                stream_type,
                stream_info,
                ..
            } => {
                let pid = stream_info.elementary_pid();
                let kind = match (stream_type, self.video, self.audio) {
                    // A new PAT/PMT version lists the streams again: keep reading them.
                    (_, Some((taken, kind)), _) if taken == pid => kind,
                    (_, _, Some(taken)) if taken == pid => Kind::Aac,
                    (StreamType::H264, None, _) => Kind::Video(VideoCodec::H264),
                    (StreamType::H265, None, _) => Kind::Video(VideoCodec::H265),
                    (StreamType::ADTS, _, None) => Kind::Aac,
                    _ => return null(),
                };
                match kind {
                    Kind::Video(_) => self.video = Some((pid, kind)),
                    Kind::Aac => self.audio = Some(pid),
                }
                Filter::Pes(pes::PesPacketFilter::new(PesCollector {
                    kind,
                    pts: None,
                    dts: None,
                    data: Vec::new(),
                    too_large: false,
                    lost: false,
                }))
            }
        }
    }
}

/// Gathers one stream's PES packets.
pub struct PesCollector {
    kind: Kind,
    pts: Option<u64>,
    dts: Option<u64>,
    data: Vec<u8>,
    too_large: bool,
    /// Something was lost since the last frame given out.
    lost: bool,
}

impl PesCollector {
    fn append(&mut self, bytes: &[u8]) {
        if self.data.len() + bytes.len() > MAX_PES_BYTES {
            self.too_large = true;
            self.data.clear();
        }
        if !self.too_large {
            self.data.extend_from_slice(bytes);
        }
    }
}

impl pes::ElementaryStreamConsumer<Context> for PesCollector {
    fn start_stream(&mut self, _ctx: &mut Context) {}

    fn begin_packet(&mut self, _ctx: &mut Context, header: pes::PesHeader<'_>) {
        self.data.clear();
        self.too_large = false;
        self.pts = None;
        self.dts = None;
        match header.contents() {
            pes::PesContents::Parsed(Some(parsed)) => {
                match parsed.pts_dts() {
                    Ok(pes::PtsDts::PtsOnly(Ok(pts))) => self.pts = Some(pts.value()),
                    Ok(pes::PtsDts::Both {
                        pts: Ok(pts),
                        dts: Ok(dts),
                    }) => {
                        self.pts = Some(pts.value());
                        self.dts = Some(dts.value());
                    }
                    _ => {}
                }
                self.append(parsed.payload());
            }
            pes::PesContents::Parsed(None) => {}
            pes::PesContents::Payload(payload) => self.append(payload),
        }
    }

    fn continue_packet(&mut self, _ctx: &mut Context, data: &[u8]) {
        self.append(data);
    }

    fn end_packet(&mut self, ctx: &mut Context) {
        let data = std::mem::take(&mut self.data);
        let Some(pts) = self.pts.take() else {
            ctx.dropped += 1; // no time: nothing can place it
            self.lost = true;
            return;
        };
        if self.too_large || data.is_empty() {
            ctx.dropped += 1;
            self.lost = true;
            return;
        }
        match self.kind {
            Kind::Video(codec) => {
                let dts = self.dts.take().unwrap_or(pts);
                let frame = TsFrame::Video {
                    codec,
                    annex_b: Bytes::from(data),
                    pts: ctx.video_pts.unwrap(pts),
                    dts: ctx.video_dts.unwrap(dts),
                    lost_before: std::mem::take(&mut self.lost),
                };
                ctx.emit(frame);
            }
            Kind::Aac => {
                let first = ctx.audio_pts.unwrap(pts);
                for (config, frame, samples_before) in adts_frames(&data) {
                    let rate = sample_rate(config).unwrap_or(48_000);
                    let offset = samples_before * 90_000 / u64::from(rate);
                    ctx.emit(TsFrame::Aac {
                        audio_specific_config: config,
                        frame: Bytes::copy_from_slice(frame),
                        pts: first + offset,
                    });
                }
            }
        }
    }

    fn continuity_error(&mut self, ctx: &mut Context) {
        // What was gathered misses a piece: drop it.
        if !self.data.is_empty() {
            ctx.dropped += 1;
        }
        self.data.clear();
        self.pts = None;
        self.lost = true;
    }
}

impl Context {
    fn emit(&mut self, frame: TsFrame) {
        if self.frames.len() < MAX_PENDING_FRAMES {
            self.frames.push(frame);
        } else {
            self.dropped += 1;
        }
    }
}

/// Extends 33-bit timestamps to 64 bits: counts wraps (a step back of more than half the range
/// is a wrap).
#[derive(Default, Clone, Copy)]
struct Unwrapper {
    last: Option<u64>,
    wraps: u64,
}

impl Unwrapper {
    const RANGE: u64 = 1 << 33;

    fn unwrap(&mut self, ts: u64) -> u64 {
        let ts = ts & (Self::RANGE - 1);
        if let Some(last) = self.last {
            if ts < last && last - ts > Self::RANGE / 2 {
                self.wraps += 1;
            } else if ts > last && ts - last > Self::RANGE / 2 && self.wraps > 0 {
                self.wraps -= 1; // a late frame from before the wrap
            }
        }
        self.last = Some(ts);
        self.wraps * Self::RANGE + ts
    }
}

const SAMPLE_RATES: [u32; 13] = [
    96_000, 88_200, 64_000, 48_000, 44_100, 32_000, 24_000, 22_050, 16_000, 12_000, 11_025, 8_000,
    7_350,
];

/// The sampling rate an AudioSpecificConfig of ADTS names.
fn sample_rate(config: [u8; 2]) -> Option<u32> {
    let index = ((config[0] & 0x07) << 1) | (config[1] >> 7);
    SAMPLE_RATES.get(usize::from(index)).copied()
}

/// The ADTS frames of a PES payload: (AudioSpecificConfig, raw frame, samples before it in the
/// payload). Stops at the first header that does not hold together.
fn adts_frames(mut data: &[u8]) -> Vec<([u8; 2], &[u8], u64)> {
    let mut frames = Vec::new();
    let mut samples = 0u64;
    while data.len() >= 7 && frames.len() < MAX_PENDING_FRAMES {
        if data[0] != 0xff || data[1] & 0xf6 != 0xf0 {
            break; // no sync word (or layer ≠ 0)
        }
        let protection_absent = data[1] & 0x01 == 1;
        let profile = data[2] >> 6; // object type − 1
        let frequency_index = (data[2] >> 2) & 0x0f;
        let channels = ((data[2] & 0x01) << 2) | (data[3] >> 6);
        let length = (usize::from(data[3] & 0x03) << 11)
            | (usize::from(data[4]) << 3)
            | usize::from(data[5] >> 5);
        let blocks = u64::from(data[6] & 0x03) + 1;
        let header = if protection_absent { 7 } else { 9 };
        if frequency_index > 12 || length <= header || length > data.len() {
            break;
        }
        let object_type = profile + 1;
        let config = [
            (object_type << 3) | (frequency_index >> 1),
            ((frequency_index & 1) << 7) | (channels << 3),
        ];
        frames.push((config, &data[header..length], samples));
        samples += 1024 * blocks;
        data = &data[length..];
    }
    frames
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adts_headers_give_the_config_and_the_frames() {
        // AAC-LC (profile 1), 48 kHz (index 3), stereo, one 10-byte frame (7 + 3).
        let adts = [0xff, 0xf1, 0x4c, 0x80, 0x01, 0x40, 0xfc, 1, 2, 3];
        let mut two = adts.to_vec();
        two.extend_from_slice(&adts);
        let frames = adts_frames(&two);
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0].0, [0x11, 0x90], "AAC-LC 48 kHz stereo");
        assert_eq!(frames[0].1, &[1, 2, 3]);
        assert_eq!(frames[1].2, 1024);
        assert_eq!(sample_rate(frames[0].0), Some(48_000));
        assert!(
            adts_frames(&adts[..9]).is_empty(),
            "a frame longer than the data"
        );
        assert!(adts_frames(&[0xff, 0xf1, 0x7c, 0x80, 0x01, 0x40, 0xfc, 1, 2, 3]).is_empty());
    }

    #[test]
    fn timestamps_count_past_the_33_bit_wrap() {
        let mut u = Unwrapper::default();
        assert_eq!(u.unwrap((1 << 33) - 3000), (1 << 33) - 3000);
        assert_eq!(u.unwrap(0), 1 << 33);
        assert_eq!(u.unwrap((1 << 33) - 1500), (1 << 33) - 1500, "a late frame");
        assert_eq!(u.unwrap(3000), (1 << 33) + 3000);
    }

    /// 0.6 s of ffmpeg's MPEG-TS (x264 96x64 at 10 fps, a keyframe every 3 frames; AAC mono
    /// 48 kHz), the fuzz seed (its first byte is the seed's cut).
    const FFMPEG_TS: &[u8] = include_bytes!("../../../fuzz/corpus/mpegts_demux/ffmpeg_h264_aac");

    #[test]
    fn ffmpeg_s_stream_comes_out_as_frames_whatever_the_cut() {
        let ts = &FFMPEG_TS[1..];
        let frames = TsDemuxer::default().push(ts);
        let video: Vec<(&Bytes, u64)> = frames
            .iter()
            .filter_map(|f| match f {
                TsFrame::Video {
                    codec,
                    annex_b,
                    pts,
                    ..
                } => {
                    assert_eq!(*codec, VideoCodec::H264);
                    Some((annex_b, *pts))
                }
                _ => None,
            })
            .collect();
        // The last frame is still open (its PES has no length): 6 frames, 5 out.
        assert_eq!(video.len(), 5, "{frames:?}");
        let nals = crate::h264::split_annex_b(video[0].0);
        assert!(nals.iter().any(|n| VideoCodec::H264.is_keyframe_nal(n)));
        assert!(video.windows(2).all(|w| w[1].1 - w[0].1 == 9000), "10 fps");
        let aac: Vec<[u8; 2]> = frames
            .iter()
            .filter_map(|f| match f {
                TsFrame::Aac {
                    audio_specific_config,
                    ..
                } => Some(*audio_specific_config),
                _ => None,
            })
            .collect();
        assert!(aac.len() >= 15, "{} AAC frames", aac.len());
        assert!(aac.iter().all(|c| *c == [0x11, 0x88]), "AAC-LC 48 kHz mono");
        let mut demux = TsDemuxer::default();
        assert!(!demux.has_audio(), "no PMT read yet");
        let byte_by_byte: Vec<TsFrame> = ts.chunks(97).flat_map(|c| demux.push(c)).collect();
        assert_eq!(byte_by_byte, frames);
        assert!(demux.has_audio());
    }

    #[test]
    fn garbage_and_any_cut_never_panic() {
        let mut demux = TsDemuxer::default();
        let mut noise = vec![0x47u8; 188 * 3];
        noise[1] = 0x40; // PUSI on PID 0
        noise.extend((0..2000u32).map(|i| (i * 7919 % 251) as u8));
        for cut in [1, 7, 188, 200, 1316] {
            for chunk in noise.chunks(cut) {
                let _ = demux.push(chunk);
            }
        }
    }
}
