//! Small helpers for text: client-chosen text in messages and log fields, JSON escaping, random
//! ids.

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

/// A fresh random id: a UUID v4 as 32 lowercase hex digits, written into one exact allocation
/// (its `Display` grows a `String` twice).
pub fn random_id() -> String {
    uuid::Uuid::new_v4()
        .simple()
        .encode_lower(&mut uuid::Uuid::encode_buffer())
        .to_owned()
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
    fn a_random_id_is_a_fresh_uuid_v4_in_32_lowercase_hex_digits() {
        let (a, b) = (random_id(), random_id());
        assert_ne!(a, b);
        for id in [&a, &b] {
            assert_eq!(id.len(), 32, "{id}");
            assert!(
                id.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')),
                "{id}"
            );
            let uuid = uuid::Uuid::parse_str(id).unwrap();
            assert_eq!(uuid.get_version_num(), 4, "{id}");
            assert_eq!(uuid.simple().to_string(), *id);
        }
    }

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
