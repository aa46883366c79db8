//! `hangar snapshot create/list/restore/delete` and `hangar pause/unpause`.
//!
//! A snapshot of a running guest is consistent: the guest is frozen (its cgroup's
//! freezer) while its filesystem is written out and the snapshot taken, then thawed,
//! whatever happened. Restoring replaces the guest's volume with the snapshot's
//! contents; the guest must be stopped.

use crate::pools::Pool;
use crate::{CoreError, Host, Result, lock, status, store};
use hangar_model::GuestName;
use hangar_model::pool::SnapshotName;
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct SnapshotInfo {
    pub name: String,
    /// Unix time the snapshot was taken.
    pub created: u64,
}

/// Unix time now.
pub(crate) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Freeze running guest `name` for the length of `f` (nothing for a stopped or an
/// already paused one).
pub(crate) fn frozen_while<T>(
    host: &Host,
    name: &GuestName,
    f: impl FnOnce() -> Result<T>,
) -> Result<T> {
    let cfg = store::load(&host.paths, name)?;
    if !status::status(&host.paths, name).is_active() {
        return f();
    }
    let cgroup = host.guest_cgroup(&cfg)?;
    let was_frozen = cgroup.frozen();
    if !was_frozen {
        cgroup.set_frozen(true)?;
    }
    let out = f();
    if !was_frozen {
        cgroup.set_frozen(false)?;
    }
    out
}

/// `hangar snapshot create NAME [SNAP]`: SNAP defaults to `snap-UNIXTIME`.
pub fn create(host: &Host, name: &GuestName, snap: Option<SnapshotName>) -> Result<SnapshotName> {
    let _guest = lock::guest(&host.paths, name)?;
    let cfg = store::load(&host.paths, name)?;
    crate::adopt::ensure(host, name)?;
    let snap = match snap {
        Some(s) => s,
        None => SnapshotName::new(&format!("snap-{}", now()))?,
    };
    let pool = Pool::of(host, &cfg)?;
    let dst = pool.snapshot_path(name, &snap);
    if std::fs::symlink_metadata(&dst).is_ok() {
        return Err(CoreError::Invalid(format!(
            "guest {name} has a snapshot named {snap} already"
        )));
    }
    let volume = pool.volume(name);
    frozen_while(host, name, || pool.snapshot(&volume, &dst))?;
    Ok(snap)
}

/// Guest `name`'s snapshots, oldest first.
pub fn list(host: &Host, name: &GuestName) -> Result<Vec<SnapshotInfo>> {
    let cfg = store::load(&host.paths, name)?;
    let pool = Pool::of(host, &cfg)?;
    let mut out: Vec<SnapshotInfo> = std::fs::read_dir(pool.snapshots_dir(name))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let n = pool.snapshot_name(&e.file_name())?.to_string();
            let created = e
                .metadata()
                .ok()?
                .modified()
                .ok()?
                .duration_since(std::time::UNIX_EPOCH)
                .ok()?
                .as_secs();
            Some(SnapshotInfo { name: n, created })
        })
        .collect();
    out.sort_by(|a, b| (a.created, &a.name).cmp(&(b.created, &b.name)));
    Ok(out)
}

fn existing(pool: &Pool, name: &GuestName, snap: &SnapshotName) -> Result<std::path::PathBuf> {
    let path = pool.snapshot_path(name, snap);
    if std::fs::symlink_metadata(&path).is_err() {
        return Err(CoreError::Invalid(format!(
            "guest {name} has no snapshot named {snap}: see `hangar snapshot list {name}`"
        )));
    }
    Ok(path)
}

/// `hangar snapshot restore NAME SNAP`: the guest's files become the snapshot's.
pub fn restore(host: &Host, name: &GuestName, snap: &SnapshotName) -> Result<()> {
    let _guest = lock::guest(&host.paths, name)?;
    let cfg = store::load(&host.paths, name)?;
    crate::adopt::ensure(host, name)?;
    if status::status(&host.paths, name).is_active() {
        return Err(CoreError::Invalid(format!(
            "guest {name} is running: stop it first (`hangar stop {name}`), then restore"
        )));
    }
    let pool = Pool::of(host, &cfg)?;
    let path = existing(&pool, name, snap)?;
    let volume = pool.volume(name);
    pool.restore(&path, &volume)?;
    // The new volume has no limit yet: give it the guest's.
    pool.apply_disk_limit(&volume, &host.limits(&cfg))
}

/// `hangar snapshot delete NAME SNAP`.
pub fn delete(host: &Host, name: &GuestName, snap: &SnapshotName) -> Result<()> {
    let _guest = lock::guest(&host.paths, name)?;
    let cfg = store::load(&host.paths, name)?;
    let pool = Pool::of(host, &cfg)?;
    let path = existing(&pool, name, snap)?;
    pool.remove_volume(&path)
}

/// Every snapshot of guest `name` (when it is deleted).
pub(crate) fn delete_all(pool: &Pool, name: &GuestName) -> Result<()> {
    pool.remove_volumes_in(&pool.snapshots_dir(name))
}

/// `hangar pause NAME` (`true`) / `unpause NAME`: freeze or thaw every process of the
/// running guest (Xen's pause: it keeps its memory, uses no CPU).
pub fn pause(host: &Host, name: &GuestName, paused: bool) -> Result<()> {
    let _guest = lock::guest(&host.paths, name)?;
    let cfg = store::load(&host.paths, name)?;
    crate::adopt::ensure(host, name)?;
    if !status::status(&host.paths, name).is_active() {
        return Err(CoreError::NotRunning(name.to_string()));
    }
    host.guest_cgroup(&cfg)?.set_frozen(paused)?;
    if !paused {
        // A snapshot or clone killed half-way left the guest paused, and in an image
        // pool its filesystem frozen too.
        let pool = Pool::of(host, &cfg)?;
        pool.thaw_volume(&pool.volume(name))?;
    }
    Ok(())
}
