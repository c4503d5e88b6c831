//! Small pure helpers for text: client-chosen text in messages and log fields, JSON escaping.

use std::borrow::Cow;

/// Longest client-chosen text, in characters, repeated in a message or log field.
pub const MAX_ECHOED_CHARS: usize = 64;

/// Text a client chose (an app name in a path, an unknown field, a platform), cut to
/// [`MAX_ECHOED_CHARS`] characters for a log field or a message, so that one request cannot
/// write a megabyte of log.
pub fn truncate(s: &str) -> Cow<'_, str> {
    match s.char_indices().nth(MAX_ECHOED_CHARS) {
        Some((at, _)) => format!("{}…", &s[..at]).into(),
        None => s.into(),
    }
}

/// Whether `s` holds a byte a JSON string must escape: `"`, `\\` or a control character.
/// Checking every byte without an early exit lets the compiler test 16 at a time.
pub fn needs_json_escape(s: &str) -> bool {
    let escaped = |b: u8| (b < 0x20) | (b == b'"') | (b == b'\\');
    s.bytes().fold(false, |any, b| any | escaped(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_over_64_characters_is_cut_on_a_character_boundary() {
        let short = "é".repeat(64);
        assert_eq!(truncate(&short), short.as_str());
        let long = "é".repeat(65);
        assert_eq!(truncate(&long), format!("{short}…"));
    }

    #[test]
    fn json_escapes_are_found_anywhere() {
        assert!(!needs_json_escape("eyJhbGciOi.JIUzI1NiJ9-_"));
        for bad in ["\"", "\\", "\n", "\u{1f}", "ok\u{0}"] {
            assert!(
                needs_json_escape(&format!("{}{bad}", "a".repeat(40))),
                "{bad:?}"
            );
        }
        assert!(!needs_json_escape("\u{7f}é"));
    }
}
