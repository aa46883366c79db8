//! `hangar build`: make a new guest from a build method, or from an image (`--image`:
//! the image's files copied, or snapshotted on btrfs, by [`crate::images::volume`]).
//!
//! The root filesystem is built in `.build-NAME`, its ownership shifted into the guest's
//! id range, the directory renamed into place, and only then is the config written: the
//! config is the commit point, so an interrupted build leaves no guest, only a build
//! directory that the next build or delete of that name removes.

use crate::build::{BuildContext, Method, populate};
use crate::images::volume::GuestStart;
use crate::pools::Pool;
use crate::{CoreError, Host, Result, lock, store};
use hangar_model::config::{Autostart, validate_hostname};
use hangar_model::{ContextId, GuestConfig, GuestKind, GuestName, Limits, Security, StopPolicy};

/// Where a new guest's files come from.
pub enum Source {
    /// A build method (`-m`).
    Method(Method),
    /// An image of the store (`--image`).
    Image(hangar_model::image::ImageName),
}

pub struct BuildRequest {
    pub name: GuestName,
    pub source: Source,
    pub hostname: Option<String>,
    pub context: Option<ContextId>,
    pub privileged: bool,
    /// NICs to give the guest (empty: none, only lo).
    pub nics: Vec<crate::net::nic::NicRequest>,
    /// The pool to build in (None: the host defaults' pool, else the built-in one).
    pub pool: Option<hangar_model::pool::PoolName>,
    /// `disk.size`, where the pool can limit it.
    pub disk_size: Option<hangar_model::Size>,
}

pub fn build(
    host: &Host,
    req: BuildRequest,
    progress: &mut dyn FnMut(&str),
) -> Result<GuestConfig> {
    let name = &req.name;
    let hostname = req.hostname.clone().unwrap_or_else(|| name.to_string());
    validate_hostname(&hostname)?;
    let _guest = lock::guest(&host.paths, name)?;
    if store::exists(&host.paths, name) {
        return Err(CoreError::Exists(name.to_string()));
    }
    let pool_name = req.pool.clone().or_else(|| host.defaults.pool.clone());
    let pool = Pool::open(host, pool_name.as_ref())?;
    if req.disk_size.is_some() && pool.driver() == hangar_model::pool::PoolDriver::Dir {
        pool.set_size(&pool.guests_dir(), req.disk_size)?;
    }
    remove_leftovers(host, name)?;
    let (context, nics) = reserve(host, name, req.context, &req.nics)?;
    let result = finish(host, &req, &pool, &hostname, context, nics, progress);
    if result.is_err() {
        abandon(host, &pool, name, context);
    }
    result
}

fn finish(
    host: &Host,
    req: &BuildRequest,
    pool: &Pool,
    hostname: &str,
    context: ContextId,
    nics: Vec<hangar_model::net::Nic>,
    progress: &mut dyn FnMut(&str),
) -> Result<GuestConfig> {
    use hangar_model::limits::Bound;
    // The volume: in the built-in pool the build dir itself, else a subvolume of the
    // pool, limited before anything is written to it, or a filesystem of its size (a
    // snapshot of an image's copy, once made).
    let volume = pool.build_volume(&req.name);
    let mut limits = Limits::default();
    if let Some(size) = req.disk_size {
        limits.disk.size = Some(Bound::At(size));
    }
    // A guest of an image pool always has a disk size, written in its config.
    if !matches!(
        limits.or(&host.defaults.limits).disk.size,
        Some(Bound::At(_))
    ) {
        limits.disk.size = pool.default_disk_size().map(Bound::At).or(limits.disk.size);
    }
    let effective = limits.or(&host.defaults.limits);
    let base = context.id_base();
    let target = Target {
        volume: &volume,
        limits: &effective,
        hostname,
        base,
    };
    let start = fill_volume(host, pool, req, &target, progress)
        .map_err(|e| too_small(pool, &volume, &effective, e))?;
    let cfg = GuestConfig {
        name: req.name.clone(),
        kind: GuestKind::Container,
        context,
        hostname: hostname.to_string(),
        rootfs: "rootfs".into(),
        pool: Some(pool.name()).filter(|p| !p.is_default()),
        init: start.init,
        init_env: start.env,
        init_cwd: start.cwd,
        stop: StopPolicy {
            signal: start.stop_signal,
            ..StopPolicy::default()
        },
        limits,
        autostart: Autostart::default(),
        security: Security {
            privileged: req.privileged,
            ..Security::default()
        },
        nics,
        dirs: vec![],
    };
    cfg.validate()?;
    commit(host, pool, &volume, &cfg)?;
    crate::ops::attach::refresh_networks(host, &cfg.nics);
    Ok(cfg)
}

/// A build that ran out of room in a volume of a fixed size (an image pool's) says so,
/// and what to do: tools report it in words of their own, or the disk is found full.
/// Where a build puts the new guest's files, and who they are for.
struct Target<'a> {
    /// The volume, made by [`fill_volume`] at `limits`.
    volume: &'a std::path::Path,
    limits: &'a Limits,
    hostname: &'a str,
    /// The guest's id base, its files are shifted to.
    base: u32,
}

/// The new guest's files in its volume, from its build method or image, shifted into
/// its id range; how it starts.
fn fill_volume(
    host: &Host,
    pool: &Pool,
    req: &BuildRequest,
    target: &Target<'_>,
    progress: &mut dyn FnMut(&str),
) -> Result<GuestStart> {
    let Target {
        volume,
        limits,
        hostname,
        base,
    } = *target;
    let rootfs = volume.join("rootfs");
    let start = match &req.source {
        Source::Method(method) => {
            pool.create_volume(volume, limits)?;
            std::fs::create_dir_all(&rootfs).map_err(|e| CoreError::io("creating", &rootfs, e))?;
            let cache = host.paths.cache_dir();
            let mut cx = BuildContext {
                hostname,
                cache_dir: Some(&cache),
                progress: &mut *progress,
            };
            GuestStart {
                init: populate(method, &rootfs, &mut cx)?.init,
                ..GuestStart::default()
            }
        }
        Source::Image(image) => {
            progress(&format!("copying image {image}"));
            let filled = crate::images::volume::fill(host, pool, image, volume, limits)?;
            // A copy: its own machine id, and its name as hostname.
            crate::ops::clone::personalize(
                host,
                &req.name,
                &rootfs,
                &filled.old_hostname,
                hostname,
            )?;
            filled.start
        }
    };
    if !req.privileged {
        progress("shifting file ownership into the guest's id range");
        hangar_container::idshift::shift_to(&rootfs, base, hangar_model::ctx::ID_RANGE)?;
    }
    Ok(start)
}

fn too_small(pool: &Pool, volume: &std::path::Path, limits: &Limits, e: CoreError) -> CoreError {
    use hangar_model::{limits::Bound, pool::PoolDriver};
    let (PoolDriver::Image, Some(Bound::At(size))) = (pool.driver(), limits.disk.size) else {
        return e;
    };
    let chain = || std::iter::successors(Some(&e as &dyn std::error::Error), |e| e.source());
    let enospc = chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.raw_os_error() == Some(libc::ENOSPC))
            || e.to_string().contains("No space left on device")
    });
    let full = pool.usage(volume).is_ok_and(|u| {
        u.limit
            .is_some_and(|l| l.saturating_sub(u.used) < (l / 50).max(1 << 20))
    });
    if !(enospc || full) {
        return e;
    }
    let why: Vec<String> = chain().map(|e| e.to_string()).collect();
    CoreError::Invalid(format!(
        "the guest's files do not fit in its disk ({size}): give a larger --disk-size ({})",
        why.join(": ")
    ))
}

/// Allocate and reserve a new guest's identity (a context id, free in this root and on
/// the host, and its NICs' addresses and MACs) in its build dir, where allocators look
/// until the config takes them over ([`commit`]).
pub(crate) fn reserve(
    host: &Host,
    name: &GuestName,
    context: Option<ContextId>,
    requests: &[crate::net::nic::NicRequest],
) -> Result<(ContextId, Vec<hangar_model::net::Nic>)> {
    let build_dir = host.paths.build_dir(name);
    let _host_lock = lock::host(&host.paths)?;
    let registry = crate::ids::Registry::host();
    // Held until the build dir names the id: another root sees it reserved then.
    let ids = registry.lock()?;
    let ctx = store::allocate_context(&host.paths, context, name, &ids)?;
    let mut nics = vec![];
    for r in requests {
        let nic = crate::net::nic::allocate(host, name.as_str(), &nics, r)?;
        nics.push(nic);
    }
    hangar_model::net::validate_nics(&nics)?;
    std::fs::create_dir_all(&build_dir).map_err(|e| CoreError::io("creating", &build_dir, e))?;
    std::fs::write(build_dir.join("context"), ctx.to_string())
        .map_err(|e| CoreError::io("writing", &build_dir, e))?;
    let reserved = serde_json::to_vec(&nics).expect("nics serialise");
    std::fs::write(build_dir.join("nics.json"), reserved)
        .map_err(|e| CoreError::io("writing", &build_dir, e))?;
    Ok((ctx, nics))
}

/// Make the build (or clone) of `cfg` in `volume` a guest: move the volume into place,
/// drop the build's reservations and write the config, the commit point. Under the
/// host lock and the host-wide context registry's: the reservations (a context id, NIC
/// addresses) and the config that takes them over are never both missing for another
/// allocation to see (in the built-in pool the reservations live in the volume itself,
/// and go with its rename).
pub(crate) fn commit(
    host: &Host,
    pool: &Pool,
    volume: &std::path::Path,
    cfg: &GuestConfig,
) -> Result<()> {
    let _host_lock = lock::host(&host.paths)?;
    let registry = crate::ids::Registry::host();
    let _ids = registry.lock()?;
    let data_dir = pool.volume(&cfg.name);
    pool.rename_volume(volume, &data_dir)?;
    for dir in [host.paths.build_dir(&cfg.name), data_dir] {
        let _ = std::fs::remove_file(dir.join("context"));
        let _ = std::fs::remove_file(dir.join("nics.json"));
    }
    let _ = std::fs::remove_dir(host.paths.build_dir(&cfg.name));
    store::save(&host.paths, cfg)
}

/// Take back what a build, clone or import of `name` made when it fails before its
/// config is written: its volume (where the commit may have moved it already), the
/// snapshots an import made, its build dir with the reservations, and its context
/// id's entry in the host's registry.
pub(crate) fn abandon(host: &Host, pool: &Pool, name: &GuestName, context: ContextId) {
    let _ = pool.remove_volume(&pool.build_volume(name));
    let _ = pool.remove_volume(&pool.volume(name));
    let _ = pool.remove_volumes_in(&pool.build_snapshots_dir(name));
    let _ = pool.remove_volumes_in(&pool.snapshots_dir(name));
    let _ = std::fs::remove_dir_all(host.paths.build_dir(name));
    let registry = crate::ids::Registry::host();
    if let Ok(ids) = registry.lock() {
        ids.release(context, &host.paths, name);
    }
}

/// Remove what an interrupted build, import or delete of `name` left (we hold its
/// lock, so nobody is working on it).
pub(crate) fn remove_leftovers(host: &Host, name: &GuestName) -> Result<()> {
    if store::exists(&host.paths, name) {
        return Ok(());
    }
    for dir in [host.paths.build_dir(name), host.paths.data_dir(name)] {
        if dir.exists() {
            std::fs::remove_dir_all(&dir)
                .map_err(|e| CoreError::io("removing leftover", &dir, e))?;
        }
    }
    let dir_pool = Pool::open(host, None)?;
    dir_pool.remove_volumes_in(&dir_pool.build_snapshots_dir(name))?;
    dir_pool.remove_volumes_in(&dir_pool.snapshots_dir(name))?;
    // Volumes in the other pools (a pool that cannot be mounted now has nothing to
    // remove that could be in the way).
    for p in crate::pools::names(&host.paths)? {
        if let Ok(pool) = Pool::open(host, Some(&p)) {
            pool.remove_volume(&pool.build_volume(name))?;
            pool.remove_volume(&pool.volume(name))?;
            pool.remove_volumes_in(&pool.build_snapshots_dir(name))?;
            pool.remove_volumes_in(&pool.snapshots_dir(name))?;
        }
    }
    Ok(())
}
