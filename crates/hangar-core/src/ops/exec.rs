//! `hangar exec` and `hangar enter`: run a command inside a running guest.

use crate::{CoreError, Host, Result, status, store};
use hangar_container::join::{self, Command, Target};
use hangar_model::GuestName;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::termios::{self, SetArg};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

pub fn target(host: &Host, name: &GuestName) -> Result<(Target, Option<u32>)> {
    let cfg = store::load(&host.paths, name)?;
    crate::adopt::ensure(host, name)?;
    let st = status::status(&host.paths, name);
    let init_pid = st
        .init_pid()
        .ok_or_else(|| CoreError::NotRunning(name.to_string()))?;
    let cgroup = host.guest_cgroup(&cfg)?;
    if cgroup.frozen() {
        // A command would join the frozen cgroup and stop at once.
        return Err(CoreError::Invalid(format!(
            "guest {name} is paused: `hangar unpause {name}` first"
        )));
    }
    let userns = !cfg.security.privileged;
    let mut cgroup_dirs = cgroup.dirs().to_vec();
    if let Some(top) = cgroup.delegated_dir() {
        let below = format!("/{}/{}", host.cgroup_parent(), cfg.context);
        if let Some(at) = init_cgroup2_dir(init_pid, top, &below) {
            for d in cgroup_dirs.iter_mut().filter(|d| d.as_path() == top) {
                *d = at.clone();
            }
        }
    }
    let t = Target {
        init_pid,
        cgroup_dirs,
        userns,
        seccomp: cfg.security.seccomp,
        rlimits: host.rlimits(&cfg),
    };
    Ok((t, userns.then(|| cfg.context.id_base())))
}

/// Where in the guest's delegated cgroup2 tree `top` its init is now, if below `top`:
/// systemd moves itself to `init.scope` and enables controllers for its children, after
/// which `top` takes no process (cgroup2's rule), so a command joins init's cgroup
/// instead. `below` is `top`'s path in the hierarchy (`/PARENT/CTX`), as
/// `/proc/PID/cgroup` shows it to the host.
fn init_cgroup2_dir(
    init_pid: i32,
    top: &std::path::Path,
    below: &str,
) -> Option<std::path::PathBuf> {
    let text = std::fs::read_to_string(format!("/proc/{init_pid}/cgroup")).ok()?;
    let path = text.lines().find_map(|l| l.strip_prefix("0::"))?;
    let rest = path.strip_prefix(below)?.trim_start_matches('/');
    if rest.is_empty() || rest.split('/').any(|c| c == ".." || c == ".") {
        return None;
    }
    let dir = top.join(rest);
    dir.is_dir().then_some(dir)
}

/// Run `argv` in the guest; returns its exit code. With `tty`, a terminal from the
/// guest's own devpts is proxied to ours (which is put in raw mode meanwhile).
pub fn exec(
    host: &Host,
    name: &GuestName,
    argv: Vec<String>,
    env: Vec<String>,
    tty: bool,
) -> Result<i32> {
    if argv.is_empty() {
        return Err(CoreError::Invalid(
            "no command given: hangar exec NAME -- COMMAND [ARGS]".into(),
        ));
    }
    let (t, id_base) = target(host, name)?;
    let mut env = env;
    if tty {
        env.push(format!(
            "TERM={}",
            std::env::var("TERM").unwrap_or_else(|_| "xterm".into())
        ));
    }
    let cmd = Command {
        argv,
        env,
        cwd: "/root".into(),
    };
    if !tty {
        return Ok(join::run(&t, &cmd)?);
    }
    let (master, peer) = join::guest_pty(&t, id_base)?;
    if let Some((rows, cols)) = hangar_sys::window_size(0) {
        let _ = hangar_sys::set_window_size(peer.as_raw_fd(), rows, cols);
    }
    let pid = join::spawn(&t, &cmd, Some(peer))?;
    let stdin = std::io::stdin();
    let saved = termios::tcgetattr(stdin.as_fd()).ok();
    if let Some(s) = &saved {
        let mut raw = s.clone();
        termios::cfmakeraw(&mut raw);
        let _ = termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw);
    }
    proxy_terminal(&master);
    if let Some(s) = &saved {
        let _ = termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, s);
    }
    Ok(join::wait(pid)?)
}

/// Copy our stdin to the pty master and the master to our stdout until the guest side
/// of the terminal is closed by every process that had it.
fn proxy_terminal(master: &OwnedFd) {
    let stdin = std::io::stdin();
    let mut buf = [0u8; 8192];
    let mut stdin_open = true;
    loop {
        let in_flags = if stdin_open {
            PollFlags::POLLIN
        } else {
            PollFlags::empty()
        };
        let mut fds = [
            PollFd::new(master.as_fd(), PollFlags::POLLIN),
            PollFd::new(stdin.as_fd(), in_flags),
        ];
        if poll(&mut fds, PollTimeout::NONE).is_err() {
            continue;
        }
        let (m, i) = (
            fds[0].revents().unwrap_or(PollFlags::empty()),
            fds[1].revents().unwrap_or(PollFlags::empty()),
        );
        if !m.is_empty() {
            match nix::unistd::read(master, &mut buf) {
                Ok(n) if n > 0 => {
                    let _ = nix::unistd::write(std::io::stdout(), &buf[..n]);
                }
                _ => return,
            }
        }
        if stdin_open && !i.is_empty() {
            match nix::unistd::read(stdin.as_fd(), &mut buf) {
                Ok(n) if n > 0 => {
                    let _ = nix::unistd::write(master, &buf[..n]);
                }
                _ => stdin_open = false,
            }
        }
    }
}
