//! Getting a new process into a guest's cgroups without moving it there from outside.
//!
//! Moving a process by pid (writing it into `cgroup.procs`) takes the cgroup layer's
//! global threadgroup lock for writing, which waits for an RCU grace period: 10 to 20
//! ms here, most of a start. Instead the process is born in its cgroup2 directory
//! (`clone3` with `CLONE_INTO_CGROUP`, Linux 5.7), and joins each v1 hierarchy by
//! writing `0` (itself, one thread: it has no other yet) into that directory's `tasks`
//! file, which needs no such lock. Those files are opened by the host side before the
//! fork, so the kernel checks the opener's credentials (it does, to stop inherited-fd
//! tricks), not those of a process already in the guest's user namespace.

use crate::ContainerError;
use hangar_sys::Forked;
use std::io::Write;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

/// The cgroups a new process (a guest's init, an `exec`'d command's joiner) is to be
/// in, opened beforehand by the host side.
pub(crate) struct Joins {
    /// `tasks` of each v1 directory, open for writing.
    v1_tasks: Vec<(PathBuf, std::fs::File)>,
    /// The cgroup2 directory (a hybrid host's unified tree, or a v2 host's only one).
    v2: Option<(PathBuf, std::fs::File)>,
}

impl Joins {
    pub(crate) fn open(dirs: &[PathBuf]) -> Result<Joins, ContainerError> {
        let mut joins = Joins {
            v1_tasks: Vec::new(),
            v2: None,
        };
        for dir in dirs {
            let fs = nix::sys::statfs::statfs(dir)
                .map_err(|e| ContainerError::path("reading", dir, std::io::Error::from(e)))?;
            if fs.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC && joins.v2.is_none() {
                let f = std::fs::File::open(dir)
                    .map_err(|e| ContainerError::path("opening", dir, e))?;
                joins.v2 = Some((dir.clone(), f));
            } else {
                let tasks = dir.join("tasks");
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&tasks)
                    .map_err(|e| ContainerError::path("opening", &tasks, e))?;
                joins.v1_tasks.push((tasks, f));
            }
        }
        Ok(joins)
    }

    pub(crate) fn v2_dir(&self) -> Option<&Path> {
        self.v2.as_ref().map(|(p, _)| p.as_path())
    }

    /// Fork the guest with `flags`, in the cgroup2 directory when the kernel can
    /// (true), else plainly (the parent then moves it).
    pub(crate) fn fork(&self, flags: libc::c_int) -> Result<(Forked, bool), ContainerError> {
        if let Some((_, dir)) = &self.v2 {
            match hangar_sys::fork_into_cgroup(flags, dir.as_fd()) {
                Ok(f) => return Ok((f, true)),
                Err(hangar_sys::SysError::Call { source, .. })
                    if matches!(
                        source.raw_os_error(),
                        Some(libc::ENOSYS | libc::E2BIG | libc::EINVAL)
                    ) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok((hangar_sys::fork_into(flags)?, false))
    }

    /// In the child: join every v1 hierarchy.
    pub(crate) fn join_self(&self) -> Result<(), ContainerError> {
        for (tasks, f) in &self.v1_tasks {
            (&*f)
                .write_all(b"0")
                .map_err(|e| ContainerError::path("joining cgroup", tasks, e))?;
        }
        Ok(())
    }

    /// In a child that is still host root and was not born in the cgroup2 directory:
    /// move itself there (the slow way, for kernels without `CLONE_INTO_CGROUP`).
    pub(crate) fn move_self_v2(&self) -> Result<(), ContainerError> {
        if let Some((dir, _)) = &self.v2 {
            let procs = dir.join("cgroup.procs");
            std::fs::write(&procs, "0")
                .map_err(|e| ContainerError::path("joining cgroup", procs, e))?;
        }
        Ok(())
    }
}
