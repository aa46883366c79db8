//! Storage pools: where guests' root filesystems live.
//!
//! Every guest's data directory (`rootfs/` and what goes with it) is a *volume* of its
//! pool: a plain directory in the built-in `default` pool (`var/lib/hangar/guests/NAME`,
//! where guests always lived), a btrfs subvolume in a btrfs pool
//! (`var/lib/hangar/pools/POOL/guests/NAME`), which a qgroup can limit (`disk.size`),
//! or in an image pool an ext4 filesystem of its own, in an image file, mounted at
//! `var/lib/hangar/pools/POOL/guests/NAME` (its size is the guest's disk).
//! A build makes its volume as `.build-NAME` and renames it into place when complete
//! ([`Pool::rename_volume`]); the reservations of a build in progress (context id, NIC
//! addresses) stay in `var/lib/hangar/guests/.build-NAME` whatever the pool, where the
//! allocators look. A pool (an image pool: a volume) is mounted again whenever it is
//! used (after a host reboot nothing is).

pub mod btrfs;
pub mod image;

use crate::paths::Paths;
use crate::{CoreError, Host, Result};
use hangar_model::pool::{PoolConfig, PoolDriver, PoolName, PoolSource, SnapshotName};
use hangar_model::{GuestConfig, GuestName, Size};
use std::path::PathBuf;

/// A pool, ready to use.
#[derive(Debug, Clone)]
pub enum Pool {
    /// The built-in pool: plain directories under `var/lib/hangar/guests`.
    Dir { guests: PathBuf },
    /// A btrfs filesystem mounted at `mount`.
    Btrfs { cfg: PoolConfig, mount: PathBuf },
    /// An ext4 image file per guest.
    Image {
        cfg: PoolConfig,
        images: image::Images,
    },
}

/// A guest volume's use of its pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub used: u64,
    pub limit: Option<u64>,
}

/// Run a tool (`program args...`); its stdout, or an error naming the command and its stderr.
pub(crate) fn run(program: &str, args: &[&std::ffi::OsStr]) -> Result<String> {
    run_status(program, args, &[0])
}

/// [`run`], for a tool whose exit codes `ok` all mean success.
pub(crate) fn run_status(program: &str, args: &[&std::ffi::OsStr], ok: &[i32]) -> Result<String> {
    let out = std::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| {
            CoreError::Invalid(format!(
                "cannot run {program} ({e}): scripts/setup-host.sh installs what hangar uses"
            ))
        })?;
    if !out.status.code().is_some_and(|c| ok.contains(&c)) {
        let line: Vec<String> = args.iter().map(|a| a.to_string_lossy().into()).collect();
        return Err(CoreError::Invalid(format!(
            "{program} {} failed: {}",
            line.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Copy the tree `src` into `dst` (made if missing): `cp -a`, with reflinks where the
/// filesystem has them.
fn copy_tree(src: &std::path::Path, dst: &std::path::Path) -> Result<()> {
    let from = src.join(".");
    run(
        "cp",
        &[
            "-a".as_ref(),
            "--reflink=auto".as_ref(),
            from.as_os_str(),
            dst.as_os_str(),
        ],
    )
    .map(drop)
}

/// The filesystem mounted at `at` now, if any: (type, source).
pub(crate) fn mounted_fs(at: &std::path::Path) -> Option<(String, String)> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let at = at.to_string_lossy();
    // The last mount at a place is the one seen there.
    info.lines().rev().find_map(|l| {
        let f: Vec<&str> = l.split(' ').collect();
        let mut after = f.iter().skip_while(|x| **x != "-").skip(1);
        let (fstype, source) = (after.next()?, after.next()?);
        (f.get(4) == Some(&&*at)).then(|| (fstype.to_string(), source.to_string()))
    })
}

/// Make the file `path` (not there yet; its directory made if missing), `len` bytes
/// long and sparse: an image takes on the host the room its filesystem uses, up to
/// that size.
pub(crate) fn make_sparse_file(path: &std::path::Path, len: u64) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| CoreError::io("creating", dir, e))?;
    }
    let f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| CoreError::io("creating", path, e))?;
    f.set_len(len).map_err(|e| CoreError::io("sizing", path, e))
}

/// (bytes used, bytes in all) of the filesystem holding `at`, as `df` shows them.
pub(crate) fn fs_usage(at: &std::path::Path) -> Result<(u64, u64)> {
    let fs = nix::sys::statvfs::statvfs(at)
        .map_err(|e| CoreError::io("looking at", at, std::io::Error::from(e)))?;
    let frag = fs.fragment_size();
    let size = fs.blocks() * frag;
    Ok((size - fs.blocks_free() * frag, size))
}

fn file(paths: &Paths, name: &PoolName) -> PathBuf {
    paths.pools_dir().join(format!("{name}.toml"))
}

/// The config of pool `name` (not the built-in one, which has none).
pub fn load(paths: &Paths, name: &PoolName) -> Result<PoolConfig> {
    let f = file(paths, name);
    let text = match std::fs::read_to_string(&f) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(CoreError::Invalid(format!(
                "no pool named {name}: see `hangar pool list`"
            )));
        }
        r => r.map_err(|e| CoreError::io("reading", &f, e))?,
    };
    PoolConfig::from_toml(&text).map_err(|source| CoreError::Config { file: f, source })
}

pub fn save(paths: &Paths, cfg: &PoolConfig) -> Result<()> {
    let dir = paths.pools_dir();
    std::fs::create_dir_all(&dir).map_err(|e| CoreError::io("creating", &dir, e))?;
    let f = file(paths, &cfg.name);
    hangar_sys::write_atomic(&f, cfg.to_toml().as_bytes(), true)
        .map_err(|e| CoreError::io("writing", &f, e))
}

/// Names of the pools with a config, sorted (the built-in one not among them).
pub fn names(paths: &Paths) -> Result<Vec<PoolName>> {
    let mut out = vec![];
    for e in std::fs::read_dir(paths.pools_dir())
        .into_iter()
        .flatten()
        .flatten()
    {
        let n = e.file_name();
        if let Some(stem) = n.to_str().and_then(|n| n.strip_suffix(".toml"))
            && let Ok(name) = PoolName::new(stem)
        {
            out.push(name);
        }
    }
    out.sort();
    Ok(out)
}

impl Pool {
    /// Pool `name` (`default`, or None: the built-in one), mounted if it was not.
    pub fn open(host: &Host, name: Option<&PoolName>) -> Result<Pool> {
        let Some(name) = name.filter(|n| !n.is_default()) else {
            return Ok(Pool::Dir {
                guests: host.paths.data_root(),
            });
        };
        let pool = Pool::unchecked(&host.paths, load(&host.paths, name)?);
        pool.ensure_mounted(&host.paths)?;
        Ok(pool)
    }

    /// The pool of `cfg`, not mounted nor checked (to delete it whatever state it is in).
    pub(crate) fn unchecked(paths: &Paths, cfg: PoolConfig) -> Pool {
        let mount = paths.pool_mount(&cfg.name);
        match &cfg.source {
            PoolSource::Directory { path } => Pool::Image {
                images: image::Images {
                    dir: path.clone().unwrap_or_else(|| mount.clone()),
                    locks: paths.locks_dir().join("pools").join(cfg.name.as_str()),
                    mount,
                },
                cfg,
            },
            _ => Pool::Btrfs { cfg, mount },
        }
    }

    /// The pool guest `cfg` lives in.
    pub fn of(host: &Host, cfg: &GuestConfig) -> Result<Pool> {
        Pool::open(host, cfg.pool.as_ref())
    }

    pub fn name(&self) -> PoolName {
        match self {
            Pool::Dir { .. } => PoolName::default_pool(),
            Pool::Btrfs { cfg, .. } | Pool::Image { cfg, .. } => cfg.name.clone(),
        }
    }

    pub fn driver(&self) -> PoolDriver {
        match self {
            Pool::Dir { .. } => PoolDriver::Dir,
            Pool::Btrfs { .. } => PoolDriver::Btrfs,
            Pool::Image { .. } => PoolDriver::Image,
        }
    }

    /// The size a new guest's disk gets when neither it nor the host defaults give
    /// one: an image pool's guest always has one; elsewhere, none.
    pub fn default_disk_size(&self) -> Option<Size> {
        match self {
            Pool::Image { .. } => Some(hangar_model::pool::IMAGE_DISK_DEFAULT),
            _ => None,
        }
    }

    fn ensure_mounted(&self, paths: &Paths) -> Result<()> {
        let (cfg, mount) = match self {
            Pool::Dir { .. } => return Ok(()),
            Pool::Image { images, .. } => return images.check(),
            Pool::Btrfs { cfg, mount } => (cfg, mount),
        };
        if btrfs::mounted(mount) {
            return Ok(());
        }
        match &cfg.source {
            PoolSource::Image { .. } => btrfs::mount(&paths.pool_image(&cfg.name), mount, true)?,
            PoolSource::Device { path } => btrfs::mount(path, mount, false)?,
            PoolSource::Directory { .. } => {
                return Err(CoreError::Invalid(format!(
                    "pool {}: a btrfs pool's source is an image or a device",
                    cfg.name
                )));
            }
        }
        let guests = mount.join("guests");
        std::fs::create_dir_all(&guests).map_err(|e| CoreError::io("creating", &guests, e))
    }

    /// Where the pool keeps its guests' volumes.
    pub fn guests_dir(&self) -> PathBuf {
        match self {
            Pool::Dir { guests } => guests.clone(),
            Pool::Btrfs { mount, .. } => mount.join("guests"),
            Pool::Image { images, .. } => images.guests_dir(),
        }
    }

    /// Guest `name`'s volume (its data directory, with `rootfs/`). In an image pool it
    /// is mounted if it was not, so that what reads it finds its files (a failure to
    /// mount shows in [`Pool::mount`], which [`Host::rootfs`] and the methods that read
    /// a volume call), and thawed if a copy killed half-way left its filesystem frozen:
    /// whatever comes next (a start, a build's files, an exec) would otherwise wait for
    /// ever, unkillable, on its first write.
    pub fn volume(&self, name: &GuestName) -> PathBuf {
        let path = self.guests_dir().join(name.as_str());
        if let Pool::Image { images, .. } = self {
            let _ = images.ready(&path);
        }
        path
    }

    /// Make sure the volume at `path` is there to be read: an image pool's volume is
    /// mounted if it was not (nothing to do in the other pools).
    pub fn mount(&self, path: &std::path::Path) -> Result<()> {
        match self {
            Pool::Image { images, .. } => images.mount(path),
            _ => Ok(()),
        }
    }

    /// Where a build of `name` makes its volume until it is complete.
    pub fn build_volume(&self, name: &GuestName) -> PathBuf {
        self.guests_dir().join(format!(".build-{name}"))
    }

    /// Make an empty volume at `path` for a guest with `limits` (its own with the host
    /// defaults filled in): a directory; on btrfs a subvolume, limited to `disk.size`;
    /// in an image pool an ext4 filesystem of `disk.size` (else
    /// [`Pool::default_disk_size`]), mounted.
    pub fn create_volume(
        &self,
        path: &std::path::Path,
        limits: &hangar_model::Limits,
    ) -> Result<()> {
        match self {
            Pool::Dir { .. } => {
                std::fs::create_dir_all(path).map_err(|e| CoreError::io("creating", path, e))
            }
            Pool::Btrfs { .. } => {
                btrfs::subvolume_create(path)?;
                self.apply_disk_limit(path, limits)
            }
            Pool::Image { images, .. } => {
                let size = match limits.disk.size {
                    Some(hangar_model::limits::Bound::At(s)) => s,
                    _ => hangar_model::pool::IMAGE_DISK_DEFAULT,
                };
                images.create(path, size)
            }
        }
    }

    /// Give the volume `from` the place `to` in the same pool (a build's volume its
    /// guest's name; a guest a new name): a rename, except in an image pool, where a
    /// volume is a mount point (its image is renamed and its filesystem moved).
    /// Done already (`from` gone, `to` there) is no error: a move cut short is finished
    /// by doing it again.
    pub fn rename_volume(&self, from: &std::path::Path, to: &std::path::Path) -> Result<()> {
        match self {
            Pool::Image { images, .. } => images.rename(from, to),
            _ if std::fs::symlink_metadata(from).is_err() && to.exists() => Ok(()),
            _ if std::fs::symlink_metadata(to).is_ok() => Err(CoreError::Invalid(format!(
                "cannot move {} to {}: that is taken",
                from.display(),
                to.display()
            ))),
            _ => std::fs::rename(from, to).map_err(|e| CoreError::io("moving a volume to", to, e)),
        }
    }

    /// Remove the volume at `path` and everything in it, or the snapshot `path`
    /// (nothing when it is not there).
    pub fn remove_volume(&self, path: &std::path::Path) -> Result<()> {
        if let Pool::Image { images, .. } = self {
            // A volume whose mount point is gone may still have its image.
            return images.remove(path);
        }
        if std::fs::symlink_metadata(path).is_err() {
            return Ok(());
        }
        match self {
            Pool::Dir { .. } => {
                std::fs::remove_dir_all(path).map_err(|e| CoreError::io("removing", path, e))
            }
            Pool::Btrfs { .. } => btrfs::subvolume_delete(path),
            Pool::Image { images, .. } => images.remove(path),
        }
    }

    /// Where the pool keeps snapshots, a directory per guest.
    fn snapshots_root(&self) -> PathBuf {
        match self {
            Pool::Dir { guests } => guests.parent().unwrap_or(guests).join("snapshots"),
            Pool::Btrfs { mount, .. } => mount.join("snapshots"),
            Pool::Image { images, .. } => images.snapshots_dir(),
        }
    }

    /// Where guest `name`'s snapshots are kept (one entry per snapshot).
    pub fn snapshots_dir(&self, name: &GuestName) -> PathBuf {
        self.snapshots_root().join(name.as_str())
    }

    /// Where an import of `name` makes its snapshots until it is complete.
    pub fn build_snapshots_dir(&self, name: &GuestName) -> PathBuf {
        self.snapshots_root().join(format!(".build-{name}"))
    }

    /// Remove every volume in directory `dir` (snapshots), then `dir` itself.
    pub fn remove_volumes_in(&self, dir: &std::path::Path) -> Result<()> {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            self.remove_volume(&e.path())?;
        }
        let _ = std::fs::remove_dir(dir);
        Ok(())
    }

    /// Make the volume at `path` a snapshot as [`Pool::snapshot`] makes them: read-only
    /// on btrfs; the dir pool's are plain directories.
    pub fn seal(&self, path: &std::path::Path) -> Result<()> {
        match self {
            Pool::Dir { .. } | Pool::Image { .. } => Ok(()),
            Pool::Btrfs { .. } => btrfs::set_read_only(path),
        }
    }

    /// Snapshot `snap` of guest `name` (in an image pool an image file, `SNAP.img`).
    pub fn snapshot_path(&self, name: &GuestName, snap: &SnapshotName) -> PathBuf {
        let dir = self.snapshots_dir(name);
        match self {
            Pool::Image { .. } => dir.join(format!("{snap}.img")),
            _ => dir.join(snap.as_str()),
        }
    }

    /// The snapshot named by an entry of [`Pool::snapshots_dir`], if it is one.
    pub fn snapshot_name(&self, entry: &std::ffi::OsStr) -> Option<SnapshotName> {
        let n = entry.to_str()?;
        let n = match self {
            Pool::Image { .. } => n.strip_suffix(".img")?,
            _ => n,
        };
        SnapshotName::new(n).ok()
    }

    /// A point-in-time copy of the volume `src` at `dst` (which must not exist): a
    /// read-only subvolume snapshot on btrfs (instant, shares every block), a copy of
    /// the image file in an image pool (its filesystem frozen meanwhile), a copy of
    /// the tree on the dir pool (`cp -a`, reflinks where the filesystem has them).
    pub fn snapshot(&self, src: &std::path::Path, dst: &std::path::Path) -> Result<()> {
        if let Some(dir) = dst.parent() {
            std::fs::create_dir_all(dir).map_err(|e| CoreError::io("creating", dir, e))?;
        }
        match self {
            Pool::Btrfs { .. } | Pool::Image { .. } => self.copy(src, dst, true),
            Pool::Dir { .. } => {
                // A copy takes time: made beside, complete or not there at all.
                let tmp = dst.with_extension("partial");
                let _ = std::fs::remove_dir_all(&tmp);
                let copied = self.copy(src, &tmp, true).and_then(|()| {
                    std::fs::rename(&tmp, dst).map_err(|e| CoreError::io("renaming", &tmp, e))
                });
                if copied.is_err() {
                    let _ = std::fs::remove_dir_all(&tmp);
                }
                copied
            }
        }
    }

    /// The volume (or snapshot) `src` as it is now, at `dst`: a subvolume snapshot on
    /// btrfs (after writing out what is cached; read-only or writable), a copy of the
    /// image file in an image pool (a mounted source frozen meanwhile; a volume `dst`
    /// mounted), a copy of the tree on the dir pool (into `dst`, made if missing).
    pub fn copy(
        &self,
        src: &std::path::Path,
        dst: &std::path::Path,
        read_only: bool,
    ) -> Result<()> {
        match self {
            Pool::Btrfs { .. } => {
                btrfs::sync(src)?;
                btrfs::snapshot(src, dst, read_only)
            }
            Pool::Image { images, .. } => images.copy(src, dst),
            Pool::Dir { .. } => copy_tree(src, dst),
        }
    }

    /// The names of the volumes in the pool's guests directory, a build's
    /// (`.build-NAME`) as NAME: what `hangar repair` compares with the guests.
    pub fn volume_names(&self) -> Vec<(GuestName, PathBuf)> {
        std::fs::read_dir(self.guests_dir())
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let file = e.file_name();
                let n = file.to_str()?;
                let name = GuestName::new(n.strip_prefix(".build-").unwrap_or(n)).ok()?;
                Some((name, e.path()))
            })
            .collect()
    }

    /// Unmount the volume at `path` whose guest is gone (an image pool's, mounted on
    /// use; nothing to do in the other pools). Whether anything was.
    pub fn unmount_volume(&self, path: &std::path::Path) -> Result<bool> {
        match self {
            Pool::Image { images, .. } => images.unmount_volume(path),
            _ => Ok(false),
        }
    }

    /// Undo what a copy of the volume at `path` cut short by a kill left: in an image
    /// pool its filesystem frozen (every write of its guest waiting, and unkillable).
    /// Called where a guest frozen by such a copy is thawed (unpause, stop, kill);
    /// [`Pool::volume`] does it for every other use.
    pub fn thaw_volume(&self, path: &std::path::Path) -> Result<()> {
        match self {
            Pool::Image { images, .. } => images.thaw(path),
            _ => Ok(()),
        }
    }

    /// Give the volume at `path` the disk limit of `limits` (a guest's limits with the
    /// host defaults filled in), where this pool can limit one (a default is no reason
    /// to refuse the dir pool's guests).
    pub fn apply_disk_limit(
        &self,
        path: &std::path::Path,
        limits: &hangar_model::Limits,
    ) -> Result<()> {
        match limits.disk.size {
            Some(hangar_model::limits::Bound::At(s)) if self.driver() != PoolDriver::Dir => {
                self.set_size(path, Some(s))
            }
            _ => Ok(()),
        }
    }

    /// Make volume `volume` what snapshot `snap` holds: a new volume is made from the
    /// snapshot beside it, then swapped in, and the old one removed; a failure before
    /// the swap leaves the volume as it was. Its `disk.size` is given again by the
    /// caller (a new subvolume has a new quota group; an image has the size it had
    /// when the snapshot was taken).
    pub fn restore(&self, snap: &std::path::Path, volume: &std::path::Path) -> Result<()> {
        if let Pool::Image { images, .. } = self {
            return images.restore(snap, volume);
        }
        let fresh = volume.with_extension("restoring");
        let old = volume.with_extension("replaced");
        let _ = self.remove_volume(&fresh);
        let _ = self.remove_volume(&old);
        if let Err(e) = self.copy(snap, &fresh, false) {
            let _ = self.remove_volume(&fresh);
            return Err(e);
        }
        std::fs::rename(volume, &old).map_err(|e| CoreError::io("moving aside", volume, e))?;
        if let Err(e) = std::fs::rename(&fresh, volume) {
            let _ = std::fs::rename(&old, volume);
            return Err(CoreError::io("moving into place", &fresh, e));
        }
        self.remove_volume(&old)
    }

    /// Limit the volume at `path` to `size` (None: no limit). The `dir` pool has no
    /// limits and refuses one; a size below what the guest uses is refused (the kernel
    /// would only stop its next write). An image pool's volume is resized: grown live,
    /// shrunk only while its guest is stopped; it cannot be unlimited.
    pub fn set_size(&self, path: &std::path::Path, size: Option<Size>) -> Result<()> {
        match self {
            Pool::Dir { .. } if size.is_none() => Ok(()),
            Pool::Dir { .. } => Err(CoreError::Invalid(
                "disk.size needs a pool that can limit a guest's disk: the built-in dir pool \
                 cannot (make one with `hangar pool create NAME --size 20G` and build the \
                 guest with `--pool NAME`)"
                    .into(),
            )),
            Pool::Btrfs { .. } => {
                if let Some(s) = size {
                    let used = btrfs::usage(path)?.0;
                    if s.0 < used {
                        return Err(CoreError::Invalid(format!(
                            "disk.size {s} is below what the guest uses now ({}): free space \
                             in it first",
                            Size(used)
                        )));
                    }
                }
                btrfs::limit(path, size)
            }
            Pool::Image { images, .. } => match size {
                Some(s) => images.set_size(path, s),
                None => Err(CoreError::Invalid(
                    "a guest of an image pool always has a disk size (its filesystem's): give \
                     one, like disk.size=20G"
                        .into(),
                )),
            },
        }
    }

    /// What the volume at `path` uses, and its limit. The dir pool counts the blocks of
    /// every file (a walk of the tree); an image pool's volume is a filesystem of its
    /// own, whose use and size are `df`'s in the guest.
    pub fn usage(&self, path: &std::path::Path) -> Result<Usage> {
        match self {
            Pool::Dir { .. } => Ok(Usage {
                used: tree_bytes(path),
                limit: None,
            }),
            Pool::Btrfs { .. } => {
                let (used, limit) = btrfs::usage(path)?;
                Ok(Usage { used, limit })
            }
            Pool::Image { images, .. } => {
                let (used, size) = images.usage(path)?;
                Ok(Usage {
                    used,
                    limit: Some(size),
                })
            }
        }
    }
}

/// Bytes allocated to the files under `path` (hard links counted once), without
/// following symlinks or leaving its filesystem.
pub(crate) fn tree_bytes(path: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(top) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    let dev = top.dev();
    let mut seen = std::collections::HashSet::new();
    let mut total = top.blocks() * 512;
    let mut dirs = vec![path.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.dev() != dev {
                continue;
            }
            if m.nlink() > 1 && !m.is_dir() && !seen.insert(m.ino()) {
                continue;
            }
            total += m.blocks() * 512;
            if m.is_dir() {
                dirs.push(e.path());
            }
        }
    }
    total
}
