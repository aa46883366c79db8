//! The busybox method: a minimal guest made of the host's static busybox.
//!
//! The guest gets a copy of `/bin/busybox` (Debian's busybox-static), a symlink
//! for each applet, a small /etc (passwd, group, shadow with root locked, hosts,
//! profile) and busybox init with two scripts: `/etc/init.d/rcS` at boot and
//! `/etc/init.d/rcK` at shutdown. `hangar stop` sends SIGUSR2, busybox init's
//! poweroff.

use super::util::{self, io_err};
use super::{BuildContext, BuildError, BuildOutcome, init::INIT};
use std::fs;
use std::path::Path;
use std::process::Command;

/// The host's busybox; Debian's busybox-static installs it here.
const HOST_BUSYBOX: &str = "/bin/busybox";

/// The directory tree, with modes. `var/run` is a symlink, made separately.
const DIRS: &[(&str, u32)] = &[
    ("bin", 0o755),
    ("sbin", 0o755),
    ("usr/bin", 0o755),
    ("usr/sbin", 0o755),
    ("etc/init.d", 0o755),
    ("root", 0o700),
    ("tmp", 0o1777),
    ("var/log", 0o755),
    ("var/tmp", 0o1777),
    ("run", 0o755),
    ("proc", 0o555),
    ("sys", 0o555),
    ("dev", 0o755),
    ("home", 0o755),
];

const PASSWD: &str = "\
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
";

const GROUP: &str = "\
root:x:0:
tty:x:5:
nogroup:x:65534:
";

/// Root's password is locked (`*`): `hangar enter` needs none.
const SHADOW: &str = "\
root:*::0:99999:7:::
nobody:*::0:99999:7:::
";

const PROFILE: &str = r#"# /etc/profile: read by login shells (hangar busybox guest).
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PS1='\h:\w\$ '
umask 022
"#;

/// No getty: a container has no terminals (a console getty can come later).
const INITTAB: &str = "\
# /etc/inittab: busybox init configuration, written by hangar build.
# hangar stop sends SIGUSR2 (poweroff); SIGTERM reboots, SIGUSR1 halts.
# A container has no terminals, so no getty runs.
::sysinit:/etc/init.d/rcS
::ctrlaltdel:/sbin/poweroff
::shutdown:/etc/init.d/rcK
";

/// The runtime has mounted /proc, /sys, /dev, /dev/pts and /dev/shm already.
const RC_S: &str = r#"#!/bin/sh
# /etc/init.d/rcS: boot script, run once by busybox init (::sysinit).
# The runtime has mounted /proc, /sys, /dev, /dev/pts and /dev/shm already.
PATH=/sbin:/bin:/usr/sbin:/usr/bin
export PATH

[ -s /etc/hostname ] && hostname -F /etc/hostname

for script in /etc/init.d/S*; do
    [ -x "$script" ] && "$script" start
done

[ -x /etc/rc.local ] && /etc/rc.local
exit 0
"#;

const RC_K: &str = r#"#!/bin/sh
# /etc/init.d/rcK: shutdown script, run by busybox init (::shutdown).
# Stops the /etc/init.d/S* scripts in the reverse order of rcS.
PATH=/sbin:/bin:/usr/sbin:/usr/bin
export PATH

scripts=
for script in /etc/init.d/S*; do
    scripts="$script $scripts"
done
for script in $scripts; do
    [ -x "$script" ] && "$script" stop
done
exit 0
"#;

/// Fills `rootfs` with the busybox guest.
pub(super) fn populate(
    rootfs: &Path,
    cx: &mut BuildContext<'_>,
) -> Result<BuildOutcome, BuildError> {
    populate_from(Path::new(HOST_BUSYBOX), rootfs, cx)
}

/// [`populate`] with the host busybox at `busybox`.
fn populate_from(
    busybox: &Path,
    rootfs: &Path,
    cx: &mut BuildContext<'_>,
) -> Result<BuildOutcome, BuildError> {
    check_static(busybox)?;
    for (dir, mode) in DIRS {
        util::mkdir(rootfs, dir, *mode)?;
    }
    util::make_symlink(rootfs, "../run", "var/run")?;
    (cx.progress)(&format!("I: copying {}", busybox.display()));
    let copy = rootfs.join("bin/busybox");
    fs::copy(busybox, &copy).map_err(io_err("copy busybox to", &copy))?;
    util::chmod(&copy, 0o755)?;
    let applets = link_applets(rootfs)?;
    (cx.progress)(&format!("I: linked {applets} busybox applets"));
    write_etc(rootfs, cx.hostname)?;
    Ok(BuildOutcome {
        init: vec![INIT.to_string()],
        init_system: hangar_model::InitSystem::Busybox,
    })
}

/// Refuses a missing or dynamically linked busybox: a guest has not the host's
/// shared libraries.
fn check_static(busybox: &Path) -> Result<(), BuildError> {
    let bytes = match fs::read(busybox) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(BuildError::NoBusybox {
                path: busybox.to_path_buf(),
            });
        }
        Err(e) => return Err(io_err("read", busybox)(e)),
    };
    match has_interpreter(&bytes) {
        Some(false) => Ok(()),
        Some(true) => Err(BuildError::BusyboxNotStatic {
            path: busybox.to_path_buf(),
        }),
        None => Err(BuildError::Invalid(format!(
            "{} is not an ELF executable: install busybox-static",
            busybox.display()
        ))),
    }
}

/// Whether the ELF file `elf` names a program interpreter (`PT_INTERP`), i.e.
/// needs the dynamic loader. None if `elf` is not a well-formed ELF file.
fn has_interpreter(elf: &[u8]) -> Option<bool> {
    const PT_INTERP: u32 = 3;
    if elf.get(..4)? != b"\x7fELF" {
        return None;
    }
    let big = match elf.get(5)? {
        1 => false,
        2 => true,
        _ => return None,
    };
    let uint = |at: usize, len: usize| -> Option<u64> {
        let bytes = elf.get(at..at.checked_add(len)?)?;
        let fold = |acc: u64, b: &u8| (acc << 8) | u64::from(*b);
        Some(if big {
            bytes.iter().fold(0, fold)
        } else {
            bytes.iter().rev().fold(0, fold)
        })
    };
    // (e_phoff, its size, e_phentsize, e_phnum) for ELF32 and ELF64.
    let (phoff, phentsize, phnum) = match elf.get(4)? {
        1 => (uint(0x1c, 4)?, uint(0x2a, 2)?, uint(0x2c, 2)?),
        2 => (uint(0x20, 8)?, uint(0x36, 2)?, uint(0x38, 2)?),
        _ => return None,
    };
    for i in 0..phnum {
        let at = usize::try_from(phoff.checked_add(i.checked_mul(phentsize)?)?).ok()?;
        if uint(at, 4)? == u64::from(PT_INTERP) {
            return Some(true);
        }
    }
    Some(false)
}

/// Symlinks every applet `busybox --list-full` names (e.g. `usr/bin/awk`) to
/// /bin/busybox by a relative link, which also works when seen from the host.
fn link_applets(rootfs: &Path) -> Result<usize, BuildError> {
    let copy = rootfs.join("bin/busybox");
    let out = Command::new(&copy)
        .arg("--list-full")
        .output()
        .map_err(|source| BuildError::Spawn {
            tool: "busybox",
            source,
        })?;
    if !out.status.success() {
        return Err(BuildError::ToolFailed {
            tool: "busybox",
            status: out.status,
            output: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    let list = String::from_utf8_lossy(&out.stdout);
    let mut linked = 0;
    for applet in list.lines().map(str::trim) {
        // Top-level names (`linuxrc`) are for initramfs; `..` would leave the rootfs.
        if !applet.contains('/') || applet.split('/').any(|c| c.is_empty() || c == "..") {
            continue;
        }
        if fs::symlink_metadata(rootfs.join(applet)).is_ok() {
            continue;
        }
        let depth = applet.matches('/').count();
        let target = format!("{}bin/busybox", "../".repeat(depth));
        util::make_symlink(rootfs, &target, applet)?;
        linked += 1;
    }
    Ok(linked)
}

/// Writes the guest's /etc.
fn write_etc(rootfs: &Path, hostname: &str) -> Result<(), BuildError> {
    util::write_file(rootfs, "etc/passwd", PASSWD, 0o644)?;
    util::write_file(rootfs, "etc/group", GROUP, 0o644)?;
    util::write_file(rootfs, "etc/shadow", SHADOW, 0o600)?;
    util::write_file(rootfs, "etc/profile", PROFILE, 0o644)?;
    util::write_file(rootfs, "etc/inittab", INITTAB, 0o644)?;
    util::write_file(rootfs, "etc/init.d/rcS", RC_S, 0o755)?;
    util::write_file(rootfs, "etc/init.d/rcK", RC_K, 0o755)?;
    util::write_file(rootfs, "etc/fstab", "", 0o644)?;
    util::make_symlink(rootfs, "../proc/self/mounts", "etc/mtab")?;
    util::write_identity(rootfs, hostname)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF64 little-endian header with `types` as program headers.
    fn elf64(types: &[u32]) -> Vec<u8> {
        let mut f = vec![0u8; 64];
        f[..4].copy_from_slice(b"\x7fELF");
        f[4] = 2;
        f[5] = 1;
        f[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
        f[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        f[0x38..0x3a].copy_from_slice(&u16::try_from(types.len()).unwrap().to_le_bytes());
        for t in types {
            let mut ph = vec![0u8; 56];
            ph[..4].copy_from_slice(&t.to_le_bytes());
            f.extend(ph);
        }
        f
    }

    #[test]
    fn program_with_an_interpreter_is_dynamic() {
        assert_eq!(has_interpreter(&elf64(&[6, 3, 1])), Some(true));
        assert_eq!(has_interpreter(&elf64(&[1, 1, 2])), Some(false));
    }

    #[test]
    fn truncated_or_foreign_files_are_not_elf() {
        let mut cut = elf64(&[1, 3]);
        cut.truncate(64 + 56 + 2);
        assert_eq!(has_interpreter(&cut), None);
        assert_eq!(has_interpreter(b"#!/bin/sh\n"), None);
    }

    #[test]
    fn missing_busybox_says_what_to_install() {
        let err = check_static(Path::new("/nonexistent/busybox")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "/nonexistent/busybox is missing: install busybox-static"
        );
    }
}
