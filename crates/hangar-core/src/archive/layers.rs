//! An image's layers: tar streams applied one over another into one root filesystem
//! (OCI image layers, a docker archive's, or a root filesystem tarball as the only
//! one), with the unpacker of [`super::unpack`] and its rules: nothing absolute, no
//! `..`, nothing written through a symlink or anything else that is not a directory
//! made here, hard links only to files made here, owners mapped by [`Ids`], device
//! nodes left out but the harmless ones.
//!
//! Over those rules, what layers need ([the OCI image spec's layer
//! changesets](https://github.com/opencontainers/image-spec/blob/main/layer.md)):
//! - a later layer's entry replaces an earlier one's (a directory over a directory
//!   keeps what it holds and takes the new owner, mode and times);
//! - `DIR/.wh.NAME` (a *whiteout*) removes `DIR/NAME` of the layers below, and
//!   `DIR/.wh..wh..opq` (an *opaque* whiteout) everything the layers below put in
//!   `DIR`; neither is written, and neither touches what its own layer adds;
//! - a directory a layer does not list before what it holds is made (0755, guest
//!   root's), as runtimes do;
//! - the leading `./` of a tarball's names is dropped, and its `./` entry gives the
//!   root its owner, mode and time.

use super::Ids;
use super::unpack::{Node, Tree, damaged, refuse};
use crate::{CoreError, Result};
use std::ffi::OsStr;
use std::io::Read;
use std::ops::Bound;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// A root filesystem being made from layers.
pub struct Layers<'d> {
    tree: Tree<'d>,
}

/// What a whiteout entry asks.
enum Whiteout<'a> {
    /// `.wh..wh..opq`: the directory hides what the layers below put in it.
    Opaque,
    /// `.wh.NAME`: NAME of the layers below is gone.
    Hide(&'a OsStr),
    /// Another `.wh..wh.` name: aufs's own bookkeeping, not part of the files.
    Meta,
}

impl<'d> Layers<'d> {
    /// Layers into `root`, an empty directory; owners mapped by `ids`.
    pub fn new(root: &'d Path, ids: Ids) -> Self {
        let mut tree = Tree::new(None, root, ids);
        tree.layer = Some(0);
        tree.nodes.insert(PathBuf::new(), (Node::Dir, 0));
        Layers { tree }
    }

    /// Apply the next layer, an uncompressed tar stream, over those before it; with
    /// `whiteouts`, `.wh.` names are whiteouts (an image's layer) rather than files (a
    /// root filesystem tarball). Returns `input` once the tar's end is read: what
    /// follows, up to the end of the stream, is the caller's to read (a digest covers
    /// it).
    pub fn apply<R: Read>(&mut self, input: R, whiteouts: bool) -> Result<R> {
        let layer = self.tree.layer.unwrap_or(0) + 1;
        self.tree.layer = Some(layer);
        let mut archive = tar::Archive::new(input);
        for entry in archive.entries().map_err(damaged)? {
            let mut entry = entry.map_err(damaged)?;
            if entry.header().entry_type() == tar::EntryType::XGlobalHeader {
                continue;
            }
            let raw = entry.path_bytes().into_owned();
            let rel = member_path(&raw)?;
            match whiteouts.then(|| whiteout_of(&rel)).flatten() {
                Some(w) => self.tree.whiteout(&rel, w, &raw)?,
                None => self.tree.add(&mut entry, &rel, &mut |_| {})?,
            }
        }
        Ok(archive.into_inner())
    }

    /// Directories get their times; returns how many device nodes were left out.
    pub fn finish(self) -> Result<u64> {
        self.tree.finish()?;
        Ok(self.tree.skipped)
    }
}

/// An entry's path relative to the root: `./` and empty components dropped (the root
/// itself is the empty path); absolute paths, `..` and NUL bytes refused.
fn member_path(raw: &[u8]) -> Result<PathBuf> {
    let shown = String::from_utf8_lossy(raw);
    let bad = |why: &str| refuse(format!("member {shown:?} is refused: {why}"));
    if raw.contains(&0) {
        return Err(bad("a NUL byte in its path"));
    }
    if raw.first() == Some(&b'/') {
        return Err(bad("an absolute path"));
    }
    let parts: Vec<&[u8]> = raw
        .split(|b| *b == b'/')
        .filter(|p| !p.is_empty() && *p != b".")
        .collect();
    if parts.contains(&&b".."[..]) {
        return Err(bad("`..` would leave the image's files"));
    }
    Ok(parts.into_iter().map(OsStr::from_bytes).collect())
}

fn whiteout_of(rel: &Path) -> Option<Whiteout<'_>> {
    let name = rel.file_name()?.as_bytes();
    let hidden = name.strip_prefix(b".wh.")?;
    Some(if hidden == b".wh..opq" {
        Whiteout::Opaque
    } else if hidden.starts_with(b".wh.") {
        Whiteout::Meta
    } else {
        Whiteout::Hide(OsStr::from_bytes(hidden))
    })
}

impl Tree<'_> {
    /// Make the missing directories of `dir` (a layer lists a file before, or without,
    /// its directory): mode 0755, guest root's. Refused through anything that is no
    /// directory.
    pub(super) fn make_parents(&mut self, dir: &Path, shown: &str) -> Result<()> {
        let layer = self.layer.unwrap_or(0);
        let root_id = self.ids.to_host(0).expect("0 is every guest's root");
        let mut at = PathBuf::new();
        for c in dir.components() {
            at.push(c);
            match self.nodes.get(&at) {
                Some((Node::Dir, _)) => continue,
                Some(_) => {
                    return Err(refuse(format!(
                        "member {shown:?} would be written through {}, which is no \
                         directory (a symlink could lead out of the image)",
                        at.display()
                    )));
                }
                None => {}
            }
            let path = self.root.join(&at);
            std::fs::create_dir(&path).map_err(|e| CoreError::io("creating", &path, e))?;
            super::unpack::set_metadata(&path, false, root_id, root_id, 0o755, &[])?;
            self.nodes.insert(at.clone(), (Node::Dir, layer));
        }
        Ok(())
    }

    /// Make room at `rel` for a new entry of type `kind`: what an earlier layer (or
    /// this one) put there goes, but a directory under a directory stays, with what it
    /// holds.
    pub(super) fn replace(&mut self, rel: &Path, kind: tar::EntryType) -> Result<()> {
        if self.nodes.get(rel).map(|n| n.0) == Some(Node::Dir) && kind == tar::EntryType::Directory
        {
            return Ok(());
        }
        if rel.as_os_str().is_empty() {
            return Err(refuse("its root entry (./) is no directory"));
        }
        self.remove_under(rel, true, None)
    }

    /// Apply whiteout entry `rel` (as the archive names it: `raw`).
    fn whiteout(&mut self, rel: &Path, what: Whiteout<'_>, raw: &[u8]) -> Result<()> {
        let dir = rel.parent().unwrap_or(Path::new(""));
        match self.nodes.get(dir) {
            Some((Node::Dir, _)) => {}
            // Nothing below to hide.
            None => return Ok(()),
            Some(_) => {
                return Err(refuse(format!(
                    "whiteout {:?} would act through {}, which is no directory",
                    String::from_utf8_lossy(raw),
                    dir.display()
                )));
            }
        }
        let layer = self.layer.unwrap_or(0);
        match what {
            Whiteout::Opaque => self.remove_under(dir, false, Some(layer)),
            Whiteout::Meta => Ok(()),
            Whiteout::Hide(name) => {
                if name.is_empty() || name == "." || name == ".." {
                    return Err(refuse(format!(
                        "whiteout {:?} names no file",
                        String::from_utf8_lossy(raw)
                    )));
                }
                let target = dir.join(name);
                if !self.nodes.contains_key(&target) {
                    return Ok(());
                }
                self.remove_under(&target, true, Some(layer))
            }
        }
    }

    /// Remove `top` (with `itself`) and everything under it, deepest first; with
    /// `below`, only what layers before that one made (a directory that holds entries
    /// of that layer stays).
    fn remove_under(&mut self, top: &Path, itself: bool, below: Option<u32>) -> Result<()> {
        let doomed: Vec<(PathBuf, Node)> = self
            .nodes
            .range::<Path, _>((Bound::Included(top), Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(top))
            .filter(|(k, (_, l))| (itself || k.as_path() != top) && below.is_none_or(|b| *l < b))
            .map(|(k, (n, _))| (k.clone(), *n))
            .collect();
        for (rel, node) in doomed.into_iter().rev() {
            let at = self.root.join(&rel);
            let removed = match node {
                Node::Dir => std::fs::remove_dir(&at),
                Node::Leaf => std::fs::remove_file(&at),
                Node::Skipped => Ok(()),
            };
            match removed {
                Ok(()) => {}
                Err(e) if node == Node::Dir && e.raw_os_error() == Some(libc::ENOTEMPTY) => {
                    continue;
                }
                Err(e) => return Err(CoreError::io("removing", &at, e)),
            }
            self.nodes.remove(&rel);
            self.dir_times.remove(&rel);
        }
        Ok(())
    }

    /// A hard link's target in a layer: a file (not a directory) made before, in this
    /// layer or one below.
    pub(super) fn layer_link_target(&self, target: &[u8], shown: &str) -> Result<PathBuf> {
        let bad = || {
            refuse(format!(
                "hard link {shown:?} points at {:?}, which is no file made before it",
                String::from_utf8_lossy(target)
            ))
        };
        let rel = member_path(target).map_err(|_| bad())?;
        match self.nodes.get(&rel) {
            Some((Node::Leaf | Node::Skipped, _)) => Ok(rel),
            _ => Err(bad()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_paths_stay_inside() {
        assert_eq!(member_path(b"./etc/a").unwrap(), PathBuf::from("etc/a"));
        assert_eq!(
            member_path(b"etc//x/./y/").unwrap(),
            PathBuf::from("etc/x/y")
        );
        assert_eq!(member_path(b"./").unwrap(), PathBuf::new());
        for bad in [&b"/etc/passwd"[..], b"../x", b"a/../../x", b"a\0b"] {
            assert!(member_path(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn whiteouts_are_told_apart() {
        assert!(matches!(
            whiteout_of(Path::new("opt/x/.wh..wh..opq")),
            Some(Whiteout::Opaque)
        ));
        assert!(matches!(
            whiteout_of(Path::new("etc/.wh.b")),
            Some(Whiteout::Hide(n)) if n == "b"
        ));
        assert!(matches!(
            whiteout_of(Path::new(".wh..wh.plnk")),
            Some(Whiteout::Meta)
        ));
        assert!(whiteout_of(Path::new("etc/b.wh.x")).is_none());
    }
}
