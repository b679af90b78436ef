//! Latency samples per stage and their percentiles.
//!
//! A [`LatencyWindow`] collects samples (milliseconds) for one reporting interval; `take`
//! returns the [`LatencySummary`] and starts a new interval. Percentiles are nearest-rank over the
//! sorted samples, so every figure reported is a latency that was actually measured.

/// The stages of the chain, in order, as named in reports and metrics.
pub mod stage {
    /// Capture to encoded access unit (publisher).
    pub const ENCODED: &str = "capture_to_encoded";
    /// Capture to complete access unit at the server (SEI stamp).
    pub const INGEST: &str = "capture_to_ingest";
    /// Capture to complete access unit at a client (SEI stamp).
    pub const RECEIVED: &str = "capture_to_received";
    /// Capture to decoded picture at a client (pixel timecode).
    pub const DECODED: &str = "capture_to_decoded";
    /// Server ingest to the last packet written to a reader.
    pub const SERVER_ADDED: &str = "server_ingest_to_egress";
    /// Capture of an audio payload's first sample to its arrival at a client (the capture time
    /// from the RTCP sender reports of the audio track).
    pub const AUDIO_RECEIVED: &str = "audio_capture_to_received";
    /// How much later than the picture the sound of the same instant reaches a client: the
    /// latency of the test tone's beep at a whole second of capture time minus the latency of
    /// the video frame captured then (positive: the sound is late).
    pub const AV_OFFSET: &str = "av_offset";
}

/// Percentiles of one interval's samples, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatencySummary {
    /// Number of samples.
    pub count: usize,
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest sample.
    pub max: f64,
}

/// Samples of one stage over one interval.
#[derive(Debug, Clone, Default)]
pub struct LatencyWindow {
    samples: Vec<f64>,
}

impl LatencyWindow {
    /// An empty window.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one sample in milliseconds (NaN is ignored).
    pub fn record(&mut self, ms: f64) {
        if !ms.is_nan() {
            self.samples.push(ms);
        }
    }

    /// Number of samples so far.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// Whether no sample was recorded.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Percentiles of the samples so far, or `None` if there are none.
    pub fn summary(&self) -> Option<LatencySummary> {
        summarize(&self.samples)
    }

    /// The summary of this interval, and a fresh interval.
    pub fn take(&mut self) -> Option<LatencySummary> {
        let summary = self.summary();
        self.samples.clear();
        summary
    }

    /// Appends all samples of `other`.
    pub fn extend(&mut self, other: &LatencyWindow) {
        self.samples.extend_from_slice(&other.samples);
    }
}

/// Nearest-rank percentiles of `samples`.
pub fn summarize(samples: &[f64]) -> Option<LatencySummary> {
    if samples.is_empty() {
        return None;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = |p: f64| {
        let idx = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
        sorted[idx.clamp(1, sorted.len()) - 1]
    };
    Some(LatencySummary {
        count: sorted.len(),
        p50: rank(50.0),
        p95: rank(95.0),
        p99: rank(99.0),
        max: sorted[sorted.len() - 1],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let samples: Vec<f64> = (1..=100).map(f64::from).collect();
        let s = summarize(&samples).expect("non-empty");
        assert_eq!(
            (s.count, s.p50, s.p95, s.p99, s.max),
            (100, 50.0, 95.0, 99.0, 100.0)
        );
        let one = summarize(&[7.5]).expect("one");
        assert_eq!((one.p50, one.p99, one.max), (7.5, 7.5, 7.5));
        assert!(summarize(&[]).is_none());
    }

    #[test]
    fn take_starts_a_new_interval() {
        let mut w = LatencyWindow::new();
        w.record(3.0);
        w.record(f64::NAN);
        w.record(1.0);
        assert_eq!(w.take().map(|s| (s.count, s.max)), Some((2, 3.0)));
        assert!(w.take().is_none());
    }
}
