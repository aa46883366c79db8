//! The rsync method: copy an existing root filesystem, local or `HOST:DIR` over ssh.
//!
//! Hard links, ACLs, xattrs and numeric owners are kept. The contents of /dev,
//! /proc, /sys, /run and /tmp are never copied (the directories are), so copying
//! a live system is fine: the guest gets an empty /dev, and the runtime mounts
//! the rest. The init and its stop signal are detected afterwards.

use super::util::{self, Tool};
use super::{BuildContext, BuildError, BuildOutcome, init};
use std::path::Path;
use std::process::Command;

const RSYNC: Tool = Tool {
    name: "rsync",
    package: "rsync",
};

/// rsync's "partial transfer due to vanished source files": normal for a live source.
const VANISHED: i32 = 24;

/// Kernel and runtime file systems of a live source; their contents never come along.
const EXCLUDES: &[&str] = &["/dev/*", "/proc/*", "/sys/*", "/run/*", "/tmp/*"];

/// Copies `source` into `rootfs` and detects its init.
pub(super) fn populate(
    source: &str,
    rootfs: &Path,
    cx: &mut BuildContext<'_>,
) -> Result<BuildOutcome, BuildError> {
    if source.is_empty() {
        return Err(BuildError::Invalid(
            "the rsync source is empty: give a directory or HOST:DIR".into(),
        ));
    }
    if !is_remote(source) && !Path::new(source).is_dir() {
        return Err(BuildError::NoSource {
            path: source.into(),
        });
    }
    (cx.progress)(&format!("I: copying {source}"));
    let mut cmd = Command::new("rsync");
    cmd.args(["-aHAX", "--numeric-ids"])
        .args(EXCLUDES.iter().map(|e| format!("--exclude={e}")))
        .arg(with_slash(source))
        .arg(rootfs.join(""));
    util::run(RSYNC, &mut cmd, &[VANISHED], cx)?;
    util::empty_mount_points(rootfs)?;
    init::require_init(rootfs, &format!("the source {source}"))
}

/// Whether rsync takes `source` for a remote `HOST:DIR`: a colon before any slash.
fn is_remote(source: &str) -> bool {
    match (source.find(':'), source.find('/')) {
        (Some(colon), Some(slash)) => colon < slash,
        (Some(_), None) => true,
        (None, _) => false,
    }
}

/// `dir` with one trailing slash, so that rsync copies its contents, not itself.
/// A bare `HOST:` (the remote home directory) stays as it is.
fn with_slash(dir: &str) -> String {
    if dir.ends_with(':') {
        return dir.to_string();
    }
    format!("{}/", dir.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colon_before_any_slash_means_remote() {
        assert!(is_remote("web1:/srv/guest"));
        assert!(is_remote("root@web1:"));
        assert!(!is_remote("/srv/a:b"));
        assert!(!is_remote("./a:b"));
        assert!(!is_remote("/srv/guest"));
    }

    #[test]
    fn root_keeps_a_single_slash() {
        assert_eq!(with_slash("/"), "/");
        assert_eq!(with_slash("/srv/guest//"), "/srv/guest/");
        assert_eq!(with_slash("web1:/"), "web1:/");
        assert_eq!(with_slash("web1:"), "web1:");
    }
}
