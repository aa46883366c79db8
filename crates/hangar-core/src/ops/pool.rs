//! `hangar pool create/list/show/delete` and `hangar df`.

use crate::pools::{self, Pool};
use crate::{CoreError, Host, Result, lock, store};
use hangar_model::pool::{PoolConfig, PoolDriver, PoolName, PoolSource};
use serde::Serialize;

/// One pool, as `pool list` and `pool show` report it.
#[derive(Debug, Clone, Serialize)]
pub struct PoolInfo {
    pub name: String,
    pub driver: String,
    /// The image file or device (the built-in pool: its directory).
    pub source: String,
    /// Bytes of the filesystem, and free.
    pub size: u64,
    pub free: u64,
    pub guests: Vec<String>,
}

/// `hangar pool create NAME [--driver btrfs] --size SIZE | --source DEVICE`: a btrfs
/// pool on an image file hangar makes, or on a block device (formatted: what it held
/// is lost). `--driver image [--source DIR]`: an image pool, its guests' image files
/// in DIR (which must exist), else in `var/lib/hangar/pools/NAME`.
pub fn create(
    host: &Host,
    name: &PoolName,
    driver: PoolDriver,
    source: PoolSource,
) -> Result<PoolConfig> {
    let cfg = PoolConfig {
        name: name.clone(),
        driver,
        source,
    };
    cfg.validate()?;
    let _host = lock::host(&host.paths)?;
    if pools::load(&host.paths, name).is_ok() {
        return Err(CoreError::Invalid(format!(
            "a pool named {name} already exists"
        )));
    }
    let mount = host.paths.pool_mount(name);
    let made = match &cfg.source {
        PoolSource::Image { size } => {
            let image = host.paths.pool_image(name);
            if image.exists() {
                return Err(CoreError::Invalid(format!(
                    "{} exists already and is no pool's: remove it or pick another name",
                    image.display()
                )));
            }
            crate::pools::make_sparse_file(&image, size.0).and_then(|()| {
                pools::btrfs::mkfs(&image, name.as_str())?;
                pools::btrfs::mount(&image, &mount, true)
            })
        }
        PoolSource::Device { path } => check_device(path).and_then(|()| {
            pools::btrfs::mkfs(path, name.as_str())?;
            pools::btrfs::mount(path, &mount, false)
        }),
        PoolSource::Directory { path } => {
            let dir = path.clone().unwrap_or_else(|| mount.clone());
            check_images_dir(&dir, path.is_some())?;
            let images = dir.join("images");
            std::fs::create_dir_all(&images).map_err(|e| CoreError::io("creating", &images, e))
        }
    };
    let saved = made.and_then(|()| {
        let guests = mount.join("guests");
        std::fs::create_dir_all(&guests).map_err(|e| CoreError::io("creating", &guests, e))?;
        pools::save(&host.paths, &cfg)
    });
    if let Err(e) = saved {
        undo_create(host, &cfg);
        return Err(e);
    }
    Ok(cfg)
}

/// An image pool's directory: an administrator's must exist; neither may hold another
/// pool's images.
fn check_images_dir(dir: &std::path::Path, given: bool) -> Result<()> {
    if given && !dir.is_dir() {
        return Err(CoreError::Invalid(format!(
            "{} is not a directory: make it first (an image pool keeps its guests' images \
             in a directory that exists)",
            dir.display()
        )));
    }
    for sub in ["images", "snapshots"] {
        if dir.join(sub).exists() {
            return Err(CoreError::Invalid(format!(
                "{} holds {sub}/ already (another image pool's?): pick another directory",
                dir.display()
            )));
        }
    }
    Ok(())
}

fn check_device(path: &std::path::Path) -> Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let m = std::fs::metadata(path).map_err(|e| CoreError::io("looking at", path, e))?;
    if !m.file_type().is_block_device() {
        return Err(CoreError::Invalid(format!(
            "{} is not a block device (for an image file hangar makes, give --size)",
            path.display()
        )));
    }
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    if mounts
        .lines()
        .any(|l| l.split(' ').next() == Some(&*path.to_string_lossy()))
    {
        return Err(CoreError::Invalid(format!(
            "{} is mounted: it holds a filesystem in use",
            path.display()
        )));
    }
    Ok(())
}

/// Take back what a failed create made (the device's old contents are gone already).
fn undo_create(host: &Host, cfg: &PoolConfig) {
    let mount = host.paths.pool_mount(&cfg.name);
    if pools::btrfs::mounted(&mount) {
        let _ = pools::btrfs::unmount(&mount);
    }
    if let PoolSource::Directory { path } = &cfg.source {
        // Only what create made: empty directories.
        let dir = path.clone().unwrap_or_else(|| mount.clone());
        let _ = std::fs::remove_dir(dir.join("images"));
        let _ = std::fs::remove_dir(mount.join("guests"));
    }
    let _ = std::fs::remove_dir(&mount);
    if let PoolSource::Image { .. } = cfg.source {
        let _ = std::fs::remove_file(host.paths.pool_image(&cfg.name));
    }
}

/// Guests whose config names pool `name`.
fn users(host: &Host, name: &PoolName) -> Result<Vec<String>> {
    let mut out = vec![];
    for g in store::names(&host.paths)? {
        if let Ok(cfg) = store::load(&host.paths, &g) {
            let pool = cfg.pool.unwrap_or_else(PoolName::default_pool);
            if &pool == name {
                out.push(g.to_string());
            }
        }
    }
    Ok(out)
}

/// `hangar pool delete NAME`: refused while a guest lives in it; unmounts it and
/// removes its image file (a device is left as it is, with its filesystem; an image
/// pool's directory given at create too, without the images/ and snapshots/ hangar
/// made in it).
pub fn delete(host: &Host, name: &PoolName) -> Result<()> {
    if name.is_default() {
        return Err(CoreError::Invalid(
            "the built-in pool cannot be deleted".into(),
        ));
    }
    let _host = lock::host(&host.paths)?;
    let cfg = pools::load(&host.paths, name)?;
    let users = users(host, name)?;
    if !users.is_empty() {
        return Err(CoreError::Invalid(format!(
            "pool {name} holds guests {}: delete them first",
            users.join(", ")
        )));
    }
    let mount = host.paths.pool_mount(name);
    if let Pool::Image { images, .. } = Pool::unchecked(&host.paths, cfg.clone()) {
        // What builds or deletes cut short left (no guest is left in the pool).
        images.unmount_all()?;
        for sub in [images.dir.join("images"), images.snapshots_dir()] {
            match std::fs::remove_dir_all(&sub) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(CoreError::io("removing", &sub, e));
                }
                _ => {}
            }
        }
        let _ = std::fs::remove_dir_all(&images.locks);
    }
    if pools::btrfs::mounted(&mount) {
        pools::btrfs::unmount(&mount)?;
    }
    let _ = std::fs::remove_dir(&mount);
    if let PoolSource::Image { .. } = cfg.source {
        let image = host.paths.pool_image(name);
        std::fs::remove_file(&image).map_err(|e| CoreError::io("removing", &image, e))?;
    }
    let file = host.paths.pools_dir().join(format!("{name}.toml"));
    std::fs::remove_file(&file).map_err(|e| CoreError::io("removing", &file, e))
}

fn info(host: &Host, pool: &Pool) -> Result<PoolInfo> {
    let (source, at) = match pool {
        Pool::Dir { guests } => (guests.display().to_string(), guests.clone()),
        Pool::Btrfs { cfg, mount } => (
            match &cfg.source {
                PoolSource::Image { .. } => host.paths.pool_image(&cfg.name).display().to_string(),
                PoolSource::Device { path } => path.display().to_string(),
                PoolSource::Directory { .. } => mount.display().to_string(),
            },
            mount.clone(),
        ),
        // The host filesystem the images are on: what they can still grow into.
        Pool::Image { images, .. } => (images.dir.display().to_string(), images.dir.clone()),
    };
    // The built-in pool's directory may not exist before the first build.
    let probe = at
        .ancestors()
        .find(|p| p.exists())
        .unwrap_or(std::path::Path::new("/"));
    let fs = nix::sys::statvfs::statvfs(probe)
        .map_err(|e| CoreError::io("looking at", probe, std::io::Error::from(e)))?;
    let frag = fs.fragment_size();
    Ok(PoolInfo {
        name: pool.name().to_string(),
        driver: pool.driver().to_string(),
        source,
        size: fs.blocks() * frag,
        free: fs.blocks_available() * frag,
        guests: users(host, &pool.name())?,
    })
}

/// Every pool, the built-in one first.
pub fn list(host: &Host) -> Result<Vec<PoolInfo>> {
    let mut out = vec![info(host, &Pool::open(host, None)?)?];
    for name in pools::names(&host.paths)? {
        out.push(info(host, &Pool::open(host, Some(&name))?)?);
    }
    Ok(out)
}

pub fn show(host: &Host, name: &PoolName) -> Result<PoolInfo> {
    info(host, &Pool::open(host, Some(name))?)
}

/// One row of `hangar df`: a guest's disk use against its limit.
#[derive(Debug, Clone, Serialize)]
pub struct DiskUse {
    pub name: String,
    pub pool: String,
    pub used: u64,
    pub limit: Option<u64>,
    /// Used in percent of the limit.
    pub percent: Option<f64>,
}

/// `hangar df`: every guest's disk use, limit and percentage at once.
pub fn df(host: &Host) -> Result<Vec<DiskUse>> {
    let mut out = vec![];
    for name in store::names(&host.paths)? {
        let row = (|| -> Result<DiskUse> {
            let cfg = store::load(&host.paths, &name)?;
            let pool = Pool::of(host, &cfg)?;
            let u = pool.usage(&pool.volume(&name))?;
            Ok(DiskUse {
                name: name.to_string(),
                pool: pool.name().to_string(),
                used: u.used,
                limit: u.limit,
                percent: u
                    .limit
                    .filter(|&l| l > 0)
                    .map(|l| u.used as f64 * 100.0 / l as f64),
            })
        })();
        match row {
            Ok(r) => out.push(r),
            Err(e) => eprintln!("hangar: {name} not listed: {e}"),
        }
    }
    Ok(out)
}
