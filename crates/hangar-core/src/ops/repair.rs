//! `hangar repair`: bring the host back to a consistent state after crashes. Every
//! guest running without a monitor is adopted by a new one; every guest that ended
//! while none watched it is cleaned up after (cgroups, its NICs' guards); then the
//! networks are checked and repaired as `hangar network check --repair` does. No
//! guest's data is touched.

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
    pub network: crate::ops::network::CheckReport,
}

pub fn repair(host: &Host) -> Result<RepairReport> {
    let mut report = RepairReport::default();
    for name in store::names(&host.paths)? {
        let st = status::status(&host.paths, &name);
        if !st.is_orphaned() && !st.stale {
            continue;
        }
        let outcome = lock::guest(&host.paths, &name).and_then(|_guest| adopt::adopt(host, &name));
        match outcome {
            Ok(Adopted::Running(pid)) => report.adopted.push(format!("{name} (init pid {pid})")),
            Ok(Adopted::Gone) => report.cleaned.push(name.to_string()),
            Ok(Adopted::Watched) => {}
            Err(e) => report.failed.push(format!("{name}: {e}")),
        }
    }
    report.network = crate::ops::network::check(host, true)?;
    Ok(report)
}
