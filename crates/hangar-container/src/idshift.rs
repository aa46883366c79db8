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
            // lchown clears setuid/setgid bits of regular files and their capability;
            // put them back, the ids inside the attributes shifted too.
            let mode = m.mode();
            let attrs = shifted_xattrs(&p, &m, to, map)?;
            lchown(&p, uid, gid).map_err(|e| ContainerError::path("changing owner of", &p, e))?;
            if m.file_type().is_file() && mode & 0o6000 != 0 {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode & 0o7777))
                    .map_err(|e| ContainerError::path("restoring mode of", &p, e))?;
            }
            for (name, value) in attrs {
                xattr::set(&p, name, &value)
                    .map_err(|e| ContainerError::path("restoring attributes of", &p, e))?;
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

/// The extended attributes of `p` that hold ids (a file capability, POSIX ACLs) as they
/// must be once its owner moved to base `to`: a capability for every namespace (v1,
/// v2) becomes the guest namespace's own (v3, the root `to`), ids in the old range go
/// to the new one, ids outside it stay.
fn shifted_xattrs(
    p: &Path,
    m: &std::fs::Metadata,
    to: u32,
    map: impl Fn(u32) -> Option<u32>,
) -> Result<Vec<(&'static str, Vec<u8>)>, ContainerError> {
    let mut names = vec!["system.posix_acl_access"];
    if m.file_type().is_file() {
        names.push("security.capability");
    }
    if m.file_type().is_dir() {
        names.push("system.posix_acl_default");
    }
    let mut out = vec![];
    for name in names {
        let value = match xattr::get(p, name) {
            Ok(Some(v)) => v,
            // None, or a filesystem without extended attributes.
            Ok(None) | Err(_) => continue,
        };
        let shifted = match name {
            "security.capability" => capability_for_namespace(&value, to),
            _ => None,
        }
        .or_else(|| map_xattr_ids(name.as_bytes(), &value, |id| map(id).or(Some(id))).ok()?);
        // A capability is dropped by the chown and set again even when unchanged.
        match shifted {
            Some(v) => out.push((name, v)),
            None if name == "security.capability" => out.push((name, value)),
            None => {}
        }
    }
    Ok(out)
}

/// The ids held in extended attribute `name`'s `value`, mapped by `map`: the root id
/// of a namespaced file capability (`security.capability` version 3: whose user
/// namespace's root the capabilities are for) and the users and groups of POSIX ACLs
/// (`system.posix_acl_access`, `system.posix_acl_default`). Returns `Ok(None)` when
/// nothing changes (another attribute, a version 2 capability, which holds no id), the
/// new value otherwise, and `Err(id)` for an id that `map` cannot map. Values too short
/// for their format are left as they are (the kernel refuses them).
pub fn map_xattr_ids(
    name: &[u8],
    value: &[u8],
    map: impl Fn(u32) -> Option<u32>,
) -> Result<Option<Vec<u8>>, u32> {
    let word = |v: &[u8], at: usize| u32::from_le_bytes(v[at..at + 4].try_into().expect("4 bytes"));
    match name {
        b"security.capability" => {
            // struct vfs_ns_cap_data: magic_etc, 2 x (permitted, inheritable), rootid.
            const V3: u32 = 0x0300_0000;
            if value.len() != 24 || word(value, 0) & 0xff00_0000 != V3 {
                return Ok(None);
            }
            let root = word(value, 20);
            let mapped = map(root).ok_or(root)?;
            let mut out = value.to_vec();
            out[20..24].copy_from_slice(&mapped.to_le_bytes());
            Ok(Some(out))
        }
        b"system.posix_acl_access" | b"system.posix_acl_default" => {
            // A version word, then entries of (tag u16, perm u16, id u32).
            const USER: u16 = 0x02;
            const GROUP: u16 = 0x08;
            if value.len() < 4 || (value.len() - 4) % 8 != 0 {
                return Ok(None);
            }
            let mut out = value.to_vec();
            for at in (4..value.len()).step_by(8) {
                let tag = u16::from_le_bytes([value[at], value[at + 1]]);
                if tag == USER || tag == GROUP {
                    let id = word(value, at + 4);
                    let mapped = map(id).ok_or(id)?;
                    out[at + 4..at + 8].copy_from_slice(&mapped.to_le_bytes());
                }
            }
            Ok((out != value).then_some(out))
        }
        _ => Ok(None),
    }
}

/// A file capability (`security.capability`) of version 1 or 2, which holds in every
/// user namespace (the host's too), as version 3 for the namespace whose root is host
/// uid `root` only: what the kernel stores when a guest's root sets one. None for a
/// value that is version 3 already, or no capability.
pub fn capability_for_namespace(value: &[u8], root: u32) -> Option<Vec<u8>> {
    let magic = u32::from_le_bytes(value.get(..4)?.try_into().ok()?);
    let effective = magic & 1;
    // v1: one 32-bit set (permitted, inheritable); v2: two.
    let words: &[u8] = match (magic & 0xff00_0000, value.len()) {
        (0x0100_0000, 12) => &value[4..12],
        (0x0200_0000, 20) => &value[4..20],
        _ => return None,
    };
    let mut out = (0x0300_0000 | effective).to_le_bytes().to_vec();
    out.extend_from_slice(words);
    out.resize(20, 0);
    out.extend_from_slice(&root.to_le_bytes());
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_wide_capability_becomes_the_namespaces() {
        let v2 = [
            0x01, 0, 0, 0x02, 0, 0x20, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0,
        ];
        let v3 = capability_for_namespace(&v2, 7 * 65536).unwrap();
        assert_eq!(v3.len(), 24);
        assert_eq!(&v3[..4], &0x0300_0001u32.to_le_bytes());
        assert_eq!(&v3[4..20], &v2[4..20]);
        assert_eq!(&v3[20..], &(7u32 * 65536).to_le_bytes());
        assert_eq!(capability_for_namespace(&v3, 0), None);
        assert_eq!(capability_for_namespace(b"junk", 0), None);
    }

    #[test]
    fn ids_in_capabilities_and_acls_are_mapped() {
        let shift = |id: u32| id.checked_sub(7 * 65536).filter(|g| *g < 65536);
        // A v3 capability for the namespace whose root is host uid 7*65536.
        let mut cap = vec![0u8; 24];
        cap[0..4].copy_from_slice(&0x0300_0001u32.to_le_bytes());
        cap[4..8].copy_from_slice(&(1u32 << 13).to_le_bytes());
        cap[20..24].copy_from_slice(&(7u32 * 65536).to_le_bytes());
        let out = map_xattr_ids(b"security.capability", &cap, shift)
            .unwrap()
            .unwrap();
        assert_eq!(&out[20..24], &0u32.to_le_bytes());
        assert_eq!(&out[..20], &cap[..20]);
        // v2 holds no id; other attributes are not touched.
        let v2 = [
            0x02, 0, 0, 0x02, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        assert_eq!(map_xattr_ids(b"security.capability", &v2, shift), Ok(None));
        assert_eq!(map_xattr_ids(b"user.x", &cap, shift), Ok(None));
        // An ACL: owner, user 7*65536+1000, group 7*65536+5, mask, other.
        let mut acl = 2u32.to_le_bytes().to_vec();
        for (tag, id) in [
            (1u16, u32::MAX),
            (2, 7 * 65536 + 1000),
            (8, 7 * 65536 + 5),
            (0x10, u32::MAX),
            (0x20, u32::MAX),
        ] {
            acl.extend(tag.to_le_bytes());
            acl.extend(7u16.to_le_bytes());
            acl.extend(id.to_le_bytes());
        }
        let out = map_xattr_ids(b"system.posix_acl_access", &acl, shift)
            .unwrap()
            .unwrap();
        assert_eq!(&out[4 + 8 + 4..4 + 8 + 8], &1000u32.to_le_bytes());
        assert_eq!(&out[4 + 16 + 4..4 + 16 + 8], &5u32.to_le_bytes());
        // An id outside the range cannot be mapped.
        cap[20..24].copy_from_slice(&0u32.to_le_bytes());
        assert_eq!(map_xattr_ids(b"security.capability", &cap, shift), Err(0));
    }

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
        // cap_net_raw, host-wide (v2), as a tarball brings it.
        let v2 = [
            0x01, 0, 0, 0x02, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        let ping = dir.join("bin/ping");
        std::fs::write(&ping, b"x").unwrap();
        let has_xattrs = xattr::set(&ping, "security.capability", &v2).is_ok();
        assert_eq!(current_base(&dir, 65536).unwrap(), 0);
        shift(&dir, 0, 7 * 65536, 65536).unwrap();
        let m = std::fs::metadata(&f).unwrap();
        let result = (
            m.uid(),
            m.gid(),
            m.mode() & 0o7777,
            current_base(&dir, 65536).unwrap(),
        );
        let cap = xattr::get(&ping, "security.capability").unwrap();
        // Back to the host's ids: the capability holds for the host's root again.
        shift(&dir, 7 * 65536, 0, 65536).unwrap();
        let back = xattr::get(&ping, "security.capability").unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(result, (7 * 65536, 7 * 65536 + 5, 0o4755, 7 * 65536));
        if has_xattrs {
            assert_eq!(cap, capability_for_namespace(&v2, 7 * 65536));
            // The kernel shows a capability of the root namespace as version 2.
            assert_eq!(back.as_deref(), Some(&v2[..]));
        }
    }
}
