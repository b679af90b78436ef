//! The dashboard's live feed, `GET /api/v1/events` (Server-Sent Events).
//!
//! Once a second, while at least one dashboard listens, one task builds the state every
//! dashboard gets — `{"time_unix_ms", "paths": [...as /api/v1/paths...], "latency": [...]}` —
//! and publishes it through a `watch` channel: ten dashboards cost one snapshot, not ten.
//! `latency` summarises, per path/stage/client, the samples of the last
//! [`RECENT_WINDOW`] (count, p50, p95, max; exact nearest-rank), kept in memory by
//! [`RecentLatency`] as samples arrive.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use livefeed_media::latency::LatencyWindow;
use livefeed_store::Sample;
use serde_json::{json, Value};
use tokio::sync::watch;

use crate::api::http::App;

/// How far back the live latency figures reach.
pub const RECENT_WINDOW: Duration = Duration::from_secs(5);

/// How often the state is published.
pub const PUBLISH_EVERY: Duration = Duration::from_secs(1);

/// Samples kept per series in the window at most.
const MAX_RECENT_PER_SERIES: usize = 20_000;

/// Series (path, stage, client) kept at most: clients name paths and kinds freely.
const MAX_RECENT_SERIES: usize = 1_000;

type SeriesKey = (String, String, String);

/// Latency samples of the last [`RECENT_WINDOW`] per (path, stage, client).
#[derive(Default)]
pub struct RecentLatency {
    series: Mutex<HashMap<SeriesKey, VecDeque<(Instant, f64)>>>,
}

impl RecentLatency {
    /// Adds samples (as they arrive; their own timestamps are not trusted for the window).
    /// Series and samples are bounded ([`MAX_RECENT_SERIES`], [`MAX_RECENT_PER_SERIES`]), and
    /// what left the window is forgotten here too, whether or not a dashboard listens.
    pub fn record(&self, samples: &[Sample]) {
        let now = Instant::now();
        let mut series = self.series.lock().unwrap_or_else(|p| p.into_inner());
        for s in samples {
            let key = (s.path.clone(), s.stage.clone(), s.client.clone());
            if !series.contains_key(&key) && series.len() >= MAX_RECENT_SERIES {
                forget_old(&mut series, now);
                if series.len() >= MAX_RECENT_SERIES {
                    continue;
                }
            }
            let window = series.entry(key).or_default();
            while window
                .front()
                .is_some_and(|(t, _)| now.duration_since(*t) > RECENT_WINDOW)
            {
                window.pop_front();
            }
            if window.len() < MAX_RECENT_PER_SERIES {
                window.push_back((now, s.latency_ms));
            }
        }
    }

    /// Per series: count, p50, p95 and max of the window, oldest samples forgotten.
    pub fn summary(&self) -> Vec<Value> {
        let now = Instant::now();
        let mut series = self.series.lock().unwrap_or_else(|p| p.into_inner());
        forget_old(&mut series, now);
        let mut keys: Vec<&SeriesKey> = series.keys().collect();
        keys.sort();
        keys.into_iter()
            .filter_map(|key| {
                let (path, stage, client) = key;
                let mut window = LatencyWindow::default();
                series[key].iter().for_each(|(_, ms)| window.record(*ms));
                let s = window.summary()?;
                Some(json!({
                    "path": path, "stage": stage, "client": client,
                    "count": s.count, "p50": s.p50, "p95": s.p95, "max": s.max,
                }))
            })
            .collect()
    }
}

/// Drops samples older than the window, and series left empty.
fn forget_old(series: &mut HashMap<SeriesKey, VecDeque<(Instant, f64)>>, now: Instant) {
    series.retain(|_, w| {
        while w
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > RECENT_WINDOW)
        {
            w.pop_front();
        }
        !w.is_empty()
    });
}

/// The feed every dashboard subscribes to.
#[derive(Clone)]
pub struct EventFeed {
    state: Arc<watch::Sender<Arc<str>>>,
}

impl Default for EventFeed {
    fn default() -> Self {
        EventFeed {
            state: Arc::new(watch::channel(Arc::from("")).0),
        }
    }
}

impl EventFeed {
    /// Publishes the state once a second while anyone listens, until the server stops.
    pub fn spawn_publisher(app: App) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(PUBLISH_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tick.tick().await;
                if app.events.state.receiver_count() == 0 {
                    continue;
                }
                let state = state_json(&app).to_string();
                app.events.state.send_replace(Arc::from(state));
            }
        })
    }
}

/// The state a dashboard gets.
pub fn state_json(app: &App) -> Value {
    json!({
        "time_unix_ms": livefeed_store::unix_now_ms(),
        "paths": crate::api::rest::paths_json(app),
        "latency": app.recent.summary(),
    })
}

/// `GET /api/v1/events`: `event: state` with the JSON state, once a second; the first one at
/// once.
pub async fn events(State(app): State<App>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let first = state_json(&app).to_string();
    let rx = app.events.state.subscribe();
    let stream = futures_util::stream::unfold((Some(first), rx), |(first, mut rx)| async move {
        let data = match first {
            Some(data) => data,
            None => {
                rx.changed().await.ok()?;
                let data = rx.borrow_and_update().to_string();
                data
            }
        };
        let event = Event::default().event("state").data(data);
        Some((Ok(event), (None, rx)))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(ms: f64) -> Sample {
        Sample {
            path: "live".into(),
            stage: "capture_to_displayed".into(),
            client: "browser-hls".into(),
            unix_ms: 0,
            latency_ms: ms,
        }
    }

    #[test]
    fn recent_latency_summarises_each_series() {
        let recent = RecentLatency::default();
        recent.record(&(1..=100).map(|i| sample(i as f64)).collect::<Vec<_>>());
        let summary = recent.summary();
        assert_eq!(summary.len(), 1);
        assert_eq!(summary[0]["count"], 100);
        assert_eq!(summary[0]["p50"], 50.0);
        assert_eq!(summary[0]["p95"], 95.0);
        assert_eq!(summary[0]["max"], 100.0);
    }
}
