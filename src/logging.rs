//! The log filter both binaries install: `STREAMFOLD_LOG` (or a default),
//! with the drivers' connection-option parsers silenced. Those log the
//! value of every query parameter they do not recognise (for example
//! `PASSWORD=…` in a PostgreSQL URL) at WARN, so no level an operator picks
//! may show them. `escaped_fields` is the text format's field formatter:
//! every field value and message goes through `printable`, so a record's
//! ESC or newline cannot drive the terminal or forge a log line.

use crate::printable::printable;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::field::MakeExt;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::{Writer, debug_fn};

/// Targets that echo connection-URL values.
const SILENCED: [&str; 3] = [
    "sqlx_postgres::options=off",
    "sqlx_mysql::options=off",
    "sqlx_sqlite::options=off",
];

/// `STREAMFOLD_LOG` if set and valid, else `default`, plus the silenced
/// targets.
pub fn filter(default: &str) -> EnvFilter {
    let mut f = EnvFilter::try_from_env("STREAMFOLD_LOG").unwrap_or_else(|_| default.into());
    for directive in SILENCED {
        if let Ok(d) = directive.parse() {
            f = f.add_directive(d);
        }
    }
    f
}

/// The text log's field formatter: `message` then `name=value` pairs, as
/// the default one writes them, each escaped by `printable` (the JSON
/// format escapes on its own).
pub fn escaped_fields() -> impl for<'w> FormatFields<'w> + Send + Sync + 'static {
    debug_fn(
        |w: &mut Writer<'_>, field: &tracing::field::Field, value: &dyn std::fmt::Debug| {
            let text = format!("{value:?}");
            match field.name() {
                "message" => write!(w, "{}", printable(&text)),
                name => write!(w, "{name}={}", printable(&text)),
            }
        },
    )
    .delimited(" ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn silenced_targets_parse() {
        for d in super::SILENCED {
            d.parse::<tracing_subscriber::filter::Directive>().unwrap();
        }
    }

    #[test]
    fn text_log_escapes_fields_and_message() {
        use std::sync::{Arc, Mutex};
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
        let buf = Buf::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .fmt_fields(super::escaped_fields())
            .with_ansi(false)
            .without_time()
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let id = "e\u{1b}[31m\nFORGED line";
            tracing::warn!(record = %id, other = ?id, "quarantined {}", id);
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(!text.contains('\u{1b}'), "{text}");
        assert!(text.contains(r"record=e\u{1b}[31m\nFORGED line"), "{text}");
        assert!(
            text.contains(r"quarantined e\u{1b}[31m\nFORGED line"),
            "{text}"
        );
    }
}
