//! `hangar unify GUEST... | --all`: files that are identical across guests of one pool
//! (and within a guest) come to share their blocks, the VServer seed's unification done
//! with shared extents. Each pair is handed to the kernel's `FIDEDUPERANGE`, which locks
//! and compares both files itself and shares their extents only when every byte is
//! equal: no file's contents ever change, each keeps its own owner, mode and times,
//! and a later write to one of them gets new blocks for that file alone (copy on
//! write), so a write in one guest never changes another's file. Run again after
//! upgrades, it shares the files that drifted apart (files sharing already are left
//! alone).
//!
//! Why not hard links, as VServer did: each guest's files belong to its own host uid
//! range, and a hard link has one owner, so a file linked into two guests would belong
//! to the wrong user in one of them; and without VServer's kernel patch nothing would
//! break a link into a private copy when a guest writes to it. Shared extents have
//! neither problem, and need a filesystem that has them (btrfs; xfs with reflink):
//! a pool on another (the built-in `dir` pool on ext4) is refused with that reason.
//!
//! Candidates are regular files of at least [`MIN_SIZE`] (smaller ones often live
//! inline in btrfs's metadata and save nothing) found in each guest's root filesystem
//! without crossing into another filesystem and opened with `openat2` resolved inside
//! that root, refusing symlinks, so a running guest that swaps a directory for a
//! symlink cannot have hangar open anything outside it. Files of equal size whose first
//! and last 16 KiB hash alike are offered to the kernel, which has the last word.

use crate::pools::Pool;
use crate::{CoreError, Host, Result, lock, store};
use hangar_model::GuestName;
use hangar_model::pool::PoolName;
use hangar_sys::Dedupe;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;
use serde::Serialize;
use std::collections::HashMap;
use std::fs::File;
use std::hash::{Hash, Hasher};
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Files smaller than this are not looked at.
pub const MIN_SIZE: u64 = 4096;
/// Bytes hashed at each end of a file to sort candidates.
const SAMPLE: usize = 16 * 1024;
/// At most this many different files of one size and sample are kept to compare with.
const MAX_ORIGINALS: usize = 8;

/// What unify did in one pool.
#[derive(Debug, Clone, Serialize)]
pub struct PoolUnified {
    pub pool: PoolName,
    pub guests: Vec<GuestName>,
    /// Regular files of at least [`MIN_SIZE`] looked at.
    pub files: u64,
    /// Files that now share their blocks with an identical one and did not before.
    pub shared: u64,
    /// Bytes of those files.
    pub shared_bytes: u64,
    /// Files that shared their blocks already (an earlier run).
    pub already: u64,
    /// Files that could not be opened or handed to the kernel (gone meanwhile, say).
    pub skipped: u64,
    /// What the pool's filesystem uses less than before (its own count, after a sync).
    pub freed: u64,
}

/// Unify the named guests (all in one pool), or with `all` every guest, pool by pool.
pub fn unify(host: &Host, names: &[GuestName], all: bool) -> Result<Vec<PoolUnified>> {
    let names: Vec<GuestName> = if all {
        store::names(&host.paths)?
    } else {
        if names.is_empty() {
            return Err(CoreError::Invalid(
                "name the guests to unify, or give --all".into(),
            ));
        }
        let mut n = names.to_vec();
        n.sort();
        n.dedup();
        n
    };
    // Locked for the whole run (in name order, as every multi-guest operation does):
    // none is deleted, renamed or restored under us; running guests stay running.
    let mut locks = Vec::with_capacity(names.len());
    let mut by_pool: Vec<(PoolName, Vec<GuestName>)> = vec![];
    for name in &names {
        locks.push(lock::guest(&host.paths, name)?);
        let cfg = store::load(&host.paths, name)?;
        let pool = cfg.pool.clone().unwrap_or_else(PoolName::default_pool);
        match by_pool.iter_mut().find(|(p, _)| *p == pool) {
            Some((_, guests)) => guests.push(name.clone()),
            None => by_pool.push((pool, vec![name.clone()])),
        }
    }
    if !all && by_pool.len() > 1 {
        let list: Vec<String> = by_pool
            .iter()
            .map(|(p, g)| format!("{} in {p}", join(g)))
            .collect();
        return Err(CoreError::Invalid(format!(
            "only guests of one pool share blocks: {} (name guests of one pool, or give \
             --all to unify each pool on its own)",
            list.join(", ")
        )));
    }
    let mut out = vec![];
    for (pool_name, guests) in by_pool {
        let pool = Pool::open(host, Some(&pool_name))?;
        if !can_share(&pool.guests_dir()) {
            if all {
                continue;
            }
            return Err(CoreError::Invalid(format!(
                "pool {pool_name} is on a filesystem without shared extents ({}): unify \
                 needs a btrfs pool (`hangar pool create NAME --size 20G`, and `hangar \
                 clone` or export/import to move guests there)",
                pool.guests_dir().display()
            )));
        }
        out.push(unify_pool(host, &pool, guests)?);
    }
    drop(locks);
    Ok(out)
}

fn join(names: &[GuestName]) -> String {
    names
        .iter()
        .map(GuestName::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether the filesystem of `dir` shares extents: two identical scratch files there
/// are offered to the kernel.
fn can_share(dir: &Path) -> bool {
    let probe = |i: u32| dir.join(format!(".unify-probe-{}-{i}", std::process::id()));
    let (a, b) = (probe(0), probe(1));
    let block = vec![0x5a_u8; 2 * MIN_SIZE as usize];
    let result = (|| -> std::io::Result<bool> {
        std::fs::write(&a, &block)?;
        std::fs::write(&b, &block)?;
        let (fa, fb) = (File::open(&a)?, File::open(&b)?);
        Ok(matches!(
            hangar_sys::dedupe_range(fa.as_fd(), 0, block.len() as u64, fb.as_fd(), 0),
            Ok(Dedupe::Same(_))
        ))
    })();
    let _ = std::fs::remove_file(&a);
    let _ = std::fs::remove_file(&b);
    result.unwrap_or(false)
}

/// A file worth comparing: its guest's root and its path inside it.
struct Candidate {
    root: usize,
    path: PathBuf,
    size: u64,
}

fn unify_pool(host: &Host, pool: &Pool, guests: Vec<GuestName>) -> Result<PoolUnified> {
    let mut roots: Vec<OwnedFd> = vec![];
    let mut found: Vec<Candidate> = vec![];
    for name in &guests {
        let cfg = store::load(&host.paths, name)?;
        let rootfs = host.rootfs(&cfg)?;
        let root = nix::fcntl::open(
            &rootfs,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| CoreError::io("opening", &rootfs, e.into()))?;
        walk(&root, roots.len(), &mut found);
        roots.push(root);
    }
    let before = pool_used(&pool.guests_dir());
    let mut report = PoolUnified {
        pool: pool.name(),
        guests,
        files: found.len() as u64,
        shared: 0,
        shared_bytes: 0,
        already: 0,
        skipped: 0,
        freed: 0,
    };
    let mut by_size: HashMap<u64, Vec<Candidate>> = HashMap::new();
    for c in found {
        by_size.entry(c.size).or_default().push(c);
    }
    for (_, same_size) in by_size.into_iter().filter(|(_, v)| v.len() > 1) {
        let mut by_sample: HashMap<u64, Vec<File>> = HashMap::new();
        for c in same_size {
            match open_in(&roots[c.root], &c.path).and_then(|f| Ok((sample(&f)?, f))) {
                Ok((key, f)) => by_sample.entry(key).or_default().push(f),
                Err(_) => report.skipped += 1,
            }
        }
        for files in by_sample.into_values().filter(|v| v.len() > 1) {
            share_alike(files, &mut report);
        }
    }
    let after = pool_used(&pool.guests_dir());
    report.freed = before.saturating_sub(after);
    Ok(report)
}

/// Every candidate under `root` (descriptor of a guest's root filesystem), without
/// leaving its filesystem. Directories are listed through their descriptors, opened
/// inside the root.
fn walk(root: &OwnedFd, index: usize, out: &mut Vec<Candidate>) {
    let Ok(top) = nix::sys::stat::fstat(root) else {
        return;
    };
    let mut dirs = vec![PathBuf::new()];
    while let Some(rel) = dirs.pop() {
        let Ok(dir) = open_dir_in(root, &rel) else {
            continue;
        };
        let listing = PathBuf::from(format!("/proc/self/fd/{}", {
            use std::os::fd::AsRawFd;
            dir.as_raw_fd()
        }));
        for entry in std::fs::read_dir(&listing).into_iter().flatten().flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.dev() != top.st_dev {
                continue;
            }
            let path = rel.join(entry.file_name());
            if meta.is_dir() {
                dirs.push(path);
            } else if meta.is_file() && meta.len() >= MIN_SIZE {
                out.push(Candidate {
                    root: index,
                    path,
                    size: meta.len(),
                });
            }
        }
    }
}

/// How paths inside a guest's root are resolved: as if it were `/`, through no
/// symlink, into no other filesystem.
fn inside() -> ResolveFlag {
    ResolveFlag::RESOLVE_IN_ROOT
        | ResolveFlag::RESOLVE_NO_SYMLINKS
        | ResolveFlag::RESOLVE_NO_MAGICLINKS
        | ResolveFlag::RESOLVE_NO_XDEV
}

fn open_dir_in(root: &OwnedFd, rel: &Path) -> nix::Result<OwnedFd> {
    let rel = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC)
        .resolve(inside());
    nix::fcntl::openat2(root, rel, how)
}

/// Regular file `rel` of a guest's root, opened read-only (root may share a file's
/// extents without write access to it), never blocking on a FIFO swapped in.
fn open_in(root: &OwnedFd, rel: &Path) -> std::io::Result<File> {
    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .resolve(inside());
    let f = File::from(nix::fcntl::openat2(root, rel, how)?);
    if !f.metadata()?.is_file() {
        return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
    }
    Ok(f)
}

/// A hash of the first and last [`SAMPLE`] bytes of `f`: files that differ mostly
/// differ there already.
fn sample(f: &File) -> std::io::Result<u64> {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    let mut buf = vec![0u8; SAMPLE];
    let mut f = f;
    let n = f.read(&mut buf)?;
    buf[..n].hash(&mut h);
    let len = f.metadata()?.len();
    if len > SAMPLE as u64 {
        f.seek(SeekFrom::Start(len - SAMPLE as u64))?;
        let n = f.read(&mut buf)?;
        buf[..n].hash(&mut h);
    }
    Ok(h.finish())
}

/// A file's extents: (logical offset, physical address, length) each.
type Extents = Vec<(u64, u64, u64)>;

/// Files of one size and sample: each is offered to the kernel against the files kept
/// as originals until one is identical, or becomes an original itself.
fn share_alike(files: Vec<File>, report: &mut PoolUnified) {
    // Each original with where its blocks are.
    let mut originals: Vec<(File, Extents)> = vec![];
    for f in files {
        let Ok(len) = f.metadata().map(|m| m.len()) else {
            report.skipped += 1;
            continue;
        };
        let map = hangar_sys::extents(f.as_fd()).unwrap_or_default();
        let mut matched = false;
        for (orig, orig_map) in &originals {
            if !map.is_empty() && map == *orig_map {
                report.already += 1;
                matched = true;
                break;
            }
            match share(orig, &f, len) {
                Ok(Some(n)) => {
                    report.shared += 1;
                    report.shared_bytes += n;
                    matched = true;
                    break;
                }
                Ok(None) => {}
                Err(_) => {
                    report.skipped += 1;
                    matched = true;
                    break;
                }
            }
        }
        if !matched && originals.len() < MAX_ORIGINALS {
            originals.push((f, map));
        }
    }
}

/// Have `dest` share `src`'s extents, chunk by chunk as the filesystem allows: the
/// bytes shared, or None when the files differ from the first chunk on (a file
/// changed while we looked shares what was equal, no more).
fn share(src: &File, dest: &File, len: u64) -> std::io::Result<Option<u64>> {
    let mut done = 0;
    while done < len {
        match hangar_sys::dedupe_range(src.as_fd(), done, len - done, dest.as_fd(), done) {
            Ok(Dedupe::Same(0)) => break,
            Ok(Dedupe::Same(n)) => done += n,
            Ok(Dedupe::Differs) if done == 0 => return Ok(None),
            Ok(Dedupe::Differs) => break,
            Err(hangar_sys::SysError::Call { source, .. }) => return Err(source),
        }
    }
    Ok((done > 0).then_some(done))
}

/// Bytes the filesystem of `dir` uses, once what is cached and pending is written.
fn pool_used(dir: &Path) -> u64 {
    if let Ok(d) = File::open(dir) {
        let _ = nix::unistd::syncfs(&d);
    }
    crate::pools::fs_usage(dir).map_or(0, |(used, _)| used)
}
