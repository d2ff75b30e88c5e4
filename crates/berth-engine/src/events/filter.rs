//! `events --filter`: Docker's keys, the same key ORed, different keys ANDed.

use std::collections::BTreeMap;

use super::{Event, EventType, EventsError};

/// The filter keys Docker accepts for events.
const KEYS: &[&str] = &[
    "container",
    "daemon",
    "event",
    "image",
    "label",
    "network",
    "scope",
    "type",
    "volume",
];

/// Parsed `--filter key=value` pairs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    by_key: BTreeMap<String, Vec<String>>,
}

impl EventFilter {
    /// Parses `key=value` arguments; an unknown key or a bad type is Docker's error.
    pub fn parse<S: AsRef<str>>(args: &[S]) -> Result<EventFilter, EventsError> {
        let mut f = EventFilter::default();
        for a in args {
            let a = a.as_ref();
            let Some((k, v)) = a.split_once('=') else {
                return Err(EventsError::BadFilter(
                    "bad format of filter (expected name=value)".to_string(),
                ));
            };
            f.add(k, v)?;
        }
        Ok(f)
    }

    /// Adds one `key=value` (the Engine API passes its JSON map through this).
    pub fn add(&mut self, key: &str, value: &str) -> Result<(), EventsError> {
        let key = key.trim().to_ascii_lowercase();
        if !KEYS.contains(&key.as_str()) {
            return Err(EventsError::BadFilter(format!("Invalid filter '{key}'")));
        }
        if key == "type" && EventType::parse(value).is_none() {
            return Err(EventsError::BadFilter(format!(
                "Invalid filter 'type={value}'"
            )));
        }
        self.by_key.entry(key).or_default().push(value.to_string());
        Ok(())
    }

    /// True when no filter was given.
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    fn any(&self, key: &str, test: impl Fn(&str) -> bool) -> bool {
        match self.by_key.get(key) {
            None => true,
            Some(vals) => vals.iter().any(|v| test(v)),
        }
    }

    /// Whether `ev` passes every key.
    pub fn matches(&self, ev: &Event) -> bool {
        let attrs = &ev.actor.attributes;
        let attr = |k: &str| attrs.get(k).map(String::as_str).unwrap_or("");
        let ty = ev.event_type();
        // Docker's FuzzyMatch: the value is a prefix of the ID or of the name.
        let id_or_name = |v: &str, id: &str, name: &str| {
            !v.is_empty() && (id.starts_with(v) || (!name.is_empty() && name.starts_with(v)))
        };
        self.any("type", |v| ev.kind == v)
            && self.any("event", |v| ev.action == v || ev.base_action() == v)
            && self.any("scope", |v| ev.scope == v)
            && self.any("daemon", |_| ty == Some(EventType::Daemon))
            && self.any("container", |v| match ty {
                Some(EventType::Container) => id_or_name(v, &ev.actor.id, attr("name")),
                // A network's connect / disconnect names the container by ID.
                Some(EventType::Network) | Some(EventType::Volume) => {
                    id_or_name(v, attr("container"), "")
                }
                _ => false,
            })
            && self.any("image", |v| match ty {
                Some(EventType::Container) => attr("image") == v || image_matches(attr("image"), v),
                Some(EventType::Image) => {
                    id_or_name(v, &ev.actor.id, attr("name"))
                        || image_matches(attr("name"), v)
                        || ev
                            .actor
                            .id
                            .strip_prefix("sha256:")
                            .is_some_and(|h| h.starts_with(v))
                }
                _ => false,
            })
            && self.any("network", |v| {
                ty == Some(EventType::Network) && id_or_name(v, &ev.actor.id, attr("name"))
            })
            && self.any("volume", |v| {
                ty == Some(EventType::Volume) && ev.actor.id == v
            })
            && self.any("label", |v| match v.split_once('=') {
                Some((k, want)) => attrs.get(k).is_some_and(|have| have == want),
                None => attrs.contains_key(v),
            })
    }
}

/// `busybox` matches `busybox:latest` and `docker.io/library/busybox:latest`.
fn image_matches(have: &str, want: &str) -> bool {
    if have.is_empty() {
        return false;
    }
    let norm = |s: &str| {
        let s = s
            .strip_prefix("docker.io/library/")
            .or_else(|| s.strip_prefix("docker.io/"))
            .unwrap_or(s)
            .to_string();
        let last = s.rsplit('/').next().unwrap_or(&s);
        if last.contains(':') || last.contains('@') {
            s
        } else {
            format!("{s}:latest")
        }
    };
    norm(have) == norm(want)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn start(name: &str) -> Event {
        Event::new(EventType::Container, "start", "0123abcdef")
            .attr("name", name)
            .attr("image", "busybox")
            .attr("tier", "web")
    }

    #[test]
    fn keys_and_values() {
        let f = EventFilter::parse(&["type=container", "event=start", "event=die"]).unwrap();
        assert!(f.matches(&start("a")));
        let f = EventFilter::parse(&["container=web-a", "container=web-b"]).unwrap();
        assert!(
            f.matches(&start("web-a")) && f.matches(&start("web-b")) && !f.matches(&start("web-c"))
        );
        let f = EventFilter::parse(&["container=0123ab"]).unwrap();
        assert!(f.matches(&start("x")));
        let f = EventFilter::parse(&["image=busybox:latest", "label=tier=web"]).unwrap();
        assert!(f.matches(&start("x")));
        let f = EventFilter::parse(&["label=tier=db"]).unwrap();
        assert!(!f.matches(&start("x")));
        let f = EventFilter::parse(&["type=network"]).unwrap();
        assert!(!f.matches(&start("x")));
        let exec = Event::new(EventType::Container, "exec_create: sh -c true", "abc");
        assert!(EventFilter::parse(&["event=exec_create"])
            .unwrap()
            .matches(&exec));
        assert!(EventFilter::parse(&["bogus=1"]).is_err());
        assert!(EventFilter::parse(&["type=thing"]).is_err());
        assert!(EventFilter::parse(&["noequals"]).is_err());
    }
}
