//! Templates over verified claims: `"{sub}"`, `"agent_{sub}"`, `"{email|hash}"`.

use crate::auth::Principal;

/// A parsed template. `{name}` inserts a claim, `{name|hash}` its SHA-256 as lowercase hex
/// (a stable, collision-free transform for subjects that break Twilio's identity rules).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Text(String),
    Claim { name: String, hash: bool },
}

impl Template {
    pub fn parse(source: &str) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut rest = source;
        while let Some(open) = rest.find(['{', '}']) {
            if rest.as_bytes()[open] == b'}' {
                return Err(format!("unmatched '}}' in template {source:?}"));
            }
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_owned()));
            }
            let after = &rest[open + 1..];
            let close = after
                .find('}')
                .ok_or_else(|| format!("unclosed '{{' in template {source:?}"))?;
            let inner = &after[..close];
            let (name, hash) = match inner.split_once('|') {
                None => (inner, false),
                Some((name, "hash")) => (name, true),
                Some((_, filter)) => {
                    return Err(format!(
                        "unknown filter {filter:?} in template {source:?} (only \"hash\")"
                    ));
                }
            };
            let valid_name = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
            if !valid_name {
                return Err(format!(
                    "invalid claim name {name:?} in template {source:?}"
                ));
            }
            parts.push(Part::Claim {
                name: name.to_owned(),
                hash,
            });
            rest = &after[close + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        Ok(Self { parts })
    }

    pub fn parts(&self) -> &[Part] {
        &self.parts
    }

    /// The claims the template reads.
    pub fn claims(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|part| match part {
            Part::Claim { name, .. } => Some(name.as_str()),
            Part::Text(_) => None,
        })
    }

    /// Renders the template; `Err` names the first claim the caller does not have.
    pub fn render(&self, principal: &Principal) -> Result<String, String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Claim { name, hash } => {
                    let value = render_claim(principal, name, *hash).ok_or_else(|| name.clone())?;
                    // A template that starts with a claim ("{sub}") keeps the claim's text.
                    if out.is_empty() {
                        out = value;
                    } else {
                        out.push_str(&value);
                    }
                }
            }
        }
        Ok(out)
    }
}

/// Renders one claim part, for callers that handle text parts themselves.
pub(crate) fn render_claim(principal: &Principal, name: &str, hash: bool) -> Option<String> {
    let value = principal.claim_text(name)?;
    Some(if hash {
        crate::twilio::sha256_hex(value.as_bytes())
    } else {
        value
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn principal() -> Principal {
        Principal {
            subject: "auth0|5f3a".into(),
            claims: json!({"sub": "auth0|5f3a", "email": "a@example.com", "n": 7, "list": ["x"]})
                .as_object()
                .unwrap()
                .clone(),
        }
    }

    #[test]
    fn renders_text_and_claims() {
        let t = Template::parse("agent_{sub}:{email}/{n}").unwrap();
        assert_eq!(
            t.render(&principal()).unwrap(),
            "agent_auth0|5f3a:a@example.com/7"
        );
        assert_eq!(t.claims().collect::<Vec<_>>(), ["sub", "email", "n"]);
    }

    #[test]
    fn hash_filter_gives_sha256_hex() {
        let t = Template::parse("{sub|hash}").unwrap();
        // printf 'auth0|5f3a' | sha256sum
        assert_eq!(
            t.render(&principal()).unwrap(),
            "2f48368b2c036f878146360045bea9d627c6d30caae16a207b6cacc9f55c4c1a"
        );
    }

    #[test]
    fn missing_or_non_text_claims_are_named() {
        assert_eq!(
            Template::parse("{nope}").unwrap().render(&principal()),
            Err("nope".to_owned())
        );
        assert_eq!(
            Template::parse("{list}").unwrap().render(&principal()),
            Err("list".to_owned())
        );
    }

    #[test]
    fn rejects_malformed_templates() {
        for bad in ["{", "}", "{}", "{sub", "a}b", "{sub|upper}", "{a b}"] {
            assert!(Template::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
