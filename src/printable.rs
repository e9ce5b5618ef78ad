//! Text made safe for a terminal or a text log: the one home of escaping.
//!
//! Record-derived text (an `eventID`, a table name from an
//! `eventSourceARN`, an account id, a file name, a store's message) may hold
//! an ESC that drives the terminal or a newline that forges a log line.
//! `printable` escapes every control character (Unicode `Cc`: C0, DEL, C1)
//! and the invisible bidirectional and zero-width format characters (the
//! "Trojan Source" set) with Rust's `char::escape_default` spelling:
//! `\n`, `\t`, `\u{1b}`, `\u{202e}`. Everything else, backslashes and
//! quotes included, is kept as is, so ordinary text reads unchanged and
//! text escaped once is not escaped again.

use std::borrow::Cow;
use std::fmt;

/// Whether `c` is shown escaped.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{200b}'..='\u{200f}' // zero-width spaces and joiners, LRM, RLM
            | '\u{202a}'..='\u{202e}' // bidi embeddings and overrides
            | '\u{2060}'..='\u{2069}' // word joiner, invisible operators, bidi isolates
            | '\u{feff}') // zero-width no-break space (BOM)
}

/// `text` with its control and invisible format characters escaped;
/// borrowed when there is none.
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if needs_escape(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// A `Display` value shown through `printable` (for format arguments).
pub struct Printable<T>(pub T);

impl<T: fmt::Display> fmt::Display for Printable<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.0.to_string();
        f.pad(&printable(&text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_are_escaped() {
        assert_eq!(printable("a\u{1b}[31mb\nc\rd\te"), r"a\u{1b}[31mb\nc\rd\te");
        assert_eq!(printable("x\u{7f}\u{85}\u{9b}"), r"x\u{7f}\u{85}\u{9b}");
        assert_eq!(printable("\u{202e}gpj.exe"), r"\u{202e}gpj.exe");
        assert_eq!(printable("\0"), r"\u{0}");
    }

    #[test]
    fn ordinary_text_is_borrowed_and_unchanged() {
        for s in ["acct-1001", r#"a\nb "q" 'x'"#, "Zoë 日本 🙂", ""] {
            assert!(matches!(printable(s), Cow::Borrowed(t) if t == s), "{s}");
        }
    }

    #[test]
    fn escaping_is_idempotent() {
        let once = printable("a\u{1b}\nb").into_owned();
        assert_eq!(printable(&once), once);
    }

    #[test]
    fn display_wrapper_pads() {
        assert_eq!(format!("{:<6}|", Printable("a\nb")), r"a\nb  |");
    }
}
