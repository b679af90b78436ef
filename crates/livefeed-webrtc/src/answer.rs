//! Touch-ups of the SDP answer str0m writes, for what browsers require of it.
//!
//! Browsers offer WHEP with a `recvonly` audio section before the video one. When that
//! section offers no codec livefeed sends (Opus), str0m rejects it (port 0), and str0m 0.24
//! then writes two things browsers do not take:
//!
//! 1. The rejected m-line has no format at all (`m=audio 0 UDP/TLS/RTP/SAVPF `). RFC 8866
//!    requires one; browsers' SDP parsers and str0m 0.24's own refuse the answer. Like str0m
//!    0.25 (#1101) and pion, the line gets the format `0`.
//! 2. str0m puts the ICE candidates in the first m-section, rejected or not. A browser drops
//!    candidates of a rejected section (it has no transport), and then has no address to
//!    reach the server at: its own candidates are mDNS `.local` names the server cannot
//!    resolve, so nothing connects. The candidate lines move to the first accepted section,
//!    the BUNDLE tag section that carries the transport.
//!
//! And one addition: a video payload type the offer gave `a=rtcp-fb:PT rrtr` (RFC 3611
//! receiver reference times, which livefeed's pages add) gets it in the answer too; str0m
//! answers those reports with their delay (DLRR) but does not write the attribute. Chromium
//! sends them only then, and only with the round-trip time they give does a receive-only
//! Chromium turn sender reports into each frame's `captureTime`.
//!
//! Everything else passes through byte for byte.

use std::borrow::Cow;

/// One line with its line ending, as written or as fixed.
type Line<'a> = Cow<'a, str>;

/// Applies the touch-ups to the answer to `offer`; an answer that needs none is returned
/// unchanged.
pub(crate) fn fix_answer(offer: &str, sdp: &str) -> String {
    let rrtr = offered_rrtr(offer);
    let mut sections = split_sections(sdp);
    for section in sections.iter_mut().skip(1) {
        fill_empty_format_list(section);
        if !rrtr.is_empty() {
            answer_rrtr(section, &rrtr);
        }
    }
    move_candidates_out_of_rejected_first_section(&mut sections);
    sections.concat().concat()
}

/// The SDP as sections of lines (each line with its line ending): the session part, then one
/// per m-line.
fn split_sections(sdp: &str) -> Vec<Vec<Line<'_>>> {
    let mut sections = vec![Vec::new()];
    for line in sdp.split_inclusive('\n') {
        if line.starts_with("m=") {
            sections.push(Vec::new());
        }
        if let Some(section) = sections.last_mut() {
            section.push(Cow::Borrowed(line));
        }
    }
    sections
}

fn line_text(line: &str) -> &str {
    line.trim_end_matches(['\r', '\n'])
}

/// `m=audio 0 UDP/TLS/RTP/SAVPF ` → `m=audio 0 UDP/TLS/RTP/SAVPF 0`.
fn fill_empty_format_list(section: &mut [Line<'_>]) {
    let Some(m_line) = section.first_mut() else {
        return;
    };
    let text = line_text(m_line);
    if text.split_ascii_whitespace().count() == 3 {
        let ending = &m_line[text.len()..];
        *m_line = Cow::Owned(format!("{} 0{ending}", text.trim_end()));
    }
}

/// The payload types the offer gave `rrtr` feedback.
fn offered_rrtr(offer: &str) -> Vec<&str> {
    offer
        .lines()
        .filter_map(|l| l.trim_end().strip_prefix("a=rtcp-fb:"))
        .filter_map(|fb| fb.strip_suffix(" rrtr"))
        .collect()
}

/// After each `a=rtpmap:PT …` of a payload type in `rrtr`, `a=rtcp-fb:PT rrtr`.
fn answer_rrtr(section: &mut Vec<Line<'_>>, rrtr: &[&str]) {
    let mut at = 0;
    while at < section.len() {
        let text = line_text(&section[at]);
        let pt = text
            .strip_prefix("a=rtpmap:")
            .and_then(|rest| rest.split_once(' '))
            .map(|(pt, _)| pt);
        at += 1;
        if let Some(pt) = pt.filter(|pt| rrtr.contains(pt)) {
            let line = format!("a=rtcp-fb:{pt} rrtr\r\n");
            section.insert(at, Cow::Owned(line));
            at += 1;
        }
    }
}

fn is_rejected(section: &[Line<'_>]) -> bool {
    section
        .first()
        .is_some_and(|m| line_text(m).split_ascii_whitespace().nth(1) == Some("0"))
}

fn is_candidate_line(line: &str) -> bool {
    let text = line_text(line);
    text.starts_with("a=candidate:") || text == "a=end-of-candidates"
}

fn move_candidates_out_of_rejected_first_section(sections: &mut [Vec<Line<'_>>]) {
    let Some(first) = sections.get(1) else {
        return;
    };
    if !is_rejected(first) || !first.iter().any(|l| is_candidate_line(l)) {
        return;
    }
    let Some(target) = (2..sections.len()).find(|&i| !is_rejected(&sections[i])) else {
        return; // every section rejected: nothing will connect anyway
    };
    let candidates: Vec<Line<'_>> = sections[1]
        .iter()
        .filter(|l| is_candidate_line(l))
        .cloned()
        .collect();
    sections[1].retain(|l| !is_candidate_line(l));
    // Right after the m= and c= lines, where str0m writes them.
    let at = sections[target]
        .iter()
        .position(|l| !l.starts_with("m=") && !l.starts_with("c="))
        .unwrap_or(sections[target].len());
    sections[target].splice(at..at, candidates);
}

#[cfg(test)]
mod tests {
    use super::*;

    const STR0M_ANSWER: &str = "v=0\r\n\
        s=-\r\n\
        a=group:BUNDLE 1\r\n\
        m=audio 0 UDP/TLS/RTP/SAVPF \r\n\
        c=IN IP4 0.0.0.0\r\n\
        a=candidate:1 1 udp 2130706175 192.0.2.1 8189 typ host\r\n\
        a=candidate:2 1 udp 2130706175 127.0.0.1 8189 typ host\r\n\
        a=mid:0\r\n\
        a=sendonly\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 108 109\r\n\
        c=IN IP4 0.0.0.0\r\n\
        a=mid:1\r\n\
        a=sendonly\r\n";

    #[test]
    fn rejected_first_section_gets_a_format_and_loses_its_candidates_to_video() {
        assert_eq!(
            fix_answer("", STR0M_ANSWER),
            "v=0\r\n\
             s=-\r\n\
             a=group:BUNDLE 1\r\n\
             m=audio 0 UDP/TLS/RTP/SAVPF 0\r\n\
             c=IN IP4 0.0.0.0\r\n\
             a=mid:0\r\n\
             a=sendonly\r\n\
             m=video 9 UDP/TLS/RTP/SAVPF 108 109\r\n\
             c=IN IP4 0.0.0.0\r\n\
             a=candidate:1 1 udp 2130706175 192.0.2.1 8189 typ host\r\n\
             a=candidate:2 1 udp 2130706175 127.0.0.1 8189 typ host\r\n\
             a=mid:1\r\n\
             a=sendonly\r\n"
        );
    }

    #[test]
    fn answer_with_video_first_is_unchanged() {
        let answer = "v=0\r\n\
            m=video 9 UDP/TLS/RTP/SAVPF 108\r\n\
            c=IN IP4 0.0.0.0\r\n\
            a=candidate:1 1 udp 2130706175 192.0.2.1 8189 typ host\r\n\
            a=mid:0\r\n\
            m=audio 0 UDP/TLS/RTP/SAVPF 111\r\n\
            a=mid:1\r\n";
        assert_eq!(fix_answer("", answer), answer);
    }

    #[test]
    fn offered_rrtr_is_answered_for_the_same_payload_types() {
        let offer = "m=video 9 UDP/TLS/RTP/SAVPF 108 109\r\n\
            a=rtpmap:108 H264/90000\r\n\
            a=rtcp-fb:108 nack\r\n\
            a=rtcp-fb:108 rrtr\r\n\
            a=rtpmap:109 rtx/90000\r\n";
        let answer = "v=0\r\n\
            m=video 9 UDP/TLS/RTP/SAVPF 108 109\r\n\
            a=rtpmap:108 H264/90000\r\n\
            a=rtcp-fb:108 nack\r\n\
            a=rtpmap:109 rtx/90000\r\n";
        assert_eq!(
            fix_answer(offer, answer),
            "v=0\r\n\
             m=video 9 UDP/TLS/RTP/SAVPF 108 109\r\n\
             a=rtpmap:108 H264/90000\r\n\
             a=rtcp-fb:108 rrtr\r\n\
             a=rtcp-fb:108 nack\r\n\
             a=rtpmap:109 rtx/90000\r\n"
        );
        assert_eq!(fix_answer("", answer), answer, "not offered, not answered");
    }

    #[test]
    fn odd_input_never_panics() {
        for sdp in [
            "",
            "m=",
            "v=0\nm=audio 0 x \n",
            "m=audio 0 a b\r\na=candidate:1\r\n",
        ] {
            let _ = fix_answer(sdp, sdp);
        }
    }
}
