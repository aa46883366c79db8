//! The debootstrap method: a Debian guest (minbase variant) booted by systemd
//! (Debian's own choice, the default) or sysvinit (`--init sysvinit`).
//!
//! `debootstrap --variant=minbase --include=PACKAGES SUITE ROOTFS MIRROR` installs
//! the base system plus [`DEFAULT_PACKAGES`] and the init's packages
//! ([`init_packages`]). Then the guest is fitted for a container, whether it was
//! bootstrapped or unpacked from the cache. Every guest gets a machine id of its
//! own (a cached tree would otherwise give all of them the same one), and the
//! systemd units that cannot work in a container masked ([`MASKED_UNITS`]; in a
//! sysvinit guest too, which apt may switch to systemd).
//! A sysvinit guest:
//!
//! - the boot scripts that make no sense in a container are disabled the way
//!   `update-rc.d NAME disable` does it (start links renamed S→K, which later
//!   package upgrades respect); their shutdown links in rc0.d/rc6.d are removed;
//! - /etc/inittab boots to runlevel 2 without gettys, halts on SIGPWR (the
//!   `powerwait` entry; `hangar stop` sends SIGPWR) and on ctrl-alt-del;
//! - /etc/fstab has no entries, /dev is empty, /etc/hostname and /etc/hosts
//!   name the guest; /etc/mtab and /run/shm are the links mountall.sh would
//!   have made.
//!
//! With a cache directory, the pristine debootstrap result is kept there as
//! `debootstrap-SUITE-HASH.tar` (HASH covers the mirror, the packages and the
//! host architecture) and unpacked instead of bootstrapping again. The cache
//! never expires: remove the file to get a fresh system with newer packages.

use super::util::{self, Tool, io_err};
use super::{BuildContext, BuildError, BuildOutcome, init, tarball};
use hangar_model::InitSystem;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Installed besides the base system and the init: what an administrator
/// expects to find in a minimal guest.
pub const DEFAULT_PACKAGES: &[&str] = &[
    "procps",
    "iproute2",
    "iputils-ping",
    "netbase",
    "less",
    "nano",
];

const DEBOOTSTRAP: Tool = Tool {
    name: "debootstrap",
    package: "debootstrap",
};

/// The packages that make `init` the guest's init: systemd as /sbin/init with the
/// D-Bus system bus (logind and `systemctl` on other units need it), or sysvinit.
pub fn init_packages(init: InitSystem) -> &'static [&'static str] {
    match init {
        InitSystem::Systemd => &["systemd-sysv", "dbus"],
        _ => &["sysvinit-core"],
    }
}

/// systemd units that cannot work in an unprivileged container and would only
/// fail (they mount kernel filesystems the guest may not mount), masked at build
/// the way `systemctl mask` does it. What systemd skips by itself in a container
/// (udev, getty on tty1, hardware units) is left to its own condition checks.
pub const MASKED_UNITS: &[&str] = &[
    "sys-kernel-debug.mount",
    "sys-kernel-tracing.mount",
    "sys-kernel-config.mount",
    "sys-fs-fuse-connections.mount",
    "dev-hugepages.mount",
    "systemd-remount-fs.service",
];

/// Init scripts a container has no use for, disabled in every guest.
const POINTLESS_SCRIPTS: &[&str] = &[
    // The hardware clock, console and keyboard belong to the host.
    "hwclock.sh",
    "keyboard-setup.sh",
    "console-setup.sh",
    "kbd",
    "brightness",
    // hangar configures the guest's network.
    "networking",
    // The runtime provides /dev; the host loads kernel modules.
    "udev",
    "kmod",
    // The runtime mounts the guest's filesystems: no fsck, no mounting, no
    // remounting / read-only at shutdown.
    "mountkernfs.sh",
    "mountdevsubfs.sh",
    "mount-configfs",
    "checkroot.sh",
    "checkfs.sh",
    "mountall.sh",
    "mountnfs.sh",
    "umountfs",
    "umountnfs.sh",
    "umountroot",
    // /proc/sys is read-only in a guest: `sysctl --system` would only fail.
    "procps",
];

/// Runlevels whose start links `update-rc.d disable` turns off.
const START_LEVELS: &[&str] = &["S", "2", "3", "4", "5"];
/// Runlevels that only stop scripts (halt and reboot).
const STOP_LEVELS: &[&str] = &["0", "6"];

/// Links mountall.sh (disabled) would make at boot; `/run/shm` is one of the
/// directories bootclean cleans, and it fails the boot scripts when missing.
const MOUNTALL_LINKS: &[(&str, &str)] =
    &[("etc/mtab", "../proc/self/mounts"), ("run/shm", "/dev/shm")];

const INITTAB: &str = "\
# /etc/inittab: init(8) configuration, written by hangar build.
# A container has no terminals, so no getty runs; `hangar enter` gives a shell.

id:2:initdefault:
si::sysinit:/etc/init.d/rcS
~~:S:wait:/sbin/sulogin --force

l0:0:wait:/etc/init.d/rc 0
l1:1:wait:/etc/init.d/rc 1
l2:2:wait:/etc/init.d/rc 2
l3:3:wait:/etc/init.d/rc 3
l4:4:wait:/etc/init.d/rc 4
l5:5:wait:/etc/init.d/rc 5
l6:6:wait:/etc/init.d/rc 6
z6:6:respawn:/sbin/sulogin --force

# `hangar stop` sends SIGPWR: init runs the powerwait entry, a clean halt.
pf::powerwait:/sbin/shutdown -h -t1 now
# Ctrl-alt-del (SIGINT) halts too: a guest is restarted from outside.
ca:12345:ctrlaltdel:/sbin/shutdown -h -t1 now

# A getty on the container console, should one be wanted:
#co:2345:respawn:/sbin/getty --noclear 38400 console
";

const FSTAB: &str = "\
# /etc/fstab: no entries. The runtime mounts the guest's filesystems.
";

/// What to bootstrap: [`super::Method::Debootstrap`]'s fields.
pub(super) struct Spec<'a> {
    pub suite: &'a str,
    pub mirror: &'a str,
    pub include: &'a [String],
    pub init: InitSystem,
}

/// Bootstraps (or unpacks from the cache) a Debian guest into `rootfs`.
pub(super) fn populate(
    spec: &Spec<'_>,
    rootfs: &Path,
    cx: &mut BuildContext<'_>,
) -> Result<BuildOutcome, BuildError> {
    let packages = packages(spec)?;
    let cache = cx.cache_dir.map(|dir| cache_file(dir, spec, &packages));
    // One builder fills a cache entry while the others wait for it, instead of all
    // downloading the same packages at once.
    let _cache_lock = cache.as_deref().and_then(lock_cache);
    match cache {
        Some(cache) if cache.is_file() => {
            (cx.progress)(&format!("I: unpacking cached {}", cache.display()));
            tarball::unpack(&cache, rootfs, cx).map_err(|e| BuildError::BadCache {
                path: cache.clone(),
                source: Box::new(e),
            })?;
        }
        cache => {
            bootstrap(spec, &packages, rootfs, cx)?;
            if let Some(cache) = cache {
                save_cache(rootfs, &cache, cx);
            }
        }
    }
    check_init(rootfs, spec)?;
    fit_for_container(rootfs, spec.init, cx)?;
    Ok(BuildOutcome {
        init: vec![init::INIT.to_string()],
        init_system: spec.init,
    })
}

/// Exclusive lock on `<cache>.lock`, waited for; None when the cache dir is unusable
/// (the build then just runs without one).
fn lock_cache(cache: &Path) -> Option<nix::fcntl::Flock<fs::File>> {
    fs::create_dir_all(cache.parent()?).ok()?;
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(cache.with_extension("lock"))
        .ok()?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive).ok()
}

/// [`DEFAULT_PACKAGES`] and the requested ones, each once, after checking names.
fn packages(spec: &Spec<'_>) -> Result<Vec<String>, BuildError> {
    let name_ok = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-+".contains(&b))
    };
    if !name_ok(spec.suite) || spec.suite.starts_with('.') {
        return Err(BuildError::Invalid(format!(
            "{:?} is not a suite name: use a codename like bookworm",
            spec.suite
        )));
    }
    if spec.mirror.is_empty() || spec.mirror.contains(char::is_whitespace) {
        return Err(BuildError::Invalid(format!(
            "{:?} is not a mirror: use a URL like http://deb.debian.org/debian",
            spec.mirror
        )));
    }
    if spec.init == InitSystem::Busybox {
        return Err(BuildError::Invalid(
            "-m debootstrap installs systemd or sysvinit as init; use -m busybox for busybox"
                .into(),
        ));
    }
    let mut all: Vec<String> = init_packages(spec.init)
        .iter()
        .chain(DEFAULT_PACKAGES)
        .map(|p| p.to_string())
        .collect();
    for p in spec.include {
        if !name_ok(p) || p.starts_with(['-', '.', '+']) {
            return Err(BuildError::Invalid(format!(
                "{p:?} is not a Debian package name"
            )));
        }
        if !all.contains(p) {
            all.push(p.clone());
        }
    }
    Ok(all)
}

/// `DIR/debootstrap-SUITE-HASH.tar`, HASH of what else makes the result differ.
fn cache_file(dir: &Path, spec: &Spec<'_>, packages: &[String]) -> PathBuf {
    let mut sorted = packages.to_vec();
    sorted.sort();
    let key = format!(
        "{}\0{}\0{}",
        spec.mirror.trim_end_matches('/'),
        std::env::consts::ARCH,
        sorted.join(",")
    );
    dir.join(format!(
        "debootstrap-{}-{:016x}.tar",
        spec.suite,
        fnv1a(key.as_bytes())
    ))
}

/// FNV-1a, 64 bits: a hash that stays the same across Rust releases, so cache
/// names do too.
fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Runs debootstrap, then drops the downloaded .debs it leaves behind.
fn bootstrap(
    spec: &Spec<'_>,
    packages: &[String],
    rootfs: &Path,
    cx: &mut BuildContext<'_>,
) -> Result<(), BuildError> {
    let mut cmd = Command::new("debootstrap");
    cmd.env("DEBIAN_FRONTEND", "noninteractive")
        .arg("--variant=minbase")
        .arg(format!("--include={}", packages.join(",")))
        .arg(spec.suite)
        .arg(rootfs)
        .arg(spec.mirror);
    util::run(DEBOOTSTRAP, &mut cmd, &[], cx)?;
    let archives = rootfs.join("var/cache/apt/archives");
    let Ok(entries) = fs::read_dir(&archives) else {
        return Ok(());
    };
    for entry in entries {
        let path = entry.map_err(io_err("read directory", &archives))?.path();
        if path.extension().is_some_and(|e| e == "deb") {
            util::remove_if_present(&path)?;
        }
    }
    Ok(())
}

/// Writes the pristine `rootfs` to `cache` atomically. A failure only costs the
/// next build time, so it is reported as a warning, not an error.
fn save_cache(rootfs: &Path, cache: &Path, cx: &mut BuildContext<'_>) {
    let tmp = util::temp_sibling(cache);
    let saved = cache
        .parent()
        .map_or(Ok(()), |dir| {
            fs::create_dir_all(dir).map_err(io_err("create directory", dir))
        })
        .and_then(|()| tarball::pack(rootfs, &tmp, cx))
        .and_then(|()| fs::rename(&tmp, cache).map_err(io_err("rename", &tmp)));
    match saved {
        Ok(()) => (cx.progress)(&format!("I: cached the result in {}", cache.display())),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            let cause = std::error::Error::source(&e).map_or(String::new(), |s| format!(": {s}"));
            (cx.progress)(&format!("W: could not cache the result: {e}{cause}"));
        }
    }
}

/// Refuses a result whose /sbin/init is not sysvinit's (say, a suite where
/// sysvinit-core does not exist and debootstrap quietly skipped it).
/// Checks that debootstrap installed the init asked for and made it /sbin/init.
fn check_init(rootfs: &Path, spec: &Spec<'_>) -> Result<(), BuildError> {
    let package = init_packages(spec.init)[0];
    let fail = |found: String| BuildError::WrongInit {
        suite: spec.suite.to_string(),
        init: spec.init,
        package,
        found,
    };
    let status_file = rootfs.join("var/lib/dpkg/status");
    let status = fs::read_to_string(&status_file).map_err(io_err("read", &status_file))?;
    if !dpkg_installed(&status, package) {
        return Err(fail(format!("not {package}'s")));
    }
    match init::detect_init(rootfs) {
        None => Err(fail("missing".into())),
        Some(found) if found.init_system != spec.init => {
            Err(fail(format!("{}'s", found.init_system)))
        }
        Some(_) => Ok(()),
    }
}

/// Whether dpkg's `status` file lists `package` as installed.
fn dpkg_installed(status: &str, package: &str) -> bool {
    status.split("\n\n").any(|stanza| {
        let mut lines = stanza.lines();
        lines.clone().any(|l| l == format!("Package: {package}"))
            && lines.any(|l| l == "Status: install ok installed")
    })
}

/// The guest-side changes a container needs; see the module docs.
fn fit_for_container(
    rootfs: &Path,
    init: InitSystem,
    cx: &mut BuildContext<'_>,
) -> Result<(), BuildError> {
    util::write_identity(rootfs, cx.hostname)?;
    util::write_machine_id(rootfs)?;
    util::write_file(rootfs, "etc/fstab", FSTAB, 0o644)?;
    let dev = rootfs.join("dev");
    util::clear_dir(&dev)?;
    // Masked in a sysvinit guest too: apt may switch it to systemd later.
    util::mkdir(rootfs, "etc/systemd/system", 0o755)?;
    for unit in MASKED_UNITS {
        let link = format!("etc/systemd/system/{unit}");
        util::remove_if_present(&rootfs.join(&link))?;
        util::make_symlink(rootfs, "/dev/null", &link)?;
    }
    (cx.progress)(&format!(
        "I: masked systemd units a container has no use for: {}",
        MASKED_UNITS.join(" ")
    ));
    if init == InitSystem::Systemd {
        return Ok(());
    }
    util::write_file(rootfs, "etc/inittab", INITTAB, 0o644)?;
    // sysvinit 3.06 warns at every boot and runlevel change without it.
    util::mkdir(rootfs, "etc/inittab.d", 0o755)?;
    for (link, target) in MOUNTALL_LINKS {
        if fs::symlink_metadata(rootfs.join(link)).is_err() {
            util::make_symlink(rootfs, target, link)?;
        }
    }
    let disabled = disable_scripts(&rootfs.join("etc"))?;
    if !disabled.is_empty() {
        (cx.progress)(&format!(
            "I: disabled init scripts a container has no use for: {}",
            disabled.join(" ")
        ));
    }
    Ok(())
}

/// Disables [`POINTLESS_SCRIPTS`] in the `rc?.d` directories under `etc`:
/// start links become kill links, shutdown links go. Returns the scripts touched.
fn disable_scripts(etc: &Path) -> Result<Vec<String>, BuildError> {
    let mut touched: Vec<String> = Vec::new();
    let levels = START_LEVELS.iter().map(|l| (l, true));
    for (level, starts) in levels.chain(STOP_LEVELS.iter().map(|l| (l, false))) {
        let dir = etc.join(format!("rc{level}.d"));
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let entry = entry.map_err(io_err("read directory", &dir))?;
            let link = entry.file_name().to_string_lossy().into_owned();
            let Some((kind, script)) = split_link(&link) else {
                continue;
            };
            if !POINTLESS_SCRIPTS.contains(&script) {
                continue;
            }
            let path = entry.path();
            match (starts, kind) {
                (true, 'S') => {
                    let to = dir.join(format!("K{}", &link[1..]));
                    fs::rename(&path, &to).map_err(io_err("rename", &path))?;
                }
                (false, _) => util::remove_if_present(&path)?,
                _ => continue,
            }
            if !touched.iter().any(|t| t == script) {
                touched.push(script.to_string());
            }
        }
    }
    touched.sort();
    Ok(touched)
}

/// Splits an rc link name like `S01hwclock.sh` into `('S', "hwclock.sh")`.
fn split_link(link: &str) -> Option<(char, &str)> {
    let mut chars = link.chars();
    let kind = chars.next().filter(|c| matches!(c, 'S' | 'K'))?;
    let digits = link.get(1..3)?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((kind, link.get(3..).filter(|s| !s.is_empty())?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn spec<'a>(mirror: &'a str, include: &'a [String]) -> Spec<'a> {
        Spec {
            suite: "bookworm",
            mirror,
            include,
            init: InitSystem::Systemd,
        }
    }

    #[test]
    fn cache_name_depends_on_mirror_and_packages() {
        let none: Vec<String> = Vec::new();
        let vim = vec!["vim-tiny".to_string()];
        let name = |s: &Spec<'_>| cache_file(Path::new("/c"), s, &packages(s).unwrap());
        let a = name(&spec("http://deb.debian.org/debian", &none));
        let b = name(&spec("http://deb.debian.org/debian/", &none));
        let c = name(&spec("http://ftp.de.debian.org/debian", &none));
        let d = name(&spec("http://deb.debian.org/debian", &vim));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_ne!(a, d);
        assert!(a.to_string_lossy().starts_with("/c/debootstrap-bookworm-"));
    }

    #[test]
    fn suite_that_is_a_path_is_refused() {
        let none: Vec<String> = Vec::new();
        let bad = Spec {
            suite: "../../etc",
            mirror: "http://deb.debian.org/debian",
            include: &none,
            init: InitSystem::Systemd,
        };
        assert!(matches!(packages(&bad), Err(BuildError::Invalid(_))));
    }

    #[test]
    fn option_smuggled_in_as_a_package_is_refused() {
        let opt = vec!["--foreign".to_string()];
        let s = spec("http://deb.debian.org/debian", &opt);
        assert!(matches!(packages(&s), Err(BuildError::Invalid(_))));
    }

    #[test]
    fn dpkg_status_is_read_per_stanza() {
        let status = "Package: sysvinit-core\nStatus: deinstall ok config-files\n\n\
                      Package: procps\nStatus: install ok installed\n";
        assert!(!dpkg_installed(status, "sysvinit-core"));
        assert!(dpkg_installed(status, "procps"));
    }

    #[test]
    fn pointless_scripts_lose_start_and_shutdown_links() {
        let etc = std::env::temp_dir().join(format!("hangar-rcd-{}", std::process::id()));
        let _ = fs::remove_dir_all(&etc);
        for (dir, link) in [
            ("rcS.d", "S01hwclock.sh"),
            ("rcS.d", "S01hostname.sh"),
            ("rc2.d", "S01rmnologin"),
            ("rc0.d", "K01hwclock.sh"),
            ("rc0.d", "K04umountroot"),
            ("rc0.d", "K05halt"),
        ] {
            fs::create_dir_all(etc.join(dir)).unwrap();
            symlink("../init.d/x", etc.join(dir).join(link)).unwrap();
        }
        let touched = disable_scripts(&etc);
        let ls = |d: &str| {
            let mut v: Vec<String> = fs::read_dir(etc.join(d))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        };
        let (rcs, rc2, rc0) = (ls("rcS.d"), ls("rc2.d"), ls("rc0.d"));
        let _ = fs::remove_dir_all(&etc);
        assert_eq!(touched.unwrap(), ["hwclock.sh", "umountroot"]);
        assert_eq!(rcs, ["K01hwclock.sh", "S01hostname.sh"]);
        assert_eq!(rc2, ["S01rmnologin"]);
        assert_eq!(rc0, ["K05halt"]);
    }
}
