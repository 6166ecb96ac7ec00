//! The `events:` section of `providers.yaml`.

use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct EventsConfig {
    /// NATS JetStream source. Absent: the gateway reads each provider's
    /// `Stream` RPC instead.
    pub nats: Option<NatsConfig>,
    /// Events with the same `source` + `id` seen within this window are
    /// dropped as duplicates.
    #[serde(with = "humantime_serde")]
    pub dedup_window: Duration,
    /// New `source` + `id` keys per window that deduplication is sure to
    /// remember (it keeps at most twice as many).
    pub dedup_capacity: u64,
    /// How many events `events://recent` keeps.
    pub recent: usize,
}

impl Default for EventsConfig {
    fn default() -> Self {
        Self {
            nats: None,
            dedup_window: Duration::from_secs(600),
            dedup_capacity: 100_000,
            recent: 100,
        }
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NatsConfig {
    /// e.g. `nats://127.0.0.1:4222`.
    pub url: String,
    /// Where the NATS `.creds` (JWT + NKey seed) come from. Never logged.
    #[serde(default)]
    pub credentials: Option<Credentials>,
    /// JetStream stream name.
    pub stream: String,
    /// Subjects the stream captures and the consumer reads.
    pub subjects: Vec<String>,
    /// Durable consumer name: progress survives gateway restarts.
    #[serde(default = "default_durable")]
    pub durable: String,
    /// Create the stream when it does not exist.
    #[serde(default)]
    pub create_stream: bool,
    /// How long NATS waits for an ack before delivering again.
    #[serde(default = "default_ack_wait", with = "humantime_serde")]
    pub ack_wait: Duration,
    /// Malformed events are re-published here (with a reason header).
    #[serde(default)]
    pub dead_letter_subject: Option<String>,
}

fn default_durable() -> String {
    "mcp-gateway".into()
}

fn default_ack_wait() -> Duration {
    Duration::from_secs(30)
}

/// A reference to NATS credentials, never the secret itself. Exactly one
/// of `file` / `env`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    /// Path of a `.creds` file (JWT + NKey seed).
    pub file: Option<String>,
    /// Name of an environment variable holding the `.creds` text.
    pub env: Option<String>,
}

impl EventsConfig {
    pub(crate) fn problems(&self, bad: &mut impl FnMut(String, String)) {
        if self.dedup_window.is_zero() {
            bad(
                "events.dedup_window".into(),
                "must be greater than 0".into(),
            );
        }
        if self.dedup_capacity == 0 {
            bad("events.dedup_capacity".into(), "must be at least 1".into());
        }
        if !(1..=10_000).contains(&self.recent) {
            bad(
                "events.recent".into(),
                format!("{} is out of range 1..=10000", self.recent),
            );
        }
        let Some(n) = &self.nats else { return };
        if !(n.url.starts_with("nats://") || n.url.starts_with("tls://")) {
            bad(
                "events.nats.url".into(),
                format!("{:?} must start with nats:// or tls://", n.url),
            );
        }
        if n.stream.is_empty() || n.stream.contains(['.', '*', '>', ' ', '/', '\\']) {
            bad(
                "events.nats.stream".into(),
                format!(
                    "{:?} must be non-empty with no '.', '*', '>', '/' or spaces",
                    n.stream
                ),
            );
        }
        if n.durable.is_empty() || n.durable.contains(['.', '*', '>', ' ', '/', '\\']) {
            bad(
                "events.nats.durable".into(),
                format!(
                    "{:?} must be non-empty with no '.', '*', '>', '/' or spaces",
                    n.durable
                ),
            );
        }
        if n.subjects.is_empty() {
            bad(
                "events.nats.subjects".into(),
                "must list at least one subject".into(),
            );
        }
        for (i, s) in n.subjects.iter().enumerate() {
            if !valid_subject(s) {
                bad(
                    format!("events.nats.subjects[{i}]"),
                    format!("{s:?} is not a valid NATS subject"),
                );
            }
        }
        if n.ack_wait < Duration::from_millis(100) {
            bad(
                "events.nats.ack_wait".into(),
                "must be at least 100ms".into(),
            );
        }
        if let Some(d) = &n.dead_letter_subject {
            if !valid_subject(d) || d.contains(['*', '>']) {
                bad(
                    "events.nats.dead_letter_subject".into(),
                    format!("{d:?} must be a NATS subject without wildcards"),
                );
            } else if n.subjects.iter().any(|s| subject_matches(s, d)) {
                // It would be consumed again and loop forever.
                bad(
                    "events.nats.dead_letter_subject".into(),
                    format!("{d:?} must not match events.nats.subjects"),
                );
            }
        }
        if let Some(c) = &n.credentials {
            match (&c.file, &c.env) {
                (Some(_), Some(_)) | (None, None) => bad(
                    "events.nats.credentials".into(),
                    "set exactly one of file or env".into(),
                ),
                (Some(p), _) if p.is_empty() => bad(
                    "events.nats.credentials.file".into(),
                    "must not be empty".into(),
                ),
                (_, Some(v)) if v.is_empty() => bad(
                    "events.nats.credentials.env".into(),
                    "must not be empty".into(),
                ),
                _ => {}
            }
        }
    }
}

fn valid_subject(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').enumerate().all(|(i, tok)| {
            !tok.is_empty()
                && !tok.contains(char::is_whitespace)
                && (tok == "*" || tok == ">" || !tok.contains(['*', '>']))
                && (tok != ">" || i == s.split('.').count() - 1)
        })
}

/// Whether `pattern` (which may hold `*` and `>`) matches `subject`.
pub(crate) fn subject_matches(pattern: &str, subject: &str) -> bool {
    let mut p = pattern.split('.');
    let mut s = subject.split('.');
    loop {
        match (p.next(), s.next()) {
            (Some(">"), Some(_)) => return true,
            (Some("*"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects() {
        assert!(subject_matches("hello.events", "hello.events"));
        assert!(subject_matches("hello.*", "hello.events"));
        assert!(subject_matches("hello.>", "hello.events.x"));
        assert!(!subject_matches("hello.*", "hello.events.x"));
        assert!(!subject_matches("hello.events", "hello.dlq"));
        assert!(valid_subject("a.b.>"));
        assert!(!valid_subject("a..b"));
        assert!(!valid_subject("a.>.b"));
        assert!(!valid_subject("a.b*"));
    }

    fn fields(yaml: &str) -> Vec<String> {
        match crate::config::Config::parse(yaml) {
            Err(crate::config::ConfigError::Invalid(p)) => p.into_iter().map(|p| p.field).collect(),
            other => panic!("expected problems, got {other:?}"),
        }
    }

    #[test]
    fn nats_section_is_checked_field_by_field() {
        let ok = "events:\n  nats:\n    url: nats://127.0.0.1:4222\n    stream: S\n    subjects: [hello.events]\n    credentials:\n      env: NATS_CREDS\n";
        let c = crate::config::Config::parse(ok).unwrap();
        let n = c.events.nats.unwrap();
        assert_eq!(n.durable, "mcp-gateway");
        assert_eq!(n.credentials.unwrap().env.as_deref(), Some("NATS_CREDS"));
        assert_eq!(
            fields(
                "events:\n  nats:\n    url: http://x\n    stream: a.b\n    subjects: [hello.events]\n    dead_letter_subject: hello.events\n"
            ),
            [
                "events.nats.url",
                "events.nats.stream",
                "events.nats.dead_letter_subject"
            ]
        );
        assert_eq!(
            fields(
                "events:\n  dedup_window: 0s\n  nats:\n    url: nats://h:1\n    stream: S\n    subjects: []\n"
            ),
            ["events.dedup_window", "events.nats.subjects"]
        );
        assert_eq!(
            fields(
                "events:\n  nats:\n    url: nats://h:1\n    stream: S\n    subjects: [a]\n    password: x\n"
            ),
            ["events.nats.password"]
        );
        assert_eq!(
            fields(
                "events:\n  nats:\n    url: nats://h:1\n    stream: S\n    subjects: [a]\n    credentials: {file: a, env: B}\n"
            ),
            ["events.nats.credentials"]
        );
    }
}
