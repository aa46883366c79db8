//! `hangar start`: create the guest's cgroup, write its launch spec, spawn its monitor,
//! and return once the monitor reports that init runs.

use crate::{CoreError, Host, Result, lock, status, store};
use hangar_model::{GuestConfig, GuestName, LaunchSpec};

/// Start guest `name`; returns the host pid of its init.
pub fn start(host: &Host, name: &GuestName) -> Result<i32> {
    let _guest = lock::guest(&host.paths, name)?;
    start_locked(host, name)
}

pub(crate) fn start_locked(host: &Host, name: &GuestName) -> Result<i32> {
    let cfg = store::load(&host.paths, name)?;
    // A guest whose monitor died runs on: adopted, it is running, and never started twice.
    crate::adopt::ensure(host, name)?;
    if status::status(&host.paths, name).is_active() {
        return Err(CoreError::Invalid(format!(
            "guest {name} is already running"
        )));
    }
    crate::adopt::refuse_unknown_instance(host, &cfg)?;
    // Its context id (and so its host uids) must be its own on the whole host.
    let registry = crate::ids::Registry::host();
    if let Some(warning) = registry
        .lock()?
        .check_at_start(cfg.context, &host.paths, name)?
    {
        host.notice(warning);
    }
    let rootfs = host.rootfs(&cfg)?;
    check_rootfs(&cfg, &rootfs)?;
    ensure_ownership(&cfg, &rootfs)?;
    networks_up(host, &cfg)?;
    let init_system = crate::build::init::init_system_of(&rootfs, cfg.init[0].as_ref());
    // Everything that may fail without the cgroup first, so a failure leaves none.
    let spec = launch_spec(
        host,
        &cfg,
        host.guest_cgroup(&cfg)?.dirs().to_vec(),
        init_system,
    )?;
    if cfg.security.privileged {
        log_weakened(
            host,
            name,
            "started privileged: no user namespace, guest root is host root",
        )?;
    }
    if !cfg.security.seccomp {
        log_weakened(host, name, "started without the default seccomp filter")?;
    }
    let cgroup = host.cgroups()?.create(
        &host.cgroup_parent(),
        &cfg.context.to_string(),
        &host.cgroup_limits(&cfg)?,
    )?;
    if init_system.wants_cgroups()
        && let Err(e) = cgroup.delegate(cfg.root_host_id())
    {
        let _ = cgroup.remove();
        return Err(e.into());
    }
    let result = spawn_monitor(host, name, &spec);
    if result.is_err() && !status::monitor_alive(&host.paths, name) {
        let _ = cgroup.remove();
    }
    result
}

/// What the monitor of `cfg` is given: everything resolved, nothing left to probe.
pub(crate) fn launch_spec(
    host: &Host,
    cfg: &GuestConfig,
    cgroup_dirs: Vec<std::path::PathBuf>,
    init_system: hangar_model::InitSystem,
) -> Result<LaunchSpec> {
    let name = &cfg.name;
    let rootfs = host.rootfs(cfg)?;
    let resolvers = crate::net::up::resolvers(host, cfg)?;
    Ok(LaunchSpec {
        name: name.to_string(),
        hostname: cfg.hostname.clone(),
        rootfs,
        init: cfg.init.clone(),
        // systemd and other tools tell a container by its init's environment
        // (`container` is refused in `init_env`: it stays hangar's).
        env: cfg
            .init_env
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .chain(["container=hangar".to_string()])
            .collect(),
        cwd: cfg.init_cwd.as_ref().map(Into::into),
        id_base: (!cfg.security.privileged).then(|| cfg.context.id_base()),
        id_count: hangar_model::ctx::ID_RANGE,
        cgroup_dirs,
        stop_signal: cfg
            .stop
            .signal
            .unwrap_or(init_system.stop_signal())
            .number(),
        cgroup2: init_system.wants_cgroups(),
        stop_timeout: cfg.stop.timeout,
        seccomp: cfg.security.seccomp,
        rlimits: host.rlimits(cfg),
        lxcfs: crate::lxcfs::ensure(host)?,
        nics: crate::net::nic::plans(host, cfg)?,
        dirs: crate::ops::shared_dir::for_start(host, cfg)?,
        nameservers: resolvers.0,
        search: resolvers.1,
        nft_tag: crate::net::names::nft_tag(&host.paths),
        run_dir: host.paths.run_dir(name),
        console_log: host.paths.console_log(name),
    })
}

/// Bring up the networks (and VLAN bridges) `cfg`'s NICs are on: after a host reboot
/// they are gone, and every step is idempotent.
pub(crate) fn networks_up(host: &Host, cfg: &GuestConfig) -> Result<()> {
    if cfg.nics.is_empty() {
        return Ok(());
    }
    let _host = lock::host(&host.paths)?;
    let mut done: Vec<&str> = vec![];
    for nic in &cfg.nics {
        let Some(n) = nic.network.as_deref() else {
            continue;
        };
        let net = crate::net::store::load(&host.paths, n)?;
        if !done.contains(&n) {
            crate::net::up::up_for_start(host, &net, cfg.name.as_str())?;
            done.push(n);
        }
        if let Some(v) = nic.vlan {
            crate::net::up::vlan_up(host, &net, v)?;
        }
    }
    Ok(())
}

/// Weakened isolation is a choice the host's log keeps: `var/log/hangar/NAME/security.log`.
fn log_weakened(host: &Host, name: &GuestName, what: &str) -> Result<()> {
    use std::io::Write;
    let dir = host.paths.log_dir(name);
    std::fs::create_dir_all(&dir).map_err(|e| CoreError::io("creating", &dir, e))?;
    let path = dir.join("security.log");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| CoreError::io("opening", &path, e))?;
    writeln!(f, "{now} guest {name} {what}").map_err(|e| CoreError::io("writing", &path, e))
}

fn check_rootfs(cfg: &GuestConfig, rootfs: &std::path::Path) -> Result<()> {
    if !rootfs.is_dir() {
        return Err(CoreError::Invalid(format!(
            "guest {}: root filesystem {} is missing",
            cfg.name,
            rootfs.display()
        )));
    }
    // Look at the init path without following a final symlink: an absolute link inside
    // the guest (/sbin/init -> /bin/busybox) means nothing on the host.
    let init = rootfs.join(cfg.init[0].trim_start_matches('/'));
    if std::fs::symlink_metadata(&init).is_err() {
        return Err(CoreError::Invalid(format!(
            "guest {}: its root filesystem has no {} (set `init` with `hangar config edit {}`)",
            cfg.name, cfg.init[0], cfg.name
        )));
    }
    Ok(())
}

/// A guest's files must belong to its id range (or to the host for a privileged guest);
/// after a change of context id or of `privileged`, shift them once.
fn ensure_ownership(cfg: &GuestConfig, rootfs: &std::path::Path) -> Result<()> {
    hangar_container::idshift::shift_to(rootfs, cfg.root_host_id(), hangar_model::ctx::ID_RANGE)?;
    Ok(())
}

/// Write `spec` where its monitor reads it (`run/hangar/guests/NAME/spec.json`).
pub(crate) fn write_spec(
    host: &Host,
    name: &GuestName,
    spec: &LaunchSpec,
) -> Result<std::path::PathBuf> {
    let log_dir = host.paths.log_dir(name);
    for d in [&spec.run_dir, &log_dir] {
        std::fs::create_dir_all(d).map_err(|e| CoreError::io("creating", d, e))?;
    }
    let spec_path = spec.run_dir.join("spec.json");
    let json = serde_json::to_vec_pretty(spec).expect("specs serialise");
    hangar_sys::write_atomic(&spec_path, &json, false)
        .map_err(|e| CoreError::io("writing", &spec_path, e))?;
    Ok(spec_path)
}

fn spawn_monitor(host: &Host, name: &GuestName, spec: &LaunchSpec) -> Result<i32> {
    let spec_path = write_spec(host, name, spec)?;
    let monitor_log = host.paths.log_dir(name).join("monitor.log");
    let reply = crate::spawn::detached(&[spec_path.as_os_str()], &monitor_log)?;
    let reply = reply.as_str();
    if let Some(pid) = reply.strip_prefix("ok ") {
        return pid
            .parse()
            .map_err(|_| CoreError::Invalid(format!("monitor said {reply:?}")));
    }
    let message = match reply.strip_prefix("error: ") {
        Some(m) => m.to_string(),
        None => format!(
            "its monitor exited before the guest ran; see {}",
            monitor_log.display()
        ),
    };
    Err(CoreError::Monitor {
        name: name.to_string(),
        message,
    })
}
