//! Network configs: `etc/hangar/networks/NAME.toml`, written atomically.

use crate::paths::Paths;
use crate::{CoreError, Result};
use hangar_model::net::NetworkConfig;
use std::path::PathBuf;

pub fn dir(paths: &Paths) -> PathBuf {
    paths.root().join("etc/hangar/networks")
}

pub fn file(paths: &Paths, name: &str) -> PathBuf {
    dir(paths).join(format!("{name}.toml"))
}

pub fn load(paths: &Paths, name: &str) -> Result<NetworkConfig> {
    let f = file(paths, name);
    let text = match std::fs::read_to_string(&f) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(CoreError::Invalid(format!(
                "no network named {name}: see `hangar network list`"
            )));
        }
        r => r.map_err(|e| CoreError::io("reading", &f, e))?,
    };
    NetworkConfig::from_toml(&text).map_err(|source| CoreError::Config { file: f, source })
}

pub fn save(paths: &Paths, n: &NetworkConfig) -> Result<()> {
    std::fs::create_dir_all(dir(paths)).map_err(|e| CoreError::io("creating", dir(paths), e))?;
    let f = file(paths, &n.name);
    let text = format!(
        "# hangar network; see `hangar network show {}`\n{}",
        n.name,
        n.to_toml()
    );
    hangar_sys::write_atomic(&f, text.as_bytes(), true).map_err(|e| CoreError::io("writing", f, e))
}

pub fn names(paths: &Paths) -> Result<Vec<String>> {
    let d = dir(paths);
    let entries = match std::fs::read_dir(&d) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        r => r.map_err(|e| CoreError::io("listing", &d, e))?,
    };
    let mut out: Vec<String> = entries
        .filter_map(|e| {
            e.ok()?
                .file_name()
                .to_str()?
                .strip_suffix(".toml")
                .map(str::to_string)
        })
        .filter(|n| hangar_model::net::validate_net_name(n).is_ok())
        .collect();
    out.sort();
    Ok(out)
}
