//! Sizes as people write them: `512M`, `2G`, `1.5G`, `20480K`, or plain bytes.

use crate::ModelError;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// A byte count parsed from a human size (binary units: 1K = 1024).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Size(pub u64);

impl Size {
    pub fn parse(s: &str) -> Result<Self, ModelError> {
        let err = || ModelError::Size(s.to_string());
        let t = s.trim();
        let t = t.strip_suffix(['B', 'b']).unwrap_or(t);
        let t = t.strip_suffix(['i']).unwrap_or(t);
        let (num, mult) = match t.chars().last() {
            Some(c) if c.is_ascii_alphabetic() => {
                let m: u64 = match c.to_ascii_uppercase() {
                    'K' => 1 << 10,
                    'M' => 1 << 20,
                    'G' => 1 << 30,
                    'T' => 1 << 40,
                    _ => return Err(err()),
                };
                (&t[..t.len() - 1], m)
            }
            _ => (t, 1),
        };
        if num.is_empty() || num.starts_with(['-', '+']) {
            return Err(err());
        }
        // Whole numbers exactly (above 2^53 an f64 would round them), fractions as f64.
        if let Ok(n) = num.parse::<u64>() {
            return n
                .checked_mul(mult)
                .filter(|&bytes| bytes <= 1 << 62)
                .map(Size)
                .ok_or_else(err);
        }
        let v: f64 = num.parse().map_err(|_| err())?;
        let bytes = v * mult as f64;
        if !bytes.is_finite() || bytes > (1u64 << 62) as f64 {
            return Err(err());
        }
        Ok(Size(bytes.round() as u64))
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let units = [
            (1u64 << 40, 'T'),
            (1 << 30, 'G'),
            (1 << 20, 'M'),
            (1 << 10, 'K'),
        ];
        for (m, u) in units {
            if self.0 >= m && self.0 % m == 0 {
                return write!(f, "{}{}", self.0 / m, u);
            }
        }
        write!(f, "{}", self.0)
    }
}

impl Serialize for Size {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        // A number is checked as the same number written as a string would be.
        let s = match Raw::deserialize(d)? {
            Raw::N(n) => n.to_string(),
            Raw::S(s) => s,
        };
        Size::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl std::str::FromStr for Size {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Size::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_people_write_are_understood() {
        assert_eq!(Size::parse("512M").unwrap().0, 512 << 20);
        assert_eq!(Size::parse("2G").unwrap().0, 2 << 30);
        assert_eq!(Size::parse("1.5G").unwrap().0, 3 << 29);
        assert_eq!(Size::parse("20480k").unwrap().0, 20 << 20);
        assert_eq!(Size::parse("64MiB").unwrap().0, 64 << 20);
        assert_eq!(Size::parse("4096").unwrap().0, 4096);
    }

    #[test]
    fn nonsense_sizes_are_refused() {
        for s in ["", "M", "-1G", "12X", "abc", "1e30G"] {
            assert!(Size::parse(s).is_err(), "{s}");
        }
    }

    #[test]
    fn whole_numbers_are_exact_and_bounded_as_strings_and_as_toml_integers() {
        // Found by fuzz/ (guest_config): `memory.max = 9007199254740993` came back from
        // the saved config one byte smaller, and `memory.max = 9223372036854775807`
        // was accepted but its saved config was refused.
        #[derive(Debug, Deserialize)]
        struct T {
            s: Size,
        }
        let odd = (1u64 << 53) + 1;
        assert_eq!(Size::parse(&odd.to_string()).unwrap().0, odd);
        assert_eq!(toml::from_str::<T>(&format!("s = {odd}")).unwrap().s.0, odd);
        assert_eq!(Size::parse("4194304T").unwrap().0, 1 << 62);
        for too_big in ["4194305T", "9223372036854775807", "18446744073709551616"] {
            assert!(Size::parse(too_big).is_err(), "{too_big}");
        }
        assert!(toml::from_str::<T>("s = 9223372036854775807").is_err());
    }

    #[test]
    fn display_round_trips() {
        for s in ["512M", "2G", "20K", "1000"] {
            assert_eq!(Size::parse(s).unwrap().to_string(), s);
        }
    }
}
