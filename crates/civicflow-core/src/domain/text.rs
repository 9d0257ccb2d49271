//! The one rule for free texts: what characters a title, a description, a note, a purpose or
//! a reason may hold, and when such a text counts as given.
//!
//! Every free text that enters a command is checked here, once, by the aggregate that decides
//! the command (`docs/engine.md`, "Free texts"). A stored text is shown again on screens,
//! in exports and on terminals (`civicflow audit`): a control character there can rewrite
//! what a terminal shows (ESC starts an escape sequence, a carriage return overwrites the
//! line), NUL cuts a text short in C tools, and a bidirectional override makes a text display
//! in another order than it is stored ("Trojan source"). So:
//!
//! - a one-line text (a title, a name, a purpose, a reason) holds no control character at
//!   all: none of C0 (U+0000 to U+001F, the line feed and tab too), DEL (U+007F), C1 (U+0080
//!   to U+009F), the line and paragraph separators (U+2028, U+2029), nor a bidirectional
//!   embedding, override or isolate (U+202A to U+202E, U+2066 to U+2069);
//! - a text of several lines (a description, a note) may also hold line feeds (`\n`), tabs,
//!   and a carriage return right before a line feed (`\r\n`, what an HTML form sends); a lone
//!   carriage return is refused;
//! - the bidirectional marks U+200E and U+200F (LRM, RLM) are allowed: they only set the
//!   direction of the neutral characters beside them, cannot reorder a run of text, and a
//!   writer of Arabic or Hebrew may need them;
//! - a required text that is blank (nothing but whitespace and invisible characters:
//!   zero-width spaces and joiners, the word joiner, the byte-order mark, the two marks above)
//!   counts as missing.
//!
//! [`escape`] is the same rule turned around, for what prints stored texts: an old log may
//! hold characters refused now.

use std::borrow::Cow;
use std::fmt::Write as _;

use super::Rejection;

/// How many lines a free text may span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lines {
    /// One line: a title, a name, a purpose, a reason.
    One,
    /// Several lines: a description, a note.
    Many,
}

/// Why a character may not be in a free text, for the refusal's message (`None`: it may).
fn refused(c: char, next: Option<char>, lines: Lines) -> Option<&'static str> {
    match c {
        '\n' | '\t' if lines == Lines::Many => None,
        '\r' if lines == Lines::Many && next == Some('\n') => None,
        '\n' | '\r' | '\u{2028}' | '\u{2029}' => Some("a line break"),
        c if c.is_control() => Some("the control character"),
        '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' => {
            Some("the bidirectional control character")
        }
        _ => None,
    }
}

/// Checks the characters of the free text `text` given as `field`.
///
/// # Errors
/// [`Rejection::FieldInvalid`] naming `field`, the first character it may not hold and where
/// it is (counting characters from 1): `contains the control character U+001B at character 5`.
pub fn check(field: &str, text: &str, lines: Lines) -> Result<(), Rejection> {
    let mut chars = text.chars().peekable();
    let mut at = 0usize;
    while let Some(c) = chars.next() {
        at += 1;
        if let Some(what) = refused(c, chars.peek().copied(), lines) {
            let rule = match lines {
                Lines::One => "it must be one line of text without control characters",
                Lines::Many => {
                    "only line feeds, tabs and \\r\\n line ends may be among its characters"
                }
            };
            return Err(Rejection::FieldInvalid {
                field: field.to_owned(),
                reason: format!(
                    "contains {what} U+{:04X} at character {at}; {rule}",
                    u32::from(c)
                ),
            });
        }
    }
    Ok(())
}

/// Whether `text` says nothing: only whitespace and invisible characters. A required text that
/// is blank counts as missing.
pub fn is_blank(text: &str) -> bool {
    text.chars().all(|c| {
        c.is_whitespace()
            || matches!(
                c,
                '\u{200B}'..='\u{200F}' | '\u{2060}' | '\u{FEFF}' | '\u{061C}'
            )
    })
}

/// `text` as it may safely be printed on a terminal on one line: every character a one-line
/// text may not hold is escaped (`\n`, `\r`, `\t`, and `\u{1b}` for the others), the rest is
/// as stored. For texts read back from a log, which may hold what the rule refuses now.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(|c| refused(c, None, Lines::One).is_some()) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if refused(c, None, Lines::One).is_some() => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(field: &str, text: &str, lines: Lines) -> String {
        match check(field, text, lines) {
            Err(Rejection::FieldInvalid {
                field: named,
                reason,
            }) => {
                assert_eq!(named, field);
                reason
            }
            other => panic!("{text:?} ({lines:?}) must be refused, got {other:?}"),
        }
    }

    #[test]
    fn plain_text_in_any_script_passes() {
        for text in [
            "路灯不亮",
            "Street light out",
            "",
            "  spaced  ",
            "שלום\u{200F} 1",
            "a\\u{1b}",
        ] {
            assert_eq!(check("title", text, Lines::One), Ok(()), "{text:?}");
            assert_eq!(check("description", text, Lines::Many), Ok(()), "{text:?}");
        }
    }

    #[test]
    fn every_control_character_is_refused_in_one_line_naming_it_and_where() {
        let controls = (0u32..0x20)
            .chain([0x7f])
            .chain(0x80..0xa0)
            .chain([0x2028, 0x2029])
            .chain(0x202a..=0x202e)
            .chain(0x2066..=0x2069);
        for code in controls {
            let c = char::from_u32(code).expect("a char");
            let text = format!("路灯{c}坏了");
            let reason = reason("title", &text, Lines::One);
            assert!(
                reason.contains(&format!("U+{code:04X} at character 3")),
                "{code:#x}: {reason}"
            );
        }
        assert!(reason("title", "a\u{1b}[2J", Lines::One)
            .starts_with("contains the control character U+001B at character 2"));
        assert!(reason("purpose", "\u{0}", Lines::One).contains("U+0000 at character 1"));
        assert!(reason("title", "a\u{202E}b", Lines::One).contains("bidirectional"));
        assert!(reason("title", "two\nlines", Lines::One).contains("a line break U+000A"));
    }

    #[test]
    fn many_lines_allow_line_feeds_tabs_and_crlf_and_nothing_else() {
        assert_eq!(
            check("description", "one\ntwo\r\n\tthree\n", Lines::Many),
            Ok(())
        );
        assert!(
            reason("description", "over\rwritten", Lines::Many).contains("U+000D at character 5")
        );
        assert!(reason("description", "end\r", Lines::Many).contains("U+000D"));
        assert!(reason("note", "a\n\u{1b}[31mred", Lines::Many).contains("U+001B at character 3"));
        assert!(reason("note", "x\u{0}", Lines::Many).contains("U+0000"));
        assert!(reason("note", "x\u{2066}y", Lines::Many).contains("U+2066"));
        assert!(reason("note", "x\u{85}", Lines::Many).contains("U+0085"));
        assert!(reason("note", "x\u{2029}", Lines::Many).contains("U+2029"));
    }

    #[test]
    fn blank_means_nothing_visible() {
        for text in [
            "",
            "   ",
            "\n\t ",
            "\u{3000}",
            "\u{200B}\u{FEFF}",
            "\u{200E}",
        ] {
            assert!(is_blank(text), "{text:?}");
        }
        for text in ["a", " 路 ", "\u{200B}x", "0"] {
            assert!(!is_blank(text), "{text:?}");
        }
    }

    #[test]
    fn escape_shows_what_one_line_refuses_and_keeps_the_rest() {
        assert!(matches!(escape("路灯 ok"), Cow::Borrowed("路灯 ok")));
        assert_eq!(escape("a\u{1b}[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(escape("nul\u{0}"), "nul\\u{0}");
        assert_eq!(escape("x\u{202E}y"), "x\\u{202e}y");
        assert_eq!(escape("l1\r\nl2\tx"), "l1\\r\\nl2\\tx");
        assert_eq!(escape("del\u{7f}c1\u{9b}"), "del\\u{7f}c1\\u{9b}");
        // Whatever the text, the escaped form passes the one-line rule.
        for code in (0u32..0x250).chain(0x2000..0x2070) {
            let c = char::from_u32(code).expect("a char");
            let text = format!("a{c}b");
            assert_eq!(check("t", &escape(&text), Lines::One), Ok(()), "{code:#x}");
        }
    }
}
