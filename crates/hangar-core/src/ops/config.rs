//! `hangar config show/edit`: the guest's TOML, validated before it is saved.

use crate::{CoreError, Host, Result, lock, store};
use hangar_model::{GuestConfig, GuestName};

pub fn show(host: &Host, name: &GuestName) -> Result<String> {
    store::load(&host.paths, name).map(|_| ())?;
    let f = host.paths.config_file(name);
    std::fs::read_to_string(&f).map_err(|e| CoreError::io("reading", f, e))
}

/// Check an edited config against the rules a change must keep: same name, a context
/// id nobody else uses, limits this kernel provides, NICs whose networks exist and whose addresses and MACs are
/// nobody else's.
pub fn check_edit(host: &Host, old: &GuestConfig, text: &str) -> Result<GuestConfig> {
    let new = GuestConfig::from_toml(text)?;
    if new.name != old.name {
        return Err(CoreError::Invalid(format!(
            "the name cannot change here; use `hangar rename {} NEW`",
            old.name
        )));
    }
    if new.nics != old.nics {
        let _host = lock::host(&host.paths)?;
        crate::net::nic::check_edited(host, old.name.as_str(), &old.nics, &new.nics)?;
    }
    if new.limits != old.limits {
        host.trial_limits(&new)?;
    }
    if new.dirs != old.dirs {
        crate::ops::shared_dir::check_edited(host, old, &new)?;
    }
    if new.context != old.context {
        let _host = lock::host(&host.paths)?;
        if let Some((_, by)) = store::used_contexts(&host.paths)?
            .into_iter()
            .find(|(c, by)| *c == new.context && by != old.name.as_str())
        {
            return Err(CoreError::ContextTaken {
                ctx: new.context.get(),
                by,
            });
        }
    }
    Ok(new)
}

/// Open the config in `editor`; save only if the result is valid. On error the old
/// config stays in force and the edited text is kept beside it for another try.
pub fn edit(host: &Host, name: &GuestName, editor: &str) -> Result<()> {
    let _guest = lock::guest(&host.paths, name)?;
    let old = store::load(&host.paths, name)?;
    let file = host.paths.config_file(name);
    let draft = host.paths.configs_dir().join(format!(".{name}.edit.toml"));
    if !draft.exists() {
        std::fs::copy(&file, &draft).map_err(|e| CoreError::io("copying", &file, e))?;
    }
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$1\""))
        .arg("sh")
        .arg(&draft)
        .status()
        .map_err(|e| CoreError::io("running the editor on", &draft, e))?;
    if !status.success() {
        return Err(CoreError::Invalid(format!(
            "the editor failed; nothing changed (draft kept at {})",
            draft.display()
        )));
    }
    let text = std::fs::read_to_string(&draft).map_err(|e| CoreError::io("reading", &draft, e))?;
    match check_edit(host, &old, &text) {
        Ok(new) if new.context != old.context => {
            // The new id must be free on the whole host, and stays held from the check
            // to the save.
            let registry = crate::ids::Registry::host();
            let ids = registry.lock()?;
            ids.claim(new.context, &host.paths, name).map_err(|e| {
                CoreError::Invalid(format!(
                    "{e}; nothing changed (your edit is kept in {})",
                    draft.display()
                ))
            })?;
            store::save(&host.paths, &new)?;
            ids.release(old.context, &host.paths, name);
            let _ = std::fs::remove_file(&draft);
            Ok(())
        }
        Ok(new) => {
            store::save(&host.paths, &new)?;
            let _ = std::fs::remove_file(&draft);
            Ok(())
        }
        Err(e) => Err(CoreError::Invalid(format!(
            "{e}; nothing changed (your edit is kept in {}; run the edit again to fix it)",
            draft.display()
        ))),
    }
}
