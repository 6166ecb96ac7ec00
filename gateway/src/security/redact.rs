//! Tool arguments in logs. Off by default: a call's log line and audit
//! record carry no arguments (the audit keeps a SHA-256). With
//! `logging.arguments: true` they are included with sensitive fields
//! replaced by `"[REDACTED]"`: fields whose key matches a built-in or
//! configured glob (case-insensitive, at any depth) or sits at a configured
//! JSON pointer.

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use serde::Deserialize;
use serde_json::Value;

/// What replaces a redacted value.
pub const REDACTED: &str = "[REDACTED]";

/// Key globs always redacted when arguments are logged.
pub const BUILT_IN: &[&str] = &[
    "*password*",
    "*passwd*",
    "*secret*",
    "*token*",
    "*api_key*",
    "*apikey*",
    "*api-key*",
    "authorization",
    "bearer",
    "*credential*",
    "*private*key*",
    "*passphrase*",
    "*cookie*",
];

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct LoggingConfig {
    /// Include (redacted) tool arguments in the per-call log line and the
    /// audit record.
    pub arguments: bool,
    /// More fields to redact, on top of [`BUILT_IN`]: key globs (`ssn`,
    /// `*card*`) or JSON pointers from the arguments root (`/user/email`).
    pub redact: Vec<String>,
}

impl LoggingConfig {
    pub(crate) fn problems(&self, bad: &mut impl FnMut(String, String)) {
        for (i, r) in self.redact.iter().enumerate() {
            let field = format!("logging.redact[{i}]");
            if r.is_empty() {
                bad(field, "must not be empty".into());
            } else if !r.starts_with('/')
                && let Err(e) = glob(r)
            {
                bad(field, format!("bad glob {r:?}: {e}"));
            }
        }
    }
}

fn glob(pattern: &str) -> Result<globset::Glob, globset::Error> {
    GlobBuilder::new(pattern).case_insensitive(true).build()
}

/// Applies [`LoggingConfig`]; built once per config.
#[derive(Debug)]
pub struct Redactor {
    enabled: bool,
    keys: GlobSet,
    /// JSON pointers, split into unescaped tokens.
    pointers: Vec<Vec<String>>,
}

impl Default for Redactor {
    fn default() -> Self {
        Self::new(&LoggingConfig::default())
    }
}

impl Redactor {
    /// Config validation already checked the globs; a bad one is skipped.
    pub fn new(cfg: &LoggingConfig) -> Self {
        let mut keys = GlobSetBuilder::new();
        let mut pointers = Vec::new();
        for r in BUILT_IN
            .iter()
            .copied()
            .chain(cfg.redact.iter().map(String::as_str))
        {
            if let Some(p) = r.strip_prefix('/') {
                pointers.push(
                    p.split('/')
                        .map(|t| t.replace("~1", "/").replace("~0", "~"))
                        .collect(),
                );
            } else if let Ok(g) = glob(r) {
                keys.add(g);
            }
        }
        Self {
            enabled: cfg.arguments,
            keys: keys.build().unwrap_or_else(|_| GlobSet::empty()),
            pointers,
        }
    }

    /// Whether arguments are logged at all.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// A copy of `args` with sensitive fields replaced.
    pub fn apply(&self, args: &Value) -> Value {
        let mut out = args.clone();
        self.by_key(&mut out);
        for p in &self.pointers {
            if let Some(v) = pointer_mut(&mut out, p) {
                *v = Value::String(REDACTED.into());
            }
        }
        out
    }

    fn by_key(&self, v: &mut Value) {
        match v {
            Value::Object(map) => {
                for (k, v) in map.iter_mut() {
                    if self.keys.is_match(k) {
                        *v = Value::String(REDACTED.into());
                    } else {
                        self.by_key(v);
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.by_key(v)),
            _ => {}
        }
    }
}

/// Longest arguments text in a log line; the audit record keeps it whole.
pub const MAX_LOGGED: usize = 4096;

/// Redacted arguments as log text, cut at [`MAX_LOGGED`] bytes.
pub fn for_log(args: &Value) -> String {
    let mut text = args.to_string();
    if text.len() > MAX_LOGGED {
        let mut cut = MAX_LOGGED;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str("…(truncated)");
    }
    text
}

fn pointer_mut<'a>(mut v: &'a mut Value, tokens: &[String]) -> Option<&'a mut Value> {
    for t in tokens {
        v = match v {
            Value::Object(m) => m.get_mut(t)?,
            Value::Array(a) => a.get_mut(t.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn built_in_and_configured_fields_are_redacted_at_any_depth() {
        let r = Redactor::new(&LoggingConfig {
            arguments: true,
            redact: vec!["ssn".into(), "/user/email".into(), "/cards/1".into()],
        });
        let out = r.apply(&json!({
            "query": "weather",
            "Password": "hunter2",
            "auth": {"accessToken": "t0k", "user": "bob"},
            "items": [{"api_key": "k"}, {"name": "x"}],
            "SSN": "123",
            "user": {"email": "a@b.c", "name": "Al"},
            "cards": ["a", "b"],
        }));
        assert_eq!(
            out,
            json!({
                "query": "weather",
                "Password": REDACTED,
                "auth": {"accessToken": REDACTED, "user": "bob"},
                "items": [{"api_key": REDACTED}, {"name": "x"}],
                "SSN": REDACTED,
                "user": {"email": REDACTED, "name": "Al"},
                "cards": ["a", REDACTED],
            })
        );
    }

    #[test]
    fn bad_patterns_name_the_field() {
        let mut problems = Vec::new();
        LoggingConfig {
            arguments: true,
            redact: vec!["ok".into(), "[".into(), String::new()],
        }
        .problems(&mut |f, m| problems.push(format!("{f}: {m}")));
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems[0].starts_with("logging.redact[1]: bad glob"),
            "{problems:?}"
        );
        assert_eq!(problems[1], "logging.redact[2]: must not be empty");
    }
}
