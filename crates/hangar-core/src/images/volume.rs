//! An image's files into a new guest's volume (`hangar build NAME --image IMAGE`), the
//! pool's fastest way:
//!
//! - the dir pool copies the image's tree (`cp -a --reflink=auto`: reflinks where the
//!   filesystem has them), as would a driver without snapshots, into a volume it
//!   makes;
//! - a btrfs pool keeps its own **read-only subvolume** of each image it builds from,
//!   `images/IMAGE` in the pool, copied from the store at the first build, with
//!   `images/IMAGE.toml` beside it naming the image it is a copy of (a newer image of
//!   the same name, which has another id, replaces it at its next build); a guest's
//!   volume is a writable snapshot of it: instant, every block shared until written.
//!   A snapshot depends on nothing: deleting the image (and with it the pool's copy)
//!   leaves its guests whole.
//!
//! Then what a guest of the image runs is worked out from its config ([`GuestStart`]).

use crate::build::init::resolve_in_root;
use crate::pools::Pool;
use crate::{CoreError, Host, Result, lock};
use hangar_model::Signal;
use hangar_model::image::{ImageInfo, ImageName, ImageSource};
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

/// How a new guest starts: what its config's `init`, `init_env`, `init_cwd` and
/// `stop.signal` say.
#[derive(Debug, Clone, Default)]
pub(crate) struct GuestStart {
    pub init: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub cwd: Option<String>,
    pub stop_signal: Option<Signal>,
}

/// What [`fill`] made.
pub(crate) struct Filled {
    pub start: GuestStart,
    /// The hostname in the image's /etc/hostname (what the new name replaces).
    pub old_hostname: String,
}

/// Make `volume` (not there yet on btrfs; the build's reservation directory on the dir
/// pool) hold image `image`'s files in `rootfs/`, owned by guest ids (the caller shifts
/// them), with the mount points a guest needs; and say how the guest starts.
pub(crate) fn fill(
    host: &Host,
    pool: &Pool,
    image: &ImageName,
    volume: &Path,
    limits: &hangar_model::Limits,
) -> Result<Filled> {
    let _image = lock::image(&host.paths, image, true)?;
    let info = super::load(&host.paths, image)?;
    match pool {
        Pool::Btrfs { mount, .. } => {
            let copy = pool_copy(host, pool, mount, &info)?;
            pool.copy(&copy, volume, false)?;
            pool.apply_disk_limit(volume, limits)?;
        }
        // The dir pool (and any driver without snapshots): a volume of its own, and a
        // copy of the image's tree in it.
        _ => {
            pool.create_volume(volume, limits)?;
            Pool::open(host, None)?.copy(
                &super::rootfs(&host.paths, image),
                &volume.join("rootfs"),
                false,
            )?;
        }
    }
    let rootfs = volume.join("rootfs");
    crate::build::util::empty_mount_points(&rootfs)?;
    let start = start_of(host, &info, &rootfs)?;
    let old_hostname = crate::build::util::HostFiles::read(&rootfs)
        .hostname
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    Ok(Filled {
        start,
        old_hostname,
    })
}

/// Pool `pool`'s read-only copy of image `info`, made (or made again) from the store
/// when it has none of this image.
fn pool_copy(host: &Host, pool: &Pool, mount: &Path, info: &ImageInfo) -> Result<PathBuf> {
    let name = &info.name;
    let dir = mount.join("images");
    let at = dir.join(name.as_str());
    let marker = dir.join(format!("{name}.toml"));
    let _copy = lock::image_copy(&host.paths, name, &pool.name())?;
    let want = info.to_toml();
    if at.is_dir() && std::fs::read_to_string(&marker).is_ok_and(|m| m == want) {
        return Ok(at);
    }
    forget_copy(pool, mount, name)?;
    std::fs::create_dir_all(&dir).map_err(|e| CoreError::io("creating", &dir, e))?;
    let fresh = dir.join(format!(".new-{name}-{}", std::process::id()));
    pool.create_volume(&fresh, &hangar_model::Limits::default())?;
    let made = Pool::open(host, None)
        .and_then(|store| {
            store.copy(
                &super::rootfs(&host.paths, name),
                &fresh.join("rootfs"),
                false,
            )
        })
        .and_then(|()| {
            std::fs::rename(&fresh, &at).map_err(|e| CoreError::io("moving into place", &at, e))
        })
        .and_then(|()| pool.seal(&at))
        .and_then(|()| {
            hangar_sys::write_atomic(&marker, want.as_bytes(), true)
                .map_err(|e| CoreError::io("writing", &marker, e))
        });
    if let Err(e) = made {
        let _ = pool.remove_volume(&fresh);
        let _ = pool.remove_volume(&at);
        return Err(e);
    }
    Ok(at)
}

/// Remove btrfs pool `pool`'s copy of image `name` (mounted at `mount`), and what a
/// killed build left of one.
fn forget_copy(pool: &Pool, mount: &Path, name: &ImageName) -> Result<()> {
    let dir = mount.join("images");
    let _ = std::fs::remove_file(dir.join(format!("{name}.toml")));
    pool.remove_volume(&dir.join(name.as_str()))?;
    let partial = format!(".new-{name}-");
    for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let file = e.file_name();
        let ours = file.to_str().and_then(|f| f.strip_prefix(&partial));
        if ours.is_some_and(|pid| pid.bytes().all(|b| b.is_ascii_digit())) {
            pool.remove_volume(&e.path())?;
        }
    }
    Ok(())
}

/// Remove every btrfs pool's copy of image `name` (when the image is deleted); a pool
/// that cannot be opened now keeps its copy until its next build of an image of that
/// name replaces it.
pub(crate) fn forget(host: &Host, name: &ImageName) -> Result<()> {
    for p in crate::pools::names(&host.paths)? {
        let Ok(pool) = Pool::open(host, Some(&p)) else {
            continue;
        };
        if let Pool::Btrfs { mount, .. } = &pool {
            let _copy = lock::image_copy(&host.paths, name, &p)?;
            forget_copy(&pool, mount, name)?;
        }
    }
    Ok(())
}

/// How a guest of image `info` (its files at `rootfs`) starts: the image's command
/// (entrypoint then cmd, the program found in the image's PATH when it names no
/// directory), else its /sbin/init; its environment; its working directory (made
/// when missing, as OCI runtimes do); a stop signal: the image's, or SIGTERM for an
/// OCI or docker image's command (what container engines send).
fn start_of(host: &Host, info: &ImageInfo, rootfs: &Path) -> Result<GuestStart> {
    let name = &info.name;
    let env = info.config.env_map();
    let cwd = info.config.working_dir.clone().filter(|d| d != "/");
    if let Some(d) = &cwd {
        make_dir(rootfs, d).map_err(|why| {
            CoreError::Invalid(format!("image {name}'s working directory {d}: {why}"))
        })?;
    }
    let command = info.config.command();
    let init = match command.split_first() {
        None => crate::build::detect_init(rootfs)
            .map(|o| o.init)
            .ok_or_else(|| {
                CoreError::Invalid(format!(
                    "image {name} names no command (an OCI image's Entrypoint and Cmd) and \
                     has no /sbin/init: it cannot start as a guest"
                ))
            })?,
        Some((program, args)) => {
            let program = find_program(rootfs, program, &env, cwd.as_deref()).ok_or_else(|| {
                CoreError::Invalid(format!(
                    "image {name}'s command {program} is not in its files (looked in its \
                     PATH, or its working directory)"
                ))
            })?;
            std::iter::once(program)
                .chain(args.iter().cloned())
                .collect()
        }
    };
    let engine = matches!(info.source, ImageSource::Oci | ImageSource::DockerArchive);
    let stop_signal = info
        .config
        .stop_signal
        .or((engine && !command.is_empty()).then_some(Signal::TERM));
    if let Some(user) = &info.config.user
        && !matches!(user.as_str(), "0" | "root" | "0:0" | "root:root")
    {
        host.notice(format!(
            "image {name} says its command runs as user {user}: a guest's init runs as the \
             guest's root (its programs may change user themselves)"
        ));
    }
    Ok(GuestStart {
        init,
        env,
        cwd,
        stop_signal,
    })
}

/// The guest path of `program` as the image's init: itself when absolute, under the
/// working directory when relative with a `/`, else the first of the image's `PATH`
/// directories that has it; None when its files have no such program.
fn find_program(
    rootfs: &Path,
    program: &str,
    env: &BTreeMap<String, String>,
    cwd: Option<&str>,
) -> Option<String> {
    let is_file = |guest_path: &str| {
        resolve_in_root(rootfs, Path::new(guest_path))
            .is_some_and(|rel| std::fs::metadata(rootfs.join(rel)).is_ok_and(|m| m.is_file()))
    };
    let candidates: Vec<String> = if program.starts_with('/') {
        vec![program.to_string()]
    } else if program.contains('/') {
        vec![format!("{}/{program}", cwd.unwrap_or(""))]
    } else {
        let default = hangar_container::base_env()
            .into_iter()
            .find_map(|e| e.strip_prefix("PATH=").map(str::to_string))
            .unwrap_or_default();
        let path = env.get("PATH").cloned().unwrap_or(default);
        path.split(':')
            .filter(|d| d.starts_with('/'))
            .map(|d| format!("{}/{program}", d.trim_end_matches('/')))
            .collect()
    };
    candidates.into_iter().find(|c| is_file(c))
}

/// Make guest directory `dir` in `rootfs` when it is missing (mode 0755, owned as the
/// rest: the caller shifts), never through a symlink or a file.
fn make_dir(rootfs: &Path, dir: &str) -> std::result::Result<(), String> {
    if resolve_in_root(rootfs, Path::new(dir)).is_some_and(|rel| rootfs.join(rel).is_dir()) {
        return Ok(());
    }
    let mut at = rootfs.to_path_buf();
    for c in Path::new(dir).components() {
        match c {
            Component::Normal(n) => at.push(n),
            Component::RootDir | Component::CurDir => continue,
            _ => return Err("it leads out of the image's files".into()),
        }
        match std::fs::symlink_metadata(&at) {
            Ok(m) if m.is_dir() => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                use std::os::unix::fs::DirBuilderExt;
                std::fs::DirBuilder::new()
                    .mode(0o755)
                    .create(&at)
                    .map_err(|e| format!("cannot be made ({e})"))?;
            }
            _ => return Err("it is no directory in the image's files".into()),
        }
    }
    Ok(())
}
