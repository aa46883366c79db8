//! Storage pools: where guests' root filesystems live (`etc/hangar/pools/NAME.toml`).
//! The `dir` pool named `default` is built in (plain directories, no size limit) and
//! has no file; other pools are made with `hangar pool create`: `btrfs` (one filesystem,
//! a subvolume per guest) or `image` (an ext4 image file per guest).

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
    /// An ext4 filesystem per guest, in an image file of its own on a loop device: its
    /// size is the guest's disk.
    Image,
}

impl PoolDriver {
    /// The driver of a new pool, as `hangar pool create --driver` names it.
    pub fn parse(s: &str) -> Result<Self, ModelError> {
        match s {
            "btrfs" => Ok(PoolDriver::Btrfs),
            "image" => Ok(PoolDriver::Image),
            _ => Err(ModelError::Field {
                field: "driver",
                why: format!(
                    "{s:?}: a new pool is btrfs or image (only the built-in pool is a dir pool)"
                ),
            }),
        }
    }
}

impl std::fmt::Display for PoolDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PoolDriver::Dir => "dir",
            PoolDriver::Btrfs => "btrfs",
            PoolDriver::Image => "image",
        })
    }
}

/// Where a pool's storage comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum PoolSource {
    /// btrfs: an image file hangar made (`var/lib/hangar/pools/NAME.img`) of this size,
    /// on a loop device.
    Image { size: Size },
    /// btrfs: a block device the administrator gave (formatted by `pool create`).
    Device { path: PathBuf },
    /// image: the directory holding the guests' image files (None: hangar's own,
    /// `var/lib/hangar/pools/NAME` under the root).
    Directory {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        path: Option<PathBuf>,
    },
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

/// The disk of a guest in an image pool when neither the guest nor the host defaults
/// give a `disk.size` (sparse: it takes on the host what the guest writes).
pub const IMAGE_DISK_DEFAULT: Size = Size(10 << 30);

/// The smallest disk of a guest in an image pool: ext4's journal takes 4M of it, a
/// 16M disk leaves the guest 11M.
pub const IMAGE_DISK_MIN: Size = Size(16 << 20);

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
                why: "only the built-in pool is a dir pool; a new pool is btrfs or image".into(),
            });
        }
        match (&self.source, self.driver) {
            (PoolSource::Image { size }, PoolDriver::Btrfs) if size.0 < MIN_IMAGE => {
                Err(ModelError::Field {
                    field: "size",
                    why: format!("{size}: a btrfs pool needs at least 128M"),
                })
            }
            (PoolSource::Device { path }, PoolDriver::Btrfs)
            | (PoolSource::Directory { path: Some(path) }, PoolDriver::Image)
                if !path.is_absolute() =>
            {
                Err(ModelError::Field {
                    field: "source",
                    why: format!("{}: give an absolute path", path.display()),
                })
            }
            (PoolSource::Image { .. } | PoolSource::Device { .. }, PoolDriver::Btrfs)
            | (PoolSource::Directory { .. }, PoolDriver::Image) => Ok(()),
            (_, PoolDriver::Image) => Err(ModelError::Field {
                field: "source",
                why: "an image pool's source is the directory of its images (--source DIR); \
                      each guest's size is its own (--disk-size at build)"
                    .into(),
            }),
            (_, _) => Err(ModelError::Field {
                field: "source",
                why: "a btrfs pool is on an image file (--size) or a block device (--source)"
                    .into(),
            }),
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
        let images = PoolConfig {
            name: PoolName::new("imgs").unwrap(),
            driver: PoolDriver::Image,
            source: PoolSource::Directory { path: None },
        };
        assert_eq!(PoolConfig::from_toml(&images.to_toml()).unwrap(), images);
        let elsewhere = PoolConfig {
            source: PoolSource::Directory {
                path: Some("/srv/images".into()),
            },
            ..images.clone()
        };
        assert_eq!(
            PoolConfig::from_toml(&elsewhere.to_toml()).unwrap(),
            elsewhere
        );
        let relative = elsewhere.to_toml().replace("/srv/images", "srv");
        assert!(PoolConfig::from_toml(&relative).is_err());
        // A driver with the other driver's source.
        let mixed = images.to_toml().replace("image\"", "btrfs\"");
        assert!(PoolConfig::from_toml(&mixed).is_err());
        let mixed = p.to_toml().replace("btrfs", "image");
        assert!(PoolConfig::from_toml(&mixed).is_err());
        assert_eq!(PoolDriver::parse("image").unwrap(), PoolDriver::Image);
        assert!(PoolDriver::parse("dir").is_err());
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
