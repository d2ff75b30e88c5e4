//! Events: what happened to containers, images, networks and volumes, as Docker reports it.
//!
//! berth has no daemon, so there is no process that could hand events to subscribers.
//! Instead every berth process appends the events it causes to a journal in the store
//! (`<root>/events/journal`, see [`journal`]): one JSON line per event, written with one
//! `write(2)` on an `O_APPEND` descriptor, so lines of concurrent writers never interleave.
//! A reader (`berth events`, the Engine API's `/events`) replays the journal from a time
//! and follows it with inotify: a `berth events` in one terminal sees the `berth run` of
//! another within milliseconds, without polling.
//!
//! Main items: [`Event`] (Docker's event message, as stored and as `{{json .}}` prints
//! it), [`emit`] (never fails the caller: an event that cannot be written is logged),
//! [`EventsRequest`] with [`filter::EventFilter`], and [`stream`].
//!
//! ```no_run
//! use berth_engine::events::{self, Event, EventType};
//! let root = std::path::Path::new("/var/lib/berth");
//! events::emit(root, Event::new(EventType::Network, "create", "0123abcd").attr("name", "web"));
//! ```

pub mod filter;
pub mod journal;
pub mod time;

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

pub use filter::EventFilter;

/// What an event concerns (Docker's `Type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    /// A container.
    Container,
    /// An image.
    Image,
    /// A network.
    Network,
    /// A volume.
    Volume,
    /// berth itself (Docker's `daemon` events: none emitted yet).
    Daemon,
}

impl EventType {
    /// Docker's lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Container => "container",
            EventType::Image => "image",
            EventType::Network => "network",
            EventType::Volume => "volume",
            EventType::Daemon => "daemon",
        }
    }

    /// Parses Docker's name.
    pub fn parse(s: &str) -> Option<EventType> {
        Some(match s {
            "container" => EventType::Container,
            "image" => EventType::Image,
            "network" => EventType::Network,
            "volume" => EventType::Volume,
            "daemon" => EventType::Daemon,
            _ => return None,
        })
    }
}

/// The object an event concerns: its ID and attributes (name, image, labels, exitCode, ...).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// Container, image or network ID; a volume's name.
    #[serde(rename = "ID")]
    pub id: String,
    /// Attributes, sorted by key (Docker prints them so).
    #[serde(rename = "Attributes", default)]
    pub attributes: BTreeMap<String, String>,
}

/// One event, in the shape of Docker's `events.Message` (what `{{json .}}` prints and what
/// the Engine API's `/events` streams).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Deprecated copy of the action for container and image events (Docker keeps it).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub status: String,
    /// Deprecated copy of the actor's ID for container and image events.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// Deprecated: the container's image.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub from: String,
    /// `container`, `image`, `network`, `volume`.
    #[serde(rename = "Type")]
    pub kind: String,
    /// `start`, `die`, `exec_create: sh -c ...`, `health_status: healthy`, ...
    #[serde(rename = "Action")]
    pub action: String,
    /// What it concerns.
    #[serde(rename = "Actor")]
    pub actor: Actor,
    /// Always `local`.
    pub scope: String,
    /// Unix seconds.
    pub time: i64,
    /// Unix nanoseconds.
    #[serde(rename = "timeNano")]
    pub time_nano: i64,
}

impl Event {
    /// An event of `kind` with `action` on `id`, stamped now.
    pub fn new(kind: EventType, action: &str, id: &str) -> Event {
        let now = crate::container::now_nanos();
        let legacy = matches!(kind, EventType::Container | EventType::Image);
        Event {
            status: if legacy {
                action.to_string()
            } else {
                String::new()
            },
            id: if legacy {
                id.to_string()
            } else {
                String::new()
            },
            from: String::new(),
            kind: kind.as_str().to_string(),
            action: action.to_string(),
            actor: Actor {
                id: id.to_string(),
                attributes: BTreeMap::new(),
            },
            scope: "local".into(),
            time: now / 1_000_000_000,
            time_nano: now,
        }
    }

    /// Adds attribute `key=value`.
    pub fn attr(mut self, key: &str, value: impl Into<String>) -> Event {
        self.actor.attributes.insert(key.to_string(), value.into());
        self
    }

    /// The event's type, parsed.
    pub fn event_type(&self) -> Option<EventType> {
        EventType::parse(&self.kind)
    }

    /// The action without its detail (`exec_create: sh` -> `exec_create`).
    pub fn base_action(&self) -> &str {
        self.action
            .split_once(':')
            .map_or(self.action.as_str(), |(a, _)| a)
    }

    /// Docker's line: `TIME TYPE ACTION ID (k=v, k=v)`, the time in RFC 3339 with
    /// nanoseconds (trailing zeros trimmed, as Go's `RFC3339Nano`).
    pub fn docker_line(&self) -> String {
        let attrs: Vec<String> = self
            .actor
            .attributes
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let mut line = format!(
            "{} {} {} {}",
            time::rfc3339_nano(self.time_nano),
            self.kind,
            self.action,
            self.actor.id
        );
        if !attrs.is_empty() {
            line.push_str(&format!(" ({})", attrs.join(", ")));
        }
        line
    }
}

/// Appends `event` to the journal under `root`. Never fails its caller: what an event
/// reports has already happened, so a journal that cannot be written is logged.
pub fn emit(root: &Path, event: Event) {
    if let Err(e) = journal::append(root, &event) {
        log::warn!(
            "recording the event {} {} {}: {e}",
            event.kind,
            event.action,
            event.actor.id
        );
    }
}

/// A container event with Docker's attributes: the container's labels, `image` and `name`.
pub fn container_event(c: &crate::container::Container, action: &str) -> Event {
    let mut ev = Event::new(EventType::Container, action, c.id());
    for (k, v) in &c.spec.config.labels {
        ev.actor.attributes.insert(k.clone(), v.clone());
    }
    ev.from = c.record.image_ref.clone();
    ev.attr("image", c.record.image_ref.clone())
        .attr("name", c.name().to_string())
}

/// Emits container event `action` for `c` with extra attributes (`exitCode`, `signal`).
pub fn emit_container(
    root: &Path,
    c: &crate::container::Container,
    action: &str,
    extra: &[(&str, String)],
) {
    let mut ev = container_event(c, action);
    for (k, v) in extra {
        ev = ev.attr(k, v.clone());
    }
    emit(root, ev);
}

/// Emits the end of a container's run: `oom` (when the OOM killer struck), then `die`
/// with its `exitCode`.
pub fn emit_exit(root: &Path, c: &crate::container::Container, code: i32, oom: bool) {
    if oom {
        emit_container(root, c, "oom", &[]);
    }
    emit_container(root, c, "die", &[("exitCode", code.to_string())]);
}

/// Emits image event `action` for image `id` named `name` (a reference, or the ID).
pub fn emit_image(root: &Path, action: &str, id: &str, name: &str) {
    emit(
        root,
        Event::new(EventType::Image, action, id).attr("name", name.to_string()),
    );
}

/// Emits network event `action` for network `id` (`name`, `type`, and for `connect` /
/// `disconnect` the `container`).
pub fn emit_network(root: &Path, action: &str, id: &str, name: &str, extra: &[(&str, String)]) {
    let mut ev = Event::new(EventType::Network, action, id).attr("name", name.to_string());
    for (k, v) in extra {
        ev = ev.attr(k, v.clone());
    }
    emit(root, ev);
}

/// Emits volume event `action` for volume `name` (`driver`, and for `mount` the
/// `container`, `destination`, `read/write`, `propagation`).
pub fn emit_volume(root: &Path, action: &str, name: &str, extra: &[(&str, String)]) {
    let mut ev = Event::new(EventType::Volume, action, name);
    for (k, v) in extra {
        ev = ev.attr(k, v.clone());
    }
    emit(root, ev);
}

/// What to read: from when, until when, which events.
#[derive(Debug, Clone, Default)]
pub struct EventsRequest {
    /// Unix nanoseconds: replay recorded events from here (None: only new ones).
    pub since: Option<i64>,
    /// Unix nanoseconds: stop here (None: follow for ever).
    pub until: Option<i64>,
    /// `--filter`s.
    pub filter: EventFilter,
}

/// Errors of the events journal and its readers.
#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    /// A time given to `--since` / `--until` does not parse.
    #[error("failed to parse value as time or duration: {0:?}")]
    BadTime(String),
    /// A `--filter` is not valid.
    #[error("{0}")]
    BadFilter(String),
    /// The journal cannot be read or written.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path concerned.
        path: std::path::PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

impl EventsError {
    /// The kind of failure.
    pub fn kind(&self) -> crate::ErrorKind {
        match self {
            EventsError::BadTime(_) | EventsError::BadFilter(_) => {
                crate::ErrorKind::InvalidArgument
            }
            EventsError::Io { .. } => crate::ErrorKind::Internal,
        }
    }

    pub(crate) fn io(
        op: &'static str,
        path: impl Into<std::path::PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> EventsError {
        let path = path.into();
        move |source| EventsError::Io { op, path, source }
    }
}

/// Replays the recorded events of `req` (when it has a `since`) and follows the journal
/// for new ones until `req.until` or until `sink` returns false. Events go to `sink` in the
/// order they were recorded.
pub fn stream(
    root: &Path,
    req: &EventsRequest,
    mut sink: impl FnMut(&Event) -> bool,
) -> Result<(), EventsError> {
    journal::follow(root, req.since, req.until, |ev| {
        if !req.filter.matches(ev) {
            return true;
        }
        sink(ev)
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn docker_line_sorts_attributes_and_trims_nanos() {
        let mut ev = Event::new(EventType::Container, "die", "abc")
            .attr("name", "web")
            .attr("exitCode", "3")
            .attr("image", "busybox");
        ev.time_nano = 1_700_000_000_120_000_000;
        assert_eq!(
            ev.docker_line(),
            "2023-11-14T22:13:20.12Z container die abc (exitCode=3, image=busybox, name=web)"
        );
        let json = serde_json::to_value(&ev).unwrap();
        assert_eq!(json["status"], "die");
        assert_eq!(json["Type"], "container");
        assert_eq!(json["Actor"]["Attributes"]["exitCode"], "3");
        let net = Event::new(EventType::Network, "create", "n1");
        assert!(serde_json::to_value(&net).unwrap().get("status").is_none());
    }
}
