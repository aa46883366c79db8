//! `hangar image list/import/export/delete` and `hangar publish GUEST IMAGE`: the image
//! store ([`crate::images`]). `hangar build NAME --image IMAGE` is a build
//! ([`crate::ops::build`], with [`crate::images::volume`]).
//!
//! An import reads a root filesystem tarball, an OCI image layout (a directory or its
//! tar archive) or a docker archive into a new image, refused whole (nothing left in
//! the store) at the first thing wrong; a publish copies a guest's files (a running
//! guest frozen for the moment of a btrfs snapshot, or, on the dir pool, for the
//! copy) and takes its ids back to the guest's own; an export writes an image's files
//! as a root filesystem tarball (tar + zstd) that `image import` reads back. Deleting
//! an image is always allowed: every guest built from it has files of its own (a
//! copy, or a btrfs snapshot, which depends on nothing).

use crate::archive::Ids;
use crate::archive::layers::Layers;
use crate::images::source::{self, Input, Kind};
use crate::images::{self, Staging, oci};
use crate::pools::Pool;
use crate::{CoreError, Host, Result, lock, status, store};
use hangar_model::GuestName;
use hangar_model::backup::Stream;
use hangar_model::image::{ImageConfig, ImageInfo, ImageName, ImageSource, host_architecture};
use std::io::Write;
use std::path::PathBuf;

/// Owners in the store are the guest's own ids (0-65535), as a guest sees them.
const STORE_IDS: Ids = Ids::Shifted { base: 0 };

pub struct ImportRequest {
    pub file: PathBuf,
    pub name: ImageName,
}

/// `hangar image import FILE NAME`.
pub fn import(
    host: &Host,
    req: &ImportRequest,
    progress: &mut dyn FnMut(&str),
) -> Result<ImageInfo> {
    let name = &req.name;
    let _image = lock::image(&host.paths, name, false)?;
    refuse_existing(host, name)?;
    let staging = Staging::new(&host.paths, name)?;
    let rootfs = staging.rootfs();
    let mut layers = Layers::new(&rootfs, STORE_IDS);
    let (source, architecture, config, notes) = match source::open(&req.file, &staging.scratch())? {
        Input::Tarball(path) => {
            progress(&format!("unpacking {}", path.display()));
            let file =
                std::fs::File::open(&path).map_err(|e| CoreError::io("opening", &path, e))?;
            let rest = layers
                .apply(source::uncompressed(file)?, false)
                .map_err(|e| source::of_image(e, None))?;
            tar_end(rest)?;
            let arch = host_architecture().to_string();
            (ImageSource::Tarball, arch, ImageConfig::default(), vec![])
        }
        Input::Layout(layout, kind) => {
            let plan = oci::plan(&layout, kind)?;
            progress(&format!("applying {} layers", plan.layers.len()));
            oci::apply(&layout, &plan, &mut layers)?;
            let source = match kind {
                Kind::Oci => ImageSource::Oci,
                Kind::Docker => ImageSource::DockerArchive,
            };
            (source, plan.architecture, plan.config, plan.notes)
        }
    };
    let skipped = layers.finish()?;
    for n in notes {
        host.notice(format!("image {name}: {n}"));
    }
    if skipped > 0 {
        host.notice(format!(
            "image {name}: device nodes not made: {skipped} (a guest's files hold only null, \
             zero, full, random, urandom and tty; its /dev is hangar's own)"
        ));
    }
    if architecture != host_architecture() {
        host.notice(format!(
            "image {name} is for {architecture}, this host is {}: its programs will not run \
             here",
            host_architecture()
        ));
    }
    let from = std::path::absolute(&req.file).unwrap_or_else(|_| req.file.clone());
    staging.commit(ImageInfo {
        name: name.clone(),
        id: images::new_id()?,
        created: crate::ops::snapshot::now(),
        source,
        from: from.display().to_string(),
        architecture,
        size: 0,
        config,
    })
}

/// What follows a tarball's entries must be the rest of its end (the second zero
/// block and padding): an archive that stops right after a member was cut short. Read
/// to the end, so a compressed stream's own check runs.
fn tar_end(mut rest: impl std::io::Read) -> Result<()> {
    let left = std::io::copy(&mut rest, &mut std::io::sink()).map_err(source::damaged)?;
    if left == 0 {
        return Err(source::refuse(
            "it ends without a tar archive's end: it was cut short",
        ));
    }
    Ok(())
}

fn refuse_existing(host: &Host, name: &ImageName) -> Result<()> {
    if images::exists(&host.paths, name) {
        return Err(CoreError::Invalid(format!(
            "an image named {name} exists already: delete it first (`hangar image delete \
             {name}`), or choose another name"
        )));
    }
    Ok(())
}

/// `hangar image list`: every image, by name.
pub fn list(host: &Host) -> Result<Vec<ImageInfo>> {
    images::list(&host.paths)
}

/// `hangar image delete NAME`: the image and every btrfs pool's copy of it. Guests
/// built from it keep their files.
pub fn delete(host: &Host, name: &ImageName) -> Result<()> {
    let _image = lock::image(&host.paths, name, false)?;
    images::load(&host.paths, name)?;
    images::volume::forget(host, name)?;
    images::remove(&host.paths, name)
}

/// `hangar image export NAME FILE`: the image's files as a root filesystem tarball (tar
/// + zstd, members `./...`, owners the guest's ids); returns the bytes of file data.
pub fn export(host: &Host, name: &ImageName, to: &Stream, force: bool) -> Result<u64> {
    let _image = lock::image(&host.paths, name, true)?;
    images::load(&host.paths, name)?;
    let rootfs = images::rootfs(&host.paths, name);
    let out = crate::ops::export::Output::open(to, force)?;
    let written = (|| -> Result<(u64, u64)> {
        let mut packer = crate::archive::pack::Packer::new(out.writer(), None, None)?;
        packer.add_tree(".", &rootfs, STORE_IDS)?;
        let (bytes, sockets) = (packer.bytes(), packer.sockets);
        packer
            .end()?
            .flush()
            .map_err(|e| CoreError::Invalid(format!("writing the archive failed: {e}")))?;
        Ok((bytes, sockets))
    })();
    match written {
        Ok((bytes, sockets)) => {
            out.commit()?;
            if sockets > 0 {
                host.notice(format!("{sockets} sockets in image {name} were left out"));
            }
            Ok(bytes)
        }
        Err(e) => {
            out.discard();
            Err(e)
        }
    }
}

/// `hangar publish GUEST IMAGE`: a new image of guest `guest`'s files, stopped or
/// running (frozen for the moment of a snapshot on btrfs; on the dir pool for the
/// copy, said in a notice), owned by its own ids; its config remembers the guest's
/// init, environment, directory and stop signal.
pub fn publish(host: &Host, guest: &GuestName, image: &ImageName) -> Result<ImageInfo> {
    let _guest = lock::guest(&host.paths, guest)?;
    let cfg = store::load(&host.paths, guest)?;
    crate::adopt::ensure(host, guest)?;
    if !cfg
        .rootfs
        .components()
        .all(|c| matches!(c, std::path::Component::Normal(_)))
    {
        return Err(CoreError::Invalid(format!(
            "guest {guest}'s rootfs ({}) is not inside its volume: publish takes the files \
             hangar keeps in a pool",
            cfg.rootfs.display()
        )));
    }
    let _image = lock::image(&host.paths, image, false)?;
    refuse_existing(host, image)?;
    let staging = Staging::new(&host.paths, image)?;
    let rootfs = staging.rootfs();
    let pool = Pool::of(host, &cfg)?;
    // The store is plain directories: copies are the dir pool's.
    let store = Pool::open(host, None)?;
    match &pool {
        Pool::Btrfs { .. } => {
            crate::ops::export::remove_stale(&pool, guest, ".publish-");
            let at = pool
                .snapshots_dir(guest)
                .join(format!(".publish-{}", std::process::id()));
            crate::ops::snapshot::frozen_while(host, guest, || {
                pool.snapshot(&pool.volume(guest), &at)
            })?;
            let snap = crate::ops::export::TempVolume { pool: &pool, at };
            store.copy(&snap.at.join(&cfg.rootfs), &rootfs, false)?;
        }
        // The dir pool (and any driver without snapshots): frozen while copied.
        _ => {
            let running = status::status(&host.paths, guest).is_active();
            let started = std::time::Instant::now();
            let copied = crate::ops::snapshot::frozen_while(host, guest, || {
                store.copy(&pool.volume(guest).join(&cfg.rootfs), &rootfs, false)
            });
            if running {
                host.notice(format!(
                    "{guest} was frozen for the {:.1} s its files took to copy (the dir pool \
                     has no snapshot to copy them from)",
                    started.elapsed().as_secs_f64()
                ));
            }
            copied?;
        }
    }
    if !cfg.security.privileged {
        hangar_container::idshift::shift_to(&rootfs, 0, hangar_model::ctx::ID_RANGE)?;
    }
    staging.commit(ImageInfo {
        name: image.clone(),
        id: images::new_id()?,
        created: crate::ops::snapshot::now(),
        source: ImageSource::Publish,
        from: guest.to_string(),
        architecture: host_architecture().to_string(),
        size: 0,
        config: ImageConfig {
            entrypoint: cfg.init.clone(),
            cmd: vec![],
            env: cfg
                .init_env
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect(),
            working_dir: cfg.init_cwd.clone(),
            user: None,
            stop_signal: cfg.stop.signal,
        },
    })
}
