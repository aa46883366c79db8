//! Finding the host's cgroup layout from `/proc/self/mountinfo`.
//!
//! The parser is a pure function of the file's text so it can be tested with
//! samples of hosts we do not run on.

use std::path::{Path, PathBuf};

use crate::{CgroupError, Cgroups};

/// Where the kernel describes this process's mounts.
pub const MOUNTINFO: &str = "/proc/self/mountinfo";

/// Where distributions mount the cgroup tree.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// Every v1 controller name the kernel may list among a hierarchy's mount
/// options; the other options (`rw`, `name=systemd`, `xattr`, ...) are not controllers.
const KERNEL_CONTROLLERS: &[&str] = &[
    "cpu",
    "cpuacct",
    "cpuset",
    "memory",
    "devices",
    "freezer",
    "net_cls",
    "net_prio",
    "blkio",
    "perf_event",
    "hugetlb",
    "pids",
    "rdma",
    "misc",
    "debug",
];

/// One cgroup mount from mountinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CgroupMount {
    mountpoint: PathBuf,
    v2: bool,
    /// v1 only: the controllers bound to this hierarchy, comma separated.
    controllers: String,
}

/// Chooses the cgroup backend from the text of a mountinfo file.
///
/// The host is v2 when `/sys/fs/cgroup` itself is a cgroup2 mount. Otherwise
/// the v1 hierarchies are used; a hybrid host's mostly empty cgroup2 mount
/// (`/sys/fs/cgroup/unified`) carries no limits but gives guests a hierarchy
/// of their own to delegate (systemd's). Only when no v1 hierarchy carries a
/// controller is a cgroup2 mount elsewhere used as the v2 root.
pub fn from_mountinfo(text: &str) -> Result<Cgroups, CgroupError> {
    let mounts: Vec<CgroupMount> = text.lines().filter_map(parse_line).collect();
    // Later mounts hide earlier ones at the same mount point.
    let at_root = mounts
        .iter()
        .rev()
        .find(|m| m.mountpoint == Path::new(CGROUP_ROOT));
    if let Some(root) = at_root.filter(|m| m.v2) {
        return Ok(Cgroups::v2_at(root.mountpoint.clone()));
    }
    let mut hierarchies: Vec<(String, PathBuf)> = Vec::new();
    for m in mounts.iter().filter(|m| !m.v2) {
        // The same hierarchy can be mounted twice (bind mounts); the first one is enough.
        if !hierarchies.iter().any(|(c, _)| *c == m.controllers) {
            hierarchies.push((m.controllers.clone(), m.mountpoint.clone()));
        }
    }
    let mut v1 = Cgroups::v1_at(hierarchies);
    if !v1.is_empty() {
        if let (Cgroups::V1(inner), Some(unified)) = (&mut v1, mounts.iter().find(|m| m.v2)) {
            inner.set_unified(unified.mountpoint.clone());
        }
        return Ok(v1);
    }
    match mounts.iter().find(|m| m.v2) {
        Some(m) => Ok(Cgroups::v2_at(m.mountpoint.clone())),
        None => Err(CgroupError::NoCgroupMount {
            path: PathBuf::from(MOUNTINFO),
        }),
    }
}

/// Parses one mountinfo line if it describes a cgroup mount.
///
/// Format (proc(5)): `id parent major:minor root mountpoint options [optional...] - fstype source superoptions`.
fn parse_line(line: &str) -> Option<CgroupMount> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let sep = fields.iter().skip(6).position(|f| *f == "-")? + 6;
    let mountpoint = PathBuf::from(unescape(fields.get(4)?));
    let fstype = *fields.get(sep + 1)?;
    let superopts = fields.get(sep + 3).copied().unwrap_or("");
    match fstype {
        "cgroup2" => Some(CgroupMount {
            mountpoint,
            v2: true,
            controllers: String::new(),
        }),
        "cgroup" => {
            let controllers: Vec<&str> = superopts
                .split(',')
                .filter(|o| KERNEL_CONTROLLERS.contains(o))
                .collect();
            Some(CgroupMount {
                mountpoint,
                v2: false,
                controllers: controllers.join(","),
            })
        }
        _ => None,
    }
}

/// Undoes mountinfo's octal escapes (`\040` for a space and so on).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match octal {
            Some(d) => {
                let value = d.iter().fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
                out.push(u8::try_from(value).unwrap_or(b'?'));
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This development host: v1 hierarchies on a tmpfs plus an empty cgroup2.
    const HYBRID: &str = "\
23 1 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    /// A systemd host on cgroup v2 only.
    const PURE_V2: &str = "\
22 28 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
26 22 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
27 22 0:24 / /sys/fs/bpf rw,nosuid,nodev,noexec,relatime shared:10 - bpf bpf rw,mode=700
";

    /// An older distribution that co-mounts cpu with cpuacct and net_cls with net_prio.
    const COMOUNTED: &str = "\
25 18 0:22 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:8 - tmpfs tmpfs ro,mode=755
26 25 0:23 / /sys/fs/cgroup/systemd rw,nosuid shared:9 - cgroup cgroup rw,xattr,release_agent=/usr/lib/systemd/systemd-cgroups-agent,name=systemd
29 25 0:26 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:12 - cgroup cgroup rw,cpu,cpuacct
30 25 0:27 / /sys/fs/cgroup/net_cls,net_prio rw,nosuid shared:13 - cgroup cgroup rw,net_cls,net_prio
31 25 0:28 / /sys/fs/cgroup/memory rw,nosuid shared:14 - cgroup cgroup rw,memory
40 25 0:28 / /mnt/memory\\040copy rw,nosuid shared:14 - cgroup cgroup rw,memory
";

    #[test]
    fn hybrid_host_uses_v1_controller_hierarchies() {
        let cgroups = from_mountinfo(HYBRID).unwrap();
        let Cgroups::V1(v1) = cgroups else {
            panic!("expected v1, got {cgroups:?}")
        };
        let names: Vec<&str> = v1.hierarchies().iter().map(|(c, _)| c.as_str()).collect();
        assert_eq!(
            names,
            [
                "cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids"
            ]
        );
        assert_eq!(v1.hierarchies()[3].1, Path::new("/sys/fs/cgroup/memory"));
        assert_eq!(v1.unified(), Some(Path::new("/sys/fs/cgroup/unified")));
        let guest = Cgroups::V1(v1).guest("hangar", "7");
        assert_eq!(
            guest.dir_for(crate::UNIFIED),
            Some(Path::new("/sys/fs/cgroup/unified/hangar/7"))
        );
        assert_eq!(guest.delegated_dir(), guest.dir_for(crate::UNIFIED));
    }

    #[test]
    fn pure_v2_host_uses_sys_fs_cgroup() {
        let cgroups = from_mountinfo(PURE_V2).unwrap();
        let Cgroups::V2(v2) = cgroups else {
            panic!("expected v2, got {cgroups:?}")
        };
        assert_eq!(v2.root(), Path::new("/sys/fs/cgroup"));
    }

    #[test]
    fn comounted_hierarchies_are_kept_once_and_named_ones_skipped() {
        let Cgroups::V1(v1) = from_mountinfo(COMOUNTED).unwrap() else {
            panic!("expected v1")
        };
        let expected = vec![
            (
                "cpu,cpuacct".to_owned(),
                PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"),
            ),
            ("memory".to_owned(), PathBuf::from("/sys/fs/cgroup/memory")),
        ];
        assert_eq!(v1.hierarchies(), expected.as_slice());
    }

    #[test]
    fn cgroup2_elsewhere_is_used_when_no_v1_controller_is_mounted() {
        let text = "41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n";
        let cgroups = from_mountinfo(text).unwrap();
        assert_eq!(cgroups.version(), 2);
    }

    #[test]
    fn no_cgroup_mount_is_an_error() {
        let err = from_mountinfo("22 28 0:21 / /sys rw - sysfs sysfs rw\n").unwrap_err();
        assert!(matches!(err, CgroupError::NoCgroupMount { .. }));
    }

    #[test]
    fn octal_escapes_in_mount_points_are_decoded() {
        assert_eq!(unescape("/mnt/a\\040b\\134c"), "/mnt/a b\\c");
        assert_eq!(unescape("/trailing\\04"), "/trailing\\04");
    }
}
