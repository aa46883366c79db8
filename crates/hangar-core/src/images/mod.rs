//! The image store: root filesystems kept as templates for new guests.
//!
//! `var/lib/hangar/images/NAME/` holds `rootfs/` and `image.toml` (an
//! [`ImageInfo`]). An image's files are stored **unshifted**: owned by the guest ids
//! they will have (0-65535), whatever guest they came from; `hangar build --image`
//! shifts the new guest's copy into its context's range. The store is for root only
//! (mode 0700): its files' owners and capabilities are meant for a guest's user
//! namespace, not the host's.
//!
//! An image is made in `images/.new-NAME-PID/` and renamed into place complete, with
//! its `image.toml` (the commit point): a failed import or publish leaves nothing; one
//! killed half-way leaves a hidden directory that the next import or publish of that
//! name removes. Removal renames it out of the way first (`.gone-NAME-PID`), so a
//! half-removed image never passes for a whole one.
//!
//! - [`source`]: what `image import` reads (a root filesystem tarball, an OCI image
//!   layout or its archive, a docker archive), told apart by their bytes;
//! - [`oci`]: the OCI and docker manifests and configs, and the layers they name;
//! - [`volume`]: an image's files into a new guest's volume, per pool driver.

pub(crate) mod oci;
pub(crate) mod source;
pub(crate) mod volume;

use crate::paths::Paths;
use crate::{CoreError, Result};
use hangar_model::image::{ImageInfo, ImageName};
use std::path::{Path, PathBuf};

/// The file in an image's directory that describes it.
pub const INFO_FILE: &str = "image.toml";

/// Where image `name` lives.
pub fn image_dir(paths: &Paths, name: &ImageName) -> PathBuf {
    paths.images_dir().join(name.as_str())
}

/// Image `name`'s files.
pub fn rootfs(paths: &Paths, name: &ImageName) -> PathBuf {
    image_dir(paths, name).join("rootfs")
}

pub fn exists(paths: &Paths, name: &ImageName) -> bool {
    image_dir(paths, name).join(INFO_FILE).is_file()
}

/// The description of image `name`.
pub fn load(paths: &Paths, name: &ImageName) -> Result<ImageInfo> {
    let file = image_dir(paths, name).join(INFO_FILE);
    let text = match std::fs::read_to_string(&file) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(CoreError::Invalid(format!(
                "no image named {name}: see `hangar image list`"
            )));
        }
        r => r.map_err(|e| CoreError::io("reading", &file, e))?,
    };
    let info = ImageInfo::from_toml(&text).map_err(|source| CoreError::Config {
        file: file.clone(),
        source,
    })?;
    if info.name != *name {
        return Err(CoreError::Invalid(format!(
            "{} names image {}, not {name}: the store was changed by hand",
            file.display(),
            info.name
        )));
    }
    Ok(info)
}

/// Every image in the store, by name (directories that are not whole images, such as
/// one being made, are not listed).
pub fn list(paths: &Paths) -> Result<Vec<ImageInfo>> {
    let mut out = vec![];
    for e in std::fs::read_dir(paths.images_dir())
        .into_iter()
        .flatten()
        .flatten()
    {
        let Some(name) = e.file_name().to_str().and_then(|n| ImageName::new(n).ok()) else {
            continue;
        };
        if exists(paths, &name) {
            out.push(load(paths, &name)?);
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// An image being made: a hidden directory in the store, removed unless committed.
pub(crate) struct Staging {
    dir: PathBuf,
    dst: PathBuf,
    done: bool,
}

impl Staging {
    /// Start making image `name` (whose lock the caller holds): what a killed import
    /// or publish of it left is removed first.
    pub(crate) fn new(paths: &Paths, name: &ImageName) -> Result<Staging> {
        let store = paths.images_dir();
        make_store(&store)?;
        remove_leftovers(&store, name)?;
        let dir = store.join(format!(".new-{name}-{}", std::process::id()));
        std::fs::create_dir(&dir).map_err(|e| CoreError::io("creating", &dir, e))?;
        let staging = Staging {
            dst: image_dir(paths, name),
            dir,
            done: false,
        };
        let rootfs = staging.rootfs();
        std::fs::create_dir(&rootfs).map_err(|e| CoreError::io("creating", &rootfs, e))?;
        Ok(staging)
    }

    /// Where the image's files go.
    pub(crate) fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }

    /// A place for scratch files beside the image's (gone with it, or at the commit).
    pub(crate) fn scratch(&self) -> PathBuf {
        self.dir.join("scratch")
    }

    /// The image is complete: write its description (with its size) and move it
    /// into place.
    pub(crate) fn commit(mut self, mut info: ImageInfo) -> Result<ImageInfo> {
        let scratch = self.scratch();
        if scratch.exists() {
            std::fs::remove_dir_all(&scratch)
                .map_err(|e| CoreError::io("removing", &scratch, e))?;
        }
        info.size = crate::pools::tree_bytes(&self.rootfs());
        let file = self.dir.join(INFO_FILE);
        hangar_sys::write_atomic(&file, info.to_toml().as_bytes(), true)
            .map_err(|e| CoreError::io("writing", &file, e))?;
        std::fs::rename(&self.dir, &self.dst)
            .map_err(|e| CoreError::io("moving into place", &self.dst, e))?;
        if let Some(store) = self.dst.parent() {
            let _ = hangar_sys::sync_dir(store);
        }
        self.done = true;
        Ok(info)
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// The store directory, for root only.
fn make_store(store: &Path) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if !store.is_dir() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(store)
            .map_err(|e| CoreError::io("creating", store, e))?;
    }
    std::fs::set_permissions(store, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| CoreError::io("securing", store, e))
}

/// What an import, publish or delete of `name` that was killed left in the store.
fn remove_leftovers(store: &Path, name: &ImageName) -> Result<()> {
    let prefixes = [format!(".new-{name}-"), format!(".gone-{name}-")];
    for e in std::fs::read_dir(store).into_iter().flatten().flatten() {
        let file = e.file_name();
        let Some(f) = file.to_str() else { continue };
        let ours = prefixes.iter().any(|p| {
            f.strip_prefix(p.as_str())
                .is_some_and(|pid| pid.bytes().all(|b| b.is_ascii_digit()))
        });
        if ours {
            std::fs::remove_dir_all(e.path())
                .map_err(|err| CoreError::io("removing leftover", e.path(), err))?;
        }
    }
    Ok(())
}

/// Remove image `name` from the store (its lock held): moved aside first, so it is
/// gone at once, then its files.
pub(crate) fn remove(paths: &Paths, name: &ImageName) -> Result<()> {
    let dir = image_dir(paths, name);
    let gone = paths
        .images_dir()
        .join(format!(".gone-{name}-{}", std::process::id()));
    std::fs::rename(&dir, &gone).map_err(|e| CoreError::io("removing", &dir, e))?;
    std::fs::remove_dir_all(&gone).map_err(|e| CoreError::io("removing", &gone, e))
}

/// A new random id for an image (32 hex digits).
pub(crate) fn new_id() -> Result<String> {
    Ok(crate::build::util::new_machine_id()?)
}
