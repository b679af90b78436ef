//! The capture stamp survives a real encode (OpenH264, and libx264 with the `x264` feature) and
//! an OpenH264 decode, both ways it is carried: the SEI stamp in the bitstream and the pixel
//! timecode in the decoded picture, for every frame.

use livefeed_media::h264::{nal_type, nal_unit_type, SpsInfo};
use livefeed_media::timecode::{self, Timecode};
use livefeed_media::{sei, CaptureStamp};
use livefeed_source::decoder::H264Decoder;
use livefeed_source::encoder::{open_encoder, EncoderKind, EncoderSettings, H264Encoder};
use livefeed_source::overlay::{self, GREEN};
use livefeed_source::{I420Frame, TestPattern};

fn round_trip(width: usize, height: usize, bitrate_kbps: u32) {
    round_trip_with(EncoderKind::OpenH264, width, height, bitrate_kbps);
}

fn round_trip_with(kind: EncoderKind, width: usize, height: usize, bitrate_kbps: u32) {
    let frames = 90u64;
    let mut encoder = open_encoder(
        kind,
        EncoderSettings {
            width,
            height,
            fps: 30.0,
            bitrate_kbps,
            gop: 30,
        },
    )
    .expect("encoder");
    let mut decoder = H264Decoder::new().expect("decoder");
    let mut pattern = TestPattern::new(width, height);
    let mut frame = I420Frame::new_black(width, height).expect("frame");
    let base_ns = 1_763_700_000_000_000_000u64;
    let mut decoded = 0;
    for n in 0..frames {
        let stamp = CaptureStamp {
            unix_ns: base_ns + n * 33_333_333 + 777,
            frame: n,
        };
        pattern.render(n, &mut frame);
        overlay::draw_overlay(
            &mut frame,
            &overlay::publisher_line(stamp.unix_ns, 30.0, 2.0),
            GREEN,
        );
        overlay::draw_timecode(&mut frame, Timecode::from_unix_ns(stamp.unix_ns, n));
        let au = encoder.encode(&frame, n * 3000, stamp).expect("encodes");

        assert_eq!(au.keyframe, n % 30 == 0, "IDR every GOP, frame {n}");
        if au.keyframe {
            let sps = au
                .nals
                .iter()
                .find(|x| nal_unit_type(x) == Some(nal_type::SPS))
                .expect("SPS on keyframes");
            let info = SpsInfo::parse(sps).expect("valid SPS");
            assert_eq!((info.width as usize, info.height as usize), (width, height));
            assert_eq!(info.profile_idc, 66, "baseline");
        }
        assert_eq!(
            sei::find_stamp(&au.nals),
            Some(stamp),
            "SEI stamp of frame {n}"
        );

        let tc = decoder
            .decode(&au, |pic| {
                assert_eq!((pic.width, pic.height), (width, height));
                timecode::read(pic.y, pic.y_stride, pic.width, pic.height)
            })
            .expect("decodes")
            .expect("one picture per access unit: no decoder delay");
        assert_eq!(
            tc,
            Some(Timecode::from_unix_ns(stamp.unix_ns, n)),
            "timecode of frame {n}"
        );
        assert!(tc.is_some_and(|tc| tc.matches(stamp.unix_ns, stamp.frame)));
        decoded += 1;
    }
    assert_eq!(decoded, frames, "100 % of frames read back");
}

#[test]
fn stamp_and_timecode_survive_encode_and_decode_at_640x480() {
    round_trip(640, 480, 2000);
}

#[test]
fn stamp_and_timecode_survive_encode_and_decode_at_1280x720() {
    round_trip(1280, 720, 4000);
}

#[test]
fn stamp_and_timecode_survive_a_starved_bitrate() {
    // 300 kbit/s at 640x480 with motion everywhere: the picture degrades, the strip must not.
    round_trip(640, 480, 300);
}

#[test]
fn decoded_pictures_copy_out_as_i420() {
    let (w, h) = (320, 240);
    let mut encoder = H264Encoder::new(EncoderSettings {
        width: w,
        height: h,
        fps: 30.0,
        bitrate_kbps: 1000,
        gop: 30,
    })
    .expect("encoder");
    let mut decoder = H264Decoder::new().expect("decoder");
    let mut frame = I420Frame::new_black(w, h).expect("frame");
    TestPattern::new(w, h).render(0, &mut frame);
    let au = encoder
        .encode(
            &frame,
            0,
            CaptureStamp {
                unix_ns: 1,
                frame: 0,
            },
        )
        .expect("encodes");
    let copy = decoder
        .decode(&au, |pic| pic.to_i420())
        .expect("decodes")
        .expect("picture")
        .expect("copies");
    assert_eq!((copy.width(), copy.height()), (w, h));
    // A lossy copy of the pattern: mean luma within a few levels of the original.
    let mean = |p: &[u8]| p.iter().map(|&v| u64::from(v)).sum::<u64>() / p.len() as u64;
    assert!(mean(copy.y()).abs_diff(mean(frame.y())) <= 4);
}

#[cfg(feature = "x264")]
#[test]
fn x264_stamp_and_timecode_survive_encode_and_decode_at_640x480() {
    round_trip_with(EncoderKind::X264, 640, 480, 2000);
}

#[cfg(feature = "x264")]
#[test]
fn x264_stamp_and_timecode_survive_encode_and_decode_at_1280x720() {
    round_trip_with(EncoderKind::X264, 1280, 720, 4000);
}

#[cfg(not(feature = "x264"))]
#[test]
fn without_the_feature_x264_is_a_clear_error() {
    let settings = EncoderSettings {
        width: 64,
        height: 64,
        fps: 30.0,
        bitrate_kbps: 100,
        gop: 30,
    };
    let err = open_encoder(EncoderKind::X264, settings)
        .err()
        .expect("refused");
    assert!(format!("{err}").contains("--features x264"), "{err}");
}
