//! Running the network tools: one place that spawns `ip`, `tc` and `nft`, and
//! turns their failures into errors that quote the command and its stderr.

use crate::{NetError, Result};
use std::io::Write;
use std::process::{Command, Stdio};

/// Run `program args...`, feeding `stdin` if given; returns stdout.
pub fn run(program: &str, args: &[&str], stdin: Option<&str>) -> Result<String> {
    let mut c = Command::new(program);
    c.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    c.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let mut child = c.spawn().map_err(|source| NetError::Missing {
        program: program.to_string(),
        source,
    })?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        let _ = pipe.write_all(input.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|source| NetError::Missing {
            program: program.to_string(),
            source,
        })?;
    if !out.status.success() {
        return Err(NetError::Command {
            command: format!("{program} {}", args.join(" ")),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `ip ARGS...` on the host.
pub fn ip(args: &[&str]) -> Result<String> {
    run("ip", args, None)
}
