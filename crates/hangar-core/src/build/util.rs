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

/// The files of a guest that name its host, as the guest sees them: /etc/hostname and
/// /etc/hosts (None: missing, not a regular file, or not text). Read and written from
/// the host into a stopped guest's (or a fresh clone's) root filesystem: each path is
/// resolved inside the rootfs ([`super::init::resolve_in_root`]), so a symlink never
/// leads out of it, and a file is rewritten in place, keeping its owner and mode.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct HostFiles {
    pub hostname: Option<String>,
    pub hosts: Option<String>,
}

const HOSTNAME_FILE: &str = "/etc/hostname";
const HOSTS_FILE: &str = "/etc/hosts";

/// `rootfs`'s regular file at guest path `path`, symlinks resolved inside the rootfs.
fn guest_file(rootfs: &Path, path: &str) -> Option<PathBuf> {
    let rel = super::init::resolve_in_root(rootfs, Path::new(path))?;
    let host = rootfs.join(rel);
    fs::symlink_metadata(&host)
        .is_ok_and(|m| m.is_file())
        .then_some(host)
}

impl HostFiles {
    pub(crate) fn read(rootfs: &Path) -> HostFiles {
        let text = |p| guest_file(rootfs, p).and_then(|f| fs::read_to_string(f).ok());
        HostFiles {
            hostname: text(HOSTNAME_FILE),
            hosts: text(HOSTS_FILE),
        }
    }

    /// The same files for a guest whose hostname changes from `old` to `new`:
    /// /etc/hostname says `new`, and every name `old` in /etc/hosts (build's
    /// `127.0.1.1 HOSTNAME`, the `# hangar` lines a start keeps) becomes `new`.
    pub(crate) fn renamed(&self, old: &str, new: &str) -> HostFiles {
        HostFiles {
            hostname: self.hostname.as_ref().map(|_| format!("{new}\n")),
            hosts: self.hosts.as_ref().map(|h| {
                h.split_inclusive('\n')
                    .map(|l| rename_in_hosts_line(l, old, new))
                    .collect()
            }),
        }
    }

    /// Make the files in `rootfs` hold these contents (those that exist there and
    /// differ; a missing one is not made).
    pub(crate) fn write(&self, rootfs: &Path) -> crate::Result<()> {
        for (path, text) in [(HOSTNAME_FILE, &self.hostname), (HOSTS_FILE, &self.hosts)] {
            let (Some(text), Some(file)) = (text, guest_file(rootfs, path)) else {
                continue;
            };
            if fs::read_to_string(&file).is_ok_and(|now| now == *text) {
                continue;
            }
            fs::write(&file, text).map_err(|e| crate::CoreError::io("writing", &file, e))?;
        }
        Ok(())
    }
}

/// A line of /etc/hosts with every name `old` (not the address, nor in a comment)
/// replaced by `new`, its spacing kept.
fn rename_in_hosts_line(line: &str, old: &str, new: &str) -> String {
    let (body, comment) = line.split_at(line.find('#').unwrap_or(line.len()));
    let mut out = String::with_capacity(line.len());
    let mut words = 0;
    for piece in body.split_inclusive(char::is_whitespace) {
        let word = piece.trim_end_matches(char::is_whitespace);
        if !word.is_empty() {
            words += 1;
        }
        if words > 1 && word == old {
            out.push_str(new);
            out.push_str(&piece[word.len()..]);
        } else {
            out.push_str(piece);
        }
    }
    out + comment
}

/// Makes sure /dev, /proc, /sys and /run exist and /dev is empty, and gives /tmp
/// its sticky mode. A copied /dev would hold the source's device nodes.
pub(crate) fn empty_mount_points(rootfs: &Path) -> Result<(), BuildError> {
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
    fn a_new_hostname_replaces_the_old_one_as_a_name_only() {
        let files = HostFiles {
            hostname: Some("web\n".into()),
            hosts: Some(
                "127.0.0.1\tlocalhost\n127.0.1.1\tweb\n# web is ours\n10.0.0.2 web web.lan # hangar\n\
                 10.0.0.3 webby web\n10.0.0.9 web-2\nweb 10.0.0.4\n"
                    .into(),
            ),
        };
        let renamed = files.renamed("web", "db");
        assert_eq!(renamed.hostname.as_deref(), Some("db\n"));
        assert_eq!(
            renamed.hosts.as_deref(),
            Some(
                "127.0.0.1\tlocalhost\n127.0.1.1\tdb\n# web is ours\n10.0.0.2 db web.lan # hangar\n\
                 10.0.0.3 webby db\n10.0.0.9 web-2\nweb 10.0.0.4\n"
            )
        );
        let none = HostFiles {
            hostname: None,
            hosts: None,
        };
        assert_eq!(none.renamed("web", "db"), none);
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
