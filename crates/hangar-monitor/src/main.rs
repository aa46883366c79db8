//! hangar-monitor: the small supervisor that owns one running guest.
//!
//! `hangar start` spawns it in its own session with the path of a launch spec and a
//! pipe to report readiness on. It holds `monitor.lock` for as long as it lives (so any
//! process can tell whether it is alive, even after a crash, without trusting a pid),
//! starts the guest's init, copies the console into the console log, restarts the guest
//! when it reboots itself, answers the control socket, and when init ends for good
//! writes the final state, removes the guest's cgroups and exits.
#![forbid(unsafe_code)]

mod keeper;
mod supervise;

fn main() {
    let mut args = std::env::args().skip(1).peekable();
    if args.peek().map(String::as_str) == Some("--lxcfs") {
        args.next();
        let (Some(mountpoint), Some(run_dir), Some(fd)) = (
            args.next(),
            args.next(),
            args.next().and_then(|s| s.parse().ok()),
        ) else {
            eprintln!("usage: hangar-monitor --lxcfs MOUNTPOINT RUN_DIR READY_FD");
            std::process::exit(2);
        };
        let ready = match hangar_sys::own_fd(fd) {
            Ok(fd) => std::fs::File::from(fd),
            Err(e) => {
                eprintln!("hangar-monitor: ready descriptor {fd}: {e}");
                std::process::exit(2);
            }
        };
        let _ = nix::unistd::setsid();
        if let Err(e) = keeper::run(&mountpoint, &run_dir, ready) {
            eprintln!("hangar-monitor: {e}");
            std::process::exit(1);
        }
        return;
    }
    let (Some(spec_path), Some(ready_fd)) =
        (args.next(), args.next().and_then(|s| s.parse::<i32>().ok()))
    else {
        eprintln!("usage: hangar-monitor SPEC.json READY_FD (started by `hangar start`)");
        std::process::exit(2);
    };
    let ready = match hangar_sys::own_fd(ready_fd) {
        Ok(fd) => std::fs::File::from(fd),
        Err(e) => {
            eprintln!("hangar-monitor: ready descriptor {ready_fd}: {e}");
            std::process::exit(2);
        }
    };
    // Leave the session of `hangar start`: a terminal closing must not reach the guest.
    let _ = nix::unistd::setsid();
    if let Err(e) = supervise::run(&spec_path, ready) {
        eprintln!("hangar-monitor: {e}");
        std::process::exit(1);
    }
}
