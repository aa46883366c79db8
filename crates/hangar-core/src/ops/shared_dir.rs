//! `hangar attach NAME dir HOST_PATH PATH [readonly]` / `hangar detach NAME dir PATH`:
//! share a host directory with a guest, live when it runs and at every start (the
//! `[[dir]]` tables of its config).
//!
//! The host side is resolved once, at attach (every symlink followed, the result
//! stored), and must not be, hold or lie inside hangar's own directories (of this
//! root, of the host's, of every root the context registry knows) or a guest's root
//! filesystem. At each start it is checked again and opened following no symlink
//! (`hangar_container::shared`), so a link swapped in later is refused, never
//! followed.

use crate::{CoreError, Host, Result, lock, status, store};
use hangar_container::shared;
use hangar_model::dir::{GuestPath, HostPath, SharedDir};
use hangar_model::{GuestConfig, GuestName};
use std::os::fd::AsFd;
use std::path::PathBuf;

/// Share a host directory with guest `name` (`args`: HOST_PATH PATH [readonly]);
/// mounted at once in a running guest. Returns it as stored.
pub fn attach(host: &Host, name: &GuestName, args: &[String]) -> Result<SharedDir> {
    let asked = SharedDir::from_args(args)?;
    let _guest = lock::guest(&host.paths, name)?;
    let old = store::load(&host.paths, name)?;
    crate::adopt::ensure(host, name)?;
    if let Some(d) = old.dirs.iter().find(|d| d.path.overlaps(&asked.path)) {
        return Err(CoreError::Invalid(if d.path == asked.path {
            format!(
                "guest {name} has {} attached at {} already: detach it first \
                 (`hangar detach {name} dir {}`)",
                d.host, d.path, d.path
            )
        } else {
            format!(
                "{} overlaps the shared directory at {} of guest {name}: shared \
                 directories may not be inside one another",
                asked.path, d.path
            )
        }));
    }
    let dir = SharedDir {
        host: resolve(host, &asked.host)?,
        ..asked
    };
    let mut cfg = old.clone();
    cfg.dirs.push(dir.clone());
    cfg.validate()?;
    // The mount is made now whether the guest runs or not: a filesystem that cannot
    // be shared is refused here, not at the next start.
    let tree = mount_of(&cfg, &dir)?;
    store::save(&host.paths, &cfg)?;
    if let Err(e) = live_attach(host, &cfg, &dir, tree) {
        store::save(&host.paths, &old)?;
        return Err(e);
    }
    if !cfg.security.privileged && !dir.readonly && !nosuid_on_host(&dir.host) {
        host.notice(format!(
            "{} is on a host mount without nosuid: what guest root writes there belongs to \
             host root, and a setuid bit it sets would hold on the host; mount it nosuid, \
             or keep host users from running files from it",
            dir.host
        ));
    }
    Ok(dir)
}

/// Stop sharing the directory at `path` with guest `name`; unmounted at once in a
/// running guest.
pub fn detach(host: &Host, name: &GuestName, path: &str) -> Result<()> {
    let path = GuestPath::parse(path)?;
    let _guest = lock::guest(&host.paths, name)?;
    let mut cfg = store::load(&host.paths, name)?;
    crate::adopt::ensure(host, name)?;
    let Some(dir) = cfg.dirs.iter().find(|d| d.path == path).cloned() else {
        return Err(CoreError::Invalid(format!(
            "guest {name} has no shared directory at {path} (`hangar config show {name}` \
             lists its [[dir]] tables)"
        )));
    };
    if status::status(&host.paths, name).is_active()
        && let Some(ns) = crate::ops::attach::guest_ns(host, name, "mnt")?
    {
        let host_id = shared::open_host_dir(dir.host.as_path())
            .ok()
            .and_then(|fd| nix::sys::stat::fstat(&fd).ok())
            .map(|st| (st.st_dev, st.st_ino));
        if !shared::detach_live(ns.as_fd(), &path, host_id)? {
            host.notice(format!(
                "{} was no longer mounted at {path} in guest {name} (unmounted from \
                 inside); removed from its config",
                dir.host
            ));
        }
    }
    cfg.dirs.retain(|d| d.path != path);
    store::save(&host.paths, &cfg)?;
    record_in_spec(host, name, &cfg.dirs)
}

/// The shared directories of `cfg` as its monitor gets them at start: each checked
/// again (it may have become a symlink, or a hangar directory, since it was attached).
pub(crate) fn for_start(host: &Host, cfg: &GuestConfig) -> Result<Vec<SharedDir>> {
    if cfg.dirs.is_empty() {
        return Ok(vec![]);
    }
    let protected = protected(host)?;
    for d in &cfg.dirs {
        let why = hangar_model::dir::protected_refusal(d.host.as_path(), &protected);
        if let Some(why) = why {
            return Err(CoreError::Invalid(format!(
                "guest {}: shared directory {} may not be shared: {why}; remove it with \
                 `hangar detach {} dir {}`",
                cfg.name, d.host, cfg.name, d.path
            )));
        }
    }
    Ok(cfg.dirs.clone())
}

/// Shared directories a `config edit` adds to `new` must be what an attach would
/// store: a resolved path (the link it goes through would be refused at start), that
/// may be shared, on a filesystem that can be.
pub(crate) fn check_edited(host: &Host, old: &GuestConfig, new: &GuestConfig) -> Result<()> {
    for d in new.dirs.iter().filter(|d| !old.dirs.contains(d)) {
        let real = resolve(host, &d.host)?;
        if real != d.host {
            return Err(CoreError::Invalid(format!(
                "host directory {} goes through a symlink: write the directory itself, {real}",
                d.host
            )));
        }
        mount_of(new, d)?;
    }
    Ok(())
}

/// `asked` with every symlink resolved, if it is a directory that may be shared.
fn resolve(host: &Host, asked: &HostPath) -> Result<HostPath> {
    let real = std::fs::canonicalize(asked.as_path()).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => CoreError::Invalid(format!(
            "host directory {asked} does not exist: make it first"
        )),
        _ => CoreError::io("resolving", asked.as_path(), e),
    })?;
    if !real.is_dir() {
        return Err(CoreError::Invalid(format!(
            "host path {asked} is not a directory: only directories are shared"
        )));
    }
    let real = HostPath::from_resolved(&real)?;
    if let Some(why) = hangar_model::dir::protected_refusal(real.as_path(), &protected(host)?) {
        return Err(CoreError::Invalid(format!(
            "host directory {real} may not be shared: {why}"
        )));
    }
    Ok(real)
}

/// Places no guest may be given: hangar's configuration, state and runtime
/// directories of this root, of the host's own root and of every root the context
/// registry names, and every guest's root filesystem outside them.
fn protected(host: &Host) -> Result<Vec<(PathBuf, String)>> {
    let mut roots = vec![PathBuf::from("/"), host.paths.root().to_path_buf()];
    roots.extend(crate::ids::Registry::host().roots());
    let real = |p: PathBuf| std::fs::canonicalize(&p).unwrap_or(p);
    let mut out = Vec::new();
    for r in roots {
        let r = real(std::path::absolute(&r).unwrap_or(r));
        for (rel, what) in [
            ("etc/hangar", "hangar's configuration"),
            ("var/lib/hangar", "hangar's guests and state"),
            ("run/hangar", "hangar's runtime state"),
        ] {
            let p = real(r.join(rel));
            if !out.iter().any(|(q, _)| *q == p) {
                out.push((p, what.to_string()));
            }
        }
    }
    for name in store::names(&host.paths)? {
        if let Ok(cfg) = store::load(&host.paths, &name)
            && cfg.rootfs.is_absolute()
        {
            out.push((real(cfg.rootfs), format!("guest {name}'s root filesystem")));
        }
    }
    Ok(out)
}

/// Whether the host's own mount of `dir` ignores setuid bits.
fn nosuid_on_host(dir: &HostPath) -> bool {
    shared::open_host_dir(dir.as_path())
        .ok()
        .and_then(|fd| nix::sys::statvfs::fstatvfs(&fd).ok())
        .is_some_and(|st| st.flags().contains(nix::sys::statvfs::FsFlags::ST_NOSUID))
}

/// The detached mount of `dir` for guest `cfg`: idmapped with the guest's id map,
/// or a plain bind for a privileged guest.
fn mount_of(cfg: &GuestConfig, dir: &SharedDir) -> Result<std::os::fd::OwnedFd> {
    let fd = shared::open_host_dir(dir.host.as_path())?;
    let userns = (!cfg.security.privileged)
        .then(|| shared::userns_mapping(cfg.context.id_base(), hangar_model::ctx::ID_RANGE))
        .transpose()?;
    Ok(shared::tree(&fd, dir, userns.as_ref().map(|u| u.as_fd()))?)
}

/// Mount `tree` (of `dir`) in guest `cfg` if it runs, and record it in its launch spec.
fn live_attach(
    host: &Host,
    cfg: &GuestConfig,
    dir: &SharedDir,
    tree: std::os::fd::OwnedFd,
) -> Result<()> {
    if !status::status(&host.paths, &cfg.name).is_active() {
        return Ok(());
    }
    let Some(ns) = crate::ops::attach::guest_ns(host, &cfg.name, "mnt")? else {
        return Ok(());
    };
    let unprivileged = !cfg.security.privileged;
    let prepared = shared::Prepared {
        tree,
        path: dir.path.clone(),
    };
    shared::attach_live(
        ns.as_fd(),
        prepared,
        unprivileged.then(|| cfg.context.id_base()),
        unprivileged,
    )?;
    record_in_spec(host, &cfg.name, &cfg.dirs)
}

/// Keep the running guest's launch spec in step with its shared directories: its
/// monitor reads them again when init ends, so a guest that reboots itself mounts
/// them as they are now.
fn record_in_spec(host: &Host, name: &GuestName, dirs: &[SharedDir]) -> Result<()> {
    let path = host.paths.run_dir(name).join("spec.json");
    let Ok(bytes) = std::fs::read(&path) else {
        return Ok(());
    };
    let mut spec: hangar_model::LaunchSpec = serde_json::from_slice(&bytes)
        .map_err(|e| CoreError::Invalid(format!("{}: {e}", path.display())))?;
    spec.dirs = dirs.to_vec();
    crate::ops::start::write_spec(host, name, &spec)?;
    Ok(())
}
