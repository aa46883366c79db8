//! Guest configs and host defaults on disk, written atomically and durably.

use crate::paths::Paths;
use crate::{CoreError, Result};
use hangar_model::{ContextId, GuestConfig, GuestName, HostDefaults};

pub fn load_defaults(paths: &Paths) -> Result<HostDefaults> {
    let f = paths.defaults_file();
    match std::fs::read_to_string(&f) {
        Ok(text) => {
            HostDefaults::from_toml(&text).map_err(|source| CoreError::Config { file: f, source })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(HostDefaults::default()),
        Err(e) => Err(CoreError::io("reading", f, e)),
    }
}

pub fn exists(paths: &Paths, name: &GuestName) -> bool {
    paths.config_file(name).exists()
}

pub fn load(paths: &Paths, name: &GuestName) -> Result<GuestConfig> {
    let f = paths.config_file(name);
    let text = match std::fs::read_to_string(&f) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(CoreError::NotFound(name.to_string()));
        }
        r => r.map_err(|e| CoreError::io("reading", &f, e))?,
    };
    let cfg = GuestConfig::from_toml(&text).map_err(|source| CoreError::Config {
        file: f.clone(),
        source,
    })?;
    if &cfg.name != name {
        return Err(CoreError::Invalid(format!(
            "{}: name = {:?} does not match the file name",
            f.display(),
            cfg.name.as_str()
        )));
    }
    Ok(cfg)
}

pub fn save(paths: &Paths, cfg: &GuestConfig) -> Result<()> {
    let f = paths.config_file(&cfg.name);
    std::fs::create_dir_all(paths.configs_dir())
        .map_err(|e| CoreError::io("creating", paths.configs_dir(), e))?;
    let text = format!(
        "# hangar guest config; edit with `hangar config edit {}`\n{}",
        cfg.name,
        cfg.to_toml()
    );
    hangar_sys::write_atomic(&f, text.as_bytes(), true).map_err(|e| CoreError::io("writing", f, e))
}

/// Names of all guests, sorted.
pub fn names(paths: &Paths) -> Result<Vec<GuestName>> {
    let dir = paths.configs_dir();
    let entries = match std::fs::read_dir(&dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        r => r.map_err(|e| CoreError::io("listing", &dir, e))?,
    };
    let mut out: Vec<GuestName> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".toml"))
                .and_then(|n| GuestName::new(n).ok())
        })
        .collect();
    out.sort();
    Ok(out)
}

/// Context ids in use: by configs, and by builds in progress (whose reservation file
/// sits in their build dir while their builder holds the guest lock).
pub fn used_contexts(paths: &Paths) -> Result<Vec<(ContextId, String)>> {
    let mut used = Vec::new();
    for n in names(paths)? {
        if let Ok(cfg) = load(paths, &n) {
            used.push((cfg.context, n.to_string()));
        }
    }
    if let Ok(entries) = std::fs::read_dir(paths.data_root()) {
        for e in entries.filter_map(|e| e.ok()) {
            let file = e.file_name();
            let Some(n) = file
                .to_str()
                .and_then(|f| f.strip_prefix(".build-"))
                .and_then(|n| GuestName::new(n).ok())
            else {
                continue;
            };
            let ctx = std::fs::read_to_string(e.path().join("context"))
                .ok()
                .and_then(|s| s.trim().parse().ok());
            if let Some(ctx) = ctx {
                used.push((ctx, n.to_string()));
            }
        }
    }
    Ok(used)
}

/// Pick `wanted` if free, or the lowest free id, for guest `name`: free in this root
/// (configs and builds in progress) and on the whole host (`ids`, the registry every
/// root shares, locked by the caller, who reserves the id in the guest's build dir
/// before unlocking). Call under the host lock.
pub fn allocate_context(
    paths: &Paths,
    wanted: Option<ContextId>,
    name: &GuestName,
    ids: &crate::ids::Locked<'_>,
) -> Result<ContextId> {
    let used = used_contexts(paths)?;
    if let Some(c) = wanted
        && let Some((_, by)) = used.iter().find(|(u, by)| *u == c && by != name.as_str())
    {
        return Err(CoreError::ContextTaken {
            ctx: c.get(),
            by: by.clone(),
        });
    }
    let taken: Vec<ContextId> = used.iter().map(|(c, _)| *c).collect();
    ids.allocate(paths, name, wanted, &taken)
}
