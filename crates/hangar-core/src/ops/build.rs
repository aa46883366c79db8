//! `hangar build`: make a new guest from a build method.
//!
//! The root filesystem is built in `.build-NAME`, its ownership shifted into the guest's
//! id range, the directory renamed into place, and only then is the config written: the
//! config is the commit point, so an interrupted build leaves no guest, only a build
//! directory that the next build or delete of that name removes.

use crate::build::{BuildContext, Method, populate};
use crate::{CoreError, Host, Result, lock, store};
use hangar_model::config::{Autostart, validate_hostname};
use hangar_model::{ContextId, GuestConfig, GuestKind, GuestName, Limits, Security, StopPolicy};

pub struct BuildRequest {
    pub name: GuestName,
    pub method: Method,
    pub hostname: Option<String>,
    pub context: Option<ContextId>,
    pub privileged: bool,
    /// NICs to give the guest (empty: none, only lo).
    pub nics: Vec<crate::net::nic::NicRequest>,
}

pub fn build(
    host: &Host,
    req: BuildRequest,
    progress: &mut dyn FnMut(&str),
) -> Result<GuestConfig> {
    let name = &req.name;
    let hostname = req.hostname.clone().unwrap_or_else(|| name.to_string());
    validate_hostname(&hostname)?;
    let _guest = lock::guest(&host.paths, name)?;
    if store::exists(&host.paths, name) {
        return Err(CoreError::Exists(name.to_string()));
    }
    remove_leftovers(host, name)?;
    let build_dir = host.paths.build_dir(name);
    let context = {
        let _host_lock = lock::host(&host.paths)?;
        let registry = crate::ids::Registry::host();
        // Held until the build dir names the id: another root sees it reserved then.
        let ids = registry.lock()?;
        let ctx = store::allocate_context(&host.paths, req.context, name, &ids)?;
        let mut nics = vec![];
        for r in &req.nics {
            let nic = crate::net::nic::allocate(host, name.as_str(), &nics, r)?;
            nics.push(nic);
        }
        hangar_model::net::validate_nics(&nics)?;
        std::fs::create_dir_all(build_dir.join("rootfs"))
            .map_err(|e| CoreError::io("creating", &build_dir, e))?;
        std::fs::write(build_dir.join("context"), ctx.to_string())
            .map_err(|e| CoreError::io("writing", &build_dir, e))?;
        // Reserve the NICs' addresses and MACs until the config takes them over.
        let reserved = serde_json::to_vec(&nics).expect("nics serialise");
        std::fs::write(build_dir.join("nics.json"), reserved)
            .map_err(|e| CoreError::io("writing", &build_dir, e))?;
        (ctx, nics)
    };
    let (context, nics) = context;
    let result = finish(host, &req, &hostname, context, nics, progress);
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&build_dir);
        let _ = std::fs::remove_dir_all(host.paths.data_dir(name));
    }
    result
}

fn finish(
    host: &Host,
    req: &BuildRequest,
    hostname: &str,
    context: ContextId,
    nics: Vec<hangar_model::net::Nic>,
    progress: &mut dyn FnMut(&str),
) -> Result<GuestConfig> {
    let build_dir = host.paths.build_dir(&req.name);
    let rootfs = build_dir.join("rootfs");
    let cache = host.paths.cache_dir();
    let mut cx = BuildContext {
        hostname,
        cache_dir: Some(&cache),
        progress,
    };
    let outcome = populate(&req.method, &rootfs, &mut cx)?;
    if !req.privileged {
        progress("shifting file ownership into the guest's id range");
        let range = hangar_model::ctx::ID_RANGE;
        hangar_container::idshift::shift_to(&rootfs, context.id_base(), range)?;
    }
    let _ = std::fs::remove_file(build_dir.join("context"));
    let _ = std::fs::remove_file(build_dir.join("nics.json"));
    let data_dir = host.paths.data_dir(&req.name);
    std::fs::rename(&build_dir, &data_dir)
        .map_err(|e| CoreError::io("moving the build into", &data_dir, e))?;
    let cfg = GuestConfig {
        name: req.name.clone(),
        kind: GuestKind::Container,
        context,
        hostname: hostname.to_string(),
        rootfs: "rootfs".into(),
        init: outcome.init,
        stop: StopPolicy::default(),
        limits: Limits::default(),
        autostart: Autostart::default(),
        security: Security {
            privileged: req.privileged,
            ..Security::default()
        },
        nics,
    };
    cfg.validate()?;
    {
        // Saving the config is what takes over the NICs' reservation.
        let _host_lock = lock::host(&host.paths)?;
        store::save(&host.paths, &cfg)?;
    }
    crate::ops::attach::refresh_networks(host, &cfg.nics);
    Ok(cfg)
}

/// Remove what an interrupted build or delete of `name` left (we hold its lock, so
/// nobody is working on it).
pub(crate) fn remove_leftovers(host: &Host, name: &GuestName) -> Result<()> {
    for dir in [host.paths.build_dir(name), host.paths.data_dir(name)] {
        if dir.exists() && !store::exists(&host.paths, name) {
            std::fs::remove_dir_all(&dir)
                .map_err(|e| CoreError::io("removing leftover", &dir, e))?;
        }
    }
    Ok(())
}
