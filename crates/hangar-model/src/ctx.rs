//! Context ids: a guest's stable number (VServer's context), 2–32767.
//!
//! The id names the guest's cgroup and selects its slice of host uids/gids:
//! guest uid `u` is host uid `ctx * 65536 + u`, so ranges of two guests never overlap
//! and never touch the host's own ids (0–65535).

use crate::ModelError;
use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;

/// Size of each guest's id range.
pub const ID_RANGE: u32 = 65536;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct ContextId(u16);

impl ContextId {
    pub const MIN: i64 = 2;
    pub const MAX: i64 = 32767;

    pub fn new(n: i64) -> Result<Self, ModelError> {
        if (Self::MIN..=Self::MAX).contains(&n) {
            Ok(ContextId(n as u16))
        } else {
            Err(ModelError::Context(n))
        }
    }

    pub fn get(self) -> u16 {
        self.0
    }

    /// First host uid/gid of this guest's id range (guest id 0 maps here).
    pub fn id_base(self) -> u32 {
        u32::from(self.0) * ID_RANGE
    }
}

impl fmt::Display for ContextId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl<'de> Deserialize<'de> for ContextId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = i64::deserialize(d)?;
        ContextId::new(n).map_err(serde::de::Error::custom)
    }
}

impl std::str::FromStr for ContextId {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let n: i64 = s.trim().parse().map_err(|_| ModelError::Context(-1))?;
        ContextId::new(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_is_enforced() {
        assert!(ContextId::new(1).is_err());
        assert!(ContextId::new(32768).is_err());
        assert_eq!(ContextId::new(2).unwrap().get(), 2);
        assert_eq!(ContextId::new(32767).unwrap().get(), 32767);
    }

    #[test]
    fn id_ranges_do_not_overlap_the_host_or_each_other() {
        let a = ContextId::new(2).unwrap().id_base();
        let b = ContextId::new(3).unwrap().id_base();
        assert!(a >= ID_RANGE);
        assert_eq!(b - a, ID_RANGE);
        let top = ContextId::new(32767).unwrap().id_base() + ID_RANGE - 1;
        assert!(top < u32::MAX);
    }
}
