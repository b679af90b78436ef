//! The built-in test-pattern publishers the dashboard starts and stops. The server only knows
//! this interface; the program that embeds the server (the `livefeed` binary, which owns the
//! capture and encoder) implements it and installs it with [`crate::Server::install_sources`].

use serde::{Deserialize, Serialize};

/// What a test-pattern publisher produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SourceParams {
    /// Picture width, pixels (even, 64..=1920).
    pub width: u32,
    /// Picture height, pixels (even, 64..=1080).
    pub height: u32,
    /// Frames per second (1..=120).
    pub fps: u32,
    /// Target bitrate, kbit/s (50..=50 000).
    pub bitrate_kbps: u32,
}

impl Default for SourceParams {
    fn default() -> Self {
        SourceParams {
            width: 640,
            height: 480,
            fps: 30,
            bitrate_kbps: 2000,
        }
    }
}

impl SourceParams {
    /// Checks the ranges; the error says which value is wrong and why.
    pub fn check(&self) -> Result<(), String> {
        let within = |name: &str, v: u32, lo: u32, hi: u32| {
            if (lo..=hi).contains(&v) {
                Ok(())
            } else {
                Err(format!("{name} must be within {lo}..={hi}, got {v}"))
            }
        };
        within("width", self.width, 64, 1920)?;
        within("height", self.height, 64, 1080)?;
        within("fps", self.fps, 1, 60)?;
        let rate = u64::from(self.width) * u64::from(self.height) * u64::from(self.fps);
        if rate > MAX_PIXELS_PER_SECOND {
            return Err(format!(
                "{}x{} at {} fps is more than a test source may encode (1920x1080 at 30 fps)",
                self.width, self.height, self.fps
            ));
        }
        within("bitrate_kbps", self.bitrate_kbps, 50, 50_000)?;
        if !self.width.is_multiple_of(2) || !self.height.is_multiple_of(2) {
            return Err(format!(
                "width and height must be even (4:2:0), got {}x{}",
                self.width, self.height
            ));
        }
        Ok(())
    }
}

/// Pixels a second one test source may encode at most: 1080p30 (one core's worth of OpenH264).
pub const MAX_PIXELS_PER_SECOND: u64 = 1920 * 1080 * 30;

/// Test sources running at once, at most: each encodes on a core of its own.
pub const MAX_TEST_SOURCES: usize = 4;

/// Why a test source cannot be started.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    /// The path already has a publisher (a test source or another one).
    #[error("path {0:?} already has a publisher")]
    Busy(String),
    /// The parameters are out of range.
    #[error("{0}")]
    Invalid(String),
    /// As many test sources as allowed run already.
    #[error("{0} test sources are running already (the most at once); stop one first")]
    TooMany(usize),
}

/// Starts and stops test-pattern publishers on paths of this server.
pub trait TestSources: Send + Sync {
    /// Starts publishing the test pattern on `path` (a validated path name).
    fn start(&self, path: &str, params: SourceParams) -> Result<(), SourceError>;
    /// Stops the test source of `path`; `false` if it has none.
    fn stop(&self, path: &str) -> bool;
    /// The running test sources and their parameters.
    fn running(&self) -> Vec<(String, SourceParams)>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_checked() {
        assert!(SourceParams::default().check().is_ok());
        let odd = SourceParams {
            width: 641,
            ..Default::default()
        };
        assert!(odd.check().is_err_and(|e| e.contains("even")));
        let fast = SourceParams {
            fps: 1000,
            ..Default::default()
        };
        assert!(fast.check().is_err_and(|e| e.contains("fps")));
    }
}
