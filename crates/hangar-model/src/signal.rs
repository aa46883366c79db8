//! Signal names as a config file spells them (`SIGPWR`, `SIGRTMIN+3`, `15`).
//!
//! Numbers are Linux's (x86-64 and aarch64 agree on these). SIGRTMIN is the C library's
//! value, 34, because that is what systemd and sysvinit inside a guest mean by it.

use crate::ModelError;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

const NAMES: &[(&str, i32)] = &[
    ("HUP", 1),
    ("INT", 2),
    ("QUIT", 3),
    ("KILL", 9),
    ("USR1", 10),
    ("USR2", 12),
    ("TERM", 15),
    ("CONT", 18),
    ("STOP", 19),
    ("WINCH", 28),
    ("PWR", 30),
];
const RTMIN: i32 = 34;
const RTMAX: i32 = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signal(i32);

impl Signal {
    pub const TERM: Signal = Signal(15);
    pub const KILL: Signal = Signal(9);

    pub fn parse(s: &str) -> Result<Self, ModelError> {
        let err = || ModelError::Signal(s.to_string());
        let t = s.trim().to_ascii_uppercase();
        if let Ok(n) = t.parse::<i32>() {
            return if (1..=RTMAX).contains(&n) {
                Ok(Signal(n))
            } else {
                Err(err())
            };
        }
        let t = t.strip_prefix("SIG").unwrap_or(&t);
        if let Some(rest) = t.strip_prefix("RTMIN") {
            let off: i32 = if rest.is_empty() {
                0
            } else {
                rest.strip_prefix('+')
                    .and_then(|r| r.parse().ok())
                    .ok_or_else(err)?
            };
            return if (0..=RTMAX - RTMIN).contains(&off) {
                Ok(Signal(RTMIN + off))
            } else {
                Err(err())
            };
        }
        NAMES
            .iter()
            .find(|(n, _)| *n == t)
            .map(|&(_, v)| Signal(v))
            .ok_or_else(err)
    }

    pub fn number(self) -> i32 {
        self.0
    }

    /// The signal the kernel reported by number (a wait status), for messages.
    pub fn from_number(n: i32) -> Signal {
        Signal(n)
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match NAMES.iter().find(|(_, v)| *v == self.0) {
            Some((n, _)) => write!(f, "SIG{n}"),
            None if self.0 == RTMIN => f.write_str("SIGRTMIN"),
            None if self.0 > RTMIN => write!(f, "SIGRTMIN+{}", self.0 - RTMIN),
            None => write!(f, "{}", self.0),
        }
    }
}

impl Serialize for Signal {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Signal {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Signal::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_shutdown_signals_parse() {
        assert_eq!(Signal::parse("SIGUSR2").unwrap().number(), 12);
        assert_eq!(Signal::parse("pwr").unwrap().number(), 30);
        assert_eq!(Signal::parse("SIGRTMIN+3").unwrap().number(), 37);
        assert_eq!(Signal::parse("15").unwrap(), Signal::TERM);
        assert_eq!(
            Signal::parse("SIGRTMIN+3").unwrap().to_string(),
            "SIGRTMIN+3"
        );
    }

    #[test]
    fn unknown_signals_are_refused() {
        for s in ["SIGFOO", "0", "65", "RTMIN+99", ""] {
            assert!(Signal::parse(s).is_err(), "{s}");
        }
    }
}
