//! hangar-monitor: the small supervisor that owns one running guest.
//!
//! `hangar start` spawns it in its own session with the path of a launch spec and a
//! pipe to report readiness on. It holds `monitor.lock` for as long as it lives (so any
//! process can tell whether it is alive, even after a crash, without trusting a pid),
//! starts the guest's init, copies the console into the console log, restarts the guest
//! when it reboots itself, answers the control socket, and when init ends for good
//! writes the final state, removes the guest's cgroups and exits.
//!
//! The same binary is also each hangar root's keepers (see `keeper/`): `--lxcfs` keeps
//! lxcfs running, `--dns` keeps one network's dnsmasq running.
#![forbid(unsafe_code)]

mod keeper;
mod supervise;

/// What this process was started as, from its arguments.
enum Role {
    /// `SPEC.json READY_FD`: a guest's monitor.
    Monitor { spec: String },
    /// `--lxcfs MOUNTPOINT RUN_DIR READY_FD`.
    Lxcfs { mountpoint: String, run_dir: String },
    /// `--dns KEEPER.json READY_FD`.
    Dns { config: String },
}

const USAGE: &str = "usage: hangar-monitor SPEC.json READY_FD (started by `hangar start`)
       hangar-monitor --lxcfs MOUNTPOINT RUN_DIR READY_FD
       hangar-monitor --dns KEEPER.json READY_FD";

/// The role and the readiness pipe's descriptor number.
fn parse(mut args: Vec<String>) -> Option<(Role, i32)> {
    let fd = args.pop()?.parse().ok()?;
    let role = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["--lxcfs", mountpoint, run_dir] => Role::Lxcfs {
            mountpoint: mountpoint.into(),
            run_dir: run_dir.into(),
        },
        ["--dns", config] => Role::Dns {
            config: config.into(),
        },
        [spec] if !spec.starts_with('-') => Role::Monitor { spec: spec.into() },
        _ => return None,
    };
    Some((role, fd))
}

fn main() {
    let Some((role, fd)) = parse(std::env::args().skip(1).collect()) else {
        eprintln!("{USAGE}");
        std::process::exit(2);
    };
    let ready = match hangar_sys::own_fd(fd) {
        Ok(fd) => std::fs::File::from(fd),
        Err(e) => {
            eprintln!("hangar-monitor: ready descriptor {fd}: {e}");
            std::process::exit(2);
        }
    };
    // Leave the session of whoever started us: a terminal closing must not reach us.
    let _ = nix::unistd::setsid();
    let result = match role {
        Role::Monitor { spec } => supervise::run(&spec, ready),
        Role::Lxcfs {
            mountpoint,
            run_dir,
        } => keeper::lxcfs::run(&mountpoint, &run_dir, ready),
        Role::Dns { config } => keeper::dns::run(&config, ready),
    };
    if let Err(e) = result {
        eprintln!("hangar-monitor: {e}");
        std::process::exit(1);
    }
}
