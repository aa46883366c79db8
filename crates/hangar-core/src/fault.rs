//! A test hook, and the one place that reads it: `HANGAR_FAULT=OP:STEP` makes operation
//! OP fail right after its step STEP, as if that step's next action had failed, so the
//! end-to-end tests can show that each step is undone; `HANGAR_FAULT=OP:STEP:crash`
//! kills the process there instead (SIGKILL: no code of ours runs after it), so they can
//! show that the next command finishes or rolls back what was left. A step name the
//! operation does not have is refused with the list of its steps (which is how a test
//! learns them). Only `rename` has steps today. Unset, it costs one environment lookup.

use crate::{CoreError, Result};

const VAR: &str = "HANGAR_FAULT";

/// What `HANGAR_FAULT` asks of operation `op`: (step, crash).
fn wanted(op: &str) -> Option<(String, bool)> {
    let v = std::env::var(VAR).ok()?;
    let rest = v.strip_prefix(op)?.strip_prefix(':')?;
    Some(match rest.strip_suffix(":crash") {
        Some(step) => (step.to_string(), true),
        None => (rest.to_string(), false),
    })
}

/// Refuse a `HANGAR_FAULT` for `op` that names none of its `steps`.
pub(crate) fn check(op: &str, steps: &[&str]) -> Result<()> {
    match wanted(op) {
        Some((step, _)) if !steps.contains(&step.as_str()) => Err(CoreError::Invalid(format!(
            "{VAR} names no step {step:?} of {op}: its steps are {}",
            steps.join(" ")
        ))),
        _ => Ok(()),
    }
}

/// Called by `op` right after its step `step` is done: fail or die there if asked.
pub(crate) fn after(op: &str, step: &str) -> Result<()> {
    match wanted(op) {
        Some((s, crash)) if s == step => {
            if crash {
                let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
            }
            Err(CoreError::Invalid(format!(
                "fault injected after the {step} step ({VAR})"
            )))
        }
        _ => Ok(()),
    }
}
