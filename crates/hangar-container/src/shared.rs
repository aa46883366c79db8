//! Shared directories: a host directory mounted into a guest (the seeds' /home shared
//! between guests), at every start and live.
//!
//! The mount is a detached copy of the directory's own mount, made from a descriptor
//! opened without following any symlink ([`open_host_dir`]), so nothing swapped into
//! the path between hangar's checks and the mount can redirect it. It is not recursive
//! (mounts below the directory on the host are not shared), always nosuid and nodev,
//! read-only when asked, and for an unprivileged guest **idmapped** by the guest's own
//! id map: a file that host uid 1000 owns is owned by uid 1000 inside every guest
//! sharing it, and what guest uid 1000 writes is stored as host uid 1000. Filesystems
//! that cannot be idmapped are refused ([`tree`]); the ownership of a host directory is
//! never changed.
//!
//! Guest side, the mount point is found inside the guest's root without following
//! symlinks ([`mountpoint`]; RESOLVE_IN_ROOT besides), and made as guest root when
//! missing. Before it is attached, the mount is copied through a throwaway user
//! namespace, which locks its flags ([`locked`]): guest root can neither remount it
//! read-write nor lift nosuid or nodev. It is attached in the guest's own mount
//! namespace, by init-to-be at start and by a helper that entered it live
//! ([`attach_live`]), not in the namespace the guest's is copied from, where the
//! other mounts of a start are made: those the kernel locks whole, and a locked
//! mount cannot be unmounted by anyone, hangar's live detach included. Guest root
//! can unmount a shared directory: it then sees its own directory below it, as
//! before the attach.

use crate::ContainerError;
use hangar_model::dir::{GuestPath, SharedDir};
use hangar_sys::Forked;
use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, recvmsg, sendmsg};
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

/// A shared directory ready to attach: its detached mount and where it goes.
pub struct Prepared {
    pub tree: OwnedFd,
    pub path: GuestPath,
}

fn refused(why: String) -> ContainerError {
    ContainerError::SharedDir(why)
}

/// How every path of a shared directory is opened: a directory, by descriptor only,
/// with no symlink followed (magic links of /proc included).
fn no_symlinks() -> OpenHow {
    OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_NO_SYMLINKS | ResolveFlag::RESOLVE_NO_MAGICLINKS)
}

/// Open host directory `path` (absolute, resolved when it was attached) following no
/// symlink, and check that the descriptor names that path still (a directory renamed
/// into its place between the two would be another one). The bind is then made from
/// the descriptor, never from the path.
pub fn open_host_dir(path: &Path) -> Result<OwnedFd, ContainerError> {
    let fd = nix::fcntl::openat2(nix::fcntl::AT_FDCWD, path, no_symlinks()).map_err(|e| {
        refused(match e {
            Errno::ENOENT => format!("host directory {} does not exist", path.display()),
            Errno::ENOTDIR => format!("host path {} is not a directory", path.display()),
            Errno::ELOOP => format!(
                "host path {} goes through a symlink now: attach the directory it leads \
                 to (`realpath {}`) instead",
                path.display(),
                path.display()
            ),
            e => format!("opening host directory {}: {e}", path.display()),
        })
    })?;
    let named = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .map_err(|e| ContainerError::sys("reading back an opened directory's path", e))?;
    if named != path {
        return Err(refused(format!(
            "host directory {} was moved while it was opened (it is {} now): nothing \
             was shared",
            path.display(),
            named.display()
        )));
    }
    Ok(fd)
}

/// A user namespace whose map is guest ids 0..count to host ids base..base+count,
/// for idmapped mounts: a child made in it is ended at once, the namespace lives on
/// in the returned descriptor.
pub fn userns_mapping(base: u32, count: u32) -> Result<OwnedFd, ContainerError> {
    let (r, w) =
        nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(|e| ContainerError::sys("pipe", e))?;
    match hangar_sys::fork_into(libc::CLONE_NEWUSER)? {
        Forked::Child => {
            drop(w);
            // Until the parent is done with our /proc files (EOF when it closes).
            let _ = std::fs::File::from(r).read(&mut [0u8; 1]);
            hangar_sys::exit_now(0)
        }
        Forked::Parent(pid) => {
            drop(r);
            let ns = crate::launch::write_id_maps(pid, base, count).and_then(|()| {
                std::fs::File::open(format!("/proc/{pid}/ns/user"))
                    .map_err(|e| ContainerError::sys("opening a user namespace", e))
            });
            drop(w);
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
            Ok(ns?.into())
        }
    }
}

/// A name for the filesystem `fd` is on, for messages.
fn fs_name(fd: BorrowedFd<'_>) -> String {
    let Ok(st) = nix::sys::statfs::fstatfs(fd) else {
        return "its filesystem".to_string();
    };
    let magic = st.filesystem_type().0;
    let known: &[(i64, &str)] = &[
        (0xEF53, "ext4"),
        (0x9123_683E, "btrfs"),
        (0x5846_5342, "xfs"),
        (0x0102_1994, "tmpfs"),
        (0x794C_7630, "overlayfs"),
        (0x6969, "NFS"),
        (0x6573_5546, "a FUSE filesystem"),
        (0xFF53_4D42, "CIFS"),
        (0x2FC1_2FC1, "ZFS"),
        (0x7371_7368, "squashfs"),
    ];
    known
        .iter()
        .find(|(m, _)| *m == magic)
        .map(|(_, n)| n.to_string())
        .unwrap_or_else(|| format!("a filesystem of type {magic:#x}"))
}

/// The detached mount of host directory `dir` for shared directory `d`: nosuid, nodev,
/// read-only if asked, and idmapped by `idmap` (a user namespace with the guest's map;
/// none for a privileged guest, whose root is the host's). A filesystem the kernel
/// cannot idmap is refused with its name.
pub fn tree(
    dir: &OwnedFd,
    d: &SharedDir,
    idmap: Option<BorrowedFd<'_>>,
) -> Result<OwnedFd, ContainerError> {
    let tree = hangar_sys::open_tree_clone_fd(dir.as_fd())?;
    let mut attrs = libc::MOUNT_ATTR_NOSUID | libc::MOUNT_ATTR_NODEV;
    if d.readonly {
        attrs |= libc::MOUNT_ATTR_RDONLY;
    }
    match hangar_sys::mount_setattr(tree.as_fd(), attrs, idmap) {
        Ok(()) => Ok(tree),
        Err(e) if idmap.is_some() && matches!(e.errno(), Some(libc::EINVAL | libc::EPERM)) => {
            Err(refused(format!(
                "host directory {} is on {}, which the kernel cannot mount idmapped (or it \
                 is on an idmapped mount already), and a guest's files need the \
                 guest's ids: share a directory on ext4, btrfs, xfs or tmpfs (hangar \
                 never changes the owners of a host directory)",
                d.host,
                fs_name(dir.as_fd())
            )))
        }
        Err(e) => Err(ContainerError::sys(
            format!("mounting host directory {}", d.host),
            e.into_io(),
        )),
    }
}

/// Open and mount every shared directory of a guest whose root is host id `id_base`
/// (None: privileged, plain binds), with their flags locked for an unprivileged
/// guest: done by the monitor before the launch forks; init-to-be attaches them.
pub fn prepare(
    dirs: &[SharedDir],
    id_base: Option<u32>,
    id_count: u32,
) -> Result<Vec<Prepared>, ContainerError> {
    if dirs.is_empty() {
        return Ok(vec![]);
    }
    let userns = id_base
        .map(|base| userns_mapping(base, id_count))
        .transpose()?;
    dirs.iter()
        .map(|d| {
            let dir = open_host_dir(d.host.as_path())?;
            let tree = tree(&dir, d, userns.as_ref().map(|u| u.as_fd()))?;
            Ok(Prepared {
                tree: if userns.is_some() {
                    locked(tree)?
                } else {
                    tree
                },
                path: d.path.clone(),
            })
        })
        .collect()
}

/// Open the directory at `path` inside the guest whose root is `root`, following no
/// symlink and never leaving `root` (RESOLVE_IN_ROOT): a link the guest planted
/// cannot move the mount point anywhere. With `create`, missing directories are made
/// (mode 755), owned by host id `owner` when given (a caller that is not already the
/// guest's root); without, a missing one is `Ok(None)`.
pub fn mountpoint(
    root: BorrowedFd<'_>,
    path: &GuestPath,
    create: Option<Option<u32>>,
) -> Result<Option<OwnedFd>, ContainerError> {
    let how =
        no_symlinks().resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_SYMLINKS);
    let mut dir = nix::fcntl::openat2(root, ".", how)
        .map_err(|e| ContainerError::sys("opening the guest's root", e))?;
    let mut walked = String::new();
    for c in path.components() {
        walked.push('/');
        walked.push_str(c);
        let next = match nix::fcntl::openat2(&dir, c, how) {
            Err(Errno::ENOENT) => {
                let Some(owner) = create else {
                    return Ok(None);
                };
                match nix::sys::stat::mkdirat(
                    &dir,
                    c,
                    nix::sys::stat::Mode::from_bits_truncate(0o755),
                ) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => {
                        return Err(ContainerError::sys(
                            format!("making the mount point {walked} in the guest"),
                            e,
                        ));
                    }
                }
                let made = nix::fcntl::openat2(&dir, c, how);
                if let (Ok(fd), Some(id)) = (&made, owner) {
                    let id = (
                        Some(nix::unistd::Uid::from_raw(id)),
                        Some(nix::unistd::Gid::from_raw(id)),
                    );
                    nix::unistd::fchownat(fd, "", id.0, id.1, nix::fcntl::AtFlags::AT_EMPTY_PATH)
                        .map_err(|e| {
                        ContainerError::sys(format!("giving {walked} to guest root"), e)
                    })?;
                }
                made
            }
            other => other,
        };
        dir = next.map_err(|e| {
            refused(match e {
                Errno::ELOOP => format!(
                    "{walked} is a symbolic link in the guest: give the path of a \
                     directory (with no link on the way) for the shared directory {path}"
                ),
                Errno::ENOTDIR => format!("{walked} in the guest is not a directory"),
                e => format!("opening {walked} in the guest: {e}"),
            })
        })?;
    }
    Ok(Some(dir))
}

/// Attach prepared directories inside the guest's root, `/` of the caller (init-to-be
/// in its final mount namespace), as the guest's root.
pub fn attach_all(dirs: &[Prepared]) -> Result<(), ContainerError> {
    if dirs.is_empty() {
        return Ok(());
    }
    let root = open_root()?;
    for d in dirs {
        attach_one(root.as_fd(), &d.tree, &d.path, None)?;
    }
    Ok(())
}

fn attach_one(
    root: BorrowedFd<'_>,
    tree: &OwnedFd,
    path: &GuestPath,
    owner: Option<u32>,
) -> Result<(), ContainerError> {
    let mp = mountpoint(root, path, Some(owner))?
        .ok_or_else(|| refused(format!("no mount point {path} in the guest")))?;
    hangar_sys::move_mount_fd(tree.as_fd(), mp.as_fd()).map_err(|e| {
        ContainerError::sys(
            format!("mounting the shared directory on {path}"),
            e.into_io(),
        )
    })
}

/// Attach `d` in the running guest whose mount namespace is `mnt_ns`, making missing
/// directories of its path as host id `owner` (the guest's root; None for a
/// privileged guest). With `lock`, the mount's flags are locked first ([`locked`]).
pub fn attach_live(
    mnt_ns: BorrowedFd<'_>,
    d: Prepared,
    owner: Option<u32>,
    lock: bool,
) -> Result<(), ContainerError> {
    let tree = if lock { locked(d.tree)? } else { d.tree };
    crate::mountns::run_in(mnt_ns, || {
        let root = open_root()?;
        attach_one(root.as_fd(), &tree, &d.path, owner)?;
        Ok(true)
    })
    .map(drop)
}

fn open_root() -> Result<OwnedFd, ContainerError> {
    nix::fcntl::open(
        "/",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|e| ContainerError::sys("opening the guest's root", e))
}

/// Unmount the shared directory at `path` in the running guest whose mount namespace
/// is `mnt_ns`. `host_id` (device and inode of the host directory, when it still
/// exists) tells it from anything else mounted there. Returns whether it was mounted
/// (a guest may have unmounted it itself).
pub fn detach_live(
    mnt_ns: BorrowedFd<'_>,
    path: &GuestPath,
    host_id: Option<(u64, u64)>,
) -> Result<bool, ContainerError> {
    crate::mountns::run_in(mnt_ns, || {
        let root = open_root()?;
        let Some(mp) = mountpoint(root.as_fd(), path, None)? else {
            return Ok(false);
        };
        let st = nix::sys::stat::fstat(&mp).map_err(|e| ContainerError::sys("stat", e))?;
        let same = host_id.is_none_or(|(dev, ino)| st.st_dev == dev && st.st_ino == ino);
        if !same || !hangar_sys::is_mount_root(mp.as_fd())? {
            return Ok(false);
        }
        // By name in its parent, opened as the mount point was: no link on the way.
        let parent = GuestPath::parse(path.as_str().rsplit_once('/').map_or("/", |(p, _)| p))
            .ok()
            .map(|p| mountpoint(root.as_fd(), &p, None))
            .transpose()?
            .flatten()
            .unwrap_or(root);
        nix::unistd::fchdir(&parent).map_err(|e| ContainerError::sys("fchdir", e))?;
        let last = path.components().last().unwrap_or(".");
        nix::mount::umount2(
            last,
            nix::mount::MntFlags::MNT_DETACH | nix::mount::MntFlags::UMOUNT_NOFOLLOW,
        )
        .map_err(|e| ContainerError::sys(format!("unmounting {path} in the guest"), e))?;
        Ok(true)
    })
}

/// A copy of detached mount `tree` whose flags are locked, as those of the mounts a
/// guest gets at start are: the kernel locks the flags of mounts copied into a mount
/// namespace of a less privileged user namespace, and a copy of a locked mount keeps
/// them. A child attaches `tree` in a private mount namespace of its own, copies that
/// namespace into a new user namespace, clones the mount from there and hands it back.
pub fn locked(tree: OwnedFd) -> Result<OwnedFd, ContainerError> {
    let (here, there) = UnixStream::pair().map_err(|e| ContainerError::sys("socketpair", e))?;
    match hangar_sys::fork()? {
        Forked::Child => {
            drop(here);
            let copy = (|| -> Result<OwnedFd, ContainerError> {
                let e = |what: &'static str| move |e| ContainerError::sys(what, e);
                nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
                    .map_err(e("unshare(mount)"))?;
                // Nothing of this namespace may reach the host's.
                nix::mount::mount(
                    None::<&str>,
                    "/",
                    None::<&str>,
                    nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_PRIVATE,
                    None::<&str>,
                )
                .map_err(e("making a mount namespace private"))?;
                // /proc: a directory every host has, and covered here only.
                let spot = nix::fcntl::openat2(nix::fcntl::AT_FDCWD, "/proc", no_symlinks())
                    .map_err(e("opening /proc"))?;
                hangar_sys::move_mount_fd(tree.as_fd(), spot.as_fd())?;
                nix::sched::unshare(
                    nix::sched::CloneFlags::CLONE_NEWUSER | nix::sched::CloneFlags::CLONE_NEWNS,
                )
                .map_err(e("unshare(user, mount)"))?;
                Ok(hangar_sys::open_tree_clone(Path::new("/proc"))?)
            })();
            let sent = match &copy {
                Ok(fd) => {
                    let fds = [fd.as_raw_fd()];
                    let cmsg = [ControlMessage::ScmRights(&fds)];
                    sendmsg::<()>(
                        there.as_raw_fd(),
                        &[std::io::IoSlice::new(b"k")],
                        &cmsg,
                        MsgFlags::empty(),
                        None,
                    )
                }
                Err(e) => {
                    let text = crate::error_chain(e);
                    sendmsg::<()>(
                        there.as_raw_fd(),
                        &[std::io::IoSlice::new(text.as_bytes())],
                        &[],
                        MsgFlags::empty(),
                        None,
                    )
                }
            };
            hangar_sys::exit_now(if copy.is_ok() && sent.is_ok() { 0 } else { 1 })
        }
        Forked::Parent(pid) => {
            drop((there, tree));
            let got = receive_fd(&here);
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
            got
        }
    }
}

/// The descriptor [`locked`]'s child sends, or its error.
fn receive_fd(sock: &UnixStream) -> Result<OwnedFd, ContainerError> {
    let mut buf = [0u8; 1024];
    let (fd, len) = {
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
        let msg = recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .map_err(|e| ContainerError::sys("receiving a locked mount", e))?;
        let mut fd = None;
        for c in msg
            .cmsgs()
            .map_err(|e| ContainerError::sys("receiving a locked mount", e))?
        {
            if let ControlMessageOwned::ScmRights(fds) = c
                && let [one] = fds[..]
            {
                fd = Some(hangar_sys::own_fd(one)?);
            }
        }
        (fd, msg.bytes)
    };
    match fd {
        Some(fd) => Ok(fd),
        None => Err(ContainerError::sys(
            format!(
                "locking a shared directory's mount: {}",
                String::from_utf8_lossy(&buf[..len])
            ),
            std::io::Error::from_raw_os_error(libc::EIO),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scratch directory standing for a guest's root, removed on drop.
    struct Scratch(std::path::PathBuf);
    impl Scratch {
        fn new(tag: &str) -> Scratch {
            let p = std::env::temp_dir().join(format!(
                "hangar-shared-{tag}-{}-{:?}",
                std::process::id(),
                std::time::SystemTime::now()
            ));
            std::fs::create_dir_all(&p).unwrap();
            Scratch(p)
        }
        fn fd(&self) -> OwnedFd {
            std::fs::File::open(&self.0).unwrap().into()
        }
    }
    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn gp(s: &str) -> GuestPath {
        GuestPath::parse(s).unwrap()
    }

    #[test]
    fn a_missing_mount_point_is_made_inside_the_root() {
        let root = Scratch::new("make");
        let mp = mountpoint(root.fd().as_fd(), &gp("/srv/a/b"), Some(None)).unwrap();
        assert!(mp.is_some());
        assert!(root.0.join("srv/a/b").is_dir());
        // Without `create`, a missing one is none, and nothing is made.
        let none = mountpoint(root.fd().as_fd(), &gp("/srv/x/y"), None).unwrap();
        assert!(none.is_none());
        assert!(!root.0.join("srv/x").exists());
    }

    #[test]
    fn a_link_on_the_way_is_refused_and_nothing_is_made_outside() {
        let root = Scratch::new("links");
        let outside = Scratch::new("outside");
        std::os::unix::fs::symlink(&outside.0, root.0.join("out")).unwrap();
        std::os::unix::fs::symlink("/../../..", root.0.join("up")).unwrap();
        std::fs::write(root.0.join("file"), "").unwrap();
        for (p, needle) in [
            ("/out", "/out is a symbolic link"),
            ("/out/sub", "/out is a symbolic link"),
            ("/up/tmp", "/up is a symbolic link"),
            ("/file", "/file in the guest is not a directory"),
        ] {
            let e = mountpoint(root.fd().as_fd(), &gp(p), Some(None)).unwrap_err();
            assert!(e.to_string().contains(needle), "{p}: {e}");
        }
        assert_eq!(std::fs::read_dir(&outside.0).unwrap().count(), 0);
    }

    #[test]
    fn a_host_directory_is_opened_only_by_its_resolved_path() {
        let d = Scratch::new("host");
        std::fs::create_dir(d.0.join("real")).unwrap();
        std::os::unix::fs::symlink(d.0.join("real"), d.0.join("link")).unwrap();
        assert!(open_host_dir(&d.0.join("real")).is_ok());
        let e = open_host_dir(&d.0.join("link")).unwrap_err().to_string();
        assert!(e.contains("goes through a symlink"), "{e}");
        let e = open_host_dir(&d.0.join("none")).unwrap_err().to_string();
        assert!(e.contains("does not exist"), "{e}");
    }
}
