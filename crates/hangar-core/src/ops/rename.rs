//! `hangar rename OLD NEW`: every place that names a stopped guest names it NEW, or, if
//! anything fails, none does.
//!
//! A rename is a list of steps, each moving one thing from OLD's name to NEW's, each
//! with an undo; they run in order under both guests' locks and the host lock, and on a
//! failure the steps done are undone in reverse. The config is the commit point, as for
//! build and delete: NEW's config is written, the context registry handed over, and the
//! removal of OLD's config commits. Before the first step a journal
//! (`var/lib/hangar/renames/OLD.json`) is written; it goes after the last. A journal
//! whose guests nobody holds locked is a rename a crash interrupted: the next command
//! (any: [`crate::Host::open`] calls [`recover`]) finishes it when OLD's config is gone
//! and NEW's is there, and rolls it back otherwise. Every do and undo can therefore run
//! again on a step that is done, half done or not done, and leaves it done or undone.
//!
//! A running guest is refused: its monitor keeps its control socket, state and console
//! log under its name, and its NICs' guards carry it.

use crate::build::util::HostFiles;
use crate::pools::Pool;
use crate::{CoreError, Host, Result, lock, status, store};
use hangar_model::{GuestConfig, GuestName};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The steps, in the order they are done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// The port forwards to the guest, in its networks' files.
    Forwards,
    /// Its name in its networks' DNS.
    Dns,
    /// /etc/hostname and /etc/hosts in its root filesystem, when its hostname follows
    /// its name.
    Hostname,
    /// Its volume (root filesystem and what goes with it) in its pool.
    Volume,
    Snapshots,
    /// Its runtime dir (last state, launch spec).
    Run,
    Logs,
    /// NEW's config, written beside OLD's.
    Config,
    /// The host-wide context registry's entry.
    Registry,
    /// OLD's config removed: the commit point.
    Commit,
}

const STEPS: [Step; 10] = [
    Step::Forwards,
    Step::Dns,
    Step::Hostname,
    Step::Volume,
    Step::Snapshots,
    Step::Run,
    Step::Logs,
    Step::Config,
    Step::Registry,
    Step::Commit,
];

impl Step {
    fn name(self) -> &'static str {
        match self {
            Step::Forwards => "forwards",
            Step::Dns => "dns",
            Step::Hostname => "hostname",
            Step::Volume => "volume",
            Step::Snapshots => "snapshots",
            Step::Run => "run",
            Step::Logs => "logs",
            Step::Config => "config",
            Step::Registry => "registry",
            Step::Commit => "commit",
        }
    }
}

/// What the journal keeps: enough, with whichever config exists, to finish or undo.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Journal {
    old: GuestName,
    new: GuestName,
    /// The guest's hostname is its name, and changes with it.
    hostname_follows: bool,
    /// /etc/hostname and /etc/hosts before and after, when the hostname follows.
    host_files: Option<(HostFiles, HostFiles)>,
}

/// A rename, ready to do or undo.
struct Rename<'a> {
    host: &'a Host,
    journal: Journal,
    /// The guest's config under its old name, and under its new one.
    before: GuestConfig,
    after: GuestConfig,
    pool: Pool,
}

/// Rename stopped guest `old` to `new`; returns its config under the new name.
pub fn rename(host: &Host, old: &GuestName, new: &GuestName) -> Result<GuestConfig> {
    if old == new {
        return Err(CoreError::Invalid(format!(
            "{old} is already the guest's name: give another one"
        )));
    }
    crate::fault::check("rename", &STEPS.map(Step::name))?;
    // Both locks, in name order, so that two renames (or a rename and a clone) between
    // the same names never deadlock.
    let (first, second) = if old < new { (old, new) } else { (new, old) };
    let _a = lock::guest(&host.paths, first)?;
    let _b = lock::guest(&host.paths, second)?;
    let before = store::load(&host.paths, old)?;
    if store::exists(&host.paths, new) {
        return Err(CoreError::Exists(new.to_string()));
    }
    crate::adopt::ensure(host, old)?;
    if status::status(&host.paths, old).is_active() {
        return Err(CoreError::Invalid(format!(
            "guest {old} is running: stop it first (`hangar stop {old}`); its monitor keeps \
             its control socket, state and console log under its name"
        )));
    }
    let pool = Pool::of(host, &before)?;
    let hostname_follows = before.hostname == old.as_str();
    let host_files = match (hostname_follows, host.rootfs(&before)) {
        (true, Ok(rootfs)) => {
            let files = HostFiles::read(&rootfs);
            let renamed = files.renamed(old.as_str(), new.as_str());
            Some((files, renamed))
        }
        _ => None,
    };
    let journal = Journal {
        old: old.clone(),
        new: new.clone(),
        hostname_follows,
        host_files,
    };
    let after = journal.renamed(&before);
    after.validate()?;
    let r = Rename {
        host,
        journal,
        before,
        after,
        pool,
    };
    let _host_lock = lock::host(&host.paths)?;
    r.check_free()?;
    r.write_journal()?;
    r.run()?;
    Ok(r.after)
}

impl Journal {
    /// `cfg` (the guest's config under its old name) under the new one.
    fn renamed(&self, cfg: &GuestConfig) -> GuestConfig {
        let mut out = cfg.clone();
        out.name = self.new.clone();
        if self.hostname_follows {
            out.hostname = self.new.to_string();
        }
        out
    }

    /// `cfg` (under the new name) under the old one.
    fn restored(&self, cfg: &GuestConfig) -> GuestConfig {
        let mut out = cfg.clone();
        out.name = self.old.clone();
        if self.hostname_follows {
            out.hostname = self.old.to_string();
        }
        out
    }
}

impl Rename<'_> {
    fn old_name(&self) -> &GuestName {
        &self.journal.old
    }
    fn new_name(&self) -> &GuestName {
        &self.journal.new
    }

    /// Each directory that is named after the guest: (old place, new place).
    fn dirs(&self, step: Step) -> Option<(PathBuf, PathBuf)> {
        let (paths, old, new) = (&self.host.paths, self.old_name(), self.new_name());
        match step {
            Step::Volume => Some((self.pool.volume(old), self.pool.volume(new))),
            Step::Snapshots => Some((self.pool.snapshots_dir(old), self.pool.snapshots_dir(new))),
            Step::Run => Some((paths.run_dir(old), paths.run_dir(new))),
            Step::Logs => Some((paths.log_dir(old), paths.log_dir(new))),
            _ => None,
        }
    }

    /// Refuse when something already has NEW's name: a build left unfinished, data of
    /// a guest deleted half-way, a port forward a hand edit left to a guest named NEW.
    fn check_free(&self) -> Result<()> {
        let new = self.new_name();
        let mut taken: Vec<PathBuf> = vec![
            self.host.paths.build_dir(new),
            self.pool.build_volume(new),
            self.host.paths.data_dir(new),
        ];
        taken.extend(STEPS.iter().filter_map(|s| self.dirs(*s)).map(|(_, n)| n));
        taken.dedup();
        if let Some(p) = taken.iter().find(|p| std::fs::symlink_metadata(p).is_ok()) {
            return Err(CoreError::Invalid(format!(
                "{} is in the way: it is what an interrupted build, clone or delete of a \
                 guest named {new} left (no guest has that name); remove it (`rm -rf`, or \
                 `btrfs subvolume delete` in a btrfs pool) or pick another name",
                p.display()
            )));
        }
        for net in crate::net::store::names(&self.host.paths)? {
            let cfg = crate::net::store::load(&self.host.paths, &net)?;
            if let Some(fw) = cfg.forwards.iter().find(|f| f.guest == new.as_str()) {
                return Err(CoreError::Invalid(format!(
                    "network {net} has a port forward to {new}, which is no guest ({fw}): \
                     remove it first with `{}`",
                    crate::ops::forward::remove_command(&net, fw)
                )));
            }
        }
        Ok(())
    }

    fn write_journal(&self) -> Result<()> {
        let path = self.host.paths.rename_journal(self.old_name());
        let dir = self.host.paths.renames_dir();
        std::fs::create_dir_all(&dir).map_err(|e| CoreError::io("creating", &dir, e))?;
        let json = serde_json::to_vec(&self.journal).expect("journals serialise");
        hangar_sys::write_atomic(&path, &json, true).map_err(|e| CoreError::io("writing", &path, e))
    }

    fn remove_journal(&self) -> Result<()> {
        let path = self.host.paths.rename_journal(self.old_name());
        std::fs::remove_file(&path).map_err(|e| CoreError::io("removing", &path, e))?;
        sync_dir(&self.host.paths.renames_dir())
    }

    /// Do every step; on a failure, undo what was done (the failed step too: it may be
    /// half done) and leave no journal, or, when an undo fails, leave the journal for
    /// the next command.
    fn run(&self) -> Result<()> {
        for (i, step) in STEPS.iter().enumerate() {
            let done = self
                .apply(*step)
                .and_then(|()| crate::fault::after("rename", step.name()));
            let Err(e) = done else { continue };
            return match self.undo_from(i) {
                Ok(()) => {
                    self.remove_journal()?;
                    Err(CoreError::Rename {
                        old: self.old_name().to_string(),
                        new: self.new_name().to_string(),
                        step: step.name(),
                        source: Box::new(e),
                    })
                }
                Err(u) => Err(CoreError::Invalid(format!(
                    "renaming {} to {} failed at its {} step ({e}), and undoing it failed \
                     too ({u}): the next hangar command (`hangar repair`) tries again",
                    self.old_name(),
                    self.new_name(),
                    step.name()
                ))),
            };
        }
        // Renamed: a journal left now is finished by the next command.
        if let Err(e) = self.remove_journal() {
            self.host.notice(format!(
                "{} is renamed {}, but its rename's journal stays ({e}); the next command \
                 removes it",
                self.old_name(),
                self.new_name()
            ));
        }
        Ok(())
    }

    /// Undo steps `last` down to the first.
    fn undo_from(&self, last: usize) -> Result<()> {
        STEPS[..=last]
            .iter()
            .rev()
            .try_for_each(|s| self.revert(*s))
    }

    /// Do `step` (nothing when it is done already).
    fn apply(&self, step: Step) -> Result<()> {
        let (old, new) = (self.old_name(), self.new_name());
        match step {
            Step::Forwards => self.point_forwards(old, new),
            Step::Dns => self.publish(Some((old, new))),
            Step::Hostname => self.write_host_files(|(_, after)| after),
            Step::Volume | Step::Snapshots | Step::Run | Step::Logs => {
                let (from, to) = self.dirs(step).expect("a directory step");
                self.move_dir(step, &from, &to)
            }
            Step::Config => {
                if store::exists(&self.host.paths, new) {
                    return Ok(());
                }
                store::save(&self.host.paths, &self.after)
            }
            Step::Registry => self.hand_over(old, new),
            Step::Commit => remove_config(&self.host.paths, old),
        }
    }

    /// Undo `step` (nothing when it is not done).
    fn revert(&self, step: Step) -> Result<()> {
        let (old, new) = (self.old_name(), self.new_name());
        let paths = &self.host.paths;
        match step {
            Step::Forwards => self.point_forwards(new, old),
            // The configs say OLD again by now.
            Step::Dns => self.publish(None),
            Step::Hostname => self.write_host_files(|(before, _)| before),
            Step::Volume | Step::Snapshots | Step::Run | Step::Logs => {
                let (from, to) = self.dirs(step).expect("a directory step");
                self.move_dir(step, &to, &from)
            }
            // Never the last config of the guest.
            Step::Config if store::exists(paths, old) => remove_config(paths, new),
            Step::Config => Ok(()),
            Step::Registry => self.hand_over(new, old),
            Step::Commit if store::exists(paths, old) => Ok(()),
            Step::Commit => store::save(paths, &self.before),
        }
    }

    /// Every port forward to `from` goes to `to` (the same address: its nft rule,
    /// named by network, protocol and port, stays as it is).
    fn point_forwards(&self, from: &GuestName, to: &GuestName) -> Result<()> {
        let paths = &self.host.paths;
        for net in crate::net::store::names(paths)? {
            let mut cfg = crate::net::store::load(paths, &net)?;
            let mut changed = false;
            for fw in cfg.forwards.iter_mut().filter(|f| f.guest == from.as_str()) {
                fw.guest = to.to_string();
                changed = true;
            }
            if changed {
                crate::net::store::save(paths, &cfg)?;
            }
        }
        Ok(())
    }

    /// Publish the names of the guest's networks, the guest as `rename` says.
    fn publish(&self, rename: Option<(&GuestName, &GuestName)>) -> Result<()> {
        let mut nets: Vec<&str> = self
            .before
            .nics
            .iter()
            .filter_map(|n| n.network.as_deref())
            .collect();
        nets.sort_unstable();
        nets.dedup();
        for n in nets {
            let cfg = crate::net::store::load(&self.host.paths, n)?;
            let rename = rename.map(|(a, b)| (a.as_str(), b.as_str()));
            crate::net::up::publish_names_as(self.host, &cfg, rename)?;
        }
        Ok(())
    }

    /// Write one side of the host files, in the volume wherever it is now.
    fn write_host_files(&self, side: fn(&(HostFiles, HostFiles)) -> &HostFiles) -> Result<()> {
        let Some(files) = &self.journal.host_files else {
            return Ok(());
        };
        let rootfs = if self.before.rootfs.is_absolute() {
            self.before.rootfs.clone()
        } else {
            let (old, new) = self.dirs(Step::Volume).expect("the volume step");
            let volume = if std::fs::symlink_metadata(&new).is_ok() {
                new
            } else {
                old
            };
            volume.join(&self.before.rootfs)
        };
        side(files).write(&rootfs)
    }

    /// The guest's context id is `to`'s in the host-wide registry.
    fn hand_over(&self, from: &GuestName, to: &GuestName) -> Result<()> {
        let registry = crate::ids::Registry::host();
        let ids = registry.lock()?;
        ids.hand_over(self.before.context, &self.host.paths, from, to)
    }
}

impl Rename<'_> {
    /// Move directory `from` to `to` as [`move_dir`] does; the volume through its pool
    /// (in an image pool it is a mount point, which rename(2) refuses).
    fn move_dir(&self, step: Step, from: &Path, to: &Path) -> Result<()> {
        match step {
            // The pool knows a move of its own cut short (an image pool's volume is a
            // mount point, mounted at both places for a moment).
            Step::Volume => {
                let exists = |p: &Path| std::fs::symlink_metadata(p).is_ok();
                if !exists(from) && !exists(to) {
                    return Ok(());
                }
                self.pool.rename_volume(from, to)?;
                sync_parents(from, to)
            }
            _ => move_dir(from, to),
        }
    }
}

/// Move directory `from` to `to` (which must not exist), durably: after a crash the
/// config that commits the rename never finds its volume where it was. Nothing when
/// `from` is gone and `to` is there (done already) or neither is.
fn move_dir(from: &Path, to: &Path) -> Result<()> {
    let exists = |p: &Path| std::fs::symlink_metadata(p).is_ok();
    if !exists(from) {
        return Ok(());
    }
    if exists(to) {
        return Err(CoreError::Invalid(format!(
            "cannot move {} to {}: that is taken",
            from.display(),
            to.display()
        )));
    }
    std::fs::rename(from, to).map_err(|e| CoreError::io("moving", from, e))?;
    sync_parents(from, to)
}

/// The directories holding `from` and `to`, written out (a move is durable once both
/// entries are).
fn sync_parents(from: &Path, to: &Path) -> Result<()> {
    for dir in [from.parent(), to.parent()].into_iter().flatten() {
        sync_dir(dir)?;
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<()> {
    hangar_sys::sync_dir(dir).map_err(|e| CoreError::io("syncing", dir, e))
}

/// Remove guest `name`'s config, durably (nothing when it is gone).
fn remove_config(paths: &crate::paths::Paths, name: &GuestName) -> Result<()> {
    let file = paths.config_file(name);
    match std::fs::remove_file(&file) {
        Ok(()) => sync_dir(&paths.configs_dir()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(CoreError::io("removing", &file, e)),
    }
}

/// The journals of renames not finished (in progress, or interrupted).
fn journals(paths: &crate::paths::Paths) -> Vec<(PathBuf, Option<Journal>)> {
    std::fs::read_dir(paths.renames_dir())
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let j = std::fs::read(&p)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
            (p, j)
        })
        .collect()
}

/// The unfinished rename of a guest named one of `names`, if any: until it is finished
/// or undone, that guest's files are split between its two names.
pub(crate) fn pending<'a>(
    paths: &crate::paths::Paths,
    names: impl IntoIterator<Item = &'a GuestName>,
) -> Option<(GuestName, GuestName)> {
    let names: Vec<&GuestName> = names.into_iter().collect();
    journals(paths)
        .into_iter()
        .filter_map(|(_, j)| j)
        .find(|j| names.contains(&&j.old) || names.contains(&&j.new))
        .map(|j| (j.old, j.new))
}

/// Finish or roll back every rename a crash interrupted (a journal whose guests nobody
/// holds locked); returns what was done, and what could not be, for the user.
pub fn recover(host: &Host) -> (Vec<String>, Vec<String>) {
    let (mut done, mut failed) = (vec![], vec![]);
    for (path, journal) in journals(&host.paths) {
        let Some(j) = journal else {
            failed.push(format!(
                "{}: a rename's journal that cannot be read; see ARCHITECTURE.md (Renames)",
                path.display()
            ));
            continue;
        };
        match recover_one(host, &path, j) {
            Ok(Some(line)) => done.push(line),
            Ok(None) => {}
            Err(e) => failed.push(e.to_string()),
        }
    }
    (done, failed)
}

/// Finish or undo the interrupted rename of `j`, unless another command works on it.
fn recover_one(host: &Host, path: &Path, j: Journal) -> Result<Option<String>> {
    let (old, new) = (&j.old, &j.new);
    let (first, second) = if old < new { (old, new) } else { (new, old) };
    // The renaming command holds both locks until its journal is gone.
    let Some(_a) = lock::try_guest(&host.paths, first)? else {
        return Ok(None);
    };
    let Some(_b) = lock::try_guest(&host.paths, second)? else {
        return Ok(None);
    };
    if std::fs::symlink_metadata(path).is_err() {
        return Ok(None);
    }
    let _host_lock = lock::host(&host.paths)?;
    let paths = &host.paths;
    let committed = !store::exists(paths, old) && store::exists(paths, new);
    let failed = |e: CoreError| {
        CoreError::Invalid(format!(
            "the rename of {old} to {new} was interrupted, and {} it failed ({e}); its \
             journal {} stays for the next try (`hangar repair`)",
            if committed { "finishing" } else { "undoing" },
            path.display()
        ))
    };
    let (before, after) = if committed {
        let after = store::load(paths, new).map_err(failed)?;
        (j.restored(&after), after)
    } else {
        let before = store::load(paths, old).map_err(failed)?;
        (before.clone(), j.renamed(&before))
    };
    let r = Rename {
        host,
        pool: Pool::of(host, &before).map_err(failed)?,
        journal: j.clone(),
        before,
        after,
    };
    if committed {
        STEPS.iter().try_for_each(|s| r.apply(*s)).map_err(failed)?;
    } else {
        r.undo_from(STEPS.len() - 1).map_err(failed)?;
    }
    r.remove_journal().map_err(failed)?;
    Ok(Some(if committed {
        format!("the rename of {old} to {new}, which a crash had interrupted, is finished")
    } else {
        format!(
            "the rename of {old} to {new}, which a crash had interrupted, is undone: the \
             guest is {old} as before"
        )
    }))
}
