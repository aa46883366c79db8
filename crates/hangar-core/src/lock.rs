//! Locks: every mutation of a guest holds its lock; allocations of host-wide resources
//! (context ids) hold the host lock. Both are flock(2) locks on files, released by the
//! kernel when the holder exits, however it exits.

use crate::paths::Paths;
use crate::{CoreError, Result};
use hangar_model::GuestName;
use nix::fcntl::{Flock, FlockArg};
use std::fs::File;
use std::path::Path;
use std::time::{Duration, Instant};

pub struct Lock {
    _flock: Flock<File>,
}

fn open(path: &Path) -> Result<File> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| CoreError::io("creating", dir, e))?;
    }
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| CoreError::io("opening", path, e))
}

/// Take an exclusive lock, waiting up to `wait` for another holder to finish.
fn take(path: &Path, wait: Duration) -> Result<Option<Lock>> {
    take_as(path, wait, FlockArg::LockExclusiveNonblock)
}

/// Take a lock of kind `how` (exclusive or shared, non-blocking), waiting up to `wait`.
fn take_as(path: &Path, wait: Duration, how: FlockArg) -> Result<Option<Lock>> {
    let deadline = Instant::now() + wait;
    let mut file = open(path)?;
    loop {
        match Flock::lock(file, how) {
            Ok(f) => return Ok(Some(Lock { _flock: f })),
            Err((f, _)) if Instant::now() < deadline => {
                file = f;
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(_) => return Ok(None),
        }
    }
}

/// Lock guest `name` for a mutation. Refused while a rename of it that a crash cut
/// short is not finished or undone (its files are split between two names; the next
/// command's start sees to it, see `ops/rename.rs`): a command that was waiting for
/// the lock when the rename died must not act on half of the guest.
pub fn guest(paths: &Paths, name: &GuestName) -> Result<Lock> {
    let p = paths.locks_dir().join(format!("{name}.lock"));
    let lock =
        take(&p, Duration::from_secs(10))?.ok_or_else(|| CoreError::Busy(name.to_string()))?;
    if let Some((old, new)) = crate::ops::rename::pending(paths, [name]) {
        return Err(CoreError::Invalid(format!(
            "the rename of {old} to {new} was interrupted and is not finished yet: run \
             `hangar repair`, then try again"
        )));
    }
    Ok(lock)
}

/// Lock guest `name` only if nobody holds it (used to tell stale builds from live ones).
pub fn try_guest(paths: &Paths, name: &GuestName) -> Result<Option<Lock>> {
    take(
        &paths.locks_dir().join(format!("{name}.lock")),
        Duration::ZERO,
    )
}

/// Lock image `name`: exclusively to make or remove it, `shared` to read it (builds
/// and exports of one image run side by side; a delete waits for them).
pub fn image(paths: &Paths, name: &hangar_model::image::ImageName, shared: bool) -> Result<Lock> {
    let p = paths
        .locks_dir()
        .join("images")
        .join(format!("{name}.lock"));
    let how = if shared {
        FlockArg::LockSharedNonblock
    } else {
        FlockArg::LockExclusiveNonblock
    };
    take_as(&p, Duration::from_secs(10), how)?.ok_or_else(|| {
        CoreError::Invalid(format!(
            "image {name} is busy: another hangar command is making, reading or removing it; \
             try again when it is done"
        ))
    })
}

/// Lock the copy of image `name` that btrfs pool `pool` keeps, while it is checked or
/// made (a copy of a large image takes a while: waits up to ten minutes).
pub fn image_copy(
    paths: &Paths,
    name: &hangar_model::image::ImageName,
    pool: &hangar_model::pool::PoolName,
) -> Result<Lock> {
    let p = paths
        .locks_dir()
        .join("images")
        .join(format!("{name}@{pool}.lock"));
    take(&p, Duration::from_secs(600))?.ok_or_else(|| {
        CoreError::Invalid(format!(
            "pool {pool}'s copy of image {name} has been in the making by another hangar \
             command for ten minutes: try again later"
        ))
    })
}

/// Lock host-wide allocations.
pub fn host(paths: &Paths) -> Result<Lock> {
    take(
        &paths.locks_dir().join("host.lock"),
        Duration::from_secs(30),
    )?
    .ok_or_else(|| {
        CoreError::Invalid("the host lock is held by another hangar command for too long".into())
    })
}

/// Lock `path`, a host-wide lock outside any root prefix (`what` names it in the error
/// when another command holds it for too long).
pub fn take_named(path: &Path, what: &str) -> Result<Lock> {
    take(path, Duration::from_secs(60))?.ok_or_else(|| {
        CoreError::Invalid(format!(
            "{what} ({}) is held by another hangar command for too long",
            path.display()
        ))
    })
}

/// Lock host-wide network allocations (subnets), shared by every hangar root on the
/// host: unlike the host lock, it lives outside the root prefix.
pub fn host_network() -> Result<Lock> {
    take(
        Path::new("/run/lock/hangar-net.lock"),
        Duration::from_secs(60),
    )?
    .ok_or_else(|| {
        CoreError::Invalid(
            "the network allocation lock is held by another hangar command for too long".into(),
        )
    })
}

/// Is a process holding an exclusive lock on `path` (a monitor on its monitor.lock)?
pub fn is_held(path: &Path) -> bool {
    let Ok(file) = std::fs::File::open(path) else {
        return false;
    };
    Flock::lock(file, FlockArg::LockSharedNonblock).is_err()
}
