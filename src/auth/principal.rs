use serde_json::{Map, Value};

/// A caller whose credential has been verified: the only source of identity for a token.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    /// The verified subject (`sub` of a JWT, the identity header of a gateway).
    pub subject: String,
    /// The verified claims the policies can read: of a JWT, those that the policies of the
    /// authenticator's apps name (the rest are checked or skipped, never kept); of a gateway,
    /// its configured claim headers.
    pub claims: Map<String, Value>,
}

impl Principal {
    /// The claim as text, for templates: strings as they are, numbers and booleans in their JSON
    /// form; arrays, objects and null have no text.
    pub fn claim_text(&self, name: &str) -> Option<String> {
        if name == "sub" {
            return Some(self.subject.clone());
        }
        match self.claims.get(name)? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    /// Whether the claim equals `wanted`, or contains it: as an element of an array, or as one
    /// item of a comma- or space-separated list (`"agent,admin"`, an OAuth `scope`).
    pub fn claim_contains(&self, name: &str, wanted: &str) -> bool {
        let value = if name == "sub" {
            return self.subject == wanted;
        } else {
            self.claims.get(name)
        };
        match value {
            Some(Value::String(s)) => {
                s == wanted
                    || s.split([',', ' '])
                        .map(str::trim)
                        .any(|item| item == wanted)
            }
            Some(Value::Array(items)) => items.iter().any(|v| v.as_str() == Some(wanted)),
            Some(Value::Bool(b)) => b.to_string() == wanted,
            Some(Value::Number(n)) => n.to_string() == wanted,
            _ => false,
        }
    }
}
