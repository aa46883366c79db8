//! Images: root filesystems kept as templates for new guests (`hangar image ...`,
//! `hangar publish`, `hangar build --image`), their names and the `image.toml` that
//! describes each one in the image store.

use crate::{ModelError, Signal};
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// An image's name: `NAME` or `NAME:TAG`. NAME is 1-63 of a-z, 0-9, `.`, `_` and `-`,
/// starting with a letter or digit (a guest name, plus the dots and underscores
/// registries use); TAG is 1-128 of A-Z, a-z, 0-9, `.`, `_` and `-`, not starting
/// with `.` or `-` (a registry's tag). Never `.` or `..`, never a `/`: safe as one path
/// component (`var/lib/hangar/images/debian:12`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct ImageName(String);

impl ImageName {
    pub fn new(s: &str) -> Result<Self, ModelError> {
        let (name, tag) = match s.split_once(':') {
            Some((n, t)) => (n, Some(t)),
            None => (s, None),
        };
        let name_ok = {
            let b = name.as_bytes();
            let ok = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit() || b"._-".contains(c);
            !b.is_empty() && b.len() <= 63 && b[0].is_ascii_alphanumeric() && b.iter().all(ok)
        };
        let tag_ok = tag.is_none_or(|t| {
            let b = t.as_bytes();
            let ok = |c: &u8| c.is_ascii_alphanumeric() || b"._-".contains(c);
            !b.is_empty() && b.len() <= 128 && !b".-".contains(&b[0]) && b.iter().all(ok)
        });
        if name_ok && tag_ok {
            Ok(ImageName(s.to_string()))
        } else {
            Err(ModelError::ImageName(s.to_string()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ImageName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ImageName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        ImageName::new(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

impl std::str::FromStr for ImageName {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ImageName::new(s)
    }
}

/// Where an image came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImageSource {
    /// A root filesystem tarball (`image import`).
    Tarball,
    /// An OCI image layout, a directory or its tar archive (`image import`).
    Oci,
    /// What `docker save` writes (`image import`).
    DockerArchive,
    /// A guest's files (`hangar publish`).
    Publish,
}

impl fmt::Display for ImageSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ImageSource::Tarball => "tarball",
            ImageSource::Oci => "oci",
            ImageSource::DockerArchive => "docker-archive",
            ImageSource::Publish => "publish",
        })
    }
}

/// What a guest built from the image runs, as an OCI image's config says it (`Env`,
/// `Entrypoint`, `Cmd`, `WorkingDir`, `User`, `StopSignal`), or as the published
/// guest's config did. Empty for a root filesystem tarball: its `/sbin/init` runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageConfig {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entrypoint: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cmd: Vec<String>,
    /// `KEY=VALUE` entries, in the image's order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// Recorded, not applied: a guest's init runs as guest root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<Signal>,
}

impl ImageConfig {
    /// The command a guest of this image runs as init: entrypoint, then cmd (empty:
    /// none given).
    pub fn command(&self) -> Vec<String> {
        self.entrypoint.iter().chain(&self.cmd).cloned().collect()
    }

    /// The environment as a map, a later entry for a key replacing an earlier one.
    pub fn env_map(&self) -> BTreeMap<String, String> {
        self.env
            .iter()
            .filter_map(|e| e.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    pub fn validate(&self) -> Result<(), ModelError> {
        let bad = |why: String| ModelError::Field {
            field: "image config",
            why,
        };
        if self.command().iter().any(|a| a.contains('\0')) {
            return Err(bad("the command must not hold NUL bytes".into()));
        }
        for e in &self.env {
            let (k, v) = e
                .split_once('=')
                .ok_or_else(|| bad(format!("environment entry {e:?} is no KEY=VALUE")))?;
            crate::config::validate_env(k, v).map_err(|why| bad(why.to_string()))?;
        }
        if let Some(d) = &self.working_dir {
            crate::config::validate_cwd(d).map_err(|why| bad(why.to_string()))?;
        }
        Ok(())
    }
}

/// `image.toml`: what the image store knows of one image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageInfo {
    pub name: ImageName,
    /// Random, new at every import or publish: a btrfs pool's copy of the image is
    /// the image's while it names the same id.
    pub id: String,
    /// Unix time it was made.
    pub created: u64,
    pub source: ImageSource,
    /// The file or directory imported, or the guest published.
    pub from: String,
    /// The processor its programs are for, as OCI names it (`amd64`, `arm64`).
    pub architecture: String,
    /// Bytes its files take in the store.
    pub size: u64,
    #[serde(default)]
    pub config: ImageConfig,
}

impl ImageInfo {
    pub fn from_toml(text: &str) -> Result<ImageInfo, ModelError> {
        let info: ImageInfo = toml::from_str(text).map_err(|e| ModelError::Toml(e.to_string()))?;
        info.config.validate()?;
        if info.id.is_empty() || !info.id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ModelError::Field {
                field: "id",
                why: "must be hex digits".into(),
            });
        }
        Ok(info)
    }

    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).expect("image info always serialises")
    }
}

/// The OCI name of the processor this program was built for (`amd64`, `arm64`, ...).
pub fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        "loongarch64" => "loong64",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_names_take_a_tag() {
        for n in [
            "busybox",
            "debian:12",
            "my.app_v2:1.0-rc1",
            "a:B_x",
            &"x".repeat(63),
        ] {
            assert!(ImageName::new(n).is_ok(), "{n}");
        }
        for n in [
            "",
            ".",
            "..",
            "../x",
            "a/b",
            "-a",
            ".hidden",
            "Upper",
            "a:",
            "a:.x",
            "a:-x",
            "a:b:c",
            "a:b/c",
            ":tag",
            "é",
            &"x".repeat(64),
        ] {
            assert_eq!(
                ImageName::new(n),
                Err(ModelError::ImageName(n.to_string())),
                "{n}"
            );
        }
    }

    #[test]
    fn image_info_round_trips_and_checks_its_config() {
        let info = ImageInfo {
            name: ImageName::new("app:1").unwrap(),
            id: "0123abcd".into(),
            created: 5,
            source: ImageSource::Oci,
            from: "/tmp/app.tar".into(),
            architecture: "amd64".into(),
            size: 4096,
            config: ImageConfig {
                entrypoint: vec!["/bin/sh".into(), "-c".into()],
                cmd: vec!["exec sleep 1".into()],
                env: vec!["PATH=/bin".into(), "A=b=c".into()],
                working_dir: Some("/srv".into()),
                user: Some("1000".into()),
                stop_signal: Some(Signal::TERM),
            },
        };
        let text = info.to_toml();
        assert_eq!(ImageInfo::from_toml(&text).unwrap(), info);
        assert_eq!(info.config.command().len(), 3);
        assert_eq!(info.config.env_map()["A"], "b=c");
        let bad = text.replace("A=b=c", "=x");
        assert!(ImageInfo::from_toml(&bad).is_err());
        let bad = text.replace("\"/srv\"", "\"srv\"");
        assert!(ImageInfo::from_toml(&bad).is_err());
        assert!(ImageInfo::from_toml(&text.replace("0123abcd", "../x")).is_err());
        assert!(ImageInfo::from_toml(&format!("{text}\nextra = 1\n")).is_err());
    }
}
