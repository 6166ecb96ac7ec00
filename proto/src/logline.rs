//! The JSON log line: the layout of tracing-subscriber's JSON formatter with
//! `flatten_event` and the current span, written straight into the line
//! buffer. Its formatter parses each span's stored fields back from JSON
//! and re-serializes them for every line; here they are spliced in as
//! stored (docs/performance.md).

use std::{fmt, fmt::Write as _, time::SystemTime};

use tracing::{
    Event, Subscriber,
    field::{Field, Visit},
};
use tracing_log::NormalizeEvent;
use tracing_subscriber::{
    fmt::{
        FmtContext, FormatEvent, FormattedFields,
        format::{JsonFields, Writer},
    },
    registry::LookupSpan,
};

/// `{"timestamp":…,"level":…,<fields>,"target":…,"span":{<fields>,"name":…}}`.
pub(crate) struct JsonLine;

impl<S> FormatEvent<S, JsonFields> for JsonLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonFields>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        // Built in a buffer of our own, then handed over in one write: each
        // small write into `Writer` is a dynamic call. A log call made while
        // a field is formatted gets a buffer of its own.
        thread_local! {
            static LINE: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
        }
        LINE.with(|line| match line.try_borrow_mut() {
            Ok(mut line) => {
                line.clear();
                let r = line_of(&mut line, ctx, event);
                r.and_then(|()| w.write_str(&line))
            }
            Err(_) => {
                let mut line = String::new();
                line_of(&mut line, ctx, event).and_then(|()| w.write_str(&line))
            }
        })
    }
}

fn line_of<S>(w: &mut String, ctx: &FmtContext<'_, S, JsonFields>, event: &Event<'_>) -> fmt::Result
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let normalized = event.normalized_metadata();
    let meta = normalized.as_ref().unwrap_or_else(|| event.metadata());
    w.push_str("{\"timestamp\":\"");
    rfc3339(w, SystemTime::now())?;
    w.push_str("\",\"level\":\"");
    w.push_str(meta.level().as_str());
    w.push('"');
    let mut fields = Fields {
        w,
        result: Ok(()),
        raw: meta.target() == FORWARDED_TARGET,
    };
    event.record(&mut fields);
    fields.result?;
    w.push_str(",\"target\":");
    string(w, meta.target())?;
    let span = event
        .parent()
        .and_then(|id| ctx.span(id))
        .or_else(|| ctx.lookup_current());
    if let Some(span) = span {
        w.push_str(",\"span\":{");
        let ext = span.extensions();
        let stored = ext
            .get::<FormattedFields<JsonFields>>()
            .map(|f| f.fields.as_str())
            .unwrap_or_default();
        // Stored as a JSON object (JsonFields): its members go in as they are.
        let members = stored
            .strip_prefix('{')
            .and_then(|s| s.strip_suffix('}'))
            .unwrap_or_default();
        if !members.is_empty() {
            w.push_str(members);
            w.push(',');
        }
        w.push_str("\"name\":");
        string(w, span.name())?;
        w.push('}');
    }
    w.push_str("}\n");
    Ok(())
}

/// Lines a process forwards (a managed provider's output) log under this
/// target, with their own members already serialized as one JSON object
/// in the `fields` field: it goes in as an object, not as a string.
pub(crate) const FORWARDED_TARGET: &str = "provider";

/// Writes each field as `,"name":value`.
struct Fields<'a> {
    w: &'a mut String,
    result: fmt::Result,
    /// `fields` holds JSON (see [`FORWARDED_TARGET`]).
    raw: bool,
}

impl Fields<'_> {
    fn name(&mut self, field: &Field) -> bool {
        // tracing-log's own fields: the normalized metadata carries them.
        if field.name().starts_with("log.") || self.result.is_err() {
            return false;
        }
        // Field names are Rust identifiers (with dots): nothing to escape.
        self.w.push_str(",\"");
        self.w.push_str(field.name());
        self.w.push_str("\":");
        true
    }
}

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if self.name(field) {
            self.result = if self.raw && field.name() == "fields" && value.starts_with('{') {
                self.w.write_str(value)
            } else {
                string(self.w, value)
            };
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.name(field) {
            self.result = self.w.write_char('"').and_then(|()| {
                write!(Escaped(self.w), "{value:?}").and_then(|()| self.w.write_char('"'))
            });
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.record_debug(field, &format_args!("{value}"));
    }

    // Numbers without `fmt`'s machinery: a log line per call is on the
    // hot path (docs/performance.md).
    fn record_f64(&mut self, field: &Field, value: f64) {
        if self.name(field) {
            self.result = if value.is_finite() {
                self.w.write_str(ryu::Buffer::new().format_finite(value))
            } else {
                self.w.write_str("null")
            };
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if self.name(field) {
            self.result = self.w.write_str(itoa::Buffer::new().format(value));
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if self.name(field) {
            self.result = self.w.write_str(itoa::Buffer::new().format(value));
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if self.name(field) {
            self.result = self.w.write_str(if value { "true" } else { "false" });
        }
    }
}

/// A JSON string: quoted and escaped.
fn string(w: &mut impl fmt::Write, s: &str) -> fmt::Result {
    w.write_char('"')?;
    Escaped(w).write_str(s)?;
    w.write_char('"')
}

/// Escapes what it is given for a JSON string (RFC 8259, section 7).
struct Escaped<'a, W: fmt::Write>(&'a mut W);

impl<W: fmt::Write> fmt::Write for Escaped<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // Most text needs no escape: then it goes in whole.
        if !s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
            return self.0.write_str(s);
        }
        let mut start = 0;
        for (i, b) in s.bytes().enumerate() {
            let esc: &str = match b {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                b'\n' => "\\n",
                b'\r' => "\\r",
                b'\t' => "\\t",
                0..=0x1f => "",
                _ => continue,
            };
            self.0.write_str(&s[start..i])?;
            if esc.is_empty() {
                write!(self.0, "\\u{b:04x}")?;
            } else {
                self.0.write_str(esc)?;
            }
            start = i + 1;
        }
        self.0.write_str(&s[start..])
    }
}

/// `2026-12-01T14:27:54.488996Z`: UTC, microseconds.
fn rfc3339(w: &mut impl fmt::Write, now: SystemTime) -> fmt::Result {
    let since = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    let mut out = *b"0000-00-00T00:00:00.000000Z";
    let mut put = |at: usize, width: usize, mut n: u64| {
        for i in (at..at + width).rev() {
            out[i] = b'0' + (n % 10) as u8;
            n /= 10;
        }
    };
    put(0, 4, year.clamp(0, 9999) as u64);
    put(5, 2, u64::from(month));
    put(8, 2, u64::from(day));
    put(11, 2, rem / 3600);
    put(14, 2, rem % 3600 / 60);
    put(17, 2, rem % 60);
    put(20, 6, u64::from(since.subsec_micros()));
    w.write_str(std::str::from_utf8(&out).expect("ASCII digits"))
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (H. Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_match_the_calendar() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_788), (2026, 12, 1));
        let mut s = String::new();
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_micros(1_796_135_274_488_996);
        rfc3339(&mut s, t).unwrap();
        assert_eq!(s, "2026-12-01T14:27:54.488996Z");
    }

    #[test]
    fn strings_are_escaped_for_json() {
        let mut s = String::new();
        string(&mut s, "a\"b\\c\nd\u{1}é").unwrap();
        assert_eq!(s, r#""a\"b\\c\nd\u0001é""#);
        let back: String = serde_json::from_str(&s).unwrap();
        assert_eq!(back, "a\"b\\c\nd\u{1}é");
    }
}

#[cfg(test)]
mod same_as_tracing_subscriber {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::{fmt, layer::SubscriberExt};

    use super::JsonLine;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn emit() {
        let err = std::io::Error::other("disk \"full\"");
        tracing::info!(
            method = "tools/call",
            duration_ms = 3.25,
            n = 7u64,
            d = -2i64,
            ok = true,
            "plain"
        );
        let span = tracing::info_span!("tools/call", correlation_id = %"c0ffee");
        let _in = span.enter();
        tracing::warn!(item = "a\"b\\c\nd", error = %err, shown = ?vec![1, 2], "failed: {}", "x\ty");
        tracing::error!(
            error = &err as &(dyn std::error::Error + 'static),
            "as error"
        );
    }

    /// Each line without its timestamp, parsed, and its keys in order.
    fn lines(buf: &Buf) -> Vec<(Vec<String>, serde_json::Value)> {
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        text.lines()
            .map(|l| {
                let mut v: serde_json::Value = serde_json::from_str(l).expect(l);
                let obj = v.as_object_mut().unwrap();
                assert!(obj.remove("timestamp").is_some(), "{l}");
                (obj.keys().cloned().collect(), v)
            })
            .collect()
    }

    #[test]
    fn each_line_matches_the_json_formatter_it_replaces() {
        let theirs = Buf::default();
        let layer = fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_writer({
                let b = theirs.clone();
                move || b.clone()
            });
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), emit);
        let ours = Buf::default();
        let layer = fmt::layer()
            .fmt_fields(fmt::format::JsonFields::new())
            .event_format(JsonLine)
            .with_writer({
                let b = ours.clone();
                move || b.clone()
            });
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), emit);
        let (theirs, ours) = (lines(&theirs), lines(&ours));
        assert_eq!(theirs.len(), 3);
        assert_eq!(ours, theirs);
    }
}
