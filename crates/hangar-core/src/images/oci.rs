//! OCI image layouts and docker archives: from `index.json` (OCI) or `manifest.json`
//! (`docker save`) to the image's config and its layers, then the layers applied in
//! order ([`crate::archive::layers`]).
//!
//! Everything is checked against its digest. In an OCI layout every blob (an index, the
//! manifest, the config, each layer as stored) has a descriptor with its SHA-256 and
//! size, and its file is `blobs/sha256/HEX`; a docker archive names its files by path,
//! the config's name being its digest. In both, the config lists each layer's
//! `diff_id`, the SHA-256 of the layer uncompressed, which is checked as the layer is
//! read. A layer is gzip, zstd, xz or plain tar, as its first bytes say.

use super::source::{Kind, Layout, damaged, refuse, uncompressed};
use crate::archive::layers::Layers;
use crate::{CoreError, Result};
use hangar_model::Signal;
use hangar_model::image::ImageConfig;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};
use std::io::Read;

/// Manifests and configs are small; a larger one is not an image's.
const SMALL: u64 = 4 << 20;

/// A SHA-256 digest, as OCI writes it (`sha256:` and 64 lowercase hex digits); held
/// as its hex digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest(String);

impl Digest {
    pub fn parse(s: &str) -> Result<Digest> {
        let hex = match s.split_once(':') {
            Some(("sha256", hex)) => hex,
            Some((alg, _)) => {
                return Err(refuse(format!(
                    "it uses {alg} digests; hangar checks sha256 ones only"
                )));
            }
            None => return Err(refuse(format!("{s:?} is no digest"))),
        };
        if hex.len() != 64 || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(refuse(format!("{s:?} is no sha256 digest")));
        }
        Ok(Digest(hex.to_string()))
    }

    /// The blob's file in an OCI layout.
    pub fn blob_path(&self) -> String {
        format!("blobs/sha256/{}", self.0)
    }

    fn of(bytes: &[u8]) -> Digest {
        Digest(crate::archive::hex(&Sha256::digest(bytes)))
    }
}

impl std::fmt::Display for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sha256:{}", self.0)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    #[serde(default)]
    media_type: String,
    digest: String,
    size: u64,
    #[serde(default)]
    platform: Option<Platform>,
}

#[derive(Deserialize)]
struct Platform {
    architecture: String,
    os: String,
}

#[derive(Deserialize)]
struct Index {
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

#[derive(Deserialize)]
struct Manifest {
    config: Descriptor,
    #[serde(default)]
    layers: Vec<Descriptor>,
}

#[derive(Deserialize)]
struct ConfigJson {
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    os: String,
    #[serde(default)]
    config: Option<RunConfig>,
    rootfs: Option<RootFs>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct RunConfig {
    env: Option<Vec<String>>,
    entrypoint: Option<Vec<String>>,
    cmd: Option<Vec<String>>,
    working_dir: Option<String>,
    user: Option<String>,
    stop_signal: Option<String>,
}

#[derive(Deserialize)]
struct RootFs {
    #[serde(default)]
    diff_ids: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerEntry {
    config: String,
    #[serde(default)]
    layers: Vec<String>,
}

/// What an image layout holds: its config and its layers, bottom first.
pub struct Plan {
    pub architecture: String,
    pub config: ImageConfig,
    pub layers: Vec<LayerRef>,
    /// What was left out of the config, for the user.
    pub notes: Vec<String>,
}

/// One layer: its file, its digest as stored (with its size, when known), and its
/// digest uncompressed.
pub struct LayerRef {
    path: String,
    stored: Option<(Digest, Option<u64>)>,
    diff_id: Digest,
}

fn json<'a, T: Deserialize<'a>>(bytes: &'a [u8], what: &str) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| refuse(format!("its {what} is not valid: {e}")))
}

/// A blob of an OCI layout, small, checked against its descriptor.
fn blob(layout: &Layout, d: &Descriptor, what: &str) -> Result<Vec<u8>> {
    let digest = Digest::parse(&d.digest)?;
    let bytes = layout.read_small(&digest.blob_path(), SMALL)?;
    if bytes.len() as u64 != d.size || Digest::of(&bytes) != digest {
        return Err(refuse(format!(
            "its {what} ({digest}) does not match its digest: it was damaged or changed"
        )));
    }
    Ok(bytes)
}

/// Read what `layout` holds: its config and the layers to apply.
pub fn plan(layout: &Layout, kind: Kind) -> Result<Plan> {
    match kind {
        Kind::Oci => oci_plan(layout),
        Kind::Docker => docker_plan(layout),
    }
}

fn oci_plan(layout: &Layout) -> Result<Plan> {
    let index: Index = json(&layout.read_small("index.json", SMALL)?, "index.json")?;
    let manifest = pick_manifest(layout, index, 0)?;
    let config_bytes = blob(layout, &manifest.config, "config")?;
    let config: ConfigJson = json(&config_bytes, "config")?;
    let diff_ids = diff_ids(&config, manifest.layers.len())?;
    let layers = manifest
        .layers
        .iter()
        .zip(diff_ids)
        .map(|(d, diff_id)| {
            if d.media_type.contains("encrypted") {
                return Err(refuse(format!(
                    "its layer {} is encrypted ({})",
                    d.digest, d.media_type
                )));
            }
            let digest = Digest::parse(&d.digest)?;
            Ok(LayerRef {
                path: digest.blob_path(),
                stored: Some((digest, Some(d.size))),
                diff_id,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    finish_plan(config, layers)
}

/// The image manifest `index` leads to: the only one, or the one for this host's
/// processor; an index inside it is followed (a multi-platform image).
fn pick_manifest(layout: &Layout, index: Index, depth: u32) -> Result<Manifest> {
    let arch = hangar_model::image::host_architecture();
    // Attestations and the like carry an "unknown" platform: not images to run.
    let images: Vec<&Descriptor> = index
        .manifests
        .iter()
        .filter(|d| d.platform.as_ref().is_none_or(|p| p.os != "unknown"))
        .collect();
    let chosen = match images.as_slice() {
        [] => return Err(refuse("its index.json lists no image")),
        [one] => *one,
        many => {
            let ours = many.iter().find(|d| {
                d.platform
                    .as_ref()
                    .is_some_and(|p| p.os == "linux" && p.architecture == arch)
            });
            let listed: Vec<String> = many
                .iter()
                .map(|d| match &d.platform {
                    Some(p) => format!("{}/{}", p.os, p.architecture),
                    None => d.digest.clone(),
                })
                .collect();
            *ours.ok_or_else(|| {
                refuse(format!(
                    "it holds several images and none for linux/{arch} ({}): keep one image \
                     in the layout",
                    listed.join(", ")
                ))
            })?
        }
    };
    let bytes = blob(layout, chosen, "manifest")?;
    let value: serde_json::Value = json(&bytes, "manifest")?;
    if value.get("manifests").is_some() {
        if depth >= 3 {
            return Err(refuse("its indexes nest too deep"));
        }
        return pick_manifest(layout, json(&bytes, "image index")?, depth + 1);
    }
    json(&bytes, "manifest")
}

fn docker_plan(layout: &Layout) -> Result<Plan> {
    let entries: Vec<DockerEntry> =
        json(&layout.read_small("manifest.json", SMALL)?, "manifest.json")?;
    let entry = match entries.as_slice() {
        [one] => one,
        [] => return Err(refuse("its manifest.json lists no image")),
        many => {
            return Err(refuse(format!(
                "it holds {} images; hangar imports one (`docker save` one image)",
                many.len()
            )));
        }
    };
    let config_path = super::source::clean(&entry.config)?;
    let config_bytes = layout.read_small(&config_path, SMALL)?;
    // Its name is its digest: `HEX.json`, or `blobs/sha256/HEX` (docker 25 and later).
    let named = config_path
        .strip_prefix("blobs/sha256/")
        .or_else(|| config_path.strip_suffix(".json"))
        .and_then(|hex| Digest::parse(&format!("sha256:{hex}")).ok())
        .ok_or_else(|| {
            refuse(format!(
                "its config {config_path} is not named by its digest, which hangar checks"
            ))
        })?;
    if Digest::of(&config_bytes) != named {
        return Err(refuse(format!(
            "its config {config_path} does not match its digest: it was damaged or changed"
        )));
    }
    let config: ConfigJson = json(&config_bytes, "config")?;
    let diff_ids = diff_ids(&config, entry.layers.len())?;
    let layers = entry
        .layers
        .iter()
        .zip(diff_ids)
        .map(|(path, diff_id)| {
            let path = super::source::clean(path)?;
            let stored = path
                .strip_prefix("blobs/sha256/")
                .and_then(|hex| Digest::parse(&format!("sha256:{hex}")).ok())
                .map(|d| (d, None));
            Ok(LayerRef {
                path,
                stored,
                diff_id,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    finish_plan(config, layers)
}

/// The config's digests of the layers uncompressed, one per layer of the manifest.
fn diff_ids(config: &ConfigJson, layers: usize) -> Result<Vec<Digest>> {
    let rootfs = config
        .rootfs
        .as_ref()
        .ok_or_else(|| refuse("its config has no rootfs: it is not a container image"))?;
    if rootfs.diff_ids.len() != layers {
        return Err(refuse(format!(
            "its manifest names {layers} layers, its config {}",
            rootfs.diff_ids.len()
        )));
    }
    rootfs.diff_ids.iter().map(|d| Digest::parse(d)).collect()
}

/// The image's config as hangar keeps it: what a guest of it runs, with its
/// environment and directory. Entries hangar cannot take are left out (said in notes).
fn finish_plan(config: ConfigJson, layers: Vec<LayerRef>) -> Result<Plan> {
    if !config.os.is_empty() && config.os != "linux" {
        return Err(refuse(format!(
            "it is an image for {}: hangar's guests run Linux",
            config.os
        )));
    }
    let run = config.config.unwrap_or_default();
    let mut notes = vec![];
    let mut env = vec![];
    for e in run.env.unwrap_or_default() {
        let ok = e
            .split_once('=')
            .is_some_and(|(k, v)| hangar_model::config::validate_env(k, v).is_ok());
        if ok {
            env.push(e);
        } else {
            notes.push(format!(
                "its environment entry {e:?} is left out (container=hangar is hangar's own)"
            ));
        }
    }
    let stop_signal = match run.stop_signal.as_deref().map(Signal::parse) {
        Some(Ok(s)) => Some(s),
        Some(Err(e)) => {
            notes.push(format!("its StopSignal is left out: {e}"));
            None
        }
        None => None,
    };
    let working_dir = run.working_dir.filter(|d| !d.is_empty()).map(|d| {
        if d.starts_with('/') {
            d
        } else {
            format!("/{d}")
        }
    });
    let config_out = ImageConfig {
        entrypoint: run.entrypoint.unwrap_or_default(),
        cmd: run.cmd.unwrap_or_default(),
        env,
        working_dir,
        user: run.user.filter(|u| !u.is_empty()),
        stop_signal,
    };
    config_out
        .validate()
        .map_err(|e| refuse(format!("its config cannot be used: {e}")))?;
    let architecture = if config.architecture.is_empty() {
        hangar_model::image::host_architecture().to_string()
    } else {
        config.architecture
    };
    Ok(Plan {
        architecture,
        config: config_out,
        layers,
        notes,
    })
}

/// A reader that hashes what it reads and counts it.
struct Hashing<R> {
    inner: R,
    hasher: Sha256,
    len: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
}

impl<R: Read> Hashing<R> {
    fn new(inner: R) -> Self {
        Hashing {
            inner,
            hasher: Sha256::new(),
            len: 0,
        }
    }

    /// Read to the end (what a tar reader leaves after its end blocks); the digest.
    fn drain(&mut self) -> Result<Digest> {
        std::io::copy(self, &mut std::io::sink()).map_err(damaged)?;
        Ok(Digest(crate::archive::hex(&self.hasher.clone().finalize())))
    }
}

/// Apply `plan`'s layers from `layout` into `layers`, bottom first, each checked
/// against its digests.
pub fn apply(layout: &Layout, plan: &Plan, layers: &mut Layers) -> Result<()> {
    let count = plan.layers.len();
    for (i, l) in plan.layers.iter().enumerate() {
        let what = format!("layer {} of {count} ({})", i + 1, l.path);
        let in_layer = |e: CoreError| super::source::of_image(e, Some(&what));
        // (A missing file's error names it already.)
        let (blob, _) = layout.open(&l.path)?;
        let mut stored = Hashing::new(blob);
        let plain_digest = {
            let mut plain = Hashing::new(uncompressed(&mut stored).map_err(in_layer)?);
            layers.apply(&mut plain, true).map_err(in_layer)?;
            plain.drain().map_err(in_layer)?
        };
        let stored_digest = stored.drain().map_err(in_layer)?;
        let stored_ok = l.stored.as_ref().is_none_or(|(digest, size)| {
            *digest == stored_digest && size.is_none_or(|s| s == stored.len)
        });
        if !stored_ok || plain_digest != l.diff_id {
            return Err(refuse(format!(
                "{what} does not match its digest: it was damaged or changed"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_sha256_and_name_a_blob() {
        let hex = "ab".repeat(32);
        let d = Digest::parse(&format!("sha256:{hex}")).unwrap();
        assert_eq!(d.blob_path(), format!("blobs/sha256/{hex}"));
        assert_eq!(d.to_string(), format!("sha256:{hex}"));
        for bad in [
            format!("sha512:{hex}"),
            format!("sha256:{}", &hex[1..]),
            format!("sha256:../{}", &hex[3..]),
            format!("sha256:{}", hex.to_uppercase()),
            hex.clone(),
        ] {
            assert!(Digest::parse(&bad).is_err(), "{bad}");
        }
    }
}
