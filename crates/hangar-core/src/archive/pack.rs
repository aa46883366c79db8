//! Writing an archive: members in the order of [`hangar_model::backup`], each tree
//! walked depth first (a directory before what it holds, names sorted), files read
//! as they are written out.

use super::{HashWriter, Ids, Progress};
use crate::{CoreError, Result};
use hangar_model::backup;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The longest name a ustar header holds itself; longer ones go in a PAX record.
const NAME_FIELD: usize = 100;

/// An archive being written into `W`.
pub struct Packer<'p, W: Write> {
    tar: Tar<W>,
    progress: Option<&'p mut dyn FnMut(Progress)>,
    done: u64,
    total: Option<u64>,
    /// Sockets met (a tar archive cannot hold them; a guest makes them again).
    pub sockets: u64,
}

fn writing(e: std::io::Error) -> CoreError {
    CoreError::Invalid(format!("writing the archive failed: {e}"))
}

impl<'p, W: Write> Packer<'p, W> {
    /// Start an archive into `out`; `total` is what [`Progress`] counts up to (bytes of
    /// file data), when known.
    pub fn new(
        out: W,
        total: Option<u64>,
        progress: Option<&'p mut dyn FnMut(Progress)>,
    ) -> Result<Self> {
        let mut enc = zstd::stream::write::Encoder::new(out, 3).map_err(writing)?;
        enc.include_checksum(true).map_err(writing)?;
        let tar = tar::Builder::new(HashWriter::new(enc));
        Ok(Packer {
            tar,
            progress,
            done: 0,
            total,
            sockets: 0,
        })
    }

    /// Bytes of file data written so far.
    pub fn bytes(&self) -> u64 {
        self.done
    }

    /// A member of hangar's own (manifest, config, checksum) holding `data`.
    pub fn add_bytes(&mut self, name: &str, data: &[u8]) -> Result<()> {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o600);
        h.set_size(data.len() as u64);
        h.set_mtime(crate::ops::snapshot::now());
        append(&mut self.tar, h, name.as_bytes(), None, vec![], data)
    }

    /// Every file under `dir` (not `dir` itself), named `prefix/...`, owners mapped by
    /// `ids`. Hard links within the tree stay hard links; sockets are left out.
    pub fn add_tree(&mut self, prefix: &str, dir: &Path, ids: Ids) -> Result<()> {
        let mut links: HashMap<(u64, u64), Vec<u8>> = HashMap::new();
        let mut stack: Vec<(PathBuf, Vec<u8>)> = vec![];
        push_children(&mut stack, dir, prefix.as_bytes())?;
        while let Some((path, name)) = stack.pop() {
            let m =
                std::fs::symlink_metadata(&path).map_err(|e| CoreError::io("reading", &path, e))?;
            let ft = m.file_type();
            if ft.is_socket() {
                self.sockets += 1;
                continue;
            }
            let mut h = tar::Header::new_ustar();
            h.set_mode(m.mode() & 0o7777);
            h.set_uid(u64::from(ids.to_archive(m.uid())));
            h.set_gid(u64::from(ids.to_archive(m.gid())));
            h.set_mtime(m.mtime().max(0) as u64);
            h.set_size(0);
            if !ft.is_dir() && m.nlink() > 1 {
                if let Some(first) = links.get(&(m.dev(), m.ino())) {
                    h.set_entry_type(tar::EntryType::Link);
                    let first = first.clone();
                    append(
                        &mut self.tar,
                        h,
                        &name,
                        Some(&first),
                        vec![],
                        std::io::empty(),
                    )?;
                    continue;
                }
                links.insert((m.dev(), m.ino()), name.clone());
            }
            let pax = xattrs(&path, ids)?;
            if ft.is_dir() {
                h.set_entry_type(tar::EntryType::Directory);
                append(&mut self.tar, h, &name, None, pax, std::io::empty())?;
                push_children(&mut stack, &path, &name)?;
            } else if ft.is_file() {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(m.len());
                let file = std::fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(&path)
                    .map_err(|e| CoreError::io("opening", &path, e))?;
                let (done, total) = (&mut self.done, self.total);
                let progress = &mut self.progress;
                let reader = Exact {
                    inner: file,
                    left: m.len(),
                    path: &path,
                    tick: &mut |n| {
                        *done += n;
                        if let Some(p) = progress.as_mut() {
                            p(Progress { done: *done, total });
                        }
                    },
                };
                append(&mut self.tar, h, &name, None, pax, reader)?;
            } else if ft.is_symlink() {
                h.set_entry_type(tar::EntryType::Symlink);
                let target = std::fs::read_link(&path)
                    .map_err(|e| CoreError::io("reading the link", &path, e))?;
                let target = target.as_os_str().as_bytes().to_vec();
                append(
                    &mut self.tar,
                    h,
                    &name,
                    Some(&target),
                    pax,
                    std::io::empty(),
                )?;
            } else {
                let kind = if ft.is_char_device() {
                    tar::EntryType::Char
                } else if ft.is_block_device() {
                    tar::EntryType::Block
                } else {
                    tar::EntryType::Fifo
                };
                h.set_entry_type(kind);
                if kind != tar::EntryType::Fifo {
                    let (major, minor) = (libc::major(m.rdev()), libc::minor(m.rdev()));
                    h.set_device_major(major).map_err(writing)?;
                    h.set_device_minor(minor).map_err(writing)?;
                }
                append(&mut self.tar, h, &name, None, pax, std::io::empty())?;
            }
        }
        Ok(())
    }

    /// End the archive: the checksum member, the tar end, the zstd frame's end.
    pub fn finish(mut self) -> Result<W> {
        let digest = self.tar.get_ref().digest();
        self.add_bytes(backup::CHECKSUM, format!("{digest}\n").as_bytes())?;
        self.end()
    }

    /// End the archive without a checksum member (a plain tar + zstd, such as an
    /// image's root filesystem tarball): the tar end, the zstd frame's end.
    pub fn end(self) -> Result<W> {
        let hashing = self.tar.into_inner().map_err(writing)?;
        hashing.inner.finish().map_err(writing)
    }
}

type Tar<W> = tar::Builder<HashWriter<zstd::stream::write::Encoder<'static, W>>>;

/// Write header `h` for the member named `name` (its link target `link`), with PAX
/// records `pax` (and one for a name or target too long for the header).
fn append<W: Write>(
    tar: &mut Tar<W>,
    mut h: tar::Header,
    name: &[u8],
    link: Option<&[u8]>,
    mut pax: Vec<(String, Vec<u8>)>,
    data: impl Read,
) -> Result<()> {
    let n = name.len().min(NAME_FIELD);
    h.as_old_mut().name[..n].copy_from_slice(&name[..n]);
    if name.len() > NAME_FIELD {
        pax.push(("path".into(), name.to_vec()));
    }
    if let Some(link) = link {
        let n = link.len().min(NAME_FIELD);
        h.as_old_mut().linkname[..n].copy_from_slice(&link[..n]);
        if link.len() > NAME_FIELD {
            pax.push(("linkpath".into(), link.to_vec()));
        }
    }
    h.set_cksum();
    tar.append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
        .map_err(writing)?;
    tar.append(&h, data).map_err(writing)
}

/// Push `dir`'s entries onto `stack` (names `name/ENTRY`), so they pop in name order.
fn push_children(stack: &mut Vec<(PathBuf, Vec<u8>)>, dir: &Path, name: &[u8]) -> Result<()> {
    let mut entries: Vec<std::ffi::OsString> = std::fs::read_dir(dir)
        .map_err(|e| CoreError::io("listing", dir, e))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<std::io::Result<_>>()
        .map_err(|e| CoreError::io("listing", dir, e))?;
    entries.sort();
    for e in entries.into_iter().rev() {
        let mut n = name.to_vec();
        n.push(b'/');
        n.extend_from_slice(e.as_bytes());
        stack.push((dir.join(&e), n));
    }
    Ok(())
}

/// The extended attributes of `path` (not following a symlink) as PAX records, with
/// the ids inside capabilities and ACLs mapped as owners are.
fn xattrs(path: &Path, ids: Ids) -> Result<Vec<(String, Vec<u8>)>> {
    let mut out = vec![];
    let names = match xattr::list(path) {
        Ok(n) => n,
        // A filesystem without extended attributes has none to keep.
        Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => return Ok(out),
        Err(e) => return Err(CoreError::io("listing extended attributes of", path, e)),
    };
    for name in names {
        let Some(value) = xattr::get(path, &name)
            .map_err(|e| CoreError::io("reading extended attributes of", path, e))?
        else {
            continue;
        };
        let key = name.to_str().ok_or_else(|| {
            CoreError::Invalid(format!(
                "{}: extended attribute {name:?} is not UTF-8, which an archive cannot name",
                path.display()
            ))
        })?;
        let value = hangar_container::idshift::map_xattr_ids(name.as_bytes(), &value, |id| {
            Some(ids.to_archive(id))
        })
        .expect("every host id has an archive id")
        .unwrap_or(value);
        out.push((format!("SCHILY.xattr.{key}"), value));
    }
    out.sort();
    Ok(out)
}

/// A file's data, exactly as long as its size said: a file that shrank while it was
/// read would make a member shorter than its header.
struct Exact<'a> {
    inner: std::fs::File,
    left: u64,
    path: &'a Path,
    /// Told of every piece read.
    tick: &'a mut dyn FnMut(u64),
}

impl Read for Exact<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let max = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..max])?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("{} shrank while it was read", self.path.display()),
            ));
        }
        self.left -= n as u64;
        (self.tick)(n as u64);
        Ok(n)
    }
}
