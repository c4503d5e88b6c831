//! Video room patterns: `*` matches any run of characters, `{claim}` inserts a verified claim
//! literally (a `*` inside a claim value is not a wildcard).

use crate::auth::Principal;

use super::template::{Part, Template, render_claim};

/// Twilio's limit on room names, in bytes.
pub const MAX_ROOM_BYTES: usize = 128;

/// The rooms an app's video grant allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rooms {
    /// `["*"]`: any room, and a token without `room` (valid for every room) by default.
    Any,
    Patterns(Vec<RoomPattern>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomPattern {
    template: Template,
}

/// What a video grant holds when the caller names no room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DefaultRoom {
    /// No `room`: the token is valid for every room (`rooms = ["*"]`).
    Every,
    /// The one room a single literal pattern names.
    Room(String),
    /// The policy cannot choose.
    CallerMustChoose,
}

#[derive(Debug, PartialEq, Eq)]
enum Token {
    Text(String),
    Star,
}

impl Rooms {
    /// `Err` holds the problem, and the index of the pattern that has it.
    pub fn parse(patterns: &[String]) -> Result<Self, (Option<usize>, String)> {
        if patterns.is_empty() {
            let message = "must name at least one room pattern (\"*\" allows any room)";
            return Err((None, message.into()));
        }
        if patterns.len() == 1 && patterns[0] == "*" {
            return Ok(Rooms::Any);
        }
        patterns
            .iter()
            .enumerate()
            .map(|(i, p)| match Template::parse(p) {
                Ok(template) => Ok(RoomPattern { template }),
                Err(message) => Err((Some(i), message)),
            })
            .collect::<Result<_, _>>()
            .map(Rooms::Patterns)
    }

    /// Claims the patterns read, each with the index of its pattern.
    pub fn claims(&self) -> Vec<(usize, &str)> {
        match self {
            Rooms::Any => Vec::new(),
            Rooms::Patterns(patterns) => patterns
                .iter()
                .enumerate()
                .flat_map(|(i, p)| p.template.claims().map(move |claim| (i, claim)))
                .collect(),
        }
    }

    /// Whether `room` is allowed for this caller.
    pub fn allows(&self, room: &str, principal: &Principal) -> bool {
        match self {
            Rooms::Any => true,
            Rooms::Patterns(patterns) => patterns
                .iter()
                .filter_map(|p| p.tokens(principal))
                .any(|tokens| glob_match(&tokens, room)),
        }
    }

    /// The room a token gets when the caller names none.
    pub fn default_room(&self, principal: &Principal) -> DefaultRoom {
        let Rooms::Patterns(patterns) = self else {
            return DefaultRoom::Every;
        };
        let [only] = patterns.as_slice() else {
            return DefaultRoom::CallerMustChoose;
        };
        let mut room = String::new();
        for token in only.tokens(principal).unwrap_or_default() {
            match token {
                Token::Text(text) => room.push_str(&text),
                Token::Star => return DefaultRoom::CallerMustChoose,
            }
        }
        if room.is_empty() {
            DefaultRoom::CallerMustChoose
        } else {
            DefaultRoom::Room(room)
        }
    }
}

impl RoomPattern {
    /// The pattern with claims filled in; `None` when the caller lacks a claim it needs.
    fn tokens(&self, principal: &Principal) -> Option<Vec<Token>> {
        let mut tokens = Vec::new();
        for part in self.template.parts() {
            match part {
                Part::Text(text) => {
                    for (i, piece) in text.split('*').enumerate() {
                        if i > 0 {
                            tokens.push(Token::Star);
                        }
                        if !piece.is_empty() {
                            tokens.push(Token::Text(piece.to_owned()));
                        }
                    }
                }
                Part::Claim { name, hash } => {
                    tokens.push(Token::Text(render_claim(principal, name, *hash)?));
                }
            }
        }
        Some(tokens)
    }
}

/// Glob match where only `Star` is special: text runs must appear in order, the first anchored
/// at the start unless a star precedes it, the last at the end unless a star follows it.
fn glob_match(tokens: &[Token], subject: &str) -> bool {
    // Merge adjacent text runs (a claim next to literal text) so anchoring is exact.
    let mut runs: Vec<Option<String>> = Vec::new(); // None = star
    for token in tokens {
        match (token, runs.last_mut()) {
            (Token::Text(t), Some(Some(last))) => last.push_str(t),
            (Token::Text(t), _) => runs.push(Some(t.clone())),
            (Token::Star, _) => runs.push(None),
        }
    }
    let mut rest = subject;
    let last = runs.len().saturating_sub(1);
    let mut after_star = false;
    for (i, run) in runs.iter().enumerate() {
        match run {
            None => after_star = true,
            Some(text) if i == last && after_star => return rest.ends_with(text.as_str()),
            Some(text) if i == last => return rest == text,
            Some(text) if after_star => match rest.find(text.as_str()) {
                Some(at) => rest = &rest[at + text.len()..],
                None => return false,
            },
            Some(text) => match rest.strip_prefix(text.as_str()) {
                Some(r) => rest = r,
                None => return false,
            },
        }
    }
    after_star || rest.is_empty()
}

#[cfg(test)]
mod tests {
    use serde_json::Map;

    use super::*;

    fn alice() -> Principal {
        Principal {
            subject: "alice".into(),
            claims: Map::new(),
        }
    }

    fn rooms(patterns: &[&str]) -> Rooms {
        Rooms::parse(&patterns.iter().map(|p| p.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn star_alone_allows_every_room_and_defaults_to_all() {
        let r = rooms(&["*"]);
        assert!(r.allows("anything", &alice()));
        assert_eq!(r.default_room(&alice()), DefaultRoom::Every);
    }

    #[test]
    fn patterns_match_with_wildcards_and_claims() {
        let r = rooms(&["support-*", "user-{sub}", "*-mid-*", "exact"]);
        let p = alice();
        for ok in [
            "support-",
            "support-1",
            "user-alice",
            "a-mid-b",
            "-mid-",
            "exact",
        ] {
            assert!(r.allows(ok, &p), "{ok} refused");
        }
        for bad in [
            "support",
            "user-bob",
            "user-alice2",
            "xuser-alice",
            "exactly",
            "mid",
            "",
        ] {
            assert!(!r.allows(bad, &p), "{bad} allowed");
        }
    }

    #[test]
    fn a_star_in_a_claim_value_is_literal() {
        let r = rooms(&["user-{sub}"]);
        let p = Principal {
            subject: "*".into(),
            claims: Map::new(),
        };
        assert!(r.allows("user-*", &p));
        assert!(!r.allows("user-bob", &p));
    }

    #[test]
    fn default_room_only_for_exactly_one_literal_pattern() {
        assert_eq!(
            rooms(&["user-{sub}"]).default_room(&alice()),
            DefaultRoom::Room("user-alice".into())
        );
        for patterns in [&["support-*"][..], &["a", "b"], &["{missing}"]] {
            assert_eq!(
                rooms(patterns).default_room(&alice()),
                DefaultRoom::CallerMustChoose,
                "{patterns:?}"
            );
        }
    }

    #[test]
    fn pattern_with_missing_claim_matches_nothing() {
        assert!(!rooms(&["x-{email}"]).allows("x-", &alice()));
    }

    #[test]
    fn empty_pattern_list_is_rejected() {
        assert!(Rooms::parse(&[]).is_err());
    }
}
