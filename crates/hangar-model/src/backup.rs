//! The backup archive of `hangar export` / `hangar import`: its manifest and the names
//! of its members. An archive comes from anywhere (another host, a file someone made),
//! so everything in it is checked here before anything is written: a manifest that is
//! not ours, a newer format, a member path that would leave the guest (`..`, an
//! absolute path) are refused with the reason.
//!
//! Layout of the tar stream (zstd-compressed), in this order:
//!
//! | member | what |
//! | --- | --- |
//! | `hangar-export.json` | the [`Manifest`] |
//! | `config.toml` | the guest's config, as its config file holds it |
//! | `snapshots/SNAP/...` | each snapshot's volume, when asked for |
//! | `volume/...` | the guest's volume (`volume/rootfs/...`) |
//! | `hangar-export.sha256` | SHA-256 of every byte of the tar stream before this member's header |

use crate::pool::{PoolName, SnapshotName};
use crate::{ContextId, GuestName, ModelError};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// What the manifest's `format` says.
pub const FORMAT: &str = "hangar-export";
/// The newest format version this hangar writes and reads.
pub const VERSION: u32 = 1;
pub const MANIFEST: &str = "hangar-export.json";
pub const CONFIG: &str = "config.toml";
pub const CHECKSUM: &str = "hangar-export.sha256";
pub const VOLUME: &str = "volume";
pub const SNAPSHOTS: &str = "snapshots";

/// The first member: what the archive is, whose guest, and what it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: String,
    pub version: u32,
    /// The guest's name where it was exported.
    pub guest: GuestName,
    /// Its context id there (the import gets its own).
    pub context: ContextId,
    /// Whether owners in the archive are host ids as they are (a privileged guest),
    /// rather than the guest's own ids (0-65535).
    pub privileged: bool,
    /// The pool it lived in.
    pub pool: PoolName,
    /// The snapshots the archive holds (none unless asked for).
    #[serde(default)]
    pub snapshots: Vec<SnapshotEntry>,
    /// Unix time of the export.
    pub created: u64,
    /// Which hangar wrote it.
    pub writer: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotEntry {
    pub name: SnapshotName,
    /// Unix time the snapshot was taken.
    pub created: u64,
}

fn refuse(why: impl Into<String>) -> ModelError {
    ModelError::Archive(why.into())
}

impl Manifest {
    /// Parse the first member's bytes: refused when it is not a hangar manifest, or a
    /// format newer than this hangar reads.
    pub fn from_json(bytes: &[u8]) -> Result<Manifest, ModelError> {
        let value: serde_json::Value = serde_json::from_slice(bytes)
            .map_err(|_| refuse("not a hangar export (its manifest is not JSON)"))?;
        if value.get("format").and_then(|f| f.as_str()) != Some(FORMAT) {
            return Err(refuse(
                "not a hangar export (its manifest names no hangar format)",
            ));
        }
        match value.get("version").and_then(|v| v.as_u64()) {
            Some(v) if v > u64::from(VERSION) => {
                return Err(refuse(format!(
                    "made by a newer hangar (format version {v}; this one reads up to \
                     {VERSION}): import it with that hangar"
                )));
            }
            Some(v) if v >= 1 => {}
            _ => return Err(refuse("its manifest has no valid format version")),
        }
        let m: Manifest = serde_json::from_value(value)
            .map_err(|e| refuse(format!("its manifest is damaged: {e}")))?;
        let mut names: Vec<&SnapshotName> = m.snapshots.iter().map(|s| &s.name).collect();
        names.sort();
        if names.windows(2).any(|w| w[0] == w[1]) {
            return Err(refuse("its manifest lists a snapshot twice"));
        }
        Ok(m)
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("a manifest always serialises")
    }

    pub fn has_snapshot(&self, name: &SnapshotName) -> bool {
        self.snapshots.iter().any(|s| &s.name == name)
    }
}

/// Where a member of the archive belongs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Member {
    Manifest,
    Config,
    /// A path inside the guest's volume (never empty).
    Volume(PathBuf),
    /// A path inside snapshot SNAP's volume (never empty).
    Snapshot(SnapshotName, PathBuf),
    Checksum,
}

impl Member {
    /// Classify a member by its path in the archive (raw bytes, as tar holds them).
    /// Paths that would leave their volume are refused: absolute ones, `..`, empty
    /// components other than a directory's trailing slash, NUL bytes.
    pub fn parse(path: &[u8]) -> Result<Member, ModelError> {
        let shown = String::from_utf8_lossy(path);
        let bad = |why: &str| refuse(format!("member {shown:?} is refused: {why}"));
        if path.first() == Some(&b'/') {
            return Err(bad("an absolute path"));
        }
        if path.contains(&0) {
            return Err(bad("a NUL byte in its path"));
        }
        let trimmed = path.strip_suffix(b"/").unwrap_or(path);
        let parts: Vec<&[u8]> = trimmed.split(|b| *b == b'/').collect();
        if parts.iter().any(|p| *p == b"..") {
            return Err(bad("`..` would leave the guest's files"));
        }
        if parts.iter().any(|p| p.is_empty() || *p == b".") {
            return Err(bad("an empty or `.` path component"));
        }
        let rest = |from: usize| -> PathBuf {
            use std::os::unix::ffi::OsStrExt;
            parts[from..]
                .iter()
                .map(|p| std::ffi::OsStr::from_bytes(p))
                .collect()
        };
        match parts.as_slice() {
            [p] if *p == MANIFEST.as_bytes() => Ok(Member::Manifest),
            [p] if *p == CONFIG.as_bytes() => Ok(Member::Config),
            [p] if *p == CHECKSUM.as_bytes() => Ok(Member::Checksum),
            [v, _, ..] if *v == VOLUME.as_bytes() => Ok(Member::Volume(rest(1))),
            [s, snap, _, ..] if *s == SNAPSHOTS.as_bytes() => {
                let snap = std::str::from_utf8(snap)
                    .ok()
                    .and_then(|s| SnapshotName::new(s).ok())
                    .ok_or_else(|| bad("not a snapshot name"))?;
                Ok(Member::Snapshot(snap, rest(2)))
            }
            _ => Err(bad("not a member of a hangar export")),
        }
    }
}

/// Where `export FILE` / `import FILE` read or write: `-` is stdin/stdout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stream {
    Std,
    File(PathBuf),
}

impl Stream {
    pub fn parse(s: &str) -> Result<Stream, ModelError> {
        match s {
            "" => Err(ModelError::Field {
                field: "FILE",
                why: "empty: name a file, or - for stdin/stdout".into(),
            }),
            "-" => Ok(Stream::Std),
            f => Ok(Stream::File(f.into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        Manifest {
            format: FORMAT.into(),
            version: VERSION,
            guest: GuestName::new("db").unwrap(),
            context: ContextId::new(7).unwrap(),
            privileged: false,
            pool: PoolName::default_pool(),
            snapshots: vec![SnapshotEntry {
                name: SnapshotName::new("before").unwrap(),
                created: 5,
            }],
            created: 10,
            writer: "hangar 0.1.0".into(),
        }
    }

    #[test]
    fn a_manifest_round_trips() {
        let m = manifest();
        assert_eq!(Manifest::from_json(&m.to_json()).unwrap(), m);
    }

    #[test]
    fn manifests_that_are_not_ours_or_too_new_are_refused() {
        let err = |b: &[u8]| Manifest::from_json(b).unwrap_err().to_string();
        assert!(err(b"\x7fELF").contains("not a hangar export"));
        assert!(err(br#"{"format":"other","version":1}"#).contains("not a hangar export"));
        let newer = String::from_utf8(manifest().to_json())
            .unwrap()
            .replace("\"version\": 1", "\"version\": 9");
        assert!(err(newer.as_bytes()).contains("newer hangar"));
        let bad_name = String::from_utf8(manifest().to_json())
            .unwrap()
            .replace("\"db\"", "\"../x\"");
        assert!(err(bad_name.as_bytes()).contains("damaged"));
        let mut twice = manifest();
        twice.snapshots.push(twice.snapshots[0].clone());
        assert!(err(&twice.to_json()).contains("twice"));
    }

    #[test]
    fn members_are_classified() {
        assert_eq!(
            Member::parse(b"hangar-export.json").unwrap(),
            Member::Manifest
        );
        assert_eq!(Member::parse(b"config.toml").unwrap(), Member::Config);
        assert_eq!(
            Member::parse(b"volume/rootfs/etc/").unwrap(),
            Member::Volume("rootfs/etc".into())
        );
        assert_eq!(
            Member::parse(b"snapshots/before/rootfs").unwrap(),
            Member::Snapshot(SnapshotName::new("before").unwrap(), "rootfs".into())
        );
        assert_eq!(
            Member::parse(b"hangar-export.sha256").unwrap(),
            Member::Checksum
        );
    }

    #[test]
    fn members_leaving_their_volume_are_refused() {
        for p in [
            &b"/etc/passwd"[..],
            b"volume/../../etc/passwd",
            b"volume/rootfs/../../x",
            b"volume//rootfs",
            b"volume/./rootfs",
            b"volume",
            b"snapshots/before",
            b"snapshots/Bad/rootfs",
            b"snapshots/../rootfs",
            b"volume/a\0b",
            b"other/file",
            b"..",
        ] {
            let e = Member::parse(p).unwrap_err().to_string();
            assert!(e.contains("refused"), "{p:?}: {e}");
        }
        assert!(
            Member::parse(b"volume/../x")
                .unwrap_err()
                .to_string()
                .contains("`..`")
        );
    }

    #[test]
    fn a_dash_is_the_standard_stream() {
        assert_eq!(Stream::parse("-").unwrap(), Stream::Std);
        assert_eq!(
            Stream::parse("db.hangar").unwrap(),
            Stream::File("db.hangar".into())
        );
        assert!(Stream::parse("").is_err());
    }
}
