//! Reading an archive into new volumes, with care: it may come from anywhere.
//!
//! Every member's path is checked ([`Member::parse`]: nothing absolute, no `..`) and
//! is written only below directories this archive made itself, earlier: a symlink
//! (or a file) can never be a directory a later member is written through, and a hard
//! link only joins a file the archive made in the same tree. Nothing is replaced: a
//! member met twice is refused. Owners outside a guest's ids are refused. An
//! unprivileged guest's files get no device node but the harmless ones (a node in
//! its root filesystem would open the host's device), and no file capability that
//! holds outside its user namespace. Files are
//! written with their data first, then owner, mode (setuid bits survive), extended
//! attributes (a chown drops file capabilities) and times; runs of zero bytes become
//! holes. The digest is checked at the checksum member, and [`Reader::finish`] checks
//! that nothing but the tar end follows and that the zstd frame ends whole.

use super::{Digest, HashReader, Ids, Progress};
use crate::{CoreError, Result};
use hangar_model::ModelError;
use hangar_model::backup::{Manifest, Member};
use hangar_model::pool::SnapshotName;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// The first bytes of a zstd frame.
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
/// Manifest and config are small; a larger member there is not ours.
const SMALL: u64 = 1 << 20;

pub(super) fn refuse(why: impl Into<String>) -> CoreError {
    CoreError::Model(ModelError::Archive(why.into()))
}

/// A read from the archive failed: it is cut short or damaged.
pub(super) fn damaged(e: std::io::Error) -> CoreError {
    refuse(format!("it is damaged or cut short ({e})"))
}

type Stream<'r> = HashReader<zstd::stream::read::Decoder<'static, BufReader<Box<dyn Read + 'r>>>>;

/// An archive being read.
pub struct Reader<'r> {
    archive: tar::Archive<Stream<'r>>,
    digest: Rc<RefCell<Digest>>,
    /// Bytes read from the input (compressed), for progress.
    read: Rc<Cell<u64>>,
    /// The input's size, when it is a file.
    total: Option<u64>,
}

/// Counts the bytes read through it.
struct Counted<R> {
    inner: R,
    n: Rc<Cell<u64>>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.n.set(self.n.get() + n as u64);
        Ok(n)
    }
}

impl<'r> Reader<'r> {
    /// Start reading `input` (`total` bytes long, when known). Refused at once when it
    /// is empty or not zstd-compressed.
    pub fn new(input: impl Read + 'r, total: Option<u64>) -> Result<Reader<'r>> {
        let read = Rc::new(Cell::new(0));
        let mut input = Counted {
            inner: input,
            n: read.clone(),
        };
        let mut head = Vec::with_capacity(4);
        (&mut input)
            .take(4)
            .read_to_end(&mut head)
            .map_err(|e| CoreError::Invalid(format!("reading the archive failed: {e}")))?;
        if head.is_empty() {
            return Err(refuse("it is empty"));
        }
        if head != ZSTD_MAGIC {
            return Err(refuse(
                "not a hangar export (it is not zstd-compressed; `hangar export` writes one)",
            ));
        }
        let whole: Box<dyn Read + 'r> = Box::new(std::io::Cursor::new(head).chain(input));
        let decoder = zstd::stream::read::Decoder::new(whole).map_err(damaged)?;
        let (stream, digest) = HashReader::new(decoder);
        Ok(Reader {
            archive: tar::Archive::new(stream),
            digest,
            read,
            total,
        })
    }

    /// Its members, in order.
    pub fn members(&mut self) -> Result<Members<'_, 'r>> {
        let entries = self.archive.entries().map_err(damaged)?;
        Ok(Members {
            entries,
            digest: self.digest.clone(),
            read: self.read.clone(),
            total: self.total,
        })
    }

    /// After the checksum member: nothing but zeros (the tar end) may follow, up to the
    /// end of the zstd frame, which must be whole.
    pub fn finish(self) -> Result<()> {
        let mut rest = self.archive.into_inner();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = rest.read(&mut buf).map_err(damaged)?;
            if n == 0 {
                return Ok(());
            }
            if buf[..n].iter().any(|b| *b != 0) {
                return Err(refuse("something follows its checksum"));
            }
        }
    }
}

/// Where the trees of an archive go.
pub struct Destination<'a> {
    /// The new guest's volume (made, empty).
    pub volume: &'a Path,
    /// Each snapshot's volume (made, empty).
    pub snapshots: &'a [(SnapshotName, PathBuf)],
    /// How the archive's owners become host ids.
    pub ids: Ids,
}

/// The members of an archive being read.
pub struct Members<'a, 'r> {
    entries: tar::Entries<'a, Stream<'r>>,
    digest: Rc<RefCell<Digest>>,
    read: Rc<Cell<u64>>,
    total: Option<u64>,
}

type Entry<'a, 'r> = tar::Entry<'a, Stream<'r>>;

impl<'a, 'r> Members<'a, 'r> {
    fn next(&mut self) -> Result<Option<(Member, Entry<'a, 'r>)>> {
        let Some(entry) = self.entries.next() else {
            return Ok(None);
        };
        let entry = entry.map_err(damaged)?;
        let member = Member::parse(&entry.path_bytes())?;
        Ok(Some((member, entry)))
    }

    /// A small member's bytes.
    fn small(entry: &mut Entry<'a, 'r>, what: &str) -> Result<Vec<u8>> {
        if entry.size() > SMALL {
            return Err(refuse(format!("its {what} is too large to be hangar's")));
        }
        let mut out = vec![];
        entry.read_to_end(&mut out).map_err(damaged)?;
        Ok(out)
    }

    /// The first member: the manifest.
    pub fn manifest(&mut self) -> Result<Manifest> {
        let first = self.next().map_err(|e| {
            refuse(format!(
                "not a hangar export (no hangar manifest at its start: {})",
                e.to_string()
                    .trim_start_matches("this archive cannot be imported: ")
            ))
        })?;
        match first {
            Some((Member::Manifest, mut e)) => {
                Ok(Manifest::from_json(&Self::small(&mut e, "manifest")?)?)
            }
            _ => Err(refuse(
                "not a hangar export (no hangar manifest at its start)",
            )),
        }
    }

    /// The second member: the guest's config, as text.
    pub fn config(&mut self) -> Result<String> {
        match self.next()? {
            Some((Member::Config, mut e)) => String::from_utf8(Self::small(&mut e, "config")?)
                .map_err(|_| refuse("its config is not UTF-8 text")),
            Some(_) => Err(refuse("its second member is not the guest's config")),
            None => Err(refuse("it ends after its manifest: it was cut short")),
        }
    }

    /// Write the rest of the members into `dest`, checking the digest at the checksum
    /// member, which must come last. `progress` counts bytes read from the input.
    /// Returns how many device nodes were left out (an unprivileged guest's files get
    /// only harmless ones).
    pub fn unpack(
        mut self,
        manifest: &Manifest,
        dest: &Destination,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<u64> {
        let mut volume = Tree::new(None, dest.volume, dest.ids);
        let mut snapshots: HashMap<SnapshotName, Tree> = dest
            .snapshots
            .iter()
            .map(|(n, p)| (n.clone(), Tree::new(Some(n.clone()), p, dest.ids)))
            .collect();
        let (read, total) = (self.read.clone(), self.total);
        let mut tick = |_: u64| {
            progress(Progress {
                done: read.get(),
                total,
            })
        };
        loop {
            let Some((member, mut entry)) = self.next()? else {
                return Err(refuse("it ends without its checksum: it was cut short"));
            };
            match member {
                Member::Volume(rel) => volume.add(&mut entry, &rel, &mut tick)?,
                Member::Snapshot(snap, rel) => {
                    let tree = snapshots.get_mut(&snap).ok_or_else(|| {
                        refuse(format!(
                            "it holds files of snapshot {snap}, which its manifest does not list"
                        ))
                    })?;
                    tree.add(&mut entry, &rel, &mut tick)?;
                }
                Member::Checksum => {
                    let at = entry.raw_header_position();
                    let want = self.digest.borrow().at(at);
                    let got = Self::small(&mut entry, "checksum")?;
                    let got = String::from_utf8_lossy(&got);
                    if want.as_deref() != Some(got.trim()) {
                        return Err(refuse(
                            "its checksum does not match its contents: it was damaged on the way",
                        ));
                    }
                    break;
                }
                Member::Manifest | Member::Config => {
                    return Err(refuse("it holds a second manifest or config"));
                }
            }
        }
        if self.next()?.is_some() {
            return Err(refuse("it has members after its checksum"));
        }
        for (name, tree) in &snapshots {
            if tree.nodes.is_empty() && manifest.has_snapshot(name) {
                return Err(refuse(format!(
                    "it lists snapshot {name} but holds none of it"
                )));
            }
        }
        volume.finish()?;
        for tree in snapshots.values() {
            tree.finish()?;
        }
        Ok(volume.skipped + snapshots.values().map(|t| t.skipped).sum::<u64>())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Node {
    Dir,
    /// Anything else (a file, a symlink, a device): nothing is written below it.
    Leaf,
    /// A device node not made (see [`Tree::add`]); nor are hard links to it.
    Skipped,
}

/// One tree being written (the volume, or a snapshot's).
pub(super) struct Tree<'d> {
    /// The snapshot it is, or None for the guest's volume.
    which: Option<SnapshotName>,
    pub(super) root: &'d Path,
    pub(super) ids: Ids,
    /// What the archive made in it so far, by path relative to `root`, with the layer
    /// that made it (always 0 in a hangar archive).
    pub(super) nodes: BTreeMap<PathBuf, (Node, u32)>,
    /// Directories' times, set last (adding to a directory changes its mtime).
    pub(super) dir_times: BTreeMap<PathBuf, i64>,
    /// Device nodes left out.
    pub(super) skipped: u64,
    /// For an image's layers ([`super::layers`]): the layer being applied, from 1.
    /// None for a hangar archive, where a member met twice is refused.
    pub(super) layer: Option<u32>,
}

impl<'d> Tree<'d> {
    pub(super) fn new(which: Option<SnapshotName>, root: &'d Path, ids: Ids) -> Self {
        Tree {
            which,
            root,
            ids,
            nodes: BTreeMap::new(),
            dir_times: BTreeMap::new(),
            skipped: 0,
            layer: None,
        }
    }

    /// Whether `rel`'s parent is a directory this archive made (or the tree's root);
    /// in an image's layer, a missing one is made (layers need not list every
    /// directory).
    fn check_parent(&mut self, rel: &Path, shown: &str) -> Result<()> {
        let parent = rel.parent().unwrap_or(Path::new(""));
        if parent.as_os_str().is_empty() {
            return Ok(());
        }
        match self.nodes.get(parent) {
            Some((Node::Dir, _)) => Ok(()),
            Some((Node::Leaf | Node::Skipped, _)) => Err(refuse(format!(
                "member {shown:?} would be written through {}, which is no directory (a \
                 symlink could lead out of the guest)",
                parent.display()
            ))),
            None if self.layer.is_some() => self.make_parents(parent, shown),
            None => Err(refuse(format!(
                "member {shown:?} comes before its directory"
            ))),
        }
    }

    pub(super) fn add<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        rel: &Path,
        tick: &mut dyn FnMut(u64),
    ) -> Result<()> {
        let shown = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        self.check_parent(rel, &shown)?;
        if self.nodes.contains_key(rel) {
            if self.layer.is_none() {
                return Err(refuse(format!("member {shown:?} appears twice")));
            }
            // A later layer's file replaces an earlier one's; a directory stays a
            // directory and keeps what it holds.
            self.replace(rel, entry.header().entry_type())?;
        }
        let path = self.root.join(rel);
        let h = entry.header().clone();
        let field = |r: std::io::Result<u64>| r.map_err(damaged);
        let owner = |id: u64, what: &str| {
            self.ids.to_host(id).ok_or_else(|| {
                refuse(format!(
                    "member {shown:?} belongs to {what} {id}, which is no id of a guest (0-65535)"
                ))
            })
        };
        let uid = owner(field(h.uid())?, "uid")?;
        let gid = owner(field(h.gid())?, "gid")?;
        let mode = field(h.mode().map(u64::from))? as u32 & 0o7777;
        let mtime = field(h.mtime())? as i64;
        let xattrs = self.xattrs(entry, &shown)?;
        let Some(node) = self.make(entry, &h, rel, &shown, tick)? else {
            return Ok(());
        };
        self.nodes
            .insert(rel.to_path_buf(), (node, self.layer.unwrap_or(0)));
        let symlink = h.entry_type() == tar::EntryType::Symlink;
        set_metadata(&path, symlink, uid, gid, mode, &xattrs)?;
        if node == Node::Leaf {
            set_mtime(&path, mtime)?;
        } else {
            self.dir_times.insert(rel.to_path_buf(), mtime);
        }
        Ok(())
    }

    /// Make what member `rel` (header `h`) is; None when there is nothing more to set
    /// (a hard link shares its first name's inode; a device node left out).
    fn make<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        h: &tar::Header,
        rel: &Path,
        shown: &str,
        tick: &mut dyn FnMut(u64),
    ) -> Result<Option<Node>> {
        use tar::EntryType as T;
        let path = self.root.join(rel);
        match h.entry_type() {
            // A layer's directory over an earlier layer's (kept by `replace`).
            T::Directory if self.nodes.contains_key(rel) => Ok(Some(Node::Dir)),
            T::Directory => {
                std::fs::DirBuilder::new()
                    .mode(0o700)
                    .create(&path)
                    .map_err(|e| CoreError::io("creating", &path, e))?;
                Ok(Some(Node::Dir))
            }
            T::Regular | T::Continuous => {
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&path)
                    .map_err(|e| CoreError::io("creating", &path, e))?;
                write_data(entry, &mut f, &path, tick)?;
                Ok(Some(Node::Leaf))
            }
            T::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| refuse(format!("symlink {shown:?} has no target")))?;
                std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(&target), &path)
                    .map_err(|e| CoreError::io("creating the symlink", &path, e))?;
                Ok(Some(Node::Leaf))
            }
            T::Link => {
                let target = entry.link_name_bytes().unwrap_or_default().into_owned();
                let target = match self.layer {
                    Some(_) => self.layer_link_target(&target, shown)?,
                    None => self.link_target(&target, shown)?,
                };
                let node = self.nodes[&target].0;
                if node == Node::Leaf {
                    std::fs::hard_link(self.root.join(&target), &path)
                        .map_err(|e| CoreError::io("creating the hard link", &path, e))?;
                }
                self.nodes
                    .insert(rel.to_path_buf(), (node, self.layer.unwrap_or(0)));
                Ok(None)
            }
            T::Char | T::Block | T::Fifo => {
                if self.device(h, &path)? {
                    Ok(Some(Node::Leaf))
                } else {
                    self.skipped += 1;
                    self.nodes
                        .insert(rel.to_path_buf(), (Node::Skipped, self.layer.unwrap_or(0)));
                    Ok(None)
                }
            }
            other => Err(refuse(format!(
                "member {shown:?} is of a kind hangar does not write (tar type {:?})",
                other.as_byte() as char
            ))),
        }
    }

    /// Make the FIFO or device node of header `h` at `path`; false when it is left
    /// out: in an unprivileged guest's files a device node would open the host's
    /// device, so only the harmless ones are made.
    fn device(&self, h: &tar::Header, path: &Path) -> Result<bool> {
        use nix::sys::stat::{Mode, SFlag, makedev, mknod};
        let kind = h.entry_type();
        let (sflag, dev) = if kind == tar::EntryType::Fifo {
            (SFlag::S_IFIFO, 0)
        } else {
            let major = h.device_major().map_err(damaged)?.unwrap_or(0);
            let minor = h.device_minor().map_err(damaged)?.unwrap_or(0);
            let char = kind == tar::EntryType::Char;
            if self.ids != Ids::Raw && !(char && hangar_container::devices::harmless(major, minor))
            {
                return Ok(false);
            }
            let s = if char { SFlag::S_IFCHR } else { SFlag::S_IFBLK };
            (s, makedev(u64::from(major), u64::from(minor)))
        };
        mknod(path, sflag, Mode::from_bits_truncate(0o600), dev).map_err(|e| {
            CoreError::io("creating the device node", path, std::io::Error::from(e))
        })?;
        Ok(true)
    }

    /// A hard link's target: a file the archive made earlier in this same tree.
    fn link_target(&self, target: &[u8], shown: &str) -> Result<PathBuf> {
        let bad = || {
            refuse(format!(
                "hard link {shown:?} points at {:?}, which is no file made before it in the \
                 same tree",
                String::from_utf8_lossy(target)
            ))
        };
        let rel = match (Member::parse(target).map_err(|_| bad())?, &self.which) {
            (Member::Volume(rel), None) => rel,
            (Member::Snapshot(snap, rel), Some(ours)) if &snap == ours => rel,
            _ => return Err(bad()),
        };
        match self.nodes.get(&rel) {
            Some((Node::Leaf | Node::Skipped, _)) => Ok(rel),
            _ => Err(bad()),
        }
    }

    /// The member's extended attributes (PAX `SCHILY.xattr.NAME` records), their ids
    /// mapped into the guest's range.
    pub(super) fn xattrs<R: Read>(
        &self,
        entry: &mut tar::Entry<'_, R>,
        shown: &str,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut out = vec![];
        let Some(pax) = entry.pax_extensions().map_err(damaged)? else {
            return Ok(out);
        };
        for rec in pax {
            let rec = rec.map_err(damaged)?;
            let Some(name) = rec.key_bytes().strip_prefix(b"SCHILY.xattr.") else {
                continue;
            };
            let value = rec.value_bytes();
            // A capability for every namespace (version 1 or 2) becomes the guest's
            // own, as the kernel makes one its root sets: left as it is, it would
            // hold for any host user who runs the file.
            if let (b"security.capability", Ids::Shifted { base }) = (name, self.ids)
                && let Some(v3) = hangar_container::idshift::capability_for_namespace(value, base)
            {
                out.push((name.to_vec(), v3));
                continue;
            }
            let value = hangar_container::idshift::map_xattr_ids(name, value, |id| {
                self.ids.to_host(u64::from(id))
            })
            .map_err(|id| {
                refuse(format!(
                    "member {shown:?} has extended attribute {} naming id {id}, which is no \
                     id of a guest (0-65535)",
                    String::from_utf8_lossy(name)
                ))
            })?
            .unwrap_or_else(|| value.to_vec());
            out.push((name.to_vec(), value));
        }
        Ok(out)
    }

    /// Directories get their times last.
    pub(super) fn finish(&self) -> Result<()> {
        for (rel, mtime) in self.dir_times.iter().rev() {
            set_mtime(&self.root.join(rel), *mtime)?;
        }
        Ok(())
    }
}

use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};

/// Copy a member's data into `f`, leaving holes where it has runs of zeros.
fn write_data<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    f: &mut std::fs::File,
    path: &Path,
    tick: &mut dyn FnMut(u64),
) -> Result<()> {
    let size = entry.size();
    let mut buf = vec![0u8; 128 * 1024];
    let mut written = 0u64;
    loop {
        let n = read_full(entry, &mut buf).map_err(damaged)?;
        if n == 0 {
            break;
        }
        let chunk = &buf[..n];
        let w = if chunk.iter().all(|b| *b == 0) {
            f.seek(SeekFrom::Current(n as i64)).map(drop)
        } else {
            f.write_all(chunk)
        };
        w.map_err(|e| CoreError::io("writing", path, e))?;
        written += n as u64;
        tick(n as u64);
    }
    if written != size {
        return Err(refuse(format!(
            "it ends inside {}: it was cut short",
            path.display()
        )));
    }
    f.set_len(size)
        .map_err(|e| CoreError::io("writing", path, e))
}

/// Read until `buf` is full or the member ends.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Owner, then mode (a chown clears setuid bits), then extended attributes (a chown
/// drops file capabilities); none of it through a symlink.
pub(super) fn set_metadata(
    path: &Path,
    symlink: bool,
    uid: u32,
    gid: u32,
    mode: u32,
    xattrs: &[(Vec<u8>, Vec<u8>)],
) -> Result<()> {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))
        .map_err(|e| CoreError::io("changing the owner of", path, e))?;
    if !symlink {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(|e| CoreError::io("changing the mode of", path, e))?;
    }
    for (name, value) in xattrs {
        xattr::set(path, std::ffi::OsStr::from_bytes(name), value).map_err(|e| {
            CoreError::Invalid(format!(
                "{}: cannot set extended attribute {} ({e}): does the pool's filesystem \
                 support it?",
                path.display(),
                String::from_utf8_lossy(name)
            ))
        })?;
    }
    Ok(())
}

/// Set the modification (and access) time of `path`, not following a symlink.
pub(crate) fn set_mtime(path: &Path, mtime: i64) -> Result<()> {
    let t = nix::sys::time::TimeVal::new(mtime, 0);
    nix::sys::stat::lutimes(path, &t, &t)
        .map_err(|e| CoreError::io("setting the time of", path, std::io::Error::from(e)))
}
