//! The guest's mount namespace: its root filesystem, /proc, /sys, /dev, and pivot_root.
//!
//! Runs before init is exec'd, in the mount namespace the guest's own is copied from
//! (see `launch.rs`): every mount made here reaches the guest locked, so no mask can be
//! removed from inside, even from a new mount namespace of the guest's own. The
//! filesystems tied to the guest's namespaces (proc, sysfs, mqueue) are made by a
//! process inside those namespaces ([`Superblocks::make`]) and attached here.

use crate::{ContainerError, devices};
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

const NONE: Option<&str> = None;

/// Files of /proc that would tell a guest about the host or let it poke the kernel:
/// /dev/null is bound over them.
const MASKED_FILES: &[&str] = &[
    "kcore",
    "keys",
    "timer_list",
    "sched_debug",
    "kallsyms",
    "kmsg",
    "latency_stats",
];
/// Directories of /proc hidden under an empty read-only tmpfs.
const MASKED_DIRS: &[&str] = &["acpi", "scsi", "firmware"];
/// Parts of /proc that stay visible but read-only.
const READ_ONLY: &[&str] = &["sys", "sysrq-trigger", "irq", "bus", "fs"];
/// Directories of /sys hidden under an empty read-only tmpfs: the host's firmware
/// (ACPI tables, DMI, the memory map) and RAPL energy counters (a known side channel);
/// other runtimes mask the same.
const MASKED_SYS_DIRS: &[&str] = &["firmware", "devices/virtual/powercap"];

/// Filesystems that belong to the guest's own namespaces, made by a process inside them
/// and handed over as detached mounts.
pub struct Superblocks {
    /// proc of the guest's pid namespace.
    pub proc: OwnedFd,
    /// sysfs of the guest's network namespace (None where the kernel refuses one: a
    /// privileged guest then gets the host's /sys read-only).
    pub sys: Option<OwnedFd>,
    /// mqueue of the guest's ipc namespace (None: no POSIX message queues).
    pub mqueue: Option<OwnedFd>,
}

impl Superblocks {
    /// Made by a process in the guest's pid, network and ipc namespaces, with
    /// CAP_SYS_ADMIN over its own mount namespace (fsopen asks for it).
    pub fn make() -> Result<Superblocks, ContainerError> {
        let base = libc::MOUNT_ATTR_NOSUID | libc::MOUNT_ATTR_NODEV | libc::MOUNT_ATTR_NOEXEC;
        Ok(Superblocks {
            proc: hangar_sys::fs_mount(c"proc", base)?,
            sys: hangar_sys::fs_mount(c"sysfs", base | libc::MOUNT_ATTR_RDONLY).ok(),
            mqueue: hangar_sys::fs_mount(c"mqueue", base).ok(),
        })
    }

    /// As a list of descriptors, to pass over a socket: proc, then sysfs and mqueue
    /// where made.
    pub fn fds(&self) -> [Option<&OwnedFd>; 3] {
        [Some(&self.proc), self.sys.as_ref(), self.mqueue.as_ref()]
    }
}

fn attach(tree: &OwnedFd, target: &Path) -> Result<(), ContainerError> {
    ensure_dir(target)?;
    hangar_sys::move_mount_to(tree.as_fd(), target)
        .map_err(|e| ContainerError::Child(format!("attaching at {}: {e}", target.display())))
}

fn mnt(
    src: Option<&str>,
    target: &Path,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> Result<(), ContainerError> {
    mount(src, target, fstype, flags, data).map_err(|e| ContainerError::path("mount", target, e))
}

/// Bind `path` onto itself and remount it read-only.
pub fn bind_read_only(path: &Path) -> Result<(), ContainerError> {
    mnt(
        Some(path.to_str().unwrap_or("/")),
        path,
        NONE,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        NONE,
    )?;
    let ro = MsFlags::MS_BIND
        | MsFlags::MS_REMOUNT
        | MsFlags::MS_RDONLY
        | MsFlags::MS_NOSUID
        | MsFlags::MS_NODEV;
    mnt(NONE, path, NONE, ro, NONE)
}

/// Bind `rootfs` onto itself (pivot_root needs a mount point) and step into it.
///
/// Called while the process still has the host's root as its fs uid (before it becomes
/// guest root), so the path to the rootfs only has to be open to the host's root; every
/// later path is relative to the guest's root and never walks the host's directories.
pub fn enter_root(rootfs: &Path) -> Result<(), ContainerError> {
    // Nothing we mount from here on may propagate back to the host.
    mnt(
        NONE,
        Path::new("/"),
        NONE,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        NONE,
    )?;
    let root = rootfs
        .to_str()
        .ok_or_else(|| ContainerError::Child(format!("rootfs {rootfs:?} is not UTF-8")))?;
    mnt(
        Some(root),
        rootfs,
        NONE,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        NONE,
    )?;
    // chdir resolves through the new mount, so "." is now the bind mount's root.
    nix::unistd::chdir(rootfs).map_err(|e| ContainerError::path("chdir", rootfs, e))?;
    // No device node stored in the guest's files opens: a rootfs unpacked as host root
    // (a tarball, an rsync copy) may hold block devices that guest root could then
    // read. The guest's /dev is a tmpfs of its own, mounted over this afterwards.
    let here = nix::fcntl::open(
        Path::new("."),
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| ContainerError::path("open", rootfs, e))?;
    hangar_sys::mount_setattr_tree(here.as_fd(), libc::MOUNT_ATTR_NODEV)
        .map_err(|e| ContainerError::Child(format!("making {} nodev: {e}", rootfs.display())))
}

/// Set up every mount of the guest inside the root entered by [`enter_root`], then make
/// it the root. Returns the console pty (master, peer), from the guest's own devpts.
/// `cgroup2`: /sys/fs/cgroup is left for [`mount_cgroup2`], else an empty tmpfs.
pub fn setup(
    userns: bool,
    cgroup2: bool,
    lxcfs: Option<&OwnedFd>,
    supers: &Superblocks,
) -> Result<(OwnedFd, OwnedFd), ContainerError> {
    mount_proc(Path::new("proc"), &supers.proc)?;
    mount_sys(Path::new("sys"), supers.sys.as_ref(), userns, cgroup2)?;
    if let Some(fd) = lxcfs {
        crate::lxcfs::bind(fd)?;
    }
    devices::populate(Path::new("dev"), supers.mqueue.as_ref())?;
    let console = devices::console(Path::new("dev"))?;
    mount_run(Path::new("run"))?;
    pivot()?;
    Ok(console)
}

/// The guest's own cgroup2 tree at /sys/fs/cgroup, for an init that manages cgroups
/// (systemd): mounted by init-to-be after it unshared its cgroup namespace, so its
/// root is the guest's own cgroup, which the host delegated to guest root, and nothing
/// above it is reachable. The limits stay in force from outside (on a v1 host they
/// live in hierarchies the guest never sees).
pub fn mount_cgroup2() -> Result<(), ContainerError> {
    let rw = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mnt(
        Some("cgroup2"),
        Path::new("/sys/fs/cgroup"),
        Some("cgroup2"),
        rw,
        NONE,
    )
}

fn ensure_dir(p: &Path) -> Result<(), ContainerError> {
    std::fs::create_dir_all(p).map_err(|e| ContainerError::path("creating", p, e))
}

fn mount_proc(proc_dir: &Path, proc: &OwnedFd) -> Result<(), ContainerError> {
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    attach(proc, proc_dir)?;
    for f in MASKED_FILES {
        let p = proc_dir.join(f);
        if p.exists() {
            mnt(Some("/dev/null"), &p, NONE, MsFlags::MS_BIND, NONE)?;
        }
    }
    for d in MASKED_DIRS {
        let p = proc_dir.join(d);
        if p.is_dir() {
            mnt(
                Some("tmpfs"),
                &p,
                Some("tmpfs"),
                flags | MsFlags::MS_RDONLY,
                Some("size=0"),
            )?;
        }
    }
    for r in READ_ONLY {
        let p = proc_dir.join(r);
        if p.exists() {
            bind_read_only(&p)?;
        }
    }
    Ok(())
}

/// A fresh read-only sysfs. Its /sys/fs/cgroup is either empty (a read-only tmpfs) or,
/// for an init that manages cgroups, left for [`mount_cgroup2`].
fn mount_sys(
    sys_dir: &Path,
    sys: Option<&OwnedFd>,
    userns: bool,
    cgroup2: bool,
) -> Result<(), ContainerError> {
    ensure_dir(sys_dir)?;
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC | MsFlags::MS_RDONLY;
    // A new sysfs shows this network namespace's interfaces only. The kernel allows it in a
    // user namespace that owns the network namespace, which ours does.
    let Some(sys) = sys else {
        if userns {
            return Err(ContainerError::Child(
                "the kernel refused a sysfs for the guest's network namespace".into(),
            ));
        }
        mnt(
            Some("/sys"),
            sys_dir,
            NONE,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            NONE,
        )?;
        mnt(
            NONE,
            sys_dir,
            NONE,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | flags,
            NONE,
        )?;
        return Ok(());
    };
    attach(sys, sys_dir)?;
    for d in MASKED_SYS_DIRS {
        let p = sys_dir.join(d);
        if p.is_dir() {
            mnt(
                Some("tmpfs"),
                &p,
                Some("tmpfs"),
                flags,
                Some("size=0,mode=555"),
            )?;
        }
    }
    let cg = sys_dir.join("fs/cgroup");
    if !cgroup2 && cg.is_dir() {
        mnt(
            Some("tmpfs"),
            &cg,
            Some("tmpfs"),
            flags,
            Some("size=0,mode=555"),
        )?;
    }
    Ok(())
}

/// A fresh tmpfs on /run, as a booting Linux system has: stale pid files and sockets of
/// the last run never survive into the next.
fn mount_run(run: &Path) -> Result<(), ContainerError> {
    if std::fs::symlink_metadata(run)
        .map(|m| m.is_dir())
        .unwrap_or(false)
    {
        let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
        mnt(
            Some("tmpfs"),
            run,
            Some("tmpfs"),
            flags,
            Some("mode=755,size=65536k"),
        )?;
    }
    Ok(())
}

/// pivot_root into `rootfs` and detach the old root entirely, so no path leads back to
/// the host's filesystem (pivot_root, unlike chroot, cannot be escaped with `..`).
fn pivot() -> Result<(), ContainerError> {
    // pivot_root(".", ".") stacks the old root on top of the new one; unmounting "."
    // then removes the old root without needing a directory for it in the guest.
    nix::unistd::pivot_root(".", ".").map_err(|e| ContainerError::sys("pivot_root", e))?;
    umount2(".", MntFlags::MNT_DETACH)
        .map_err(|e| ContainerError::sys("detaching the host root", e))?;
    nix::unistd::chdir("/").map_err(|e| ContainerError::sys("chdir /", e))?;
    Ok(())
}
