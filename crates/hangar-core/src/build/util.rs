//! Helpers the build methods share: file writing inside a rootfs, and running a
//! host tool while passing its output to the progress callback.

use super::{BuildContext, BuildError};
use std::collections::VecDeque;
use std::fs;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread;

/// How many of a tool's last output lines an error message shows.
const TAIL_LINES: usize = 3;

/// Wraps an io error with what we were doing and to which path.
pub(super) fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> BuildError {
    let path = path.to_path_buf();
    move |source| BuildError::Io {
        action,
        path,
        source,
    }
}

/// Refuses a hostname that would break /etc/hostname or /etc/hosts.
pub(super) fn check_hostname(hostname: &str) -> Result<(), BuildError> {
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_');
    if hostname.is_empty() || hostname.len() > 64 || !hostname.chars().all(ok) {
        return Err(BuildError::Invalid(format!(
            "hostname {hostname:?} is not valid: use up to 64 letters, digits, '-', '_' and '.'"
        )));
    }
    Ok(())
}

/// Refuses a `rootfs` that is not an existing, empty directory.
pub(super) fn check_empty_dir(rootfs: &Path) -> Result<(), BuildError> {
    let mut entries = fs::read_dir(rootfs).map_err(io_err("read directory", rootfs))?;
    if entries.next().is_some() {
        return Err(BuildError::RootfsNotEmpty {
            rootfs: rootfs.to_path_buf(),
        });
    }
    Ok(())
}

/// Creates `rootfs/rel` (and its parents) and gives it exactly `mode`.
pub(super) fn mkdir(rootfs: &Path, rel: &str, mode: u32) -> Result<(), BuildError> {
    let path = rootfs.join(rel);
    fs::create_dir_all(&path).map_err(io_err("create directory", &path))?;
    chmod(&path, mode)
}

/// Gives `path` exactly `mode` (the umask does not apply).
pub(super) fn chmod(path: &Path, mode: u32) -> Result<(), BuildError> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(io_err("chmod", path))
}

/// Writes `rootfs/rel` with `contents` and exactly `mode`, replacing any old file.
pub(super) fn write_file(
    rootfs: &Path,
    rel: &str,
    contents: &str,
    mode: u32,
) -> Result<(), BuildError> {
    let path = rootfs.join(rel);
    // Remove first: the old file may be a symlink pointing outside the rootfs.
    remove_if_present(&path)?;
    fs::write(&path, contents).map_err(io_err("write", &path))?;
    chmod(&path, mode)
}

/// Makes `rootfs/rel` a symlink to `target`.
pub(super) fn make_symlink(rootfs: &Path, target: &str, rel: &str) -> Result<(), BuildError> {
    let path = rootfs.join(rel);
    symlink(target, &path).map_err(io_err("create symlink", &path))
}

/// Removes the file or symlink `path` if it exists.
pub(super) fn remove_if_present(path: &Path) -> Result<(), BuildError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("remove", path)(e)),
        _ => Ok(()),
    }
}

/// Removes everything inside the directory `dir`, keeping `dir` itself.
pub(super) fn clear_dir(dir: &Path) -> Result<(), BuildError> {
    for entry in fs::read_dir(dir).map_err(io_err("read directory", dir))? {
        let path = entry.map_err(io_err("read directory", dir))?.path();
        let is_dir = fs::symlink_metadata(&path)
            .map_err(io_err("inspect", &path))?
            .is_dir();
        if is_dir {
            fs::remove_dir_all(&path).map_err(io_err("remove", &path))?;
        } else {
            fs::remove_file(&path).map_err(io_err("remove", &path))?;
        }
    }
    Ok(())
}

/// A new machine id (systemd, D-Bus and journald key on it): 128 random bits from the
/// kernel, as 32 hex digits.
pub(crate) fn new_machine_id() -> Result<String, BuildError> {
    let uuid = Path::new("/proc/sys/kernel/random/uuid");
    Ok(fs::read_to_string(uuid)
        .map_err(io_err("read", uuid))?
        .chars()
        .filter(char::is_ascii_hexdigit)
        .collect())
}

/// Gives the guest a machine id of its own.
pub(crate) fn write_machine_id(rootfs: &Path) -> Result<(), BuildError> {
    let id = new_machine_id()?;
    write_file(rootfs, "etc/machine-id", &format!("{id}\n"), 0o444)
}

/// Replace the contents of `rootfs/rel` when it is a regular file reached through
/// directories only: in a tree another guest or an archive made, a symlink on the way
/// could lead to the host's own files. Owner and mode stay. Returns whether it was
/// written. Only for a tree nothing runs in (a new guest's, before its commit).
pub(crate) fn rewrite_in_tree(
    rootfs: &Path,
    rel: &str,
    contents: &str,
) -> Result<bool, BuildError> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut at = rootfs.to_path_buf();
    let parts: Vec<&str> = rel.split('/').collect();
    for (i, part) in parts.iter().enumerate() {
        at.push(part);
        let last = i + 1 == parts.len();
        match fs::symlink_metadata(&at) {
            Ok(m) if (last && m.is_file()) || (!last && m.is_dir()) => {}
            _ => return Ok(false),
        }
    }
    let mut f = fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&at)
        .map_err(io_err("open", &at))?;
    std::io::Write::write_all(&mut f, contents.as_bytes()).map_err(io_err("write", &at))?;
    Ok(true)
}

/// Writes /etc/hostname and /etc/hosts for `hostname`.
pub(super) fn write_identity(rootfs: &Path, hostname: &str) -> Result<(), BuildError> {
    write_file(rootfs, "etc/hostname", &format!("{hostname}\n"), 0o644)?;
    let hosts = format!(
        "127.0.0.1\tlocalhost\n\
         127.0.1.1\t{hostname}\n\
         ::1\t\tlocalhost ip6-localhost ip6-loopback\n\
         ff02::1\t\tip6-allnodes\n\
         ff02::2\t\tip6-allrouters\n"
    );
    write_file(rootfs, "etc/hosts", &hosts, 0o644)
}

/// Makes sure /dev, /proc, /sys and /run exist and /dev is empty, and gives /tmp
/// its sticky mode. A copied /dev would hold the source's device nodes.
pub(super) fn empty_mount_points(rootfs: &Path) -> Result<(), BuildError> {
    for (dir, mode) in [("proc", 0o555), ("sys", 0o555), ("run", 0o755)] {
        if fs::symlink_metadata(rootfs.join(dir)).is_err() {
            mkdir(rootfs, dir, mode)?;
        }
    }
    let dev = rootfs.join("dev");
    if dev.is_dir() && !dev.is_symlink() {
        clear_dir(&dev)?;
    } else {
        remove_if_present(&dev)?;
        mkdir(rootfs, "dev", 0o755)?;
    }
    let tmp = rootfs.join("tmp");
    if tmp.is_dir() && !tmp.is_symlink() {
        chmod(&tmp, 0o1777)
    } else {
        remove_if_present(&tmp)?;
        mkdir(rootfs, "tmp", 0o1777)
    }
}

/// A host tool, and the Debian package that provides it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Tool {
    pub name: &'static str,
    pub package: &'static str,
}

pub(super) const TAR: Tool = Tool {
    name: "tar",
    package: "tar",
};

/// Runs `cmd` (a `tool` command), passes each line it prints on stdout or stderr to
/// the progress callback, and fails with its last lines if it exits unsuccessfully.
///
/// `ok_codes` are exit codes besides 0 that count as success (rsync's 24,
/// "some files vanished", on a live source).
pub(super) fn run(
    tool: Tool,
    cmd: &mut Command,
    ok_codes: &[i32],
    cx: &mut BuildContext<'_>,
) -> Result<(), BuildError> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| match source.kind() {
            io::ErrorKind::NotFound => BuildError::ToolMissing {
                tool: tool.name,
                package: tool.package,
            },
            _ => BuildError::Spawn {
                tool: tool.name,
                source,
            },
        })?;
    let (tx, rx) = mpsc::channel();
    let readers = [
        child.stdout.take().map(|r| forward_lines(r, tx.clone())),
        child.stderr.take().map(|r| forward_lines(r, tx)),
    ];
    let mut tail = VecDeque::with_capacity(TAIL_LINES);
    for line in rx {
        (cx.progress)(&line);
        if tail.len() == TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(line);
    }
    for reader in readers.into_iter().flatten() {
        // A reader only ends early on a read error; the exit status tells the story.
        let _ = reader.join();
    }
    let status = child.wait().map_err(|source| BuildError::Spawn {
        tool: tool.name,
        source,
    })?;
    if status.success() || status.code().is_some_and(|c| ok_codes.contains(&c)) {
        return Ok(());
    }
    Err(BuildError::ToolFailed {
        tool: tool.name,
        status,
        output: Vec::from(tail).join("\n"),
    })
}

/// Reads `r` on a thread and sends each line, without its line end, to `tx`.
fn forward_lines(
    r: impl Read + Send + 'static,
    tx: mpsc::Sender<String>,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        for line in BufReader::new(r).split(b'\n') {
            let Ok(line) = line else { break };
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end_matches('\r');
            if !line.is_empty() && tx.send(line.to_string()).is_err() {
                break;
            }
        }
    })
}

/// A path next to `path` for writing a file that is then renamed over it.
pub(super) fn temp_sibling(path: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    path.with_file_name(format!(".{name}.tmp-{}-{n}", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostname_with_a_newline_is_refused() {
        assert!(check_hostname("web\n10.0.0.1 evil").is_err());
        assert!(check_hostname("").is_err());
        assert!(check_hostname("web-1.example.org").is_ok());
    }

    #[test]
    fn tool_failure_shows_its_last_lines() {
        let mut lines = Vec::new();
        let mut progress = |l: &str| lines.push(l.to_string());
        let mut cx = BuildContext {
            hostname: "h",
            cache_dir: None,
            progress: &mut progress,
        };
        let sh = Tool {
            name: "sh",
            package: "dash",
        };
        let script = "echo one; echo two >&2; echo three; exit 3";
        let err = run(sh, Command::new("sh").args(["-c", script]), &[], &mut cx).unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("sh failed (exit status: 3): "), "{msg}");
        assert_eq!(lines.len(), 3);
    }

    #[test]
    fn missing_tool_names_its_package() {
        let mut progress = |_: &str| {};
        let mut cx = BuildContext {
            hostname: "h",
            cache_dir: None,
            progress: &mut progress,
        };
        let tool = Tool {
            name: "hangar-no-such-tool",
            package: "hangar-no-such-package",
        };
        let err = run(tool, &mut Command::new(tool.name), &[], &mut cx).unwrap_err();
        assert_eq!(
            err.to_string(),
            "hangar-no-such-tool is not installed: install the hangar-no-such-package package"
        );
    }
}
