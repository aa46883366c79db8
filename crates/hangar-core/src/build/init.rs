//! Finding a root filesystem's init and the signal that stops it cleanly.
//!
//! Used after unpacking an archive or copying a tree, where hangar did not choose
//! the init itself. Symlinks are resolved *inside* the rootfs, as the guest will
//! see them: `/sbin/init -> /bin/busybox` names the guest's busybox, not the host's.

use super::{BuildError, BuildOutcome};
use hangar_model::InitSystem;
use std::ffi::OsString;
use std::fs;
use std::path::{Component, Path, PathBuf};

/// The guest path of the init every method starts.
pub(super) const INIT: &str = "/sbin/init";

/// Linux follows at most 40 symlinks in one lookup; so do we.
const MAX_SYMLINKS: usize = 40;

/// Finds `/sbin/init` in `rootfs` and names its init system from what it
/// resolves to ([`InitSystem::from_program`]): busybox (`/sbin/init ->
/// /bin/busybox`), systemd (`.../systemd`), anything else is taken for sysvinit.
///
/// Returns None when there is no /sbin/init, or it is a dangling symlink.
pub fn detect_init(rootfs: &Path) -> Option<BuildOutcome> {
    let target = resolve_in_root(rootfs, Path::new(INIT))?;
    let meta = fs::metadata(rootfs.join(&target)).ok()?;
    if !meta.is_file() {
        return None;
    }
    let program = target.file_name().and_then(|n| n.to_str()).unwrap_or("");
    Some(BuildOutcome {
        init: vec![INIT.to_string()],
        init_system: InitSystem::from_program(program),
    })
}

/// The init system the guest boots when it runs `program` (its config's `init`),
/// looked up inside `rootfs` at each start: a guest's packages may have switched
/// it since the build. An init hangar cannot name is taken for sysvinit.
pub(crate) fn init_system_of(rootfs: &Path, program: &Path) -> InitSystem {
    let name = resolve_in_root(rootfs, program)
        .and_then(|p| p.file_name().and_then(|n| n.to_str()).map(str::to_owned));
    InitSystem::from_program(name.as_deref().unwrap_or(""))
}

/// [`detect_init`], or an error naming `what` (e.g. "the archive x.tar") if
/// there is no /sbin/init.
pub(super) fn require_init(rootfs: &Path, what: &str) -> Result<BuildOutcome, BuildError> {
    detect_init(rootfs).ok_or_else(|| BuildError::NoInit {
        what: what.to_string(),
    })
}

/// Resolves `path` as if `rootfs` were `/`: absolute symlinks and `..` never
/// leave the rootfs. Returns the resolved path relative to `rootfs`, or None if
/// a component is missing or the symlinks loop.
pub(crate) fn resolve_in_root(rootfs: &Path, path: &Path) -> Option<PathBuf> {
    // Steps still to walk, next one last, so that a symlink's target can be
    // pushed in front of what remains.
    let mut todo = Vec::new();
    push_steps(&mut todo, path);
    let mut done = PathBuf::new();
    let mut followed = 0;
    while let Some(step) = todo.pop() {
        match step {
            Step::Root => done.clear(),
            Step::Up => {
                done.pop();
            }
            Step::Name(name) => {
                let next = done.join(name);
                let host = rootfs.join(&next);
                if !fs::symlink_metadata(&host).ok()?.file_type().is_symlink() {
                    done = next;
                    continue;
                }
                followed += 1;
                if followed > MAX_SYMLINKS {
                    return None;
                }
                push_steps(&mut todo, &fs::read_link(&host).ok()?);
            }
        }
    }
    Some(done)
}

/// One step of a path walk.
enum Step {
    Root,
    Up,
    Name(OsString),
}

/// Pushes the steps of `path` onto `todo` so that they pop in order.
fn push_steps(todo: &mut Vec<Step>, path: &Path) {
    let steps = path.components().filter_map(|c| match c {
        Component::RootDir | Component::Prefix(_) => Some(Step::Root),
        Component::ParentDir => Some(Step::Up),
        Component::CurDir => None,
        Component::Normal(n) => Some(Step::Name(n.to_os_string())),
    });
    let start = todo.len();
    todo.extend(steps);
    todo[start..].reverse();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    /// A temporary directory removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Self {
            let dir =
                std::env::temp_dir().join(format!("hangar-init-{name}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            Scratch(dir)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn absolute_symlinks_stay_inside_the_rootfs() {
        let s = Scratch::new("abs");
        let r = &s.0;
        fs::create_dir_all(r.join("usr/sbin")).unwrap();
        fs::create_dir_all(r.join("bin")).unwrap();
        fs::write(r.join("bin/busybox"), "").unwrap();
        symlink("usr/sbin", r.join("sbin")).unwrap();
        symlink("/bin/../bin/./busybox", r.join("usr/sbin/init")).unwrap();
        let got = resolve_in_root(r, Path::new("/sbin/init"));
        assert_eq!(got, Some(PathBuf::from("bin/busybox")));
        assert_eq!(detect_init(r).unwrap().init_system, InitSystem::Busybox);
    }

    #[test]
    fn dotdot_cannot_climb_above_the_rootfs() {
        let s = Scratch::new("dotdot");
        let r = &s.0;
        fs::create_dir_all(r.join("sbin")).unwrap();
        fs::create_dir_all(r.join("lib/systemd")).unwrap();
        fs::write(r.join("lib/systemd/systemd"), "").unwrap();
        symlink("../../../../lib/systemd/systemd", r.join("sbin/init")).unwrap();
        assert_eq!(detect_init(r).unwrap().init_system, InitSystem::Systemd);
    }

    #[test]
    fn symlink_loop_is_no_init() {
        let s = Scratch::new("loop");
        let r = &s.0;
        fs::create_dir_all(r.join("sbin")).unwrap();
        symlink("init2", r.join("sbin/init")).unwrap();
        symlink("init", r.join("sbin/init2")).unwrap();
        assert_eq!(resolve_in_root(r, Path::new("/sbin/init")), None);
        assert_eq!(detect_init(r), None);
    }

    #[test]
    fn plain_init_is_taken_for_sysvinit() {
        let s = Scratch::new("plain");
        let r = &s.0;
        fs::create_dir_all(r.join("sbin")).unwrap();
        fs::write(r.join("sbin/init"), "").unwrap();
        assert_eq!(detect_init(r).unwrap().init_system, InitSystem::Sysvinit);
    }
}
