//! Shared directories: a host directory mounted into a guest (`[[dir]]` tables of its
//! config, `hangar attach NAME dir HOST_PATH PATH [readonly]`).
//!
//! Both paths are checked here as text: absolute, no `.` or `..` components, and
//! neither side may be a place whose sharing would hand a guest the host or take its
//! own kernel views away. What depends on the host (symlinks, hangar's own
//! directories under a relocated root, other guests' files) is checked by hangar-core.

use crate::ModelError;
use serde::{Deserialize, Deserializer, Serialize};
use std::path::{Path, PathBuf};

/// Kernel filesystems a guest never gets from the host, and never has covered.
const KERNEL_DIRS: &[&str] = &["/proc", "/sys", "/dev"];

fn bad(why: String) -> ModelError {
    ModelError::Dir(why)
}

/// `s` as an absolute path in normal form (one `/` between components, none at the
/// end), or why it is not one. `what` names the path in the message.
fn normal(s: &str, what: &str) -> Result<String, ModelError> {
    if !s.starts_with('/') {
        return Err(bad(format!("{what} {s:?} must be an absolute path")));
    }
    if s.contains('\0') {
        return Err(bad(format!("{what} {s:?} contains a NUL byte")));
    }
    let parts: Vec<&str> = s.split('/').filter(|c| !c.is_empty()).collect();
    if let Some(c) = parts.iter().find(|c| **c == ".." || **c == ".") {
        return Err(bad(format!(
            "{what} {s:?} has a {c:?} component: give the path without it"
        )));
    }
    Ok(format!("/{}", parts.join("/")))
}

/// Whether `p` is `dir` or below it (both in normal form).
fn within(p: &str, dir: &str) -> bool {
    dir == "/" || p == dir || p.strip_prefix(dir).is_some_and(|r| r.starts_with('/'))
}

/// Where a shared directory appears inside its guest: absolute, in normal form, not
/// `/` and not in /proc, /sys or /dev.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct GuestPath(String);

impl GuestPath {
    pub fn parse(s: &str) -> Result<GuestPath, ModelError> {
        let p = normal(s, "guest path")?;
        if p == "/" {
            return Err(bad(
                "guest path / would cover the guest's whole root: name a directory in it"
                    .to_string(),
            ));
        }
        if let Some(k) = KERNEL_DIRS.iter().find(|k| within(&p, k)) {
            return Err(bad(format!(
                "guest path {p} is in {k}, which the guest's kernel views own: pick \
                 another place"
            )));
        }
        Ok(GuestPath(p))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path's components, first to last (never `.` or `..`).
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/').filter(|c| !c.is_empty())
    }

    /// The path relative to the guest's root (no leading `/`).
    pub fn relative(&self) -> &str {
        &self.0[1..]
    }

    /// Whether one of the two paths is the other or inside it: two shared directories
    /// there would mount one into the other (and make its mount point in the host's
    /// directory).
    pub fn overlaps(&self, other: &GuestPath) -> bool {
        within(&self.0, &other.0) || within(&other.0, &self.0)
    }
}

impl std::fmt::Display for GuestPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for GuestPath {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        GuestPath::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// The shared directory on the host: absolute, in normal form, UTF-8, not `/` and not
/// in /proc, /sys or /dev ([`host_path_refusal`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct HostPath(String);

impl HostPath {
    pub fn parse(s: &str) -> Result<HostPath, ModelError> {
        let p = normal(s, "host directory")?;
        if let Some(why) = host_path_refusal(Path::new(&p)) {
            return Err(bad(format!("host directory {p}: {why}")));
        }
        Ok(HostPath(p))
    }

    /// A path the host resolved (every symlink followed), checked as a typed one is.
    pub fn from_resolved(p: &Path) -> Result<HostPath, ModelError> {
        let s = p.to_str().ok_or_else(|| {
            bad(format!(
                "host directory {} is not UTF-8: name it by a UTF-8 path",
                p.display()
            ))
        })?;
        HostPath::parse(s)
    }

    pub fn as_path(&self) -> &Path {
        Path::new(&self.0)
    }
}

impl std::fmt::Display for HostPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for HostPath {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        HostPath::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// Why host directory `p` (absolute, normal form) may never be shared, if it may not:
/// `/` (the whole host) and the kernel's own filesystems. Places that depend on the
/// hangar root (its configs, state and guests) are refused by
/// [`protected_refusal`] with the list hangar-core makes.
pub fn host_path_refusal(p: &Path) -> Option<String> {
    let s = p.to_str()?;
    if s == "/" {
        return Some("sharing / would give the guest the whole host".to_string());
    }
    KERNEL_DIRS
        .iter()
        .find(|k| within(s, k))
        .map(|k| format!("{k} is the host kernel's: it is never shared"))
}

/// Why host directory `p` may not be shared given the `protected` places (hangar's
/// configs, state and runtime directories, guests' root filesystems): `p` may be
/// none of them, nor inside one (a guest would reach hangar's files or another
/// guest's), nor above one (the same, one level up).
pub fn protected_refusal(p: &Path, protected: &[(PathBuf, String)]) -> Option<String> {
    protected.iter().find_map(|(dir, what)| {
        if p.starts_with(dir) {
            Some(format!("it is in {what} ({})", dir.display()))
        } else if dir.starts_with(p) {
            Some(format!("it holds {what} ({})", dir.display()))
        } else {
            None
        }
    })
}

/// One shared directory of a guest (a `[[dir]]` table).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SharedDir {
    /// The directory on the host, as resolved when it was attached (no symlinks).
    pub host: HostPath,
    /// Where the guest sees it.
    pub path: GuestPath,
    /// Mounted read-only: writes fail with EROFS, and guest root cannot remount it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub readonly: bool,
}

impl SharedDir {
    /// From the words after `hangar attach NAME dir`: `HOST_PATH PATH [readonly]`.
    pub fn from_args(args: &[String]) -> Result<SharedDir, ModelError> {
        let usage = "give HOST_PATH PATH [readonly], e.g. `dir /srv/home /home`";
        let (host, path, readonly) = match args {
            [h, p] => (h, p, false),
            [h, p, r] if r == "readonly" => (h, p, true),
            [_, _, r] => {
                return Err(bad(format!(
                    "unknown option {r:?}: the only one is readonly ({usage})"
                )));
            }
            _ => return Err(bad(usage.to_string())),
        };
        Ok(SharedDir {
            host: HostPath::parse(host)?,
            path: GuestPath::parse(path)?,
            readonly,
        })
    }
}

/// A guest's shared directories: no two at the same place, nor one inside another.
pub fn validate_dirs(dirs: &[SharedDir]) -> Result<(), ModelError> {
    for (i, a) in dirs.iter().enumerate() {
        if let Some(b) = dirs[i + 1..].iter().find(|b| a.path.overlaps(&b.path)) {
            return Err(bad(format!(
                "{} and {} overlap: shared directories may not be inside one another",
                a.path, b.path
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn paths_are_kept_in_normal_form() {
        assert_eq!(GuestPath::parse("//home//u/").unwrap().as_str(), "/home/u");
        let e = HostPath::parse("/srv/./x").unwrap_err().to_string();
        assert!(e.contains("\".\" component"), "{e}");
        let d = SharedDir::from_args(&args(&["/srv/home/", "/home", "readonly"])).unwrap();
        assert_eq!(d.host.to_string(), "/srv/home");
        assert!(d.readonly);
        assert_eq!(d.path.relative(), "home");
        assert_eq!(d.path.components().collect::<Vec<_>>(), ["home"]);
    }

    #[test]
    fn bad_paths_are_refused_with_the_reason() {
        let cases = [
            (vec!["srv", "/home"], "must be an absolute path"),
            (vec!["/srv", "home"], "must be an absolute path"),
            (vec!["/srv", "/home/../etc"], "\"..\" component"),
            (vec!["/srv/../etc", "/x"], "\"..\" component"),
            (vec!["/srv", "/"], "whole root"),
            (vec!["/srv", "/proc/sys"], "in /proc"),
            (vec!["/srv", "/dev"], "in /dev"),
            (vec!["/", "/x"], "whole host"),
            (vec!["/proc", "/x"], "/proc is the host kernel's"),
            (vec!["/sys/fs", "/x"], "/sys is the host kernel's"),
            (vec!["/srv", "/x", "ro"], "unknown option"),
            (vec!["/srv"], "HOST_PATH PATH"),
        ];
        for (a, needle) in cases {
            let e = SharedDir::from_args(&args(&a)).unwrap_err().to_string();
            assert!(e.contains(needle), "{a:?}: {e}");
        }
        // /processes is not /proc.
        assert!(SharedDir::from_args(&args(&["/processes", "/devices"])).is_ok());
    }

    #[test]
    fn protected_places_are_refused_inside_and_above() {
        let prot = [(
            PathBuf::from("/r/var/lib/hangar"),
            "hangar's state".to_string(),
        )];
        let e = protected_refusal(Path::new("/r/var/lib/hangar/guests/g/rootfs"), &prot);
        assert!(e.unwrap().contains("it is in hangar's state"));
        let e = protected_refusal(Path::new("/r/var"), &prot);
        assert!(e.unwrap().contains("it holds hangar's state"));
        assert_eq!(
            protected_refusal(Path::new("/r/var/lib/hangarx"), &prot),
            None
        );
        assert_eq!(protected_refusal(Path::new("/srv"), &prot), None);
    }

    #[test]
    fn overlapping_guest_paths_are_refused() {
        let d = |p: &str| SharedDir::from_args(&args(&["/srv", p])).unwrap();
        assert!(validate_dirs(&[d("/home"), d("/homes")]).is_ok());
        let e = validate_dirs(&[d("/home"), d("/home/u")]).unwrap_err();
        assert!(e.to_string().contains("overlap"), "{e}");
        assert!(validate_dirs(&[d("/a"), d("/a")]).is_err());
    }

    #[test]
    fn a_dir_table_round_trips_and_refuses_unknown_keys() {
        let d = SharedDir::from_args(&args(&["/srv/home", "/home"])).unwrap();
        let text = toml::to_string(&d).unwrap();
        assert!(!text.contains("readonly"), "{text}");
        assert_eq!(toml::from_str::<SharedDir>(&text).unwrap(), d);
        assert!(toml::from_str::<SharedDir>("host = \"/srv\"\npath = \"/x\"\nmode = 1\n").is_err());
        assert!(toml::from_str::<SharedDir>("host = \"/srv\"\npath = \"/proc\"\n").is_err());
    }
}
