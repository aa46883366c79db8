//! The tarball method: unpack a root filesystem archive (VServer's "template").
//!
//! The archive holds the root's *contents*, as `tar -C rootfs -cf x.tar .` writes
//! them, not a single top-level directory. tar detects gzip, xz and zstd
//! compression itself. Numeric owners, permissions and extended attributes (file
//! capabilities such as ping's) are kept. /dev is emptied, and the init and its
//! stop signal are detected afterwards ([`super::detect_init`]).

use super::util::{self, TAR};
use super::{BuildContext, BuildError, BuildOutcome, init};
use std::path::Path;
use std::process::Command;

/// Unpacks `file` into `rootfs` and detects its init.
pub(super) fn populate(
    file: &Path,
    rootfs: &Path,
    cx: &mut BuildContext<'_>,
) -> Result<BuildOutcome, BuildError> {
    if !file.is_file() {
        return Err(BuildError::NoArchive {
            path: file.to_path_buf(),
        });
    }
    (cx.progress)(&format!("I: unpacking {}", file.display()));
    unpack(file, rootfs, cx)?;
    util::empty_mount_points(rootfs)?;
    init::require_init(rootfs, &format!("the archive {}", file.display()))
}

/// Unpacks the archive `file` into `rootfs`, keeping numeric owners and xattrs.
pub(super) fn unpack(
    file: &Path,
    rootfs: &Path,
    cx: &mut BuildContext<'_>,
) -> Result<(), BuildError> {
    let mut cmd = Command::new("tar");
    cmd.args(["--numeric-owner", "--xattrs", "--xattrs-include=*"])
        .arg("-xpf")
        .arg(file)
        .arg("-C")
        .arg(rootfs);
    util::run(TAR, &mut cmd, &[], cx)
}

/// Packs the contents of `rootfs` into the archive `file`, the inverse of [`unpack`].
pub(super) fn pack(
    rootfs: &Path,
    file: &Path,
    cx: &mut BuildContext<'_>,
) -> Result<(), BuildError> {
    let mut cmd = Command::new("tar");
    cmd.args(["--numeric-owner", "--xattrs", "--xattrs-include=*"])
        .arg("-cf")
        .arg(file)
        .arg("-C")
        .arg(rootfs)
        .arg(".");
    util::run(TAR, &mut cmd, &[], cx)
}
