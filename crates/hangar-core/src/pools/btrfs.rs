//! The btrfs driver: one filesystem per pool (an image file on a loop device, or a
//! block device), a subvolume per guest, its size limited by a qgroup. Driven through
//! btrfs-progs' `mkfs.btrfs` and `btrfs` and util-linux's `mount` (which sets up the
//! loop device): Debian's own tools for the job; the ioctls behind them have no
//! maintained crate.

use super::run;
use crate::{CoreError, Result};
use hangar_model::Size;
use std::path::Path;

fn os(s: &str) -> &std::ffi::OsStr {
    s.as_ref()
}

/// Make a new btrfs filesystem on `target` (image file or device).
pub fn mkfs(target: &Path, label: &str) -> Result<()> {
    run(
        "mkfs.btrfs",
        &[os("-q"), os("-f"), os("-L"), os(label), target.as_os_str()],
    )
    .map(drop)
}

/// Mount `source` (a device, or an image file through a loop device) at `at`, and
/// turn quotas on (idempotent).
pub fn mount(source: &Path, at: &Path, image: bool) -> Result<()> {
    std::fs::create_dir_all(at).map_err(|e| CoreError::io("creating", at, e))?;
    let mut args = vec![os("-t"), os("btrfs")];
    if image {
        args.extend([os("-o"), os("loop")]);
    }
    args.extend([source.as_os_str(), at.as_os_str()]);
    run("mount", &args)?;
    run("btrfs", &[os("quota"), os("enable"), at.as_os_str()]).map(drop)
}

/// Unmount (the loop device goes with it: mount(8) made it autoclear).
pub fn unmount(at: &Path) -> Result<()> {
    run("umount", &[at.as_os_str()]).map(drop)
}

/// Whether `at` is a mount point of a btrfs filesystem now.
pub fn mounted(at: &Path) -> bool {
    super::mounted_fs(at).is_some_and(|(fstype, _)| fstype == "btrfs")
}

pub fn subvolume_create(path: &Path) -> Result<()> {
    run("btrfs", &[os("subvolume"), os("create"), path.as_os_str()]).map(drop)
}

/// Delete the subvolume at `path` and its qgroup (a deleted subvolume's qgroup would
/// stay behind, counted in nothing).
pub fn subvolume_delete(path: &Path) -> Result<()> {
    let id = subvolume_id(path).ok();
    run(
        "btrfs",
        &[
            os("subvolume"),
            os("delete"),
            os("--commit-after"),
            path.as_os_str(),
        ],
    )?;
    if let (Some(id), Some(fs)) = (id, path.parent()) {
        let _ = run(
            "btrfs",
            &[
                os("qgroup"),
                os("destroy"),
                os(&format!("0/{id}")),
                fs.as_os_str(),
            ],
        );
    }
    Ok(())
}

fn subvolume_id(path: &Path) -> Result<u64> {
    let out = run("btrfs", &[os("subvolume"), os("show"), path.as_os_str()])?;
    out.lines()
        .find_map(|l| l.trim().strip_prefix("Subvolume ID:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| CoreError::Invalid(format!("no subvolume id for {}", path.display())))
}

/// A snapshot of subvolume `src` at `dst`, read-only or writable.
pub fn snapshot(src: &Path, dst: &Path, read_only: bool) -> Result<()> {
    let mut args = vec![os("subvolume"), os("snapshot")];
    if read_only {
        args.push(os("-r"));
    }
    args.extend([src.as_os_str(), dst.as_os_str()]);
    run("btrfs", &args).map(drop)
}

/// Make the subvolume at `path` read-only (as a snapshot taken with `-r` is).
pub fn set_read_only(path: &Path) -> Result<()> {
    run(
        "btrfs",
        &[
            os("property"),
            os("set"),
            os("-ts"),
            path.as_os_str(),
            os("ro"),
            os("true"),
        ],
    )
    .map(drop)
}

/// Write out what is cached for the filesystem holding `path`.
pub fn sync(path: &Path) -> Result<()> {
    run("btrfs", &[os("filesystem"), os("sync"), path.as_os_str()]).map(drop)
}

/// Limit the subvolume at `path` to `size` bytes (referenced), or lift its limit.
pub fn limit(path: &Path, size: Option<Size>) -> Result<()> {
    let value = size.map_or_else(|| "none".to_string(), |s| s.0.to_string());
    run(
        "btrfs",
        &[os("qgroup"), os("limit"), os(&value), path.as_os_str()],
    )
    .map(drop)
}

/// (bytes used, limit) of the subvolume at `path`, from its qgroup.
pub fn usage(path: &Path) -> Result<(u64, Option<u64>)> {
    // Accounting is updated at commit: make the numbers current first.
    let _ = run("btrfs", &[os("filesystem"), os("sync"), path.as_os_str()]);
    let id = subvolume_id(path)?;
    let fs = path.parent().unwrap_or(path);
    let out = run(
        "btrfs",
        &[
            os("qgroup"),
            os("show"),
            os("-r"),
            os("--raw"),
            fs.as_os_str(),
        ],
    )?;
    parse_qgroup_show(&out, id).ok_or_else(|| {
        CoreError::Invalid(format!("no quota group for {} (0/{id})", path.display()))
    })
}

/// From `btrfs qgroup show -r --raw` (`Qgroupid Referenced Exclusive Max_referenced
/// ...`), the referenced bytes and limit of qgroup `0/id`.
fn parse_qgroup_show(out: &str, id: u64) -> Option<(u64, Option<u64>)> {
    let want = format!("0/{id}");
    out.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.first() != Some(&want.as_str()) {
            return None;
        }
        let used = f.get(1)?.parse().ok()?;
        let max = f.get(3).and_then(|m| m.parse().ok());
        Some((used, max))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qgroup_lines_give_use_and_limit() {
        let out = "Qgroupid    Referenced    Exclusive   Max referenced  Path\n\
                   --------    ----------    ---------   --------------  ----\n\
                   0/5              16384        16384             none  <toplevel>\n\
                   0/256         67272704     67272704         67108864  guests/g\n\
                   0/257            16384        16384             none  guests/h\n";
        assert_eq!(
            parse_qgroup_show(out, 256),
            Some((67_272_704, Some(67_108_864)))
        );
        assert_eq!(parse_qgroup_show(out, 257), Some((16384, None)));
        assert_eq!(parse_qgroup_show(out, 300), None);
    }
}
