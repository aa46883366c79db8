//! `hangar repair`: bring the host back to a consistent state after crashes. Every
//! guest running without a monitor is adopted by a new one; every guest that ended
//! while none watched it is cleaned up after (cgroups, its NICs' guards); the empty
//! cgroup of a stopped guest (a `start` killed half-way) is removed, as is the mount of
//! an image pool volume no guest owns (a build killed half-way); lxcfs is started
//! again (and re-bound into running guests) if its keeper died; then the networks are
//! checked and repaired as `hangar network check --repair` does. No guest's data is
//! touched, but for renames a crash interrupted, finished or undone (`ops/rename.rs`).

use crate::adopt::{self, Adopted};
use crate::{Host, Result, lock, status, store};
use serde::Serialize;

#[derive(Debug, Default, Serialize)]
pub struct RepairReport {
    /// Guests found running without a monitor, now adopted: `NAME (init pid N)`.
    pub adopted: Vec<String>,
    /// Guests that had ended unwatched, cleaned up after.
    pub cleaned: Vec<String>,
    /// Guests that could not be looked after, with the reason.
    pub failed: Vec<String>,
    /// Empty cgroups of stopped guests, removed: `NAME (ctx N)`.
    pub empty_cgroups: Vec<String>,
    /// Volumes of no guest (a build, clone or import killed half-way) that were left
    /// mounted, unmounted: their files stay until the next build or delete of the name.
    pub unmounted: Vec<String>,
    /// Renames a crash interrupted, finished or undone (the command's start does it
    /// first, see `ops/rename.rs`: this lists what that left to try again).
    pub renames: Vec<String>,
    pub network: crate::ops::network::CheckReport,
}

pub fn repair(host: &Host) -> Result<RepairReport> {
    let mut report = RepairReport::default();
    let (renames, failed) = crate::ops::rename::recover(host);
    report.renames = renames;
    report.failed.extend(failed);
    let mut any_running = false;
    for name in store::names(&host.paths)? {
        let Ok(_guest) = lock::guest(&host.paths, &name) else {
            report
                .failed
                .push(format!("{name}: busy (another hangar command holds it)"));
            continue;
        };
        if let Err(e) = store::load(&host.paths, &name) {
            // Not ours to rewrite: its data stays as it is, and the user hears which file.
            report.failed.push(format!("{name}: {e}"));
        }
        let st = status::status(&host.paths, &name);
        if st.is_orphaned() || st.stale {
            match adopt::adopt(host, &name) {
                Ok(Adopted::Running(pid)) => {
                    report.adopted.push(format!("{name} (init pid {pid})"))
                }
                Ok(Adopted::Gone) => report.cleaned.push(name.to_string()),
                Ok(Adopted::Watched) => {}
                Err(e) => report.failed.push(format!("{name}: {e}")),
            }
        }
        let st = status::status(&host.paths, &name);
        any_running |= st.is_active();
        if !st.is_active()
            && let Some(ctx) = remove_empty_cgroup(host, &name)
        {
            report.empty_cgroups.push(format!("{name} (ctx {ctx})"));
        }
    }
    unmount_leftovers(host, &mut report);
    if any_running && let Err(e) = crate::lxcfs::ensure(host) {
        report.failed.push(format!("lxcfs: {e}"));
    }
    report.network = crate::ops::network::check(host, true)?;
    Ok(report)
}

/// Unmount the volumes of image pools that belong to no guest and to no build in
/// progress (its name's lock is free): a build, clone or import killed half-way left
/// them mounted, with their loop devices. Their files are not touched.
fn unmount_leftovers(host: &Host, report: &mut RepairReport) {
    for p in crate::pools::names(&host.paths).unwrap_or_default() {
        let Ok(pool) = crate::pools::Pool::open(host, Some(&p)) else {
            continue;
        };
        for (name, path) in pool.volume_names() {
            if store::exists(&host.paths, &name) {
                continue;
            }
            let Ok(Some(_free)) = lock::try_guest(&host.paths, &name) else {
                continue;
            };
            match pool.unmount_volume(&path) {
                Ok(true) => report.unmounted.push(path.display().to_string()),
                Ok(false) => {}
                Err(e) => report.failed.push(format!("{}: {e}", path.display())),
            }
        }
    }
}

/// Remove the cgroup of stopped guest `name` if it exists and holds no live process
/// (one with processes is `start`'s to refuse, with their pids); its context id then.
fn remove_empty_cgroup(host: &Host, name: &hangar_model::GuestName) -> Option<u16> {
    let cfg = store::load(&host.paths, name).ok()?;
    let cgroup = host.guest_cgroup(&cfg).ok()?;
    if !cgroup.exists() {
        return None;
    }
    let live = cgroup
        .pids()
        .unwrap_or_default()
        .into_iter()
        .any(|p| hangar_container::procstat::look(p).is_some_and(|s| !s.zombie));
    if live {
        return None;
    }
    cgroup.remove().ok()?;
    Some(cfg.context.get())
}
