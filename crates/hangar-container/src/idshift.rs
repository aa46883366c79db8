//! Shift a root filesystem's ownership into a guest's id range.
//!
//! A guest's uid `u` is host uid `base + u`. Files are stored with the host ids the guest
//! sees through its user namespace, so guest root owns its files and no guest owns
//! another's. The current base is read from the owner of the rootfs directory itself
//! (guest root owns `/`), so a tree copied from anywhere can be shifted without a marker.

use crate::ContainerError;
use std::os::unix::fs::{MetadataExt, lchown};
use std::path::Path;

/// Id base the tree at `rootfs` is currently shifted to (0 for a host-owned tree).
pub fn current_base(rootfs: &Path, range: u32) -> Result<u32, ContainerError> {
    let m = std::fs::symlink_metadata(rootfs)
        .map_err(|e| ContainerError::path("reading", rootfs, e))?;
    Ok(m.uid() - m.uid() % range)
}

/// Shift the tree at `rootfs` so its root belongs to `to` (0 for a host-owned tree),
/// from whatever base it has now; nothing happens when it already does.
pub fn shift_to(rootfs: &Path, to: u32, range: u32) -> Result<u64, ContainerError> {
    let from = current_base(rootfs, range)?;
    shift(rootfs, from, to, range)
}

/// Move every id in `[from, from+range)` to the same offset in `[to, to+range)`; ids
/// outside the old range (owned by nobody the guest knows) are left alone.
pub fn shift(rootfs: &Path, from: u32, to: u32, range: u32) -> Result<u64, ContainerError> {
    if from == to {
        return Ok(0);
    }
    let mut changed = 0;
    let mut stack = vec![rootfs.to_path_buf()];
    while let Some(p) = stack.pop() {
        let m =
            std::fs::symlink_metadata(&p).map_err(|e| ContainerError::path("reading", &p, e))?;
        let map = |id: u32| {
            if (from..from + range).contains(&id) {
                Some(id - from + to)
            } else {
                None
            }
        };
        let (uid, gid) = (map(m.uid()), map(m.gid()));
        if uid.is_some() || gid.is_some() {
            // lchown clears setuid/setgid bits of regular files; put them back.
            let mode = m.mode();
            lchown(&p, uid, gid).map_err(|e| ContainerError::path("changing owner of", &p, e))?;
            if m.file_type().is_file() && mode & 0o6000 != 0 {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode & 0o7777))
                    .map_err(|e| ContainerError::path("restoring mode of", &p, e))?;
            }
            changed += 1;
        }
        if m.file_type().is_dir() {
            for entry in
                std::fs::read_dir(&p).map_err(|e| ContainerError::path("listing", &p, e))?
            {
                stack.push(
                    entry
                        .map_err(|e| ContainerError::path("listing", &p, e))?
                        .path(),
                );
            }
        }
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shifting_moves_ids_and_keeps_setuid() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("SKIP: needs root to chown");
            return;
        }
        let dir = std::env::temp_dir().join(format!("hangar-idshift-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        let f = dir.join("bin/su");
        std::fs::write(&f, b"x").unwrap();
        lchown(&f, Some(0), Some(5)).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o4755)).unwrap();
        lchown(&dir, Some(0), Some(0)).unwrap();
        assert_eq!(current_base(&dir, 65536).unwrap(), 0);
        shift(&dir, 0, 7 * 65536, 65536).unwrap();
        let m = std::fs::metadata(&f).unwrap();
        let result = (
            m.uid(),
            m.gid(),
            m.mode() & 0o7777,
            current_base(&dir, 65536).unwrap(),
        );
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(result, (7 * 65536, 7 * 65536 + 5, 0o4755, 7 * 65536));
    }
}
