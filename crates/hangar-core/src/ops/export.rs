//! `hangar export NAME FILE`: a guest into one archive ([`crate::archive`]): its
//! config, its volume and, with `--snapshots`, its snapshots.
//!
//! Consistent while the guest runs: on btrfs the files are read from a read-only
//! snapshot taken for the export (the guest frozen for that instant, as `snapshot
//! create` does) and removed after; the dir pool has no such snapshots, so there the
//! guest stays frozen while its volume is read (said in a notice). FILE is written as
//! a hidden file beside it and renamed into place once complete, so a failed export
//! leaves no file and replaces none; `-` is stdout (then a failure leaves the reader
//! an archive without its checksum, which `import` refuses).

use crate::archive::Ids;
pub use crate::archive::Progress;
use crate::archive::pack::Packer;
use crate::pools::Pool;
use crate::{CoreError, Host, Result, lock, status, store};
use hangar_model::backup::{self, Manifest, SnapshotEntry, Stream};
use hangar_model::pool::SnapshotName;
use hangar_model::{GuestConfig, GuestName};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

pub struct ExportRequest {
    pub name: GuestName,
    pub to: Stream,
    /// Replace FILE if it exists.
    pub force: bool,
    /// Put the guest's snapshots in too.
    pub snapshots: bool,
}

#[derive(Debug, Clone)]
pub struct ExportSummary {
    /// Bytes of file data written.
    pub bytes: u64,
    pub snapshots: usize,
}

pub fn export(
    host: &Host,
    req: &ExportRequest,
    progress: Option<&mut dyn FnMut(Progress)>,
) -> Result<ExportSummary> {
    let name = &req.name;
    let guard = lock::guest(&host.paths, name)?;
    let cfg = store::load(&host.paths, name)?;
    crate::adopt::ensure(host, name)?;
    if !cfg
        .rootfs
        .components()
        .all(|c| matches!(c, std::path::Component::Normal(_)))
    {
        return Err(CoreError::Invalid(format!(
            "guest {name}'s rootfs ({}) is not inside its volume: export takes the files \
             hangar keeps in a pool",
            cfg.rootfs.display()
        )));
    }
    let mut out = Output::open(&req.to, req.force)?;
    let written = write(host, &cfg, req.snapshots, guard, &mut out, progress);
    match written {
        Ok(summary) => {
            out.commit()?;
            Ok(summary)
        }
        Err(e) => {
            out.discard();
            Err(e)
        }
    }
}

/// How owners of a tree (a volume or a snapshot holding `cfg.rootfs`) go into the
/// archive: the guest's own ids, from the base its rootfs is shifted to now (a
/// snapshot taken before a change of context id has the old one).
fn ids_of(cfg: &GuestConfig, tree: &Path) -> Ids {
    if cfg.security.privileged {
        return Ids::Raw;
    }
    let range = hangar_model::ctx::ID_RANGE;
    let base = hangar_container::idshift::current_base(&tree.join(&cfg.rootfs), range)
        .unwrap_or_else(|_| cfg.root_host_id());
    Ids::Shifted { base }
}

fn write(
    host: &Host,
    cfg: &GuestConfig,
    with_snapshots: bool,
    guard: lock::Lock,
    out: &mut Output,
    progress: Option<&mut dyn FnMut(Progress)>,
) -> Result<ExportSummary> {
    let name = &cfg.name;
    let pool = Pool::of(host, cfg)?;
    let (manifest, snap_trees) = manifest(host, cfg, &pool, with_snapshots)?;
    let running = status::status(&host.paths, name).is_active();
    // On btrfs: the volume as it is now, read at leisure with the guest's lock let go.
    let volume_snapshot = match pool.driver() {
        hangar_model::pool::PoolDriver::Btrfs => {
            remove_stale(&pool, name, ".export-");
            let at = pool
                .snapshots_dir(name)
                .join(format!(".export-{}", std::process::id()));
            crate::ops::snapshot::frozen_while(host, name, || {
                pool.snapshot(&pool.volume(name), &at)
            })?;
            Some(TempVolume { pool: &pool, at })
        }
        // An image pool's volume is read mounted, as the dir pool's: the guest frozen.
        hangar_model::pool::PoolDriver::Dir | hangar_model::pool::PoolDriver::Image => None,
    };
    let guard = match volume_snapshot {
        Some(_) => {
            drop(guard);
            None
        }
        None => Some(guard),
    };
    let volume = match &volume_snapshot {
        Some(t) => t.at.clone(),
        None => pool.volume(name),
    };
    let total = progress.is_some().then(|| {
        std::iter::once(&volume)
            .chain(snap_trees.iter().map(|(_, p)| p))
            .map(|p| crate::pools::tree_bytes(p))
            .sum()
    });
    let mut packer = Packer::new(out.writer(), total, progress)?;
    packer.add_bytes(backup::MANIFEST, &manifest.to_json())?;
    packer.add_bytes(backup::CONFIG, cfg.to_toml().as_bytes())?;
    for (snap, tree) in &snap_trees {
        let prefix = format!("{}/{snap}", backup::SNAPSHOTS);
        packer.add_tree(&prefix, tree, ids_of(cfg, tree))?;
    }
    let ids = ids_of(cfg, &volume);
    if volume_snapshot.is_some() || !running {
        packer.add_tree(backup::VOLUME, &volume, ids)?;
    } else {
        let started = std::time::Instant::now();
        let r = crate::ops::snapshot::frozen_while(host, name, || {
            packer.add_tree(backup::VOLUME, &volume, ids)
        });
        host.notice(format!(
            "{name} was frozen for the {:.1} s its files took to read (the dir pool has no \
             snapshot to read them from)",
            started.elapsed().as_secs_f64()
        ));
        r?;
    }
    drop(guard);
    if packer.sockets > 0 {
        host.notice(format!(
            "{} sockets in {name}'s files were left out (an archive cannot hold one; \
             programs make theirs again when they start)",
            packer.sockets
        ));
    }
    let bytes = packer.bytes();
    let mut w = packer.finish()?;
    w.flush()
        .map_err(|e| CoreError::Invalid(format!("writing the archive failed: {e}")))?;
    Ok(ExportSummary {
        bytes,
        snapshots: snap_trees.len(),
    })
}

/// The manifest of guest `cfg`'s archive, and the snapshots it will hold (with
/// `with_snapshots`, all of them, oldest first) with where they are.
fn manifest(
    host: &Host,
    cfg: &GuestConfig,
    pool: &Pool,
    with_snapshots: bool,
) -> Result<(Manifest, Vec<(SnapshotName, PathBuf)>)> {
    let name = &cfg.name;
    let snaps = if with_snapshots {
        crate::ops::snapshot::list(host, name)?
    } else {
        vec![]
    };
    if !snaps.is_empty() && pool.driver() == hangar_model::pool::PoolDriver::Image {
        return Err(CoreError::Invalid(format!(
            "guest {name}'s snapshots are image files of pool {} that an archive does not \
             hold: export without --snapshots (restore a snapshot first to export it)",
            pool.name()
        )));
    }
    let mut entries = vec![];
    let mut trees = vec![];
    for s in snaps {
        let n = SnapshotName::new(&s.name)?;
        trees.push((n.clone(), pool.snapshots_dir(name).join(&s.name)));
        entries.push(SnapshotEntry {
            name: n,
            created: s.created,
        });
    }
    let manifest = Manifest {
        format: backup::FORMAT.into(),
        version: backup::VERSION,
        guest: name.clone(),
        context: cfg.context,
        privileged: cfg.security.privileged,
        pool: pool.name(),
        snapshots: entries,
        created: crate::ops::snapshot::now(),
        writer: format!("hangar {}", env!("CARGO_PKG_VERSION")),
    };
    Ok((manifest, trees))
}

/// The snapshot an export (or a publish) reads a btrfs volume from, removed when done.
pub(crate) struct TempVolume<'p> {
    pub(crate) pool: &'p Pool,
    pub(crate) at: PathBuf,
}

impl Drop for TempVolume<'_> {
    fn drop(&mut self) {
        let _ = self.pool.remove_volume(&self.at);
        // The guest's snapshot directory, when the export made it (fails unless empty).
        if let Some(dir) = self.at.parent() {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// Snapshots `PREFIX-PID` (`.export-PID`, `.publish-PID`) of guest `name` that a
/// command killed on the way left behind.
pub(crate) fn remove_stale(pool: &Pool, name: &GuestName, prefix: &str) {
    for e in std::fs::read_dir(pool.snapshots_dir(name))
        .into_iter()
        .flatten()
        .flatten()
    {
        let file = e.file_name();
        let Some(pid) = file.to_str().and_then(|f| f.strip_prefix(prefix)) else {
            continue;
        };
        if !Path::new("/proc").join(pid).exists() {
            let _ = pool.remove_volume(&e.path());
        }
    }
}

/// Where the archive goes: stdout, or a hidden file renamed to FILE when complete.
pub(crate) enum Output {
    Stdout,
    File {
        tmp: PathBuf,
        dst: PathBuf,
        force: bool,
        file: std::fs::File,
    },
}

impl Output {
    /// Refuses an existing FILE (unless `force`) and a terminal on stdout before
    /// anything is made.
    pub(crate) fn open(to: &Stream, force: bool) -> Result<Output> {
        let dst = match to {
            Stream::Std => {
                if std::io::stdout().is_terminal() {
                    return Err(CoreError::Invalid(
                        "stdout is a terminal: send the archive to a file (`> FILE`) or a pipe \
                         (`| ssh HOST hangar import -`), or name a FILE"
                            .into(),
                    ));
                }
                return Ok(Output::Stdout);
            }
            Stream::File(p) => p.clone(),
        };
        match std::fs::symlink_metadata(&dst) {
            Ok(m) if m.is_dir() => {
                return Err(CoreError::Invalid(format!(
                    "{} is a directory: name the archive file to write",
                    dst.display()
                )));
            }
            Ok(_) if !force => {
                return Err(CoreError::Invalid(format!(
                    "{} exists: name another file, or give --force to replace it",
                    dst.display()
                )));
            }
            _ => {}
        }
        let file_name = dst
            .file_name()
            .ok_or_else(|| CoreError::Invalid(format!("{} names no file", dst.display())))?;
        let dir = match dst.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let tmp = dir.join(format!(
            ".{}.partial-{}",
            file_name.to_string_lossy(),
            std::process::id()
        ));
        use std::os::unix::fs::OpenOptionsExt;
        // The archive holds every file of the guest (its secrets too): for root only.
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| CoreError::io("creating", &tmp, e))?;
        Ok(Output::File {
            tmp,
            dst,
            force,
            file,
        })
    }

    pub(crate) fn writer(&self) -> Box<dyn Write + '_> {
        const BUF: usize = 1 << 20;
        match self {
            Output::Stdout => Box::new(std::io::BufWriter::with_capacity(
                BUF,
                std::io::stdout().lock(),
            )),
            Output::File { file, .. } => Box::new(std::io::BufWriter::with_capacity(BUF, file)),
        }
    }

    /// The archive is complete: make it FILE (durably).
    pub(crate) fn commit(self) -> Result<()> {
        let Output::File {
            tmp,
            dst,
            force,
            file,
        } = self
        else {
            return Ok(());
        };
        let placed = file
            .sync_all()
            .map_err(|e| CoreError::io("writing", &tmp, e))
            .and_then(|()| {
                if force {
                    std::fs::rename(&tmp, &dst).map_err(|e| CoreError::io("renaming to", &dst, e))
                } else {
                    // A link fails where a file appeared meanwhile: it is not replaced.
                    std::fs::hard_link(&tmp, &dst)
                        .map_err(|e| CoreError::io("creating", &dst, e))
                        .map(|()| {
                            let _ = std::fs::remove_file(&tmp);
                        })
                }
            });
        if placed.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        placed?;
        if let Some(dir) = dst.parent().filter(|d| !d.as_os_str().is_empty()) {
            let _ = hangar_sys::sync_dir(dir);
        }
        Ok(())
    }

    pub(crate) fn discard(self) {
        if let Output::File { tmp, .. } = self {
            let _ = std::fs::remove_file(tmp);
        }
    }
}
