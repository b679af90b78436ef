//! The LL-HLS Delivery Directives of a media playlist request (RFC 8216bis §6.2.5).
//!
//! [`parse_query`] takes the raw query string of a playlist URL (the part after `?`, without
//! the `?`) and returns the three directives livefeed understands:
//!
//! - `_HLS_msn=<M>`: block until the playlist holds Media Sequence Number `M` (a
//!   decimal-integer, 1–20 digits, fitting a `u64`);
//! - `_HLS_part=<N>`: together with `_HLS_msn`, block until part `N` of segment `M` (1–10
//!   digits, fitting a `u32`); on its own it is an error, as §6.2.5.2 requires;
//! - `_HLS_skip=YES` or `_HLS_skip=v2`: ask for a Playlist Delta Update. livefeed never emits
//!   `EXT-X-DATERANGE`, so `v2` (which additionally skips date ranges) means exactly the same as
//!   `YES` here.
//!
//! Names and values are percent-decoded (`application/x-www-form-urlencoded`, so `+` is a
//! space) before they are looked at. Names are case-sensitive, as in the spec. Parameters that
//! are not directives (players add cache-busters) are ignored; a directive given twice, a value
//! that is not a plain decimal number (no sign, no spaces, no hex), out of range, or a query
//! longer than [`MAX_QUERY_LEN`] bytes is an error whose message suits a `400 Bad Request` body.

/// The longest raw query string accepted, in bytes.
pub const MAX_QUERY_LEN: usize = 1024;

/// The directives of one media playlist request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlaylistRequest {
    /// `_HLS_msn`: the Media Sequence Number the response must contain (blocking reload).
    pub msn: Option<u64>,
    /// `_HLS_part`: the part of segment `msn` the response must contain. Never set without
    /// `msn`.
    pub part: Option<u32>,
    /// `_HLS_skip=YES` (or `v2`): answer with a Playlist Delta Update if anything can be
    /// skipped.
    pub skip: bool,
}

impl PlaylistRequest {
    /// Whether this is a blocking playlist reload (an `_HLS_msn` was given).
    pub fn is_blocking(&self) -> bool {
        self.msn.is_some()
    }
}

/// Why a playlist query was refused; the `Display` text is meant for a 400 response body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    /// The raw query string is longer than [`MAX_QUERY_LEN`].
    #[error("query string is {len} bytes long; the limit is {MAX_QUERY_LEN}")]
    TooLong {
        /// Length of the raw query, in bytes.
        len: usize,
    },
    /// `_HLS_part` without `_HLS_msn` (RFC 8216bis §6.2.5.2 requires a 400).
    #[error("_HLS_part requires _HLS_msn")]
    PartWithoutMsn,
    /// The same directive appeared more than once.
    #[error("{name} is given more than once")]
    Duplicate {
        /// The directive's name.
        name: &'static str,
    },
    /// A numeric directive whose value is not a decimal integer in range.
    #[error("{name}={value:?} is not a decimal integer between 0 and {max}")]
    BadNumber {
        /// The directive's name.
        name: &'static str,
        /// The value as received (percent-decoded, cut to 64 characters).
        value: String,
        /// The largest value accepted.
        max: u64,
    },
    /// `_HLS_skip` with a value other than `YES` or `v2`.
    #[error("_HLS_skip={value:?} is not YES or v2")]
    BadSkip {
        /// The value as received (percent-decoded, cut to 64 characters).
        value: String,
    },
}

const MSN: &str = "_HLS_msn";
const PART: &str = "_HLS_part";
const SKIP: &str = "_HLS_skip";

/// Parses the raw query string of a media playlist request (`None` when the URL has no `?`).
pub fn parse_query(query: Option<&str>) -> Result<PlaylistRequest, QueryError> {
    let Some(query) = query else {
        return Ok(PlaylistRequest::default());
    };
    if query.len() > MAX_QUERY_LEN {
        return Err(QueryError::TooLong { len: query.len() });
    }
    let mut request = PlaylistRequest::default();
    let mut skip_seen = false;
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        match name.as_ref() {
            MSN => {
                check_unset(request.msn.is_some(), MSN)?;
                request.msn = Some(number(MSN, &value, u64::MAX)?);
            }
            PART => {
                check_unset(request.part.is_some(), PART)?;
                let part = number(PART, &value, u64::from(u32::MAX))?;
                // `number` checked the bound, so this conversion cannot fail.
                request.part = u32::try_from(part).ok();
            }
            SKIP => {
                check_unset(skip_seen, SKIP)?;
                skip_seen = true;
                request.skip = skip(&value)?;
            }
            _ => {}
        }
    }
    if request.part.is_some() && request.msn.is_none() {
        return Err(QueryError::PartWithoutMsn);
    }
    Ok(request)
}

fn check_unset(already: bool, name: &'static str) -> Result<(), QueryError> {
    if already {
        Err(QueryError::Duplicate { name })
    } else {
        Ok(())
    }
}

fn number(name: &'static str, value: &str, max: u64) -> Result<u64, QueryError> {
    parse_decimal(value)
        .filter(|n| *n <= max)
        .ok_or_else(|| QueryError::BadNumber {
            name,
            value: truncated(value),
            max,
        })
}

fn skip(value: &str) -> Result<bool, QueryError> {
    match value {
        "YES" | "v2" => Ok(true),
        _ => Err(QueryError::BadSkip {
            value: truncated(value),
        }),
    }
}

/// A spec `decimal-integer`: 1 to 20 ASCII digits (leading zeros allowed), fitting a `u64`.
/// Unlike `str::parse`, a leading `+` is refused.
pub(crate) fn parse_decimal(text: &str) -> Option<u64> {
    if text.is_empty() || text.len() > 20 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn truncated(value: &str) -> String {
    value.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(query: &str) -> PlaylistRequest {
        match parse_query(Some(query)) {
            Ok(request) => request,
            Err(e) => panic!("{query:?} refused: {e}"),
        }
    }

    fn err(query: &str) -> QueryError {
        match parse_query(Some(query)) {
            Ok(request) => panic!("{query:?} accepted as {request:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn no_query_is_a_plain_request() {
        assert_eq!(parse_query(None), Ok(PlaylistRequest::default()));
        assert_eq!(ok(""), PlaylistRequest::default());
        assert!(!ok("").is_blocking());
    }

    #[test]
    fn msn_alone_blocks_on_a_segment() {
        let r = ok("_HLS_msn=42");
        assert_eq!(
            r,
            PlaylistRequest {
                msn: Some(42),
                part: None,
                skip: false
            }
        );
        assert!(r.is_blocking());
    }

    #[test]
    fn msn_and_part_in_hls_js_order() {
        assert_eq!(
            ok("_HLS_msn=273&_HLS_part=2"),
            PlaylistRequest {
                msn: Some(273),
                part: Some(2),
                skip: false
            }
        );
    }

    #[test]
    fn all_three_directives_in_any_order() {
        let expected = PlaylistRequest {
            msn: Some(7),
            part: Some(0),
            skip: true,
        };
        assert_eq!(ok("_HLS_msn=7&_HLS_part=0&_HLS_skip=YES"), expected);
        assert_eq!(ok("_HLS_skip=YES&_HLS_part=0&_HLS_msn=7"), expected);
    }

    #[test]
    fn skip_yes_and_v2_mean_the_same() {
        assert!(ok("_HLS_skip=YES").skip);
        assert!(ok("_HLS_skip=v2").skip);
        assert!(!ok("_HLS_skip=YES").is_blocking());
    }

    #[test]
    fn skip_with_another_value_is_refused() {
        for bad in [
            "_HLS_skip=NO",
            "_HLS_skip=yes",
            "_HLS_skip=V2",
            "_HLS_skip=",
            "_HLS_skip",
        ] {
            assert!(matches!(err(bad), QueryError::BadSkip { .. }), "{bad}");
        }
    }

    #[test]
    fn unknown_parameters_are_ignored() {
        assert_eq!(
            ok("nocache=1700000000&_HLS_msn=3&x&&=&y=%zz"),
            PlaylistRequest {
                msn: Some(3),
                ..Default::default()
            }
        );
    }

    #[test]
    fn names_are_case_sensitive() {
        // `_hls_msn` is not a directive, so it is ignored like any cache-buster.
        assert_eq!(ok("_hls_msn=3&_HLS_MSN=4"), PlaylistRequest::default());
    }

    #[test]
    fn percent_encoded_names_and_values_are_decoded() {
        assert_eq!(
            ok("%5FHLS%5Fmsn=%31%32&_HLS_p%61rt=%33&_HLS_skip=%59ES"),
            PlaylistRequest {
                msn: Some(12),
                part: Some(3),
                skip: true
            }
        );
    }

    #[test]
    fn part_without_msn_is_refused() {
        assert_eq!(err("_HLS_part=1"), QueryError::PartWithoutMsn);
        assert_eq!(err("_HLS_part=1&_HLS_skip=YES"), QueryError::PartWithoutMsn);
        assert_eq!(
            err("_HLS_part=1").to_string(),
            "_HLS_part requires _HLS_msn"
        );
    }

    #[test]
    fn duplicates_are_refused() {
        assert_eq!(
            err("_HLS_msn=1&_HLS_msn=1"),
            QueryError::Duplicate { name: "_HLS_msn" }
        );
        assert_eq!(
            err("_HLS_msn=1&_HLS_part=1&_HLS_part=2"),
            QueryError::Duplicate { name: "_HLS_part" }
        );
        assert_eq!(
            err("_HLS_skip=YES&_HLS_skip=v2"),
            QueryError::Duplicate { name: "_HLS_skip" }
        );
        // A percent-encoded spelling is the same name.
        assert_eq!(
            err("_HLS_msn=1&%5FHLS_msn=2"),
            QueryError::Duplicate { name: "_HLS_msn" }
        );
    }

    #[test]
    fn non_numeric_values_are_refused() {
        for bad in [
            "_HLS_msn=abc",
            "_HLS_msn=",
            "_HLS_msn",
            "_HLS_msn=1.5",
            "_HLS_msn=0x10",
            "_HLS_msn=1e3",
            "_HLS_msn=%20%31",
            "_HLS_msn=1+",
            "_HLS_msn=%EF%BC%91", // fullwidth digit one
        ] {
            assert!(
                matches!(
                    err(bad),
                    QueryError::BadNumber {
                        name: "_HLS_msn",
                        ..
                    }
                ),
                "{bad}"
            );
        }
        assert!(matches!(
            err("_HLS_msn=1&_HLS_part=two"),
            QueryError::BadNumber {
                name: "_HLS_part",
                ..
            }
        ));
    }

    #[test]
    fn signs_are_refused() {
        for bad in [
            "_HLS_msn=-1",
            "_HLS_msn=+1",
            "_HLS_msn=%2B1",
            "_HLS_msn=%2D1",
        ] {
            assert!(matches!(err(bad), QueryError::BadNumber { .. }), "{bad}");
        }
        assert!(matches!(
            err("_HLS_msn=1&_HLS_part=-1"),
            QueryError::BadNumber { .. }
        ));
    }

    #[test]
    fn overflowing_values_are_refused() {
        assert_eq!(ok("_HLS_msn=18446744073709551615").msn, Some(u64::MAX));
        assert!(matches!(
            err("_HLS_msn=18446744073709551616"),
            QueryError::BadNumber { max: u64::MAX, .. }
        ));
        assert!(matches!(
            err("_HLS_msn=999999999999999999999999"),
            QueryError::BadNumber { .. }
        ));
        assert_eq!(ok("_HLS_msn=0&_HLS_part=4294967295").part, Some(u32::MAX));
        assert!(matches!(
            err("_HLS_msn=0&_HLS_part=4294967296"),
            QueryError::BadNumber {
                name: "_HLS_part",
                max: 4294967295,
                ..
            }
        ));
    }

    #[test]
    fn leading_zeros_are_a_decimal_integer() {
        assert_eq!(ok("_HLS_msn=007&_HLS_part=00").msn, Some(7));
        // But more than 20 characters is not one, whatever their value.
        assert!(matches!(
            err("_HLS_msn=000000000000000000001"),
            QueryError::BadNumber { .. }
        ));
    }

    #[test]
    fn over_long_query_is_refused() {
        let long = format!("_HLS_msn=1&pad={}", "a".repeat(MAX_QUERY_LEN));
        assert_eq!(err(&long), QueryError::TooLong { len: long.len() });
        let exact = format!("pad={}", "a".repeat(MAX_QUERY_LEN - 4));
        assert_eq!(exact.len(), MAX_QUERY_LEN);
        assert_eq!(ok(&exact), PlaylistRequest::default());
    }

    #[test]
    fn error_messages_quote_a_bounded_value() {
        let e = err(&format!("_HLS_msn={}", "x".repeat(500)));
        let text = e.to_string();
        assert!(text.starts_with("_HLS_msn=\"xxxx"), "{text}");
        assert!(text.len() < 150, "{text}");
    }

    #[test]
    fn decimal_parser_used_for_uris() {
        assert_eq!(parse_decimal("0"), Some(0));
        assert_eq!(parse_decimal("18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_decimal(""), None);
        assert_eq!(parse_decimal("+1"), None);
        assert_eq!(parse_decimal("1 "), None);
    }
}
