//! Virtualised /proc inside guests, from lxcfs (VServer's virt_mem, virt_uptime,
//! virt_load, virt_cpu): lxcfs answers each read of its files from the reader's own
//! cgroup and pid namespace, so `free`, `uptime`, `top` and `nproc` in a guest tell the
//! truth about that guest. Its files are bound over the guest's /proc files at start,
//! and re-bound into running guests when lxcfs restarts.

use crate::ContainerError;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Files lxcfs virtualises, relative to its mount point and to the guest's root.
pub const FILES: &[&str] = &[
    "proc/cpuinfo",
    "proc/diskstats",
    "proc/loadavg",
    "proc/meminfo",
    "proc/stat",
    "proc/swaps",
    "proc/uptime",
    "proc/slabinfo",
    "sys/devices/system/cpu/online",
];

/// Open the lxcfs mount point (O_PATH), while the path to it may still be walked.
pub fn open(dir: &Path) -> Result<OwnedFd, ContainerError> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
        .open(dir)
        .map_err(|e| ContainerError::path("opening lxcfs at", dir, e))?;
    Ok(f.into())
}

/// Bind lxcfs's files over the guest's (the current directory is the guest's root,
/// with /proc and /sys mounted). Files lxcfs does not offer, or the guest's kernel
/// view lacks, are left alone: the bind fails with ENOENT. No separate existence check:
/// each look at an lxcfs file is a round trip to lxcfs, and a start makes nine binds.
pub fn bind(lxcfs: &OwnedFd) -> Result<(), ContainerError> {
    let base = PathBuf::from(format!("/proc/self/fd/{}", lxcfs.as_raw_fd()));
    for f in FILES {
        let (src, dst) = (base.join(f), Path::new(f));
        match mount(
            Some(&src),
            dst,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        ) {
            Ok(()) | Err(nix::errno::Errno::ENOENT) => {}
            Err(e) => return Err(ContainerError::path("binding lxcfs over", dst, e)),
        }
    }
    Ok(())
}

/// Replace the lxcfs files inside the running guest whose init is `init_pid` with fresh
/// ones from `dir` (after lxcfs restarted, the old binds answer ENOTCONN).
pub fn inject(init_pid: i32, dir: &Path) -> Result<(), ContainerError> {
    let mnt_ns = std::fs::File::open(format!("/proc/{init_pid}/ns/mnt"))
        .map_err(|e| ContainerError::sys("opening the guest's mount namespace", e))?;
    let mut trees = Vec::new();
    for f in FILES {
        if dir.join(f).exists() {
            trees.push((*f, hangar_sys::open_tree_clone(&dir.join(f))?));
        }
    }
    crate::mountns::run_in(mnt_ns.as_fd(), || {
        for (f, tree) in &trees {
            let target = Path::new("/").join(f);
            // The stale bind (ENOTCONN) goes; a guest that unmounted it gets it back.
            while umount2(&target, MntFlags::MNT_DETACH).is_ok() {}
            hangar_sys::move_mount_to(tree.as_fd(), &target)
                .map_err(|e| ContainerError::path("binding lxcfs over", &target, e.into_io()))?;
        }
        Ok(true)
    })
    .map(drop)
    .map_err(|e| {
        ContainerError::InGuest(format!(
            "re-binding lxcfs in guest pid {init_pid}: {}",
            crate::error_chain(&e)
        ))
    })
}
