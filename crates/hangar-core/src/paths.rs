//! Where hangar keeps things. One root prefix (`HANGAR_ROOT`, `--root`) relocates all of
//! it, so tests run side by side without touching the host's own guests.
//!
//! | what | where |
//! | --- | --- |
//! | host defaults | `etc/hangar/defaults.toml` |
//! | guest configs | `etc/hangar/guests/NAME.toml` (VServer's /etc/vservers/NAME) |
//! | guest data (rootfs) | `var/lib/hangar/guests/NAME/` |
//! | locks | `var/lib/hangar/locks/` |
//! | runtime state, control sockets | `run/hangar/guests/NAME/` |
//! | console and monitor logs | `var/log/hangar/NAME/` |
//! | journals of renames in progress | `var/lib/hangar/renames/OLD.json` |
//! | images (templates) | `var/lib/hangar/images/NAME/` |
//! | download caches | `var/cache/hangar/` (or `HANGAR_CACHE_DIR`) |

use hangar_model::GuestName;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct Paths {
    root: PathBuf,
}

impl Paths {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Paths { root: root.into() }
    }

    /// `--root` if given, else `HANGAR_ROOT`, else `/`.
    pub fn from_env(root: Option<PathBuf>) -> Self {
        let root = root
            .or_else(|| std::env::var_os("HANGAR_ROOT").map(PathBuf::from))
            .unwrap_or_else(|| "/".into());
        Paths::new(root)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
    fn at(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }
    pub fn defaults_file(&self) -> PathBuf {
        self.at("etc/hangar/defaults.toml")
    }
    pub fn configs_dir(&self) -> PathBuf {
        self.at("etc/hangar/guests")
    }
    pub fn config_file(&self, name: &GuestName) -> PathBuf {
        self.configs_dir().join(format!("{name}.toml"))
    }
    pub fn data_root(&self) -> PathBuf {
        self.at("var/lib/hangar/guests")
    }
    pub fn data_dir(&self, name: &GuestName) -> PathBuf {
        self.data_root().join(name.as_str())
    }
    /// Where a build in progress lives until it is complete.
    pub fn build_dir(&self, name: &GuestName) -> PathBuf {
        self.data_root().join(format!(".build-{name}"))
    }
    /// Journals of renames in progress (`ops/rename.rs`), one per guest being renamed.
    pub fn renames_dir(&self) -> PathBuf {
        self.at("var/lib/hangar/renames")
    }
    pub fn rename_journal(&self, old: &GuestName) -> PathBuf {
        self.renames_dir().join(format!("{old}.json"))
    }
    pub fn locks_dir(&self) -> PathBuf {
        self.at("var/lib/hangar/locks")
    }
    pub fn run_dir(&self, name: &GuestName) -> PathBuf {
        self.at("run/hangar/guests").join(name.as_str())
    }
    pub fn log_dir(&self, name: &GuestName) -> PathBuf {
        self.at("var/log/hangar").join(name.as_str())
    }
    pub fn console_log(&self, name: &GuestName) -> PathBuf {
        self.log_dir(name).join("console.log")
    }
    /// Storage pool configs (`hangar pool create`).
    pub fn pools_dir(&self) -> PathBuf {
        self.at("etc/hangar/pools")
    }
    /// Where a pool's filesystem is mounted (and, beside it, its image file).
    pub fn pool_mount(&self, name: &hangar_model::pool::PoolName) -> PathBuf {
        self.at("var/lib/hangar/pools").join(name.as_str())
    }
    pub fn pool_image(&self, name: &hangar_model::pool::PoolName) -> PathBuf {
        self.at("var/lib/hangar/pools").join(format!("{name}.img"))
    }
    /// The image store (`hangar image ...`): `images/NAME/{rootfs,image.toml}`.
    pub fn images_dir(&self) -> PathBuf {
        self.at("var/lib/hangar/images")
    }
    pub fn cache_dir(&self) -> PathBuf {
        std::env::var_os("HANGAR_CACHE_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| self.at("var/cache/hangar"))
    }

    /// The cgroup parent when the defaults file names none: `hangar` for the host's own
    /// root, `hangar-<hash>` for a relocated root, so two roots never share cgroups.
    pub fn default_cgroup_parent(&self) -> String {
        if self.root == Path::new("/") {
            return "hangar".into();
        }
        // FNV-1a: stable across runs and builds, unlike std's hasher.
        let mut h: u64 = 0xcbf29ce484222325;
        for b in self.root.as_os_str().as_encoded_bytes() {
            h = (h ^ u64::from(*b)).wrapping_mul(0x100000001b3);
        }
        format!("hangar-{:08x}", h as u32)
    }
}
