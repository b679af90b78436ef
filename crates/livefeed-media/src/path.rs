//! Stream path names (`live`, `cam/1`), shared by every protocol so that RTSP and HTTP agree on
//! what a path is. A valid name is 1..=[`MAX_PATH_LEN`] bytes of ASCII letters, digits and
//! `_-.=`, in `/`-separated segments that are neither empty, `.` nor `..`. Callers decode
//! percent-escapes first, so `%2e%2e` arrives here as `..` and is refused.

/// Longest path name accepted.
pub const MAX_PATH_LEN: usize = 128;

/// Why a path name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// Nothing after trimming slashes.
    #[error("invalid path: empty")]
    Empty,
    /// Longer than [`MAX_PATH_LEN`].
    #[error("invalid path: longer than {MAX_PATH_LEN} bytes")]
    TooLong,
    /// A character outside the allowed set.
    #[error("invalid path: only letters, digits and _-./= are allowed")]
    BadCharacter,
    /// An empty, `.` or `..` segment.
    #[error("invalid path: empty, . or .. segment")]
    BadSegment,
}

/// Validates a path name after trimming leading and trailing slashes; returns the trimmed name.
pub fn validate(raw: &str) -> Result<&str, PathError> {
    let name = raw.trim_matches('/');
    if name.is_empty() {
        return Err(PathError::Empty);
    }
    if name.len() > MAX_PATH_LEN {
        return Err(PathError::TooLong);
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_-./=".contains(&b))
    {
        return Err(PathError::BadCharacter);
    }
    if name
        .split('/')
        .any(|seg| seg.is_empty() || seg == "." || seg == "..")
    {
        return Err(PathError::BadSegment);
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_names_pass_trimmed() {
        assert_eq!(validate("live"), Ok("live"));
        assert_eq!(validate("/cam/1/"), Ok("cam/1"));
        assert_eq!(validate("a.b_c-d=e"), Ok("a.b_c-d=e"));
    }

    #[test]
    fn bad_names_are_refused() {
        assert_eq!(validate(""), Err(PathError::Empty));
        assert_eq!(validate("//"), Err(PathError::Empty));
        assert_eq!(validate("a/../b"), Err(PathError::BadSegment));
        assert_eq!(validate(".."), Err(PathError::BadSegment));
        assert_eq!(validate("a//b"), Err(PathError::BadSegment));
        assert_eq!(validate("/evil.example//x"), Err(PathError::BadSegment));
        assert_eq!(validate("a\\b"), Err(PathError::BadCharacter));
        assert_eq!(validate("a%2e"), Err(PathError::BadCharacter));
        assert_eq!(validate("a b"), Err(PathError::BadCharacter));
        assert_eq!(validate("ü"), Err(PathError::BadCharacter));
        assert_eq!(
            validate(&"a".repeat(MAX_PATH_LEN + 1)),
            Err(PathError::TooLong)
        );
    }
}
