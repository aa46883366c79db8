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

mod adopt;
mod keeper;
mod supervise;

/// Asks the kernel's OOM killer to pass us over: a monitor or keeper is small, and
/// killing it would cost its guest its supervision (or every guest its lxcfs or DNS).
/// Lowering `oom_score_adj` takes CAP_SYS_RESOURCE; without it (some hosts keep it out
/// of the bounding set) the score stays as it was and the log says so. The guest's
/// init does not inherit the value: the launch sets its score back to 0.
pub(crate) fn spare_from_oom_killer() {
    if let Err(e) = std::fs::write("/proc/self/oom_score_adj", "-1000") {
        eprintln!(
            "hangar-monitor: could not ask the OOM killer to spare this process \
             (oom_score_adj -1000: {e}; it needs CAP_SYS_RESOURCE)"
        );
    }
}

/// What this process was started as, from its arguments.
enum Role {
    /// `SPEC.json READY_FD`: a guest's monitor; with `--adopt`, of a running guest
    /// whose monitor died.
    Monitor { spec: String, adopt: bool },
    /// `--lxcfs MOUNTPOINT RUN_DIR READY_FD`.
    Lxcfs { mountpoint: String, run_dir: String },
    /// `--dns KEEPER.json READY_FD`.
    Dns { config: String },
}

const USAGE: &str = "usage: hangar-monitor SPEC.json READY_FD (started by `hangar start`)
       hangar-monitor --adopt SPEC.json READY_FD
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
        ["--adopt", spec] => Role::Monitor {
            spec: spec.into(),
            adopt: true,
        },
        [spec] if !spec.starts_with('-') => Role::Monitor {
            spec: spec.into(),
            adopt: false,
        },
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
        Role::Monitor { spec, adopt } => supervise::run(&spec, ready, adopt),
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
