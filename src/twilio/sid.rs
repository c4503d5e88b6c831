//! Twilio SIDs: two upper-case letters naming the kind of resource, then 32 hex digits.
//!
//! Each kind is its own type, so an API Key SID can never be passed where an Account SID belongs.

use std::fmt;
use std::marker::PhantomData;

use serde::{Serialize, Serializer};

/// The kind of resource a SID names.
pub trait SidKind {
    /// The two-letter prefix, e.g. `AC`.
    const PREFIX: &'static str;
    /// Human-readable name used in error messages.
    const NAME: &'static str;
}

macro_rules! sid_kinds {
    ($($kind:ident => $prefix:literal, $name:literal;)*) => {
        $(
            #[doc = concat!("Marker for ", $name, " SIDs (`", $prefix, "…`).")]
            #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
            pub enum $kind {}
            impl SidKind for $kind {
                const PREFIX: &'static str = $prefix;
                const NAME: &'static str = $name;
            }
        )*
    };
}

sid_kinds! {
    Account => "AC", "account";
    ApiKey => "SK", "API key";
    Application => "AP", "TwiML application";
    Credential => "CR", "push credential";
    Service => "IS", "service";
    Role => "RL", "role";
    Workspace => "WS", "TaskRouter workspace";
    Worker => "WK", "TaskRouter worker";
}

/// Why a string is not a SID of the expected kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("is not a valid {kind} SID (expected {prefix} followed by 32 hex digits)")]
pub struct SidError {
    kind: &'static str,
    prefix: &'static str,
}

/// A validated SID of kind `K`.
pub struct Sid<K> {
    value: Box<str>,
    kind: PhantomData<K>,
}

impl<K: SidKind> Sid<K> {
    /// Parses `value`, which must be `K::PREFIX` followed by exactly 32 hex digits.
    pub fn parse(value: &str) -> Result<Self, SidError> {
        let valid = value.len() == 34
            && value.starts_with(K::PREFIX)
            && value[2..].bytes().all(|b| b.is_ascii_hexdigit());
        if valid {
            Ok(Self {
                value: value.into(),
                kind: PhantomData,
            })
        } else {
            Err(SidError {
                kind: K::NAME,
                prefix: K::PREFIX,
            })
        }
    }
}

impl<K> Sid<K> {
    pub fn as_str(&self) -> &str {
        &self.value
    }
}

impl<K> Clone for Sid<K> {
    fn clone(&self) -> Self {
        Self {
            value: self.value.clone(),
            kind: PhantomData,
        }
    }
}

impl<K> PartialEq for Sid<K> {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}

impl<K> Eq for Sid<K> {}

impl<K> fmt::Debug for Sid<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.value, f)
    }
}

impl<K> fmt::Display for Sid<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.value)
    }
}

impl<K> Serialize for Sid<K> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_prefix_and_32_hex_digits() {
        let sid = Sid::<Account>::parse("AC0123456789abcdef0123456789ABCDEF").unwrap();
        assert_eq!(sid.as_str(), "AC0123456789abcdef0123456789ABCDEF");
    }

    #[test]
    fn rejects_wrong_prefix_length_or_digits() {
        for bad in [
            "",
            "AC",
            "SK0123456789abcdef0123456789abcdef",
            "ac0123456789abcdef0123456789abcdef",
            "AC0123456789abcdef0123456789abcde",
            "AC0123456789abcdef0123456789abcdef0",
            "AC0123456789abcdef0123456789abcdeg",
            "AC0123456789abcdef0123456789abcdé",
        ] {
            assert!(Sid::<Account>::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn error_names_the_kind_and_prefix() {
        let err = Sid::<Credential>::parse("nope").unwrap_err();
        assert_eq!(
            err.to_string(),
            "is not a valid push credential SID (expected CR followed by 32 hex digits)"
        );
    }
}
