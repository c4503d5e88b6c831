//! The JSON log format: one object per line with `timestamp`, `level`, the event's fields and
//! `target`, the layout of tracing-subscriber's flattened JSON format. It is written straight
//! into the record's buffer: every token request writes an audit record, and the generic
//! formatter (a serializer behind a UTF-8 checking adaptor, span lookups) cost about twice as
//! much per record (see BENCHMARKS.md). The service opens no spans, so records carry no span
//! context.

use std::fmt::{self, Write};

use time::OffsetDateTime;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The JSON lines event format (`log.format = "json"`).
pub struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut out: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        out.write_str("{\"timestamp\":\"")?;
        timestamp(&mut out, OffsetDateTime::now_utc())?;
        write!(out, "\",\"level\":\"{}\"", meta.level())?;
        let mut fields = Fields {
            out: &mut out,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        out.write_str(",\"target\":")?;
        string(&mut out, meta.target())?;
        out.write_str("}\n")
    }
}

/// RFC 3339 in UTC with microseconds, as tracing-subscriber writes it.
fn timestamp(out: &mut impl Write, t: OffsetDateTime) -> fmt::Result {
    write!(
        out,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

/// Writes each field as `,"name":value`.
struct Fields<'a, W> {
    out: &'a mut W,
    result: fmt::Result,
}

impl<W: Write> Fields<'_, W> {
    fn entry(&mut self, field: &Field, value: impl FnOnce(&mut W) -> fmt::Result) {
        if self.result.is_ok() {
            self.result = self
                .out
                .write_char(',')
                .and_then(|()| string(self.out, field.name()))
                .and_then(|()| self.out.write_char(':'))
                .and_then(|()| value(self.out));
        }
    }
}

impl<W: Write> Visit for Fields<'_, W> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.entry(field, |out| string(out, value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.entry(field, |out| write!(out, "{value}"));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.entry(field, |out| write!(out, "{value}"));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.entry(field, |out| write!(out, "{value}"));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        // JSON has no NaN or infinity; serde_json writes those as null too.
        self.entry(field, |out| match value.is_finite() {
            true => write!(out, "{value:?}"),
            false => out.write_str("null"),
        });
    }

    /// Everything else, `%value` and the message included, as a string of its `Debug` text.
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.entry(field, |out| {
            out.write_char('"')?;
            write!(Escaping(out), "{value:?}")?;
            out.write_char('"')
        });
    }
}

/// A JSON string: quoted, with `"`, `\` and control characters escaped (RFC 8259 §7).
fn string(out: &mut impl Write, s: &str) -> fmt::Result {
    out.write_char('"')?;
    Escaping(out).write_str(s)?;
    out.write_char('"')
}

/// Escapes for the inside of a JSON string whatever is written through it.
struct Escaping<'a, W>(&'a mut W);

impl<W: Write> Write for Escaping<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // Most values (names, ids, SIDs) need no escape: then the whole string is written at once.
        if !crate::text::needs_json_escape(s) {
            return self.0.write_str(s);
        }
        let mut plain = 0;
        for (at, byte) in s.bytes().enumerate() {
            let escaped = match byte {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                b'\n' => "\\n",
                b'\r' => "\\r",
                b'\t' => "\\t",
                0..0x20 => "",
                _ => continue,
            };
            self.0.write_str(&s[plain..at])?;
            match escaped {
                "" => write!(self.0, "\\u{byte:04x}")?,
                escaped => self.0.write_str(escaped)?,
            }
            plain = at + 1;
        }
        self.0.write_str(&s[plain..])
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use serde_json::Value;

    use super::*;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    /// Events with every kind of field value and text that needs escaping.
    fn log_samples() {
        let address: std::net::IpAddr = [127, 0, 0, 1].into();
        tracing::info!(
            target: "tokenmint::audit",
            event = "token_minted",
            identity = "alice \"the\" admin\\",
            ttl = 3600u64,
            offset = -5i64,
            ready = true,
            ratio = 0.25,
            whole = 2.0,
            nan = f64::NAN,
            client = %address,
            list = ?["a", "b"],
            "token minted"
        );
        tracing::warn!(
            error = "line\nbreak\ttab\r\u{1}\u{1f}é✓",
            "upstream {} failed",
            3
        );
        tracing::error!("no fields");
    }

    /// The lines `log_samples` writes through the subscriber `build` makes.
    fn captured(build: impl FnOnce(Captured) -> Box<dyn Subscriber + Send + Sync>) -> Vec<String> {
        let capture = Captured::default();
        tracing::subscriber::with_default(build(capture.clone()), log_samples);
        capture.text().lines().map(str::to_owned).collect()
    }

    fn ours() -> Vec<String> {
        captured(|capture| {
            Box::new(
                tracing_subscriber::fmt()
                    .with_writer(Mutex::new(capture))
                    .event_format(JsonLines)
                    .finish(),
            )
        })
    }

    /// The same events through tracing-subscriber's own JSON format, as the service logged before.
    fn generic() -> Vec<String> {
        captured(|capture| {
            Box::new(
                tracing_subscriber::fmt()
                    .with_writer(Mutex::new(capture))
                    .with_ansi(false)
                    .json()
                    .flatten_event(true)
                    .finish(),
            )
        })
    }

    fn without_timestamp(line: &str) -> (serde_json::Map<String, Value>, String) {
        let mut object: serde_json::Map<String, Value> =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let Some(Value::String(timestamp)) = object.remove("timestamp") else {
            panic!("no timestamp: {line}");
        };
        (object, timestamp)
    }

    #[test]
    fn records_hold_what_tracing_subscribers_json_format_holds() {
        let (ours, generic) = (ours(), generic());
        assert_eq!(ours.len(), 3, "{ours:?}");
        assert_eq!(generic.len(), 3, "{generic:?}");
        for (line, expected) in ours.iter().zip(&generic) {
            let (ours, _) = without_timestamp(line);
            let (expected, _) = without_timestamp(expected);
            assert_eq!(ours, expected);
        }
        let (first, _) = without_timestamp(&ours[0]);
        assert_eq!(first["identity"], "alice \"the\" admin\\");
        assert_eq!(first["ttl"], 3600);
        assert_eq!(first["nan"], Value::Null);
        assert_eq!(first["client"], "127.0.0.1");
        let (second, _) = without_timestamp(&ours[1]);
        assert_eq!(second["error"], "line\nbreak\ttab\r\u{1}\u{1f}é✓");
        assert_eq!(second["message"], "upstream 3 failed");
        assert_eq!(second["level"], "WARN");
    }

    #[test]
    fn a_record_is_one_line_starting_with_the_timestamp_and_level() {
        for line in ours() {
            assert!(line.starts_with("{\"timestamp\":\""), "{line}");
            assert!(line.ends_with('}'), "{line}");
            let (object, timestamp) = without_timestamp(&line);
            let target = format!(",\"target\":\"{}\"}}", object["target"].as_str().unwrap());
            assert!(line.ends_with(&target), "{line}");
            let parsed =
                OffsetDateTime::parse(&timestamp, &time::format_description::well_known::Rfc3339)
                    .unwrap();
            assert!((OffsetDateTime::now_utc() - parsed).abs() < time::Duration::minutes(1));
            assert_eq!(
                timestamp.len(),
                "2026-11-27T04:03:36.123456Z".len(),
                "{timestamp}"
            );
        }
    }

    #[test]
    fn timestamps_are_zero_padded_utc_with_microseconds() {
        let t = time::Date::from_calendar_date(2026, time::Month::March, 5)
            .and_then(|date| date.with_hms_micro(7, 8, 9, 42))
            .unwrap()
            .assume_offset(time::UtcOffset::from_hms(2, 0, 0).unwrap())
            .to_offset(time::UtcOffset::UTC);
        let mut out = String::new();
        timestamp(&mut out, t).unwrap();
        assert_eq!(out, "2026-03-05T05:08:09.000042Z");
    }

    #[test]
    fn escaped_strings_read_back_unchanged() {
        let all_ascii: String = (0u8..0x80).map(char::from).collect();
        // One character to escape at places on both sides of 16- and 32-byte boundaries in a
        // string that is otherwise plain.
        let one_special = ['\0', '\n', '\u{1f}', '"', '\\'].into_iter().flat_map(|c| {
            [0, 15, 16, 31, 32, 40].map(|at| {
                let mut s = "abcdefghijklmnopqrstuvwxyz-0123456789_ABCD".to_owned();
                s.replace_range(at..=at, &c.to_string());
                s
            })
        });
        let cases = ["", "plain", "\"\\/", "\u{7f}\u{80}", "😀 ✓ é", &all_ascii].map(str::to_owned);
        for s in cases.into_iter().chain(one_special) {
            let mut out = String::new();
            string(&mut out, &s).unwrap();
            assert_eq!(serde_json::from_str::<String>(&out).unwrap(), s);
            assert!(!out.bytes().any(|b| b < 0x20), "{out:?}");
            assert_eq!(
                out.len() > s.len() + 2,
                s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\')
            );
        }
    }
}
