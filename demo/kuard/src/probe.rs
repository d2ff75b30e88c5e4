//! Liveness and readiness probes whose next answers can be made to fail.

use std::collections::VecDeque;
use std::sync::Mutex;

use crate::sysinfo;

/// How many probe results are kept.
pub const HISTORY: usize = 20;

/// One answered probe.
#[derive(Debug, Clone, serde::Serialize, PartialEq, Eq)]
pub struct ProbeResult {
    /// Sequence number, from 1.
    pub id: u64,
    /// When it was answered (RFC 3339).
    pub when: String,
    /// The status code answered.
    pub code: u16,
}

/// The state a probe API reports.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProbeStatus {
    /// Which probe (`liveness` or `readiness`).
    pub probe: &'static str,
    /// Failures still to come; negative: failing for good.
    #[serde(rename = "failNext")]
    pub fail_next: i64,
    /// The last results, newest last.
    pub history: Vec<ProbeResult>,
}

/// The body of `PUT /healthy/api`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeConfig {
    /// How many of the next probes fail; negative: all of them.
    #[serde(rename = "failNext")]
    pub fail_next: i64,
}

#[derive(Debug, Default)]
struct State {
    fail_next: i64,
    seq: u64,
    history: VecDeque<ProbeResult>,
}

/// A probe endpoint (`/healthy` or `/ready`).
#[derive(Debug)]
pub struct Probe {
    name: &'static str,
    state: Mutex<State>,
}

impl Probe {
    /// A probe that fails its next `fail_next` answers (negative: always).
    pub fn new(name: &'static str, fail_next: i64) -> Probe {
        Probe {
            name,
            state: Mutex::new(State {
                fail_next,
                ..State::default()
            }),
        }
    }

    /// Answers one probe: the status code and the body.
    pub fn check(&self) -> (u16, String) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (code, body) = match s.fail_next {
            0 => (200, "ok\n".to_string()),
            n if n < 0 => (500, "fail: failing for good\n".to_string()),
            n => {
                s.fail_next -= 1;
                (500, format!("fail: {} more failure(s) left\n", n - 1))
            }
        };
        s.seq += 1;
        let entry = ProbeResult {
            id: s.seq,
            when: sysinfo::rfc3339(sysinfo::unix_now()),
            code,
        };
        if s.history.len() == HISTORY {
            s.history.pop_front();
        }
        s.history.push_back(entry);
        (code, body)
    }

    /// Sets how many of the next probes fail.
    pub fn set_fail_next(&self, n: i64) {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .fail_next = n;
    }

    /// The current state and history.
    pub fn status(&self) -> ProbeStatus {
        let s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        ProbeStatus {
            probe: self.name,
            fail_next: s.fail_next,
            history: s.history.iter().cloned().collect(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn counts_down_then_recovers() {
        let p = Probe::new("readiness", 2);
        assert_eq!(p.check(), (500, "fail: 1 more failure(s) left\n".into()));
        assert_eq!(p.check().0, 500);
        assert_eq!(p.check(), (200, "ok\n".into()));
        assert_eq!(
            p.status()
                .history
                .iter()
                .map(|r| r.code)
                .collect::<Vec<_>>(),
            [500, 500, 200]
        );
    }

    #[test]
    fn negative_fails_for_good_and_history_is_bounded() {
        let p = Probe::new("liveness", 0);
        p.set_fail_next(-1);
        for _ in 0..30 {
            assert_eq!(p.check().0, 500);
        }
        let st = p.status();
        assert_eq!(st.fail_next, -1);
        assert_eq!(st.history.len(), HISTORY);
        assert_eq!(st.history.last().unwrap().id, 30);
    }
}
