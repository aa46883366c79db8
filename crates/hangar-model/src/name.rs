//! Guest names: `[a-z0-9][a-z0-9-]{0,62}`, safe as a path component and an interface prefix.

use crate::ModelError;
use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;

/// A validated guest name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct GuestName(String);

impl GuestName {
    pub fn new(s: &str) -> Result<Self, ModelError> {
        let b = s.as_bytes();
        let ok_char = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-';
        let valid = !b.is_empty() && b.len() <= 63 && b[0] != b'-' && b.iter().all(ok_char);
        if valid {
            Ok(GuestName(s.to_string()))
        } else {
            Err(ModelError::Name(s.to_string()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for GuestName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for GuestName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        GuestName::new(&s).map_err(serde::de::Error::custom)
    }
}

impl std::str::FromStr for GuestName {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        GuestName::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_names_are_accepted() {
        for n in ["a", "web", "dns-1", "0day", &"x".repeat(63)] {
            assert!(GuestName::new(n).is_ok(), "{n}");
        }
    }

    #[test]
    fn bad_names_are_refused() {
        for n in [
            "",
            "../x",
            "Web",
            "-a",
            "a b",
            "a/b",
            "a.b",
            "é",
            &"x".repeat(64),
        ] {
            assert_eq!(GuestName::new(n), Err(ModelError::Name(n.to_string())));
        }
    }
}
