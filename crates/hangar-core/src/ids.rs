//! Context ids, and with them host uid/gid ranges, are unique on the host, whatever
//! hangar root a guest belongs to: two guests of two roots never run as the same host
//! uids (they would share the kernel's per-user limits, and each other's files).
//!
//! The registry lives outside every root prefix, like the subnet lock: one file per
//! context id in `/var/lib/hangar/contexts/`, naming the root and the guest that hold
//! it, written under `/run/lock/hangar-contexts.lock`. An entry whose guest no longer
//! has that context (its config is gone or says another id, and no build of it is in
//! progress) is stale, and free for the next claim: a root deleted by hand, or a build
//! that failed, frees its ids without anyone cleaning up. Ranges that other tools hold
//! in `/etc/subuid` and `/etc/subgid` (rootless containers, other managers) are kept
//! clear of at allocation.

use crate::paths::Paths;
use crate::{CoreError, Result, store};
use hangar_model::{ContextId, GuestName};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Where the host-wide registry lives (outside any hangar root).
const REGISTRY: &str = "/var/lib/hangar/contexts";
const LOCK: &str = "/run/lock/hangar-contexts.lock";
/// Subordinate id files of the ecosystem (shadow's `newuidmap` convention).
const SUBORDINATE: [&str; 2] = ["/etc/subuid", "/etc/subgid"];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Entry {
    root: PathBuf,
    guest: String,
}

impl Entry {
    fn describe(&self) -> String {
        format!("{} of hangar root {}", self.guest, self.root.display())
    }
}

/// The host's context registry.
pub struct Registry {
    dir: PathBuf,
    lock: PathBuf,
    subordinate: Vec<PathBuf>,
}

/// The registry held locked, for one allocation or claim.
pub struct Locked<'a> {
    reg: &'a Registry,
    _lock: crate::lock::Lock,
}

impl Registry {
    /// The one registry of this host.
    pub fn host() -> Registry {
        Registry {
            dir: REGISTRY.into(),
            lock: LOCK.into(),
            subordinate: SUBORDINATE.iter().map(PathBuf::from).collect(),
        }
    }

    /// Every hangar root that holds (or held) a context id on this host, as the
    /// registry names them; read without the lock (entries are written atomically).
    pub fn roots(&self) -> Vec<PathBuf> {
        let mut roots: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| std::fs::read(e.path()).ok())
            .filter_map(|b| serde_json::from_slice::<Entry>(&b).ok())
            .map(|e| e.root)
            .collect();
        roots.sort();
        roots.dedup();
        roots
    }

    pub fn lock(&self) -> Result<Locked<'_>> {
        let lock = crate::lock::take_named(&self.lock, "the context id registry lock")?;
        Ok(Locked {
            reg: self,
            _lock: lock,
        })
    }
}

impl Locked<'_> {
    fn entry_path(&self, ctx: ContextId) -> PathBuf {
        self.reg.dir.join(ctx.to_string())
    }

    /// Who holds `ctx` now, other than guest `name` of `paths`: None when free, stale
    /// or ours.
    fn other_holder(&self, ctx: ContextId, paths: &Paths, name: &GuestName) -> Option<Entry> {
        let bytes = std::fs::read(self.entry_path(ctx)).ok()?;
        let entry: Entry = serde_json::from_slice(&bytes).ok()?;
        let ours = entry.root == root_of(paths) && entry.guest == name.as_str();
        (!ours && holds(&entry, ctx)).then_some(entry)
    }

    /// A range of `/etc/subuid` or `/etc/subgid` that `ctx`'s host ids overlap.
    fn subordinate_overlap(&self, ctx: ContextId) -> Option<String> {
        let first = u64::from(ctx.id_base());
        let end = first + u64::from(hangar_model::ctx::ID_RANGE);
        self.reg.subordinate.iter().find_map(|file| {
            let text = std::fs::read_to_string(file).ok()?;
            overlap(&text, first, end).map(|line| format!("{} ({line})", file.display()))
        })
    }

    /// Why guest `name` of `paths` may not have `ctx`, if it may not.
    fn refusal(&self, ctx: ContextId, paths: &Paths, name: &GuestName) -> Option<CoreError> {
        if let Some(e) = self.other_holder(ctx, paths, name) {
            return Some(CoreError::ContextTaken {
                ctx: ctx.get(),
                by: e.describe(),
            });
        }
        self.subordinate_overlap(ctx).map(|line| {
            CoreError::Invalid(format!(
                "context id {ctx} maps to host ids {}-{}, which {line} gives to another \
                 user: pick another context id",
                ctx.id_base(),
                ctx.id_base() + (hangar_model::ctx::ID_RANGE - 1)
            ))
        })
    }

    /// Record `ctx` as guest `name`'s of `paths`.
    fn write(&self, ctx: ContextId, paths: &Paths, name: &GuestName) -> Result<()> {
        std::fs::create_dir_all(&self.reg.dir)
            .map_err(|e| CoreError::io("creating", &self.reg.dir, e))?;
        let entry = Entry {
            root: root_of(paths),
            guest: name.to_string(),
        };
        let path = self.entry_path(ctx);
        let json = serde_json::to_vec(&entry).expect("entries serialise");
        hangar_sys::write_atomic(&path, &json, true).map_err(|e| CoreError::io("writing", &path, e))
    }

    /// Give guest `name` of `paths` context `wanted` if no other guest of the host holds
    /// it and no other user's subordinate ids overlap it, else refuse; without `wanted`,
    /// the lowest such id not in `taken` (this root's, as the caller sees them).
    pub fn allocate(
        &self,
        paths: &Paths,
        name: &GuestName,
        wanted: Option<ContextId>,
        taken: &[ContextId],
    ) -> Result<ContextId> {
        if let Some(ctx) = wanted {
            self.claim(ctx, paths, name)?;
            return Ok(ctx);
        }
        let ctx = (ContextId::MIN..=ContextId::MAX)
            .filter_map(|n| ContextId::new(n).ok())
            .filter(|c| !taken.contains(c))
            .find(|&c| self.refusal(c, paths, name).is_none())
            .ok_or(CoreError::NoFreeContext)?;
        self.write(ctx, paths, name)?;
        Ok(ctx)
    }

    /// Hold `ctx` for guest `name` of `paths`, or refuse if another guest of the host
    /// holds it (the check `start` makes, and `config edit` for a new id). Overlaps with
    /// `/etc/subuid` refuse a new id only: a running setup is not broken by a file
    /// another tool changed later (`start` warns instead, see [`Locked::warning`]).
    pub fn claim(&self, ctx: ContextId, paths: &Paths, name: &GuestName) -> Result<()> {
        if let Some(e) = self.refusal(ctx, paths, name) {
            return Err(e);
        }
        self.write(ctx, paths, name)
    }

    /// At start: hold `ctx` for the guest (refusing one held by another guest of the
    /// host); returns a warning when other users' subordinate ids overlap its range.
    pub fn check_at_start(
        &self,
        ctx: ContextId,
        paths: &Paths,
        name: &GuestName,
    ) -> Result<Option<String>> {
        if let Some(e) = self.other_holder(ctx, paths, name) {
            return Err(CoreError::ContextTaken {
                ctx: ctx.get(),
                by: e.describe(),
            });
        }
        let ours = std::fs::read(self.entry_path(ctx))
            .ok()
            .and_then(|b| serde_json::from_slice::<Entry>(&b).ok())
            .is_some_and(|e| e.root == root_of(paths) && e.guest == name.as_str());
        if !ours {
            self.write(ctx, paths, name)?;
        }
        Ok(self.subordinate_overlap(ctx).map(|line| {
            format!(
                "guest {name}'s host ids (context {ctx}) overlap {line}: that user's \
                 processes can reach the guest's files; give the guest another context id"
            )
        }))
    }

    /// Record `ctx` as guest `to`'s of `paths`, where it was `from`'s (a rename; undone
    /// the other way round). Either name of this root may be recorded now (a rename
    /// interrupted half-way is finished or undone by calling this again); another
    /// guest of the host holding `ctx` is refused.
    pub fn hand_over(
        &self,
        ctx: ContextId,
        paths: &Paths,
        from: &GuestName,
        to: &GuestName,
    ) -> Result<()> {
        let entry = std::fs::read(self.entry_path(ctx))
            .ok()
            .and_then(|b| serde_json::from_slice::<Entry>(&b).ok());
        let ours = |e: &Entry| {
            e.root == root_of(paths) && (e.guest == from.as_str() || e.guest == to.as_str())
        };
        if let Some(e) = entry.filter(|e| !ours(e) && holds(e, ctx)) {
            return Err(CoreError::ContextTaken {
                ctx: ctx.get(),
                by: e.describe(),
            });
        }
        self.write(ctx, paths, to)
    }

    /// Forget `ctx` if guest `name` of `paths` holds it (at delete, or after a change
    /// of context id).
    pub fn release(&self, ctx: ContextId, paths: &Paths, name: &GuestName) {
        let path = self.entry_path(ctx);
        let ours = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<Entry>(&b).ok())
            .is_some_and(|e| e.root == root_of(paths) && e.guest == name.as_str());
        if ours {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The root as the registry records it: absolute, so every process names it alike.
fn root_of(paths: &Paths) -> PathBuf {
    std::path::absolute(paths.root()).unwrap_or_else(|_| paths.root().to_path_buf())
}

/// Whether `entry`'s guest still holds `ctx`: its config says so, or a build of it in
/// progress reserved it. A config that is there but cannot be read as a whole (damaged,
/// or written by a newer hangar with tables this one does not know) holds the id its
/// `context` key names, or, when not even that can be read, the id of the entry: an id
/// is freed only when it is sure that no guest's files are stored with its uids.
fn holds(entry: &Entry, ctx: ContextId) -> bool {
    let Ok(name) = GuestName::new(&entry.guest) else {
        return false;
    };
    let paths = Paths::new(&entry.root);
    match store::load(&paths, &name) {
        Ok(cfg) => return cfg.context == ctx,
        Err(_) if store::exists(&paths, &name) => {
            let text = std::fs::read_to_string(paths.config_file(&name)).unwrap_or_default();
            return match text
                .parse::<toml::Table>()
                .ok()
                .and_then(|t| t.get("context")?.as_integer())
            {
                Some(id) => id == i64::from(ctx.get()),
                None => true,
            };
        }
        Err(_) => {}
    }
    let reserved = paths.build_dir(&name).join("context");
    std::fs::read_to_string(reserved).is_ok_and(|s| s.trim() == ctx.to_string())
}

/// The first line of a subordinate id file (`name:start:count`) whose range meets
/// host ids `first..end`.
fn overlap(text: &str, first: u64, end: u64) -> Option<String> {
    text.lines().map(str::trim).find_map(|line| {
        let mut f = line.split(':');
        let (_, start, count) = (f.next()?, f.next()?, f.next()?);
        let (start, count): (u64, u64) = (start.parse().ok()?, count.parse().ok()?);
        (start < end && first < start.saturating_add(count)).then(|| line.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn registry(dir: &Path) -> Registry {
        Registry {
            dir: dir.join("contexts"),
            lock: dir.join("lock"),
            subordinate: vec![dir.join("subuid")],
        }
    }

    fn root_with_guest(dir: &Path, name: &str, ctx: u16) -> Paths {
        let paths = Paths::new(dir.join(name));
        let text = format!(
            "name = \"{name}\"\nkind = \"container\"\ncontext = {ctx}\nhostname = \"{name}\"\n\
             init = [\"/sbin/init\"]\n"
        );
        let cfg = hangar_model::GuestConfig::from_toml(&text).unwrap();
        store::save(&paths, &cfg).unwrap();
        paths
    }

    /// A directory of this test's own, removed when dropped.
    struct Scratch(PathBuf);
    impl Scratch {
        fn new(tag: &str) -> Scratch {
            let d = std::env::temp_dir().join(format!("hangar-ids-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&d);
            std::fs::create_dir_all(&d).unwrap();
            Scratch(d)
        }
        fn path(&self) -> &Path {
            &self.0
        }
    }
    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn a_context_is_handed_over_between_two_names_of_its_root_only() {
        let tmp = Scratch::new("handover");
        let reg = registry(tmp.path());
        let reg = reg.lock().unwrap();
        let a = root_with_guest(tmp.path(), "a", 5);
        let (old, new) = (GuestName::new("a").unwrap(), GuestName::new("b").unwrap());
        let five = ContextId::new(5).unwrap();
        reg.claim(five, &a, &old).unwrap();
        reg.hand_over(five, &a, &old, &new).unwrap();
        let entry = std::fs::read_to_string(tmp.path().join("contexts/5")).unwrap();
        assert!(entry.contains("\"guest\":\"b\""), "{entry}");
        // Again (a rename finished twice), and back (undone).
        reg.hand_over(five, &a, &old, &new).unwrap();
        reg.hand_over(five, &a, &new, &old).unwrap();
        let entry = std::fs::read_to_string(tmp.path().join("contexts/5")).unwrap();
        assert!(entry.contains("\"guest\":\"a\""), "{entry}");
        // Another root's guest holding it keeps it.
        let other = root_with_guest(tmp.path(), "c", 6);
        let c = GuestName::new("c").unwrap();
        let six = ContextId::new(6).unwrap();
        reg.claim(six, &other, &c).unwrap();
        let err = reg.hand_over(six, &a, &old, &new).unwrap_err().to_string();
        assert!(err.contains("c of hangar root"), "{err}");
    }

    #[test]
    fn a_config_that_cannot_be_read_keeps_its_context() {
        let tmp = Scratch::new("unreadable");
        let reg = registry(tmp.path());
        let reg = reg.lock().unwrap();
        let a = root_with_guest(tmp.path(), "a", 7);
        let b = Paths::new(tmp.path().join("b"));
        let (an, bn) = (GuestName::new("a").unwrap(), GuestName::new("b").unwrap());
        let seven = ContextId::new(7).unwrap();
        reg.claim(seven, &a, &an).unwrap();
        let file = a.config_file(&an);
        // A table this hangar does not know (a newer one wrote it): its context holds.
        let text = std::fs::read_to_string(&file).unwrap();
        std::fs::write(&file, format!("{text}\n[[newer]]\nx = 1\n")).unwrap();
        assert!(store::load(&a, &an).is_err());
        assert!(
            reg.claim(seven, &b, &bn).is_err(),
            "taken from a newer config"
        );
        // Garbage where the config was: the entry's id holds.
        std::fs::write(&file, b"\0\0garbage").unwrap();
        assert!(
            reg.claim(seven, &b, &bn).is_err(),
            "taken from a damaged config"
        );
        // Gone: free.
        std::fs::remove_file(&file).unwrap();
        assert!(reg.claim(seven, &b, &bn).is_ok());
    }

    #[test]
    fn subordinate_ranges_overlap_as_intervals() {
        let text = "# comment\nalice:100000:65536\nbroken\nbob:x:1\n";
        assert_eq!(
            overlap(text, 65536, 131072).as_deref(),
            Some("alice:100000:65536")
        );
        assert_eq!(
            overlap(text, 131072, 196608).as_deref(),
            Some("alice:100000:65536")
        );
        assert_eq!(overlap(text, 196608, 262144), None);
        assert_eq!(overlap(text, 0, 100000), None);
    }

    #[test]
    fn two_roots_never_get_the_same_context_and_stale_entries_are_reused() {
        let tmp = Scratch::new("roots");
        let reg = registry(tmp.path());
        std::fs::write(tmp.path().join("subuid"), "alice:131072:65536\n").unwrap();
        let reg = reg.lock().unwrap();
        let a = root_with_guest(tmp.path(), "a", 3);
        let b = Paths::new(tmp.path().join("b"));
        let (an, bn) = (GuestName::new("a").unwrap(), GuestName::new("b").unwrap());
        // ctx 2 is alice's range: skipped; 3 goes to a.
        assert_eq!(reg.allocate(&a, &an, None, &[]).unwrap().get(), 3);
        assert_eq!(reg.allocate(&b, &bn, None, &[]).unwrap().get(), 4);
        let three = ContextId::new(3).unwrap();
        let err = reg.claim(three, &b, &bn).unwrap_err().to_string();
        assert!(err.contains("a of hangar root"), "{err}");
        assert!(reg.check_at_start(three, &b, &bn).is_err());
        assert!(
            reg.claim(three, &a, &an).is_ok(),
            "its own holder may claim again"
        );
        let two = ContextId::new(2).unwrap();
        assert!(
            reg.claim(two, &b, &bn)
                .unwrap_err()
                .to_string()
                .contains("subuid")
        );
        // a's root goes away by hand: its id is free again.
        std::fs::remove_dir_all(a.root()).unwrap();
        assert!(reg.claim(three, &b, &bn).is_ok());
        // Releasing only removes one's own entry.
        reg.release(three, &a, &an);
        assert!(tmp.path().join("contexts/3").exists());
        reg.release(three, &b, &bn);
        assert!(!tmp.path().join("contexts/3").exists());
    }
}
