//! Storage pools: where guests' root filesystems live (`etc/hangar/pools/NAME.toml`).
//! The `dir` pool named `default` is built in (plain directories, no size limit) and
//! has no file; other pools are made with `hangar pool create`.

use crate::{ModelError, Size};
use serde::{Deserialize, Deserializer, Serialize};
use std::path::PathBuf;

/// A pool's name: the rules of guest names (a path component, short).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct PoolName(String);

/// The built-in pool's name.
pub const DEFAULT_POOL: &str = "default";

impl PoolName {
    pub fn new(s: &str) -> Result<Self, ModelError> {
        crate::GuestName::new(s)
            .map(|n| PoolName(n.as_str().to_string()))
            .map_err(|_| ModelError::Field {
                field: "pool",
                why: format!("{s:?}: a pool name is 1-63 of a-z, 0-9 and -, not starting with -"),
            })
    }
    pub fn default_pool() -> PoolName {
        PoolName(DEFAULT_POOL.to_string())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn is_default(&self) -> bool {
        self.0 == DEFAULT_POOL
    }
}

impl std::fmt::Display for PoolName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for PoolName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        PoolName::new(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// How a pool keeps its guests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PoolDriver {
    /// Plain directories: no size limit, copies for clones.
    Dir,
    /// A btrfs filesystem: a subvolume per guest, size limits by qgroups.
    Btrfs,
}

impl std::fmt::Display for PoolDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PoolDriver::Dir => "dir",
            PoolDriver::Btrfs => "btrfs",
        })
    }
}

/// Where a btrfs pool's filesystem comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum PoolSource {
    /// An image file hangar made (`var/lib/hangar/pools/NAME.img`) of this size, on a
    /// loop device.
    Image { size: Size },
    /// A block device the administrator gave (formatted by `pool create`).
    Device { path: PathBuf },
}

/// `etc/hangar/pools/NAME.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolConfig {
    pub name: PoolName,
    pub driver: PoolDriver,
    pub source: PoolSource,
}

/// The smallest pool image: mkfs.btrfs wants 109M at least.
pub const MIN_IMAGE: u64 = 128 << 20;

impl PoolConfig {
    pub fn from_toml(text: &str) -> Result<Self, ModelError> {
        let p: PoolConfig =
            toml::from_str(text).map_err(|e| ModelError::Toml(e.to_string().replace('\n', " ")))?;
        p.validate()?;
        Ok(p)
    }

    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("pool configs serialise")
    }

    pub fn validate(&self) -> Result<(), ModelError> {
        if self.name.is_default() {
            return Err(ModelError::Field {
                field: "pool",
                why: "\"default\" is the built-in dir pool".into(),
            });
        }
        if self.driver == PoolDriver::Dir {
            return Err(ModelError::Field {
                field: "driver",
                why: "only the built-in pool is a dir pool; a new pool is btrfs".into(),
            });
        }
        match &self.source {
            PoolSource::Image { size } if size.0 < MIN_IMAGE => Err(ModelError::Field {
                field: "size",
                why: format!("{size}: a btrfs pool needs at least 128M"),
            }),
            PoolSource::Device { path } if !path.is_absolute() => Err(ModelError::Field {
                field: "source",
                why: format!("{}: give the device's absolute path", path.display()),
            }),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pool_file_round_trips_and_bad_ones_are_refused() {
        let p = PoolConfig {
            name: PoolName::new("fast").unwrap(),
            driver: PoolDriver::Btrfs,
            source: PoolSource::Image {
                size: Size::parse("1G").unwrap(),
            },
        };
        assert_eq!(PoolConfig::from_toml(&p.to_toml()).unwrap(), p);
        let small = p.to_toml().replace("\"1G\"", "\"1M\"");
        assert!(
            PoolConfig::from_toml(&small)
                .unwrap_err()
                .to_string()
                .contains("128M")
        );
        assert!(PoolName::new("../x").is_err());
        assert!(PoolConfig::from_toml(&p.to_toml().replace("fast", "default")).is_err());
        assert!(PoolConfig::from_toml(&p.to_toml().replace("btrfs", "dir")).is_err());
        let dev = "name = \"d\"\ndriver = \"btrfs\"\n[source.device]\npath = \"sdb\"\n";
        assert!(
            PoolConfig::from_toml(dev)
                .unwrap_err()
                .to_string()
                .contains("absolute")
        );
    }
}

/// A snapshot's name: the rules of guest names (`hangar snapshot create web before-upgrade`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct SnapshotName(String);

impl SnapshotName {
    pub fn new(s: &str) -> Result<Self, ModelError> {
        crate::GuestName::new(s)
            .map(|n| SnapshotName(n.as_str().to_string()))
            .map_err(|_| ModelError::Field {
                field: "snapshot",
                why: format!(
                    "{s:?}: a snapshot name is 1-63 of a-z, 0-9 and -, not starting with -"
                ),
            })
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for SnapshotName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        SnapshotName::new(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

impl std::fmt::Display for SnapshotName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
