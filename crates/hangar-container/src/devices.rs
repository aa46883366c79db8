//! The guest's /dev: a small tmpfs with the harmless character devices bound from the
//! host (a user namespace may not mknod), a private devpts, shm, and the console.
//! No block device and nothing else of the host's is there.

use crate::ContainerError;
use nix::mount::{MsFlags, mount};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::{OpenOptionsExt, symlink};
use std::path::Path;

/// Character devices every guest gets.
pub const NODES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

/// Whether character device `major:minor` is one of [`NODES`]: the only devices a
/// guest's files may hold as nodes (a node elsewhere in its root filesystem opens the
/// host's device: the devices are not confined by a cgroup).
pub fn harmless(major: u32, minor: u32) -> bool {
    matches!(
        (major, minor),
        (1, 3) | (1, 5) | (1, 7) | (1, 8) | (1, 9) | (5, 0)
    )
}

const NONE: Option<&str> = None;

fn mnt(
    src: Option<&str>,
    target: &Path,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> Result<(), ContainerError> {
    mount(src, target, fstype, flags, data).map_err(|e| ContainerError::path("mount", target, e))
}

fn touch(p: &Path) -> Result<(), ContainerError> {
    std::fs::File::create(p)
        .map(drop)
        .map_err(|e| ContainerError::path("creating", p, e))
}

fn mkdir(p: &Path) -> Result<(), ContainerError> {
    std::fs::create_dir_all(p).map_err(|e| ContainerError::path("creating", p, e))
}

fn link(target: &str, at: &Path) -> Result<(), ContainerError> {
    symlink(target, at).map_err(|e| ContainerError::path("symlinking", at, e))
}

/// Build the guest's /dev at `dev` (a directory inside the future root), with the
/// guest's mqueue filesystem (made in its ipc namespace) at /dev/mqueue.
pub fn populate(dev: &Path, mqueue: Option<&OwnedFd>) -> Result<(), ContainerError> {
    mkdir(dev)?;
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_STRICTATIME;
    mnt(
        Some("tmpfs"),
        dev,
        Some("tmpfs"),
        flags,
        Some("mode=755,size=65536k"),
    )?;
    for n in NODES {
        let target = dev.join(n);
        touch(&target)?;
        let src = format!("/dev/{n}");
        mnt(Some(src.as_str()), &target, NONE, MsFlags::MS_BIND, NONE)?;
    }
    let pts = dev.join("pts");
    mkdir(&pts)?;
    // gid 5 is the tty group of Debian and busybox guests alike.
    let pts_opts = "newinstance,ptmxmode=0666,mode=0620,gid=5";
    mnt(
        Some("devpts"),
        &pts,
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some(pts_opts),
    )?;
    link("pts/ptmx", &dev.join("ptmx"))?;
    let shm = dev.join("shm");
    mkdir(&shm)?;
    mnt(
        Some("shm"),
        &shm,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=1777,size=65536k"),
    )?;
    let mq = dev.join("mqueue");
    mkdir(&mq)?;
    // The mqueue filesystem belongs to the ipc namespace; without it only POSIX message
    // queues are lost, which few guests use.
    if let Some(mqueue) = mqueue {
        let _ = hangar_sys::move_mount_to(mqueue.as_fd(), &mq);
    }
    for (name, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        link(target, &dev.join(name))?;
    }
    Ok(())
}

/// A console pty from the guest's own devpts (so that inside the guest its name is a
/// real /dev/pts entry, like any other terminal there), bound onto /dev/console.
/// Returns (master, peer); the monitor keeps the master and logs what comes out of it.
pub fn console(dev: &Path) -> Result<(OwnedFd, OwnedFd), ContainerError> {
    let ptmx = dev.join("pts/ptmx");
    let master: OwnedFd = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(&ptmx)
        .map_err(|e| ContainerError::path("opening", &ptmx, e))?
        .into();
    hangar_sys::pty_unlock(master.as_fd())?;
    let peer = hangar_sys::pty_peer(master.as_fd())?;
    let name = std::fs::read_link(format!("/proc/self/fd/{}", peer.as_raw_fd()))
        .map_err(|e| ContainerError::sys("naming the console pty", e))?;
    let index = name
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string();
    let console_at = dev.join("console");
    touch(&console_at)?;
    let src = dev.join("pts").join(index);
    mnt(
        Some(src.to_str().unwrap_or_default()),
        &console_at,
        NONE,
        MsFlags::MS_BIND,
        NONE,
    )?;
    Ok((master, peer))
}
