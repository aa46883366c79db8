//! `hangar import FILE [NAME]`: a new guest from an archive of `hangar export`.
//!
//! Made as a build is: under the new name's lock, a context id and the NICs'
//! addresses and MACs reserved in `.build-NAME` (on the same networks as in the
//! archive, chosen afresh on this host, as a clone's are), the files streamed into the
//! pool's build volume (`.build-NAME`) and the snapshots into `snapshots/.build-NAME`,
//! owners shifted into the new context's range as they are written. Only once the
//! archive's checksum matched and its end was read whole are the snapshots and the
//! volume moved into place and the config written, the commit point. Any failure
//! takes everything back (volumes, reservations, the context id's registry entry).
//! Under another name, the guest also gets a machine id of its own and, if its
//! hostname was its name, the new name (it is a copy beside the original); under the
//! same name it is the same machine, restored or moved.

use crate::archive::Progress;
use crate::archive::unpack::{Destination, Reader};
use crate::pools::Pool;
use crate::{CoreError, Host, Result, lock, store};
use hangar_model::backup::{Manifest, Stream};
use hangar_model::pool::{PoolName, SnapshotName};
use hangar_model::{ContextId, GuestConfig, GuestName, ModelError};
use std::io::{IsTerminal, Read};
use std::path::PathBuf;

pub struct ImportRequest {
    pub from: Stream,
    /// The new guest's name (default: the archive's).
    pub name: Option<GuestName>,
    /// The pool to put it in (default: the archive's pool if this host has one of that
    /// name, else the host's default pool for new guests).
    pub pool: Option<PoolName>,
    /// Its context id (default: the lowest free one).
    pub context: Option<ContextId>,
    /// Addresses given by hand for some of its NICs, or NICs left out (`--nic`); a
    /// routed NIC needs one or the other.
    pub nics: Vec<hangar_model::net::NicOverride>,
}

fn refuse(why: impl Into<String>) -> CoreError {
    CoreError::Model(ModelError::Archive(why.into()))
}

pub fn import(
    host: &Host,
    req: &ImportRequest,
    progress: &mut dyn FnMut(Progress),
) -> Result<GuestConfig> {
    let (input, total): (Box<dyn Read>, Option<u64>) = match &req.from {
        Stream::Std => {
            let stdin = std::io::stdin();
            if stdin.is_terminal() {
                return Err(CoreError::Invalid(
                    "stdin is a terminal: pipe an archive in (`hangar export NAME - | hangar \
                     import -`), or name a FILE"
                        .into(),
                ));
            }
            (Box::new(stdin.lock()), None)
        }
        Stream::File(p) => {
            let f = std::fs::File::open(p).map_err(|e| CoreError::io("opening", p, e))?;
            let len = f.metadata().ok().filter(|m| m.is_file()).map(|m| m.len());
            (Box::new(f), len)
        }
    };
    let mut reader = Reader::new(input, total)?;
    let mut members = reader.members()?;
    let manifest = members.manifest()?;
    let from = GuestConfig::from_toml(&members.config()?)
        .map_err(|e| refuse(format!("its config is not valid: {e}")))?;
    if from.name != manifest.guest || from.security.privileged != manifest.privileged {
        return Err(refuse("its config and its manifest disagree"));
    }
    if !from
        .rootfs
        .components()
        .all(|c| matches!(c, std::path::Component::Normal(_)))
    {
        return Err(refuse(format!(
            "its config's rootfs ({}) is not inside the guest's volume",
            from.rootfs.display()
        )));
    }
    let name = req.name.clone().unwrap_or_else(|| manifest.guest.clone());
    let requests = crate::ops::clone::requests_like(
        manifest.guest.as_str(),
        &from.nics,
        &req.nics,
        &format!("the imported {name}"),
    )?;
    let _guest = lock::guest(&host.paths, &name)?;
    if store::exists(&host.paths, &name) {
        return Err(CoreError::Invalid(format!(
            "a guest named {name} already exists: import under another name (`hangar import \
             FILE NEWNAME`), or delete it first"
        )));
    }
    crate::ops::build::remove_leftovers(host, &name)?;
    let pool = target_pool(host, req.pool.as_ref(), &from)?;
    let (context, nics) = crate::ops::build::reserve(host, &name, req.context, &requests)?;
    let renamed = name != manifest.guest;
    let cfg = GuestConfig {
        name: name.clone(),
        context,
        hostname: if renamed && from.hostname == manifest.guest.as_str() {
            name.to_string()
        } else {
            from.hostname.clone()
        },
        nics,
        pool: Some(pool.name()).filter(|p| !p.is_default()),
        ..from
    };
    let ids = if cfg.security.privileged {
        crate::archive::Ids::Raw
    } else {
        crate::archive::Ids::Shifted {
            base: context.id_base(),
        }
    };
    let made = prepare(host, &pool, &cfg, &manifest)
        .and_then(|(volume, snaps)| {
            let dest = Destination {
                volume: &volume,
                snapshots: &snaps,
                ids,
            };
            let skipped = members.unpack(&manifest, &dest, progress)?;
            if skipped > 0 {
                host.notice(format!(
                    "device nodes in the archive not made: {skipped} (an unprivileged \
                     guest's files hold only null, zero, full, random, urandom and tty; its \
                     /dev is hangar's own)"
                ));
            }
            Ok((volume, snaps))
        })
        .and_then(|(volume, snaps)| {
            reader.finish()?;
            // The archive is whole and ours: now the guest takes shape.
            seal_snapshots(&pool, &manifest, &snaps)?;
            if renamed {
                let rootfs = volume.join(&cfg.rootfs);
                crate::ops::clone::personalize(
                    host,
                    &name,
                    &rootfs,
                    &from.hostname,
                    &cfg.hostname,
                )?;
            }
            if !snaps.is_empty() {
                let dir = pool.snapshots_dir(&name);
                let staging = pool.build_snapshots_dir(&name);
                std::fs::rename(&staging, &dir)
                    .map_err(|e| CoreError::io("moving into", &dir, e))?;
            }
            crate::ops::build::commit(host, &pool, &volume, &cfg)
        });
    if let Err(e) = made {
        crate::ops::build::abandon(host, &pool, &name, context);
        return Err(e);
    }
    if cfg.security.privileged {
        host.notice(format!(
            "{name} is privileged, as its archive says: its root is the host's root"
        ));
    }
    crate::ops::attach::refresh_networks(host, &cfg.nics);
    Ok(cfg)
}

/// The new guest's volume and its snapshots' (empty), the volume limited before
/// anything is written to it: an archive larger than the guest's disk.size fails
/// here, not later inside the guest.
fn prepare(
    host: &Host,
    pool: &Pool,
    cfg: &GuestConfig,
    manifest: &Manifest,
) -> Result<(PathBuf, Vec<(SnapshotName, PathBuf)>)> {
    cfg.validate()?;
    if !manifest.snapshots.is_empty() && pool.driver() == hangar_model::pool::PoolDriver::Image {
        return Err(CoreError::Invalid(format!(
            "the archive holds snapshots, and pool {} keeps snapshots as image files it \
             cannot make from one: import into another pool (--pool)",
            pool.name()
        )));
    }
    let volume = pool.build_volume(&cfg.name);
    let limits = host.limits(cfg);
    pool.create_volume(&volume, &limits)?;
    let staging = pool.build_snapshots_dir(&cfg.name);
    let mut snaps = vec![];
    for s in &manifest.snapshots {
        std::fs::create_dir_all(&staging).map_err(|e| CoreError::io("creating", &staging, e))?;
        let at = staging.join(s.name.as_str());
        pool.create_volume(&at, &limits)?;
        snaps.push((s.name.clone(), at));
    }
    Ok((volume, snaps))
}

/// The pool asked for; else the archive's if this host has a pool of that name; else
/// the host's default pool for new guests (said in a notice).
fn target_pool(host: &Host, asked: Option<&PoolName>, from: &GuestConfig) -> Result<Pool> {
    if let Some(p) = asked {
        return Pool::open(host, Some(p));
    }
    let theirs = from.pool.clone().unwrap_or_else(PoolName::default_pool);
    if theirs.is_default() || crate::pools::load(&host.paths, &theirs).is_ok() {
        return Pool::open(host, Some(&theirs));
    }
    let ours = host.defaults.pool.clone();
    host.notice(format!(
        "this host has no pool named {theirs}: the guest goes into {} (choose with --pool)",
        ours.as_ref()
            .map_or("the built-in pool".into(), |p| format!("pool {p}"))
    ));
    Pool::open(host, ours.as_ref())
}

/// Snapshots get back the time they were taken (what `snapshot list` shows) and, on
/// btrfs, become read-only as snapshots are.
fn seal_snapshots(
    pool: &Pool,
    manifest: &Manifest,
    snaps: &[(SnapshotName, PathBuf)],
) -> Result<()> {
    for (name, at) in snaps {
        if let Some(s) = manifest.snapshots.iter().find(|s| &s.name == name) {
            crate::archive::unpack::set_mtime(at, s.created as i64)?;
        }
        pool.seal(at)?;
    }
    Ok(())
}
