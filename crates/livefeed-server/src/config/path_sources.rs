//! Paths with a pull source: `--source NAME=URL` (repeatable) with the `--source-on-demand`,
//! `--source-on-demand-close-after` and `--rtsp-transport` that apply to them, and MediaMTX's
//! shape in the file: a `[paths.NAME]` table with `source`, `source-on-demand`,
//! `source-on-demand-close-after` and `rtsp-transport`. `paths` stays a plain list of names
//! too. In the table form, the paths named are the ones served, unless one is `all_others`
//! (MediaMTX's name for "any other path").

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

/// MediaMTX's name for the entry that opens every other path.
pub const ALL_OTHERS: &str = "all_others";

/// Default `source-on-demand-close-after`, seconds (MediaMTX's).
pub const DEFAULT_CLOSE_AFTER_SECS: f64 = 10.0;

/// How a pull source's media travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RtspTransport {
    /// Interleaved in the RTSP connection.
    Tcp,
    /// UDP ports.
    Udp,
    /// UDP first; TCP when the server refuses UDP or no packet arrives over it.
    #[default]
    Automatic,
}

impl std::str::FromStr for RtspTransport {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "tcp" => Ok(RtspTransport::Tcp),
            "udp" => Ok(RtspTransport::Udp),
            "automatic" => Ok(RtspTransport::Automatic),
            other => Err(format!(
                "unknown RTSP transport {other:?} (tcp, udp or automatic)"
            )),
        }
    }
}

/// `NAME=URL`: the path `NAME` pulls from `URL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceArg {
    /// The path.
    pub path: String,
    /// The `rtsp://` URL, credentials included.
    pub url: String,
}

impl std::str::FromStr for SourceArg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (path, url) = s
            .split_once('=')
            .ok_or_else(|| format!("a source is NAME=URL, got {:?}", shown(s)))?;
        let path = livefeed_media::path::validate(path.trim())
            .map_err(|e| format!("source path: {e}"))?
            .to_string();
        let url = url.trim().to_string();
        check_url(&url)?;
        Ok(SourceArg { path, url })
    }
}

impl<'de> Deserialize<'de> for SourceArg {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A pull source's URL must be `rtsp://HOST…`; the error never repeats a password.
fn check_url(url: &str) -> Result<(), String> {
    let parsed =
        rtsp_types::Url::parse(url).map_err(|e| format!("source URL {}: {e}", shown(url)))?;
    if parsed.scheme() != "rtsp" {
        return Err(format!(
            "source URL {} is not rtsp:// (the only kind of pull source so far)",
            shown(url)
        ));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(format!("source URL {} has no host", shown(url)));
    }
    Ok(())
}

/// `s` with any `user:password@` removed, for messages.
fn shown(s: &str) -> String {
    livefeed_rtsp::client_auth::without_userinfo(s)
}

/// One path of the `paths` option: a name, and in the table form its source settings.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PathEntry {
    /// The path name (the table's key).
    #[serde(skip)]
    pub name: String,
    /// Where the path's stream is pulled from.
    pub source: Option<String>,
    /// Connect only while someone reads.
    pub source_on_demand: Option<bool>,
    /// Seconds an on-demand source stays connected after its last reader left.
    pub source_on_demand_close_after: Option<f64>,
    /// How its media travels.
    pub rtsp_transport: Option<RtspTransport>,
}

impl std::str::FromStr for PathEntry {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(PathEntry {
            name: s.trim().to_string(),
            ..PathEntry::default()
        })
    }
}

/// `paths = ["a", "b"]` or `[paths.a] …` tables.
pub fn list_or_table<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<PathEntry>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Paths {
        List(Vec<String>),
        Table(BTreeMap<String, PathEntry>),
    }
    Ok(match Paths::deserialize(d)? {
        Paths::List(names) => names
            .into_iter()
            .map(|name| PathEntry {
                name,
                ..PathEntry::default()
            })
            .collect(),
        Paths::Table(table) => table
            .into_iter()
            .map(|(name, entry)| PathEntry { name, ..entry })
            .collect(),
    })
}

/// A path that pulls its stream, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullSourceConfig {
    /// The path.
    pub path: String,
    /// The `rtsp://` URL, credentials included.
    pub url: String,
    /// How its media travels.
    pub transport: RtspTransport,
    /// Connect only while someone reads.
    pub on_demand: bool,
    /// How long an on-demand source stays connected after its last reader left.
    pub close_after: Duration,
}

/// The settings `--source` entries share (and table entries fall back to).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SourceDefaults {
    /// `--source-on-demand`.
    pub on_demand: Option<bool>,
    /// `--source-on-demand-close-after`, seconds.
    pub close_after: Option<f64>,
    /// `--rtsp-transport`.
    pub transport: Option<RtspTransport>,
}

/// The served paths (empty: any) and the pull sources of `entries` and `sources`. Errors name
/// the path whose source is wrong.
pub fn resolve(
    entries: &[PathEntry],
    sources: &[SourceArg],
    defaults: SourceDefaults,
) -> Result<(Vec<String>, Vec<PullSourceConfig>), String> {
    let close_after = |secs: Option<f64>| {
        Duration::from_secs_f64(
            secs.or(defaults.close_after)
                .filter(|s| s.is_finite())
                .unwrap_or(DEFAULT_CLOSE_AFTER_SECS)
                .clamp(0.0, 24.0 * 3600.0),
        )
    };
    let mut pulls = Vec::new();
    for entry in entries {
        if entry.name != ALL_OTHERS {
            livefeed_media::path::validate(&entry.name).map_err(|e| {
                format!(
                    "[paths.{}]: {e} (path patterns are not supported)",
                    entry.name
                )
            })?;
        }
        if let Some(url) = &entry.source {
            if entry.name == ALL_OTHERS {
                return Err(format!("[paths.{ALL_OTHERS}] cannot have a source"));
            }
            check_url(url).map_err(|e| format!("[paths.{}]: {e}", entry.name))?;
            pulls.push(PullSourceConfig {
                path: entry.name.clone(),
                url: url.clone(),
                transport: entry
                    .rtsp_transport
                    .or(defaults.transport)
                    .unwrap_or_default(),
                on_demand: entry
                    .source_on_demand
                    .or(defaults.on_demand)
                    .unwrap_or(false),
                close_after: close_after(entry.source_on_demand_close_after),
            });
        }
    }
    for source in sources {
        if pulls.iter().any(|p| p.path == source.path) {
            return Err(format!("path {:?} has two sources", source.path));
        }
        pulls.push(PullSourceConfig {
            path: source.path.clone(),
            url: source.url.clone(),
            transport: defaults.transport.unwrap_or_default(),
            on_demand: defaults.on_demand.unwrap_or(false),
            close_after: close_after(None),
        });
    }
    let mut served: Vec<String> = if entries.iter().any(|e| e.name == ALL_OTHERS) {
        Vec::new()
    } else {
        entries.iter().map(|e| e.name.clone()).collect()
    };
    if !served.is_empty() {
        for pull in &pulls {
            if !served.contains(&pull.path) {
                served.push(pull.path.clone());
            }
        }
    }
    Ok((served, pulls))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_args_need_a_name_and_an_rtsp_url() {
        let s: SourceArg = "cam=rtsp://u:p@10.0.0.2:554/stream1".parse().unwrap();
        assert_eq!(s.path, "cam");
        assert_eq!(s.url, "rtsp://u:p@10.0.0.2:554/stream1");
        let e = "cam".parse::<SourceArg>().unwrap_err();
        assert!(e.contains("NAME=URL"), "{e}");
        let e = "cam=http://u:secret@host/x"
            .parse::<SourceArg>()
            .unwrap_err();
        assert!(e.contains("not rtsp://") && !e.contains("secret"), "{e}");
        assert!("../x=rtsp://h/x".parse::<SourceArg>().is_err());
    }

    #[test]
    fn table_entries_take_their_own_settings_over_the_defaults() {
        let text = r#"
            [paths.cam]
            source = "rtsp://127.0.0.1:8554/a"
            source-on-demand = true
            [paths.door]
            source = "rtsp://127.0.0.1:8554/b"
            rtsp-transport = "tcp"
            [paths.plain]
        "#;
        #[derive(Deserialize)]
        struct File {
            #[serde(deserialize_with = "list_or_table")]
            paths: Vec<PathEntry>,
        }
        let file: File = toml::from_str(text).unwrap();
        let defaults = SourceDefaults {
            close_after: Some(3.0),
            ..SourceDefaults::default()
        };
        let (served, pulls) = resolve(&file.paths, &[], defaults).unwrap();
        assert_eq!(served, ["cam", "door", "plain"]);
        assert_eq!(pulls.len(), 2);
        assert!(pulls[0].on_demand && !pulls[1].on_demand);
        assert_eq!(pulls[0].close_after, Duration::from_secs(3));
        assert_eq!(pulls[0].transport, RtspTransport::Automatic);
        assert_eq!(pulls[1].transport, RtspTransport::Tcp);
    }

    #[test]
    fn all_others_opens_every_path_and_sources_join_a_list() {
        let entries = [
            PathEntry {
                name: "cam".into(),
                source: Some("rtsp://h/x".into()),
                ..PathEntry::default()
            },
            PathEntry {
                name: ALL_OTHERS.into(),
                ..PathEntry::default()
            },
        ];
        let (served, _) = resolve(&entries, &[], SourceDefaults::default()).unwrap();
        assert!(served.is_empty());
        let list = ["a".parse::<PathEntry>().unwrap()];
        let sources = ["cam=rtsp://h/x".parse().unwrap()];
        let (served, pulls) = resolve(&list, &sources, SourceDefaults::default()).unwrap();
        assert_eq!(served, ["a", "cam"]);
        assert_eq!(pulls[0].close_after, Duration::from_secs(10));
        let twice = resolve(
            &entries,
            &["cam=rtsp://h/y".parse().unwrap()],
            SourceDefaults::default(),
        );
        assert!(twice.unwrap_err().contains("two sources"));
    }

    #[test]
    fn a_bad_table_source_names_its_path() {
        let entries = [PathEntry {
            name: "cam".into(),
            source: Some("rtmp://h/x".into()),
            ..PathEntry::default()
        }];
        let e = resolve(&entries, &[], SourceDefaults::default()).unwrap_err();
        assert!(e.starts_with("[paths.cam]"), "{e}");
        let pattern = [PathEntry {
            name: "~^cam.*$".into(),
            ..PathEntry::default()
        }];
        let e = resolve(&pattern, &[], SourceDefaults::default()).unwrap_err();
        assert!(e.contains("patterns are not supported"), "{e}");
    }
}
