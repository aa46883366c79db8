//! Shift a root filesystem's ownership into a guest's id range.
//!
//! A guest's uid `u` is host uid `base + u`. Files are stored with the host ids the guest
//! sees through its user namespace, so guest root owns its files and no guest owns
//! another's. The current base is read from the owner of the rootfs directory itself
//! (guest root owns `/`), so a tree copied from anywhere can be shifted without a marker.
//!
//! Ids are also held inside two kinds of extended attributes, which a shift carries
//! along: file capabilities (`security.capability`, which the kernel removes on chown,
//! and whose version 3 names the host uid of the user namespace root they are for) and
//! POSIX ACLs (their named users and groups).

use crate::ContainerError;
use std::ffi::OsStr;
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

const CAPABILITY: &str = "security.capability";
const ACLS: [&str; 2] = ["system.posix_acl_access", "system.posix_acl_default"];

/// Move every id in `[from, from+range)` to the same offset in `[to, to+range)`; ids
/// outside the old range (owned by nobody the guest knows) are left alone. The same
/// goes for the ids in ACLs; file capabilities survive the chown, made the new
/// namespace's ([`shift_capability`]).
pub fn shift(rootfs: &Path, from: u32, to: u32, range: u32) -> Result<u64, ContainerError> {
    if from == to {
        return Ok(0);
    }
    let map = |id: u32| {
        if (from..from + range).contains(&id) {
            Some(id - from + to)
        } else {
            None
        }
    };
    let mut changed = 0;
    let mut stack = vec![rootfs.to_path_buf()];
    while let Some(p) = stack.pop() {
        let m =
            std::fs::symlink_metadata(&p).map_err(|e| ContainerError::path("reading", &p, e))?;
        let (uid, gid) = (map(m.uid()), map(m.gid()));
        // Read before the chown, which removes a capability. A symlink has neither.
        let attrs = if m.file_type().is_symlink() {
            vec![]
        } else {
            id_attrs(&p)?
        };
        let chowned = uid.is_some() || gid.is_some();
        if chowned {
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
        for (name, value) in attrs {
            let new = if name == CAPABILITY {
                // One the kernel would not honour (nor have let anyone set) is dropped.
                let Some(cap) = shift_capability(&value, from, to, range) else {
                    continue;
                };
                cap
            } else {
                map_xattr_ids(name.as_bytes(), &value, |id| Some(map(id).unwrap_or(id)))
                    .expect("every id maps")
                    .unwrap_or_else(|| value.clone())
            };
            // The chown removed the capability: it goes back even when unchanged.
            if new != value || (chowned && name == CAPABILITY) {
                xattr::set(&p, name, &new)
                    .map_err(|e| ContainerError::path("setting an extended attribute of", &p, e))?;
            }
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

/// The extended attributes of `path` that hold ids (its capability and ACLs), with
/// their values. One listing per file; values are read only for those it names.
fn id_attrs(path: &Path) -> Result<Vec<(&'static str, Vec<u8>)>, ContainerError> {
    let names = match xattr::list(path) {
        Ok(names) => names,
        // A filesystem without extended attributes has none to carry.
        Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => return Ok(vec![]),
        Err(e) => {
            return Err(ContainerError::path(
                "listing extended attributes of",
                path,
                e,
            ));
        }
    };
    let mut out = vec![];
    for name in names {
        let Some(&known) = std::iter::once(&CAPABILITY)
            .chain(&ACLS)
            .find(|k| OsStr::new(k) == name)
        else {
            continue;
        };
        if let Some(value) = xattr::get(path, known)
            .map_err(|e| ContainerError::path("reading extended attributes of", path, e))?
        {
            out.push((known, value));
        }
    }
    Ok(out)
}

/// A file capability (`security.capability`): what the kernel stores (struct
/// vfs_ns_cap_data, little-endian): a magic word (version and the effective flag),
/// then permitted and inheritable sets in two 32-bit halves each, then for version 3
/// the host uid of the user namespace root it is for. Versions 1 and 2, and version 3
/// with root 0, hold in every user namespace, the host's too.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileCap {
    effective: bool,
    /// permitted[0], inheritable[0], permitted[1], inheritable[1].
    sets: [u8; 16],
    /// The namespace root's host uid; None: every namespace.
    root: Option<u32>,
}

impl FileCap {
    const V1: u32 = 0x0100_0000;
    const V2: u32 = 0x0200_0000;
    const V3: u32 = 0x0300_0000;

    fn parse(value: &[u8]) -> Option<FileCap> {
        let word = |at: usize| u32::from_le_bytes(value[at..at + 4].try_into().expect("4 bytes"));
        if value.len() < 4 {
            return None;
        }
        let magic = word(0);
        let mut sets = [0u8; 16];
        let root = match (magic & 0xff00_0000, value.len()) {
            // One 32-bit half of each set.
            (Self::V1, 12) => {
                sets[..8].copy_from_slice(&value[4..12]);
                None
            }
            (Self::V2, 20) => {
                sets.copy_from_slice(&value[4..20]);
                None
            }
            (Self::V3, 24) => {
                sets.copy_from_slice(&value[4..20]);
                Some(word(20)).filter(|r| *r != 0)
            }
            _ => return None,
        };
        Some(FileCap {
            effective: magic & 1 != 0,
            sets,
            root,
        })
    }

    /// Version 3 for a namespace, version 2 (what host root's `setcap` stores) for
    /// every one.
    fn encode(&self) -> Vec<u8> {
        let version = if self.root.is_some() {
            Self::V3
        } else {
            Self::V2
        };
        let mut out = (version | u32::from(self.effective)).to_le_bytes().to_vec();
        out.extend_from_slice(&self.sets);
        if let Some(root) = self.root {
            out.extend_from_slice(&root.to_le_bytes());
        }
        out
    }
}

/// File capability `value` of a tree shifted from base `from` to `to`, as it must be
/// stored afterwards (the chown removed it): the kernel honours a version 3 capability
/// only in the user namespace whose root is its root id, so that id moves with the
/// owners (a capability of a namespace inside the guest, rooted at another of its
/// uids, too); a host-wide one (version 1 or 2) becomes the guest's own, as the kernel
/// makes one that guest root sets. Shifted to base 0 (a privileged guest: the host's
/// namespace), the guest's own becomes host-wide (version 2). A root id outside the old
/// range stays. None when `value` is no capability the kernel knows.
pub fn shift_capability(value: &[u8], from: u32, to: u32, range: u32) -> Option<Vec<u8>> {
    let cap = FileCap::parse(value)?;
    let root = match cap.root {
        None => to,
        Some(r) if (from..from + range).contains(&r) => r - from + to,
        Some(r) => r,
    };
    Some(
        FileCap {
            root: Some(root).filter(|r| *r != 0),
            ..cap
        }
        .encode(),
    )
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
    let cap = FileCap::parse(value)?;
    // Version 3 already: the one version 24 bytes long.
    if value.len() == 24 {
        return None;
    }
    Some(
        FileCap {
            root: Some(root),
            ..cap
        }
        .encode(),
    )
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

    /// A v2 capability: cap_net_raw (13), permitted and effective.
    fn net_raw_v2() -> Vec<u8> {
        let mut v = 0x0200_0001u32.to_le_bytes().to_vec();
        v.extend((1u32 << 13).to_le_bytes());
        v.extend([0; 12]);
        v
    }

    /// Its root id, None for a host-wide capability (v2).
    fn cap_root(v: &[u8]) -> Option<u32> {
        (v.len() == 24 && v[3] == 3).then(|| u32::from_le_bytes(v[20..24].try_into().unwrap()))
    }

    #[test]
    fn a_shift_makes_capabilities_the_new_namespaces() {
        let r = 65536;
        let v2 = net_raw_v2();
        // Into a guest: its root's.
        let v3 = shift_capability(&v2, 0, 7 * r, r).unwrap();
        assert_eq!(cap_root(&v3), Some(7 * r));
        assert_eq!(&v3[..20], &[&[1, 0, 0, 3][..], &v2[4..]].concat()[..]);
        // To another context: moved by the same delta, a nested namespace's root too.
        assert_eq!(
            cap_root(&shift_capability(&v3, 7 * r, 9 * r, r).unwrap()),
            Some(9 * r)
        );
        let mut nested = v3.clone();
        nested[20..24].copy_from_slice(&(7 * r + 1000).to_le_bytes());
        let moved = shift_capability(&nested, 7 * r, 2 * r, r).unwrap();
        assert_eq!(cap_root(&moved), Some(2 * r + 1000));
        // A root outside the old range stays.
        let mut other = v3.clone();
        other[20..24].copy_from_slice(&(3 * r).to_le_bytes());
        assert_eq!(shift_capability(&other, 7 * r, 9 * r, r).unwrap(), other);
        // Back to the host (privileged): host-wide again, as v2.
        assert_eq!(shift_capability(&v3, 7 * r, 0, r).unwrap(), v2);
        // v1 (one 32-bit half per set) becomes v2 there, which the kernel still takes.
        let mut v1 = 0x0100_0001u32.to_le_bytes().to_vec();
        v1.extend((1u32 << 13).to_le_bytes());
        v1.extend([0; 4]);
        assert_eq!(shift_capability(&v1, 0, 0, r).unwrap(), v2);
        assert_eq!(shift_capability(b"junk", 0, 7 * r, r), None);
    }

    #[test]
    fn shifting_carries_capabilities_and_acls_there_and_back() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("SKIP: needs root to chown and set capabilities");
            return;
        }
        let r = 65536;
        let dir = std::env::temp_dir().join(format!("hangar-idshift-caps-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        let ping = dir.join("bin/ping");
        std::fs::write(&ping, b"x").unwrap();
        let link = dir.join("bin/ping-link");
        std::fs::hard_link(&ping, &link).unwrap();
        xattr::set(&ping, CAPABILITY, &net_raw_v2()).unwrap();
        // An ACL: owner, user 1000, owning group, group 5, mask, other.
        let acl = |user: u32, group: u32| {
            let mut v = 2u32.to_le_bytes().to_vec();
            for (tag, id) in [
                (1u16, u32::MAX),
                (2, user),
                (4, u32::MAX),
                (8, group),
                (0x10, u32::MAX),
                (0x20, u32::MAX),
            ] {
                v.extend(tag.to_le_bytes());
                v.extend(4u16.to_le_bytes());
                v.extend(id.to_le_bytes());
            }
            v
        };
        let f = dir.join("bin/shared");
        std::fs::write(&f, b"x").unwrap();
        xattr::set(&f, ACLS[0], &acl(1000, 5)).unwrap();
        let read = |p: &Path, n: &str| xattr::get(p, n).unwrap();
        shift(&dir, 0, 7 * r, r).unwrap();
        let there = (
            read(&ping, CAPABILITY).as_deref().and_then(cap_root),
            read(&f, ACLS[0]),
        );
        shift(&dir, 7 * r, 9 * r, r).unwrap();
        let moved = read(&link, CAPABILITY).as_deref().and_then(cap_root);
        shift(&dir, 9 * r, 0, r).unwrap();
        let back = (read(&ping, CAPABILITY), read(&f, ACLS[0]));
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(there.0, Some(7 * r));
        assert_eq!(moved, Some(9 * r));
        assert_eq!(back.0, Some(net_raw_v2()));
        assert_eq!(there.1, Some(acl(7 * r + 1000, 7 * r + 5)));
        assert_eq!(back.1, Some(acl(1000, 5)));
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
