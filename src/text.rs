//! Client-chosen text in messages and log fields.

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
}
