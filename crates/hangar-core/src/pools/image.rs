//! The image driver: each guest's volume is an ext4 filesystem of its own, in a sparse
//! image file (`DIR/images/GUEST.img`) on a loop device, mounted at the volume directory
//! (`var/lib/hangar/pools/POOL/guests/GUEST`) whenever it is used: after a host reboot
//! nothing is mounted, and the first command that needs a volume mounts it. The image's
//! size is the guest's disk (`disk.size`): a hard limit, as OpenVZ's ploop, and `df`
//! inside the guest shows it. It grows live (the file, the loop device, then an online
//! `resize2fs`) and shrinks only while nothing uses it (`e2fsck -f`, `resize2fs`).
//! Snapshots are copies of the image (`DIR/snapshots/GUEST/SNAP.img`) made while the
//! filesystem is frozen (FIFREEZE: written out, journal emptied, writes held).
//!
//! e2fsprogs (`mkfs.ext4`, `e2fsck`, `resize2fs`) has no Rust crate and is driven
//! through [`run`]; the loop device is made by util-linux's `mount -o loop` (autoclear:
//! it goes with the last unmount), as the btrfs driver's is. Mounting, unmounting and
//! the offline work on a volume hold its lock (`var/lib/hangar/locks/pools/POOL/`), so
//! a command that mounts a volume on use (`hangar df` holds no guest lock) never
//! mounts one that another command is checking or replacing.

use super::{mounted_fs, run};
use crate::lock::{self, Lock};
use crate::{CoreError, Result};
use hangar_model::Size;
use hangar_model::pool::IMAGE_DISK_MIN;
use std::ffi::OsStr;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

/// ext4's block size here: sizes are rounded down to it.
const BLOCK: u64 = 4096;

/// How long a filesystem still held after its unmount here may take to be let go of
/// by a guest that just stopped, before it is taken to be in use.
const RELEASE_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// An image pool's places.
#[derive(Debug, Clone)]
pub struct Images {
    /// Where the image files are: `images/GUEST.img`, `snapshots/GUEST/SNAP.img`.
    pub dir: PathBuf,
    /// Where the volumes are mounted: `guests/GUEST`.
    pub mount: PathBuf,
    /// One lock file per volume.
    pub locks: PathBuf,
}

fn os(s: &str) -> &OsStr {
    s.as_ref()
}

/// A size as whole blocks.
fn blocks(size: Size) -> u64 {
    size.0 / BLOCK * BLOCK
}

impl Images {
    pub fn guests_dir(&self) -> PathBuf {
        self.mount.join("guests")
    }

    fn images_dir(&self) -> PathBuf {
        self.dir.join("images")
    }

    pub fn snapshots_dir(&self) -> PathBuf {
        self.dir.join("snapshots")
    }

    /// The pool is usable: its directory is there (an administrator's directory may be
    /// on a disk that is not mounted), with the mount points' directory beside.
    pub fn check(&self) -> Result<()> {
        if !self.dir.is_dir() {
            return Err(CoreError::Invalid(format!(
                "the image pool's directory {} is missing: mount the disk it is on, or make it",
                self.dir.display()
            )));
        }
        let guests = self.guests_dir();
        std::fs::create_dir_all(&guests).map_err(|e| CoreError::io("creating", &guests, e))
    }

    /// Whether `path` is a volume (a mount point in `guests/`), not a snapshot's file.
    fn is_volume(&self, path: &Path) -> bool {
        path.parent() == Some(&self.guests_dir())
    }

    /// The image file of the volume at `volume`.
    fn image(&self, volume: &Path) -> Result<PathBuf> {
        match volume.file_name().and_then(|n| n.to_str()) {
            Some(n) if self.is_volume(volume) => Ok(self.images_dir().join(format!("{n}.img"))),
            _ => Err(CoreError::Invalid(format!(
                "{} is no volume of this image pool",
                volume.display()
            ))),
        }
    }

    fn lock(&self, volume: &Path) -> Result<Lock> {
        let name = volume.file_name().unwrap_or(volume.as_os_str());
        let file = self.locks.join(format!("{}.lock", name.to_string_lossy()));
        lock::take_named(&file, "the lock of a volume")
    }

    /// Make an empty volume at `volume`: a sparse image of `size`, formatted, mounted.
    pub fn create(&self, volume: &Path, size: Size) -> Result<()> {
        check_size(size)?;
        let _lock = self.lock(volume)?;
        let image = self.image(volume)?;
        let made = super::make_sparse_file(&image, blocks(size)).and_then(|()| {
            mkfs(&image)?;
            self.mount_locked(volume, &image)
        });
        if made.is_err() {
            let _ = self.remove_locked(volume, &image);
        }
        made
    }

    /// Mount the volume at `volume` if it is not (a volume is mounted on use).
    pub fn mount(&self, volume: &Path) -> Result<()> {
        if mounted_fs(volume).is_some() {
            return Ok(());
        }
        let _lock = self.lock(volume)?;
        let image = self.image(volume)?;
        if !image.exists() {
            return Err(CoreError::Invalid(format!(
                "the volume {} has no image file ({} is missing)",
                volume.display(),
                image.display()
            )));
        }
        self.mount_locked(volume, &image)
    }

    fn mount_locked(&self, volume: &Path, image: &Path) -> Result<()> {
        if mounted_fs(volume).is_some() {
            return Ok(());
        }
        std::fs::create_dir_all(volume).map_err(|e| CoreError::io("creating", volume, e))?;
        // A filesystem still mounted elsewhere (in a running guest, after its mount here
        // went) is mounted again through its own loop device: the same filesystem, not
        // a second one on the same file.
        let source = match loop_of(image) {
            Some(dev) if claimed(&dev) => dev,
            _ => image.to_path_buf(),
        };
        let mut args = vec![os("-t"), os("ext4"), os("-o")];
        args.push(os(if source == image {
            "loop,discard"
        } else {
            "discard"
        }));
        args.extend([source.as_os_str(), volume.as_os_str()]);
        run("mount", &args).map(drop)
    }

    /// Run `f` on the volume's image while its filesystem is mounted nowhere, and mount
    /// it again after. If something else uses the filesystem (a running guest does,
    /// through its own mount) it is mounted again at once and `busy` is the error.
    fn offline(
        &self,
        volume: &Path,
        image: &Path,
        busy: impl Fn() -> String,
        f: impl FnOnce() -> Result<()>,
    ) -> Result<()> {
        if mounted_fs(volume).is_some() {
            // A frozen filesystem outlives its unmount (the freeze holds it).
            thaw_stale(volume)?;
            run("umount", &[volume.as_os_str()])
                .map_err(|e| CoreError::Invalid(format!("{} ({e})", busy())))?;
        }
        // A guest that has just stopped lets go of its filesystem a moment after its
        // last process (the kernel releases a dead mount namespace's mounts late); a
        // running one never does.
        let in_use = || loop_of(image).is_some_and(|dev| claimed(&dev));
        let deadline = std::time::Instant::now() + RELEASE_WAIT;
        while in_use() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        if in_use() {
            let _ = self.mount_locked(volume, image);
            return Err(CoreError::Invalid(busy()));
        }
        let done = f();
        let mounted = self.mount_locked(volume, image);
        done.and(mounted)
    }

    /// Remove the volume at `path` (unmounted first) or the snapshot image `path`;
    /// nothing when it is not there.
    pub fn remove(&self, path: &Path) -> Result<()> {
        if !self.is_volume(path) {
            return match std::fs::remove_file(path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(CoreError::io("removing", path, e))
                }
                _ => Ok(()),
            };
        }
        let _lock = self.lock(path)?;
        self.remove_locked(path, &self.image(path)?)
    }

    fn remove_locked(&self, volume: &Path, image: &Path) -> Result<()> {
        if mounted_fs(volume).is_some() {
            // A frozen filesystem outlives its unmount (the freeze holds it).
            thaw_stale(volume)?;
        }
        unmount(volume)?;
        match std::fs::remove_file(image) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(CoreError::io("removing", image, e));
            }
            _ => {}
        }
        if mounted_fs(volume).is_none() {
            match std::fs::remove_dir_all(volume) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(CoreError::io("removing", volume, e));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Move the volume `from` to `to` (a new name in the pool): its image is renamed
    /// and its filesystem, mounted all along, moves to the new mount point (a bind
    /// mount there, then the old one unmounted), so a guest using it is not disturbed.
    pub fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        // Both locks, in name order, as guest locks are taken.
        let (a, b) = if from < to { (from, to) } else { (to, from) };
        let _a = self.lock(a)?;
        let _b = self.lock(b)?;
        let (old, new) = (self.image(from)?, self.image(to)?);
        if !old.exists() && new.exists() {
            // Done but for the old mount point (a rename cut short after the move, or
            // the undo of one cut short before it): finished.
            self.mount_locked(to, &new)?;
            unmount(from)?;
            let _ = std::fs::remove_dir(from);
            return Ok(());
        }
        if old.exists() && !new.exists() && mounted_fs(to).is_some() {
            // A bind of `from` that a rename cut short left at `to`: it goes first.
            unmount(to)?;
        }
        if new.exists() || mounted_fs(to).is_some() {
            return Err(CoreError::Invalid(format!(
                "{} exists already",
                new.display()
            )));
        }
        if !old.exists() {
            return Err(CoreError::Invalid(format!(
                "the volume {} has no image file ({} is missing)",
                from.display(),
                old.display()
            )));
        }
        self.mount_locked(from, &old)?;
        std::fs::create_dir_all(to).map_err(|e| CoreError::io("creating", to, e))?;
        if let Err(e) = run("mount", &[os("--bind"), from.as_os_str(), to.as_os_str()]) {
            let _ = std::fs::remove_dir(to);
            return Err(e);
        }
        if let Err(e) = std::fs::rename(&old, &new) {
            let _ = run("umount", &[to.as_os_str()]);
            let _ = std::fs::remove_dir(to);
            return Err(CoreError::io("renaming", &old, e));
        }
        // The filesystem is at its new place: the old mount point only goes now.
        let _ = unmount(from);
        let _ = std::fs::remove_dir(from);
        Ok(())
    }

    /// Copy the volume or snapshot image `src` to `dst`: a volume (mounted when the
    /// copy is complete) or a snapshot image. A mounted source is frozen for the copy
    /// (its filesystem clean, nothing written meanwhile); the copy is made beside and
    /// renamed into place, so `dst` is complete or not there.
    pub fn copy(&self, src: &Path, dst: &Path) -> Result<()> {
        let _src_lock = if self.is_volume(src) {
            Some(self.lock(src)?)
        } else {
            None
        };
        let from = if self.is_volume(src) {
            self.image(src)?
        } else {
            src.to_path_buf()
        };
        let to = if self.is_volume(dst) {
            self.image(dst)?
        } else {
            dst.to_path_buf()
        };
        let _dst_lock = if self.is_volume(dst) {
            Some(self.lock(dst)?)
        } else {
            None
        };
        if to.exists() {
            return Err(CoreError::Invalid(format!(
                "{} exists already",
                to.display()
            )));
        }
        let tmp = to.with_extension("partial");
        if self.is_volume(src) && mounted_fs(src).is_some() {
            frozen_while(src, || copy_file(&from, &tmp))?;
        } else {
            copy_file(&from, &tmp)?;
        }
        if let Err(e) = std::fs::rename(&tmp, &to) {
            let _ = std::fs::remove_file(&tmp);
            return Err(CoreError::io("renaming", &tmp, e));
        }
        if self.is_volume(dst)
            && let Err(e) = self.mount_locked(dst, &to)
        {
            let _ = self.remove_locked(dst, &to);
            return Err(e);
        }
        Ok(())
    }

    /// Make the volume `volume` what the snapshot image `snap` holds: a copy of the
    /// snapshot is made beside the volume's image and renamed over it once the volume
    /// is unmounted; a failure before leaves the volume as it was.
    pub fn restore(&self, snap: &Path, volume: &Path) -> Result<()> {
        let _lock = self.lock(volume)?;
        let image = self.image(volume)?;
        let fresh = image.with_extension("restoring");
        let _ = std::fs::remove_file(&fresh);
        copy_file(snap, &fresh)?;
        let busy = || {
            format!(
                "cannot restore {}: its filesystem is in use (its guest runs): stop the guest first",
                volume.display()
            )
        };
        let swapped = self.offline(volume, &image, busy, || {
            std::fs::rename(&fresh, &image).map_err(|e| CoreError::io("renaming", &fresh, e))
        });
        let _ = std::fs::remove_file(&fresh);
        swapped
    }

    /// Make the volume at `volume` `size` big: grown live (the image file, its loop
    /// device, an online resize2fs), shrunk only while nothing uses it and not below
    /// what its files take.
    pub fn set_size(&self, volume: &Path, size: Size) -> Result<()> {
        check_size(size)?;
        let _lock = self.lock(volume)?;
        let image = self.image(volume)?;
        self.mount_locked(volume, &image)?;
        let new = blocks(size);
        let old = std::fs::metadata(&image)
            .map_err(|e| CoreError::io("looking at", &image, e))?
            .len();
        if new == old {
            return Ok(());
        }
        let (used, _) = super::fs_usage(volume)?;
        if new < used {
            return Err(CoreError::Invalid(format!(
                "disk.size {size} is below what the guest uses now ({}): free space in it first",
                Size(used)
            )));
        }
        if new > old && may_resize_online() {
            return grow(volume, &image, old, new);
        }
        let busy = || {
            if new > old {
                format!(
                    "disk.size {size}: a running guest's disk grows only where hangar has \
                     CAP_SYS_RESOURCE (ext4's online resize needs it), which this host keeps \
                     from it: stop the guest, then set disk.size"
                )
            } else {
                format!(
                    "disk.size {size} is smaller: a disk shrinks only while its guest is \
                     stopped (it grows live): stop the guest, then set disk.size"
                )
            }
        };
        self.offline(volume, &image, busy, || {
            resize_offline(&image, size, old, new)
        })
    }

    /// Make the volume fit for use: mounted if it is not, else thawed if a copy cut
    /// short left it frozen (as [`Images::mount`] and [`Images::thaw`], with one look
    /// at the mount table where both would take one each).
    pub fn ready(&self, volume: &Path) -> Result<()> {
        if mounted_fs(volume).is_none() {
            return self.mount(volume);
        }
        let _lock = self.lock(volume)?;
        thaw_stale(volume)
    }

    /// Thaw the volume's filesystem if a command killed while it copied the image left
    /// it frozen (under the volume's lock, which a copy holds: a freeze found then is
    /// a dead command's).
    pub fn thaw(&self, volume: &Path) -> Result<()> {
        if mounted_fs(volume).is_none() {
            return Ok(());
        }
        let _lock = self.lock(volume)?;
        thaw_stale(volume)
    }

    /// Unmount the volume at `volume` (its image stays): what `hangar repair` does to
    /// the volume a build or clone killed half-way left mounted. Whether it was.
    pub fn unmount_volume(&self, volume: &Path) -> Result<bool> {
        if mounted_fs(volume).is_none() {
            return Ok(false);
        }
        let _lock = self.lock(volume)?;
        thaw_stale(volume)?;
        unmount(volume)?;
        Ok(true)
    }

    /// (bytes used, bytes in all) of the volume's filesystem, as `df` in the guest
    /// shows them (ext4's own metadata in neither).
    pub fn usage(&self, volume: &Path) -> Result<(u64, u64)> {
        self.mount(volume)?;
        super::fs_usage(volume)
    }

    /// Unmount every volume of the pool and remove the mount points (pool delete: no
    /// guest is left in it; what remains is a build's or a delete's that was cut short).
    pub fn unmount_all(&self) -> Result<()> {
        let guests = self.guests_dir();
        for e in std::fs::read_dir(&guests).into_iter().flatten().flatten() {
            let volume = e.path();
            let _lock = self.lock(&volume)?;
            if mounted_fs(&volume).is_some() {
                thaw_stale(&volume)?;
                run("umount", &[volume.as_os_str()])
                    .or_else(|_| run("umount", &[os("-l"), volume.as_os_str()]))?;
            }
            let _ = std::fs::remove_dir(&volume);
        }
        let _ = std::fs::remove_dir(&guests);
        Ok(())
    }
}

fn check_size(size: Size) -> Result<()> {
    if size < IMAGE_DISK_MIN {
        return Err(CoreError::Invalid(format!(
            "disk.size {size} is too small: a guest of an image pool needs at least {IMAGE_DISK_MIN}"
        )));
    }
    Ok(())
}

fn set_len(image: &Path, len: u64) -> Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .open(image)
        .and_then(|f| f.set_len(len))
        .map_err(|e| CoreError::io("sizing", image, e))
}

/// Format `image` ext4: 4K blocks, an inode per 16K (`-T default`, whatever the size),
/// no blocks reserved for root (the guest's root is the one user that matters). The
/// new file is sparse, so the journal needs no zeroing and mkfs's discard marks the
/// inode tables zeroed: the image takes on the host what the guest writes.
fn mkfs(image: &Path) -> Result<()> {
    run(
        "mkfs.ext4",
        &[
            os("-q"),
            os("-F"),
            os("-b"),
            os("4096"),
            os("-T"),
            os("default"),
            os("-m"),
            os("0"),
            os("-E"),
            os("lazy_journal_init=1"),
            image.as_os_str(),
        ],
    )
    .map(drop)
}

/// `e2fsck -f -p`: what resize2fs wants before it shrinks. Exit 1 (errors fixed) is
/// success.
fn fsck(image: &Path) -> Result<()> {
    super::run_status("e2fsck", &[os("-f"), os("-p"), image.as_os_str()], &[0, 1]).map(drop)
}

/// Resize the (unmounted) filesystem of `image` from `old` to `new` bytes: the file is
/// grown first or cut last, and put back as it was if resize2fs refuses.
fn resize_offline(image: &Path, size: Size, old: u64, new: u64) -> Result<()> {
    fsck(image)?;
    if new > old {
        set_len(image, new)?;
    }
    let kib = format!("{}K", new / 1024);
    if let Err(e) = run("resize2fs", &[image.as_os_str(), os(&kib)]) {
        let _ = set_len(image, old);
        return Err(CoreError::Invalid(format!(
            "disk.size {size} cannot hold the guest's files and its filesystem's own ({e}): \
             give a larger size"
        )));
    }
    set_len(image, new)
}

/// Whether this process may resize a mounted ext4 filesystem: the kernel asks for
/// CAP_SYS_RESOURCE, which some hosts keep out of every process's bounding set.
fn may_resize_online() -> bool {
    const CAP_SYS_RESOURCE: u32 = 24;
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let hex = s.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
            u64::from_str_radix(hex.trim(), 16).ok()
        })
        .is_some_and(|caps| caps & (1 << CAP_SYS_RESOURCE) != 0)
}

/// Sparse copy, with reflinks where the host's filesystem has them.
fn copy_file(from: &Path, to: &Path) -> Result<()> {
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir).map_err(|e| CoreError::io("creating", dir, e))?;
    }
    let copied = run(
        "cp",
        &[
            os("--sparse=always"),
            os("--reflink=auto"),
            from.as_os_str(),
            to.as_os_str(),
        ],
    );
    if copied.is_err() {
        let _ = std::fs::remove_file(to);
    }
    copied.map(drop)
}

/// Unmount whatever is mounted at `at`, however many times (a rename or a mount cut
/// short by a kill may have stacked two); one that is busy (a shell's working directory
/// in it) is detached now, its loop device and the space of a removed image freed when
/// the last user goes.
fn unmount(at: &Path) -> Result<()> {
    for _ in 0..16 {
        if mounted_fs(at).is_none() {
            return Ok(());
        }
        if run("umount", &[at.as_os_str()]).is_err() {
            run("umount", &[os("-l"), at.as_os_str()])?;
        }
    }
    Err(CoreError::Invalid(format!(
        "{} stays mounted after 16 unmounts: see `findmnt {}`",
        at.display(),
        at.display()
    )))
}

/// Run `f` while the filesystem mounted at `at` is frozen; it is thawed whatever `f`
/// did. The caller holds the volume's lock: a freeze found is a dead command's.
fn frozen_while<T>(at: &Path, f: impl FnOnce() -> Result<T>) -> Result<T> {
    thaw_stale(at)?;
    let dir = std::fs::File::open(at).map_err(|e| CoreError::io("opening", at, e))?;
    hangar_sys::freeze_fs(dir.as_fd()).map_err(|e| sys("freezing the filesystem at", at, e))?;
    let out = f();
    hangar_sys::thaw_fs(dir.as_fd()).map_err(|e| sys("thawing the filesystem at", at, e))?;
    out
}

/// Thaw the filesystem mounted at `at` if it is frozen (the kernel says EINVAL when
/// it is not).
fn thaw_stale(at: &Path) -> Result<()> {
    let dir = std::fs::File::open(at).map_err(|e| CoreError::io("opening", at, e))?;
    match hangar_sys::thaw_fs(dir.as_fd()) {
        Err(hangar_sys::SysError::Call { source, .. })
            if source.raw_os_error() != Some(libc::EINVAL) =>
        {
            Err(CoreError::io("thawing the filesystem at", at, source))
        }
        _ => Ok(()),
    }
}

fn sys(what: &'static str, path: &Path, e: hangar_sys::SysError) -> CoreError {
    let hangar_sys::SysError::Call { source, .. } = e;
    CoreError::io(what, path, source)
}

/// Grow the mounted volume's image from `old` to `new` bytes, then its filesystem; a
/// failure puts the file's size back.
fn grow(volume: &Path, image: &Path, old: u64, new: u64) -> Result<()> {
    let dev = mounted_fs(volume)
        .map(|(_, source)| PathBuf::from(source))
        .ok_or_else(|| CoreError::Invalid(format!("{} is not mounted", volume.display())))?;
    let capacity = |len| -> Result<()> {
        set_len(image, len)?;
        let f = std::fs::File::open(&dev).map_err(|e| CoreError::io("opening", &dev, e))?;
        hangar_sys::loop_set_capacity(f.as_fd()).map_err(|e| sys("resizing", &dev, e))
    };
    let grown = capacity(new).and_then(|()| run("resize2fs", &[dev.as_os_str()]).map(drop));
    if grown.is_err() {
        let _ = capacity(old);
    }
    grown
}

/// The loop device `image` is attached to, if any (sysfs names each loop device's
/// backing file).
fn loop_of(image: &Path) -> Option<PathBuf> {
    let want = std::fs::canonicalize(image).ok()?;
    std::fs::read_dir("/sys/block")
        .ok()?
        .flatten()
        .find_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let backing = std::fs::read_to_string(e.path().join("loop/backing_file")).ok()?;
            (name.starts_with("loop") && Path::new(backing.trim_end()) == want)
                .then(|| PathBuf::from("/dev").join(name))
        })
}

/// Whether block device `dev` is held by a mounted filesystem (somewhere, in any mount
/// namespace): the kernel then refuses an exclusive open.
fn claimed(dev: &Path) -> bool {
    use std::os::unix::fs::OpenOptionsExt;
    matches!(
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_EXCL)
            .open(dev),
        Err(e) if e.raw_os_error() == Some(libc::EBUSY)
    )
}
