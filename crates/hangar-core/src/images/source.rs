//! What `hangar image import FILE` reads, told apart by its bytes rather than its name:
//!
//! - a directory holding `index.json` is an **OCI image layout**; one holding
//!   `manifest.json` an unpacked **docker archive**;
//! - a file is a tar archive, plain or compressed (gzip, xz, zstd: their magic
//!   bytes); its first member decides what it holds: an image layout's names
//!   (`blobs/`, `oci-layout`, `index.json`, `manifest.json`, `repositories`, or a
//!   docker archive's 64-hex-digit layer directory or config) make it an **OCI image
//!   layout archive** (with `index.json`) or a **docker archive** (`docker save`,
//!   with `manifest.json`), anything else a **root filesystem tarball**.
//!
//! An image archive's members are read in the order its manifest names them, so a
//! plain tar file is indexed (each member's offset and size) and read in place; a
//! compressed one is first written out uncompressed to a scratch file.

use crate::{CoreError, Result};
use hangar_model::ModelError;
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

pub(crate) fn refuse(why: impl Into<String>) -> CoreError {
    CoreError::Model(ModelError::Image(why.into()))
}

/// An error of the archive unpacker (which speaks of an archive), said of the image,
/// after `context` (which layer) when given.
pub(crate) fn of_image(e: CoreError, context: Option<&str>) -> CoreError {
    match e {
        CoreError::Model(ModelError::Archive(why) | ModelError::Image(why)) => match context {
            Some(c) => refuse(format!("{c}: {why}")),
            None => refuse(why),
        },
        e => e,
    }
}

/// How a stream is compressed, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Xz,
    Zstd,
}

impl Compression {
    pub fn sniff(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
            Compression::Xz
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    /// `input` as it reads uncompressed.
    pub fn decoder<'a>(self, input: impl BufRead + 'a) -> Result<Box<dyn Read + 'a>> {
        Ok(match self {
            Compression::None => Box::new(input),
            // Several gzip members one after the other (pigz) are one stream.
            Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(input)),
            Compression::Xz => Box::new(liblzma::bufread::XzDecoder::new_multi_decoder(input)),
            Compression::Zstd => Box::new(
                zstd::stream::read::Decoder::with_buffer(input)
                    .map_err(|e| refuse(format!("its zstd stream is damaged ({e})")))?,
            ),
        })
    }
}

/// `input` uncompressed, whatever its compression (its first bytes say).
pub fn uncompressed<'a>(input: impl Read + 'a) -> Result<Box<dyn Read + 'a>> {
    let mut input = BufReader::with_capacity(256 * 1024, input);
    let head = input
        .fill_buf()
        .map_err(|e| refuse(format!("it cannot be read ({e})")))?;
    Compression::sniff(head).decoder(input)
}

/// What the file given to `image import` is.
pub enum Input {
    /// A root filesystem tarball, to be read from its start (uncompressed by
    /// [`uncompressed`]).
    Tarball(PathBuf),
    /// An image layout (a directory or an archive) in OCI or docker form.
    Layout(Layout, Kind),
}

/// Which manifests an image layout has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `index.json` (and `oci-layout`): the OCI image layout.
    Oci,
    /// `manifest.json` alone: what `docker save` writes.
    Docker,
}

/// Tell what `path` is; an archive to be read in place is indexed, a compressed one
/// written out uncompressed in `scratch` first.
pub fn open(path: &Path, scratch: &Path) -> Result<Input> {
    let meta = std::fs::metadata(path).map_err(|e| CoreError::io("reading", path, e))?;
    if meta.is_dir() {
        let layout = Layout::Dir(path.to_path_buf());
        let kind = kind_of(&layout).map_err(|_| {
            refuse(
                "the directory is neither an OCI image layout (it has no index.json) nor an \
                 unpacked docker archive (no manifest.json)",
            )
        })?;
        return Ok(Input::Layout(layout, kind));
    }
    let unknown = || {
        refuse(
            "it is neither a tar archive (plain, gzip, xz or zstd) nor an OCI image layout \
             directory: give a root filesystem tarball, an OCI image (a layout directory or \
             its tar archive) or what `docker save` writes",
        )
    };
    let file = File::open(path).map_err(|e| CoreError::io("opening", path, e))?;
    let mut buffered = BufReader::new(file);
    let compression = Compression::sniff(
        buffered
            .fill_buf()
            .map_err(|e| CoreError::io("reading", path, e))?,
    );
    let first = {
        let mut archive = tar::Archive::new(compression.decoder(buffered)?);
        let mut entries = archive.entries().map_err(|_| unknown())?;
        let entry = entries
            .next()
            .ok_or_else(|| refuse("it is empty"))?
            .map_err(|_| unknown())?;
        if !tar_header_is_ours(entry.header()) {
            return Err(unknown());
        }
        entry.path_bytes().into_owned()
    };
    if !layout_member(&first) {
        return Ok(Input::Tarball(path.to_path_buf()));
    }
    let file = match compression {
        Compression::None => File::open(path).map_err(|e| CoreError::io("opening", path, e))?,
        _ => {
            std::fs::create_dir_all(scratch).map_err(|e| CoreError::io("creating", scratch, e))?;
            let plain = scratch.join("image.tar");
            let mut out = File::create(&plain).map_err(|e| CoreError::io("creating", &plain, e))?;
            let input = File::open(path).map_err(|e| CoreError::io("opening", path, e))?;
            std::io::copy(&mut uncompressed(input)?, &mut out).map_err(damaged)?;
            File::open(&plain).map_err(|e| CoreError::io("opening", &plain, e))?
        }
    };
    let layout = Layout::archive(file)?;
    let kind = kind_of(&layout)?;
    Ok(Input::Layout(layout, kind))
}

/// A ustar (POSIX or GNU) header: the magic at its offset 257.
fn tar_header_is_ours(h: &tar::Header) -> bool {
    h.as_bytes()[257..262] == *b"ustar"
}

/// Whether an archive whose first member is named `name` is an image layout.
fn layout_member(name: &[u8]) -> bool {
    let name = name.strip_prefix(b"./").unwrap_or(name);
    let first = name.split(|b| *b == b'/').next().unwrap_or_default();
    let hex = |s: &[u8]| s.len() == 64 && s.iter().all(u8::is_ascii_hexdigit);
    matches!(
        first,
        b"blobs" | b"oci-layout" | b"index.json" | b"manifest.json" | b"repositories"
    ) || hex(first)
        || first.strip_suffix(b".json").is_some_and(hex)
}

fn kind_of(layout: &Layout) -> Result<Kind> {
    if layout.has("index.json") {
        Ok(Kind::Oci)
    } else if layout.has("manifest.json") {
        Ok(Kind::Docker)
    } else {
        Err(refuse(
            "it looks like an image layout but has neither index.json (OCI) nor \
             manifest.json (docker save)",
        ))
    }
}

pub(crate) fn damaged(e: std::io::Error) -> CoreError {
    refuse(format!("it is damaged or cut short ({e})"))
}

/// A member of an indexed archive.
#[derive(Debug, Clone)]
pub enum Member {
    /// Data at this offset of the file, this long.
    Data { offset: u64, size: u64 },
    /// A symlink or hard link to another member (by archive path).
    Link(String),
}

/// An image layout's files: a directory, or a tar archive read in place.
pub enum Layout {
    Dir(PathBuf),
    Archive {
        file: File,
        members: HashMap<String, Member>,
    },
}

/// The path of a layout's file as the layout names it (`blobs/sha256/HEX`), checked:
/// relative, without `..`; `./` and empty components dropped.
pub fn clean(name: &str) -> Result<String> {
    if name.starts_with('/') || name.contains('\0') {
        return Err(refuse(format!(
            "it names the file {name:?}, outside the image"
        )));
    }
    let parts: Vec<&str> = name
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    if parts.is_empty() || parts.contains(&"..") {
        return Err(refuse(format!(
            "it names the file {name:?}, outside the image"
        )));
    }
    Ok(parts.join("/"))
}

impl Layout {
    /// Index the tar archive `file`: where each regular member's data is, and what each
    /// link points at (docker archives link a layer met twice to its first copy).
    fn archive(mut file: File) -> Result<Layout> {
        let mut members = HashMap::new();
        {
            let mut archive = tar::Archive::new(&mut file);
            for entry in archive.entries_with_seek().map_err(damaged)? {
                let entry = entry.map_err(damaged)?;
                let Ok(path) = std::str::from_utf8(&entry.path_bytes()).map(str::to_string) else {
                    continue;
                };
                let Ok(name) = clean(&path) else { continue };
                let kind = entry.header().entry_type();
                let member = if kind.is_file() {
                    Member::Data {
                        offset: entry.raw_file_position(),
                        size: entry.size(),
                    }
                } else if kind.is_symlink() || kind.is_hard_link() {
                    let target = entry.link_name_bytes().unwrap_or_default();
                    let target = String::from_utf8_lossy(&target).into_owned();
                    let target = if kind.is_symlink() {
                        // Relative to the link's directory.
                        let dir = name.rsplit_once('/').map_or("", |(d, _)| d);
                        resolve_relative(dir, &target)
                    } else {
                        clean(&target).ok()
                    };
                    match target {
                        Some(t) => Member::Link(t),
                        None => continue,
                    }
                } else {
                    continue;
                };
                members.insert(name, member);
            }
        }
        Ok(Layout::Archive { file, members })
    }

    /// Whether the layout has file `name`.
    pub fn has(&self, name: &str) -> bool {
        match self {
            Layout::Dir(d) => d.join(name).is_file(),
            Layout::Archive { .. } => self.member(name).is_ok(),
        }
    }

    /// Where file `name`'s data is in the archive, links followed.
    fn member(&self, name: &str) -> Result<(u64, u64)> {
        let Layout::Archive { members, .. } = self else {
            unreachable!("only archives have members")
        };
        let mut at = clean(name)?;
        for _ in 0..8 {
            match members.get(&at) {
                Some(Member::Data { offset, size }) => return Ok((*offset, *size)),
                Some(Member::Link(to)) => at = to.clone(),
                None => break,
            }
        }
        Err(refuse(format!(
            "{name} is missing from it (a layer or config its manifest names is not there: \
             was it cut short?)"
        )))
    }

    /// File `name`'s bytes as a stream, and its size.
    pub fn open(&self, name: &str) -> Result<(Box<dyn Read + '_>, u64)> {
        match self {
            Layout::Dir(d) => {
                use std::os::unix::fs::OpenOptionsExt;
                let path = d.join(clean(name)?);
                let f = std::fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(&path)
                    .map_err(|e| match e.kind() {
                        std::io::ErrorKind::NotFound => refuse(format!(
                            "{name} is missing from it (a layer or config its manifest names \
                             is not there)"
                        )),
                        _ => CoreError::io("opening", &path, e),
                    })?;
                let len = f
                    .metadata()
                    .map_err(|e| CoreError::io("reading", &path, e))?;
                Ok((Box::new(f), len.len()))
            }
            Layout::Archive { file, .. } => {
                let (offset, size) = self.member(name)?;
                let mut f: &File = file;
                f.seek(SeekFrom::Start(offset)).map_err(damaged)?;
                Ok((Box::new(f.take(size)), size))
            }
        }
    }

    /// A small file's bytes (a manifest, a config), at most `max` long.
    pub fn read_small(&self, name: &str, max: u64) -> Result<Vec<u8>> {
        let (r, size) = self.open(name)?;
        if size > max {
            return Err(refuse(format!("its {name} is too large ({size} bytes)")));
        }
        let mut out = Vec::with_capacity(size as usize);
        r.take(max).read_to_end(&mut out).map_err(damaged)?;
        if out.len() as u64 != size {
            return Err(refuse(format!("its {name} is cut short")));
        }
        Ok(out)
    }
}

/// `target`, a symlink's target, as a path of the archive from directory `dir`; None
/// when it leaves the archive.
fn resolve_relative(dir: &str, target: &str) -> Option<String> {
    if target.starts_with('/') {
        return None;
    }
    let mut parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
    for p in target.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compression_is_told_by_magic() {
        assert_eq!(Compression::sniff(&[0x1f, 0x8b, 8]), Compression::Gzip);
        assert_eq!(Compression::sniff(b"\xfd7zXZ\0..."), Compression::Xz);
        assert_eq!(
            Compression::sniff(&[0x28, 0xb5, 0x2f, 0xfd]),
            Compression::Zstd
        );
        assert_eq!(Compression::sniff(b"bin/\0\0"), Compression::None);
    }

    #[test]
    fn an_image_layouts_first_member_is_told_from_a_root_filesystems() {
        let hex = "a".repeat(64);
        for n in [
            "blobs/",
            "./blobs/sha256/x",
            "oci-layout",
            "index.json",
            "manifest.json",
            &format!("{hex}/layer.tar"),
            &format!("{hex}.json"),
        ] {
            assert!(layout_member(n.as_bytes()), "{n}");
        }
        for n in ["./", "bin/", "etc/passwd", "./bin/busybox", "blob"] {
            assert!(!layout_member(n.as_bytes()), "{n}");
        }
    }

    #[test]
    fn names_stay_inside_the_layout() {
        assert_eq!(clean("./blobs//sha256/x").unwrap(), "blobs/sha256/x");
        for bad in ["/etc/passwd", "../x", "a/../../b", "", "."] {
            assert!(clean(bad).is_err(), "{bad}");
        }
        assert_eq!(
            resolve_relative("abc", "../def/layer.tar").as_deref(),
            Some("def/layer.tar")
        );
        assert_eq!(resolve_relative("abc", "../../x"), None);
        assert_eq!(resolve_relative("abc", "/x"), None);
    }
}
