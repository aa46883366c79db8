//! Running a `tests/vm` scenario in the QEMU test machine and reading its report.
//!
//! `tests/vm/run.sh` boots Debian's cloud kernel under QEMU (TCG) with an initramfs
//! holding this build's `hangar` and `hangar-monitor` and runs the scenario there;
//! the scenario's "key: value" lines come back on the serial console. Needs root (the
//! initramfs holds device nodes) and qemu-system-x86_64: without them a run is skipped
//! with the reason printed.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

/// The output of a VM run: the scenario's report on stdout, run.sh's exit status.
pub struct VmRun {
    pub stdout: String,
    pub success: bool,
    pub status: std::process::ExitStatus,
}

impl VmRun {
    /// The scenario's "key: value" lines.
    pub fn report(&self) -> Report<'_> {
        Report::parse(&self.stdout)
    }
}

/// The first value of each "key: value" line of a scenario's report (keys have no
/// spaces; "ok NAME: ..." and "FAIL NAME: ..." lines are the scenario's own checks).
pub struct Report<'a>(HashMap<&'a str, &'a str>);

impl<'a> Report<'a> {
    pub fn parse(out: &'a str) -> Self {
        let mut map = HashMap::new();
        for line in out.lines() {
            if let Some((k, v)) = line.split_once(": ")
                && !k.contains(' ')
            {
                map.entry(k).or_insert(v.trim());
            }
        }
        Report(map)
    }

    /// The value of `key`; panics, naming it, when the scenario did not report it.
    pub fn get(&self, key: &str) -> &'a str {
        self.0.get(key).copied().unwrap_or_else(|| {
            panic!("the scenario reported no '{key}:' line (see its output above)")
        })
    }
}

/// Runs `tests/vm/<scenario>` in the VM with this build's binaries and prints the
/// whole story; None (after printing why) when this machine cannot run the VM.
pub fn run_scenario(scenario: &str) -> Option<VmRun> {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIP: this test needs root (it boots a VM from an initramfs with device nodes)");
        return None;
    }
    if Command::new("qemu-system-x86_64")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_err()
    {
        eprintln!(
            "SKIP: qemu-system-x86_64 is missing (scripts/setup-host.sh installs qemu-system-x86)"
        );
        return None;
    }
    let hangar = Path::new(env!("CARGO_BIN_EXE_hangar"));
    let bin_dir = hangar.parent().expect("the hangar binary's directory");
    assert!(
        bin_dir.join("hangar-monitor").exists(),
        "{} is missing: build the workspace (cargo build --workspace) first",
        bin_dir.join("hangar-monitor").display()
    );
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let started = Instant::now();
    let out = Command::new(repo.join("tests/vm/run.sh"))
        .arg(repo.join("tests/vm").join(scenario))
        .arg(bin_dir)
        .stdin(Stdio::null())
        .output()
        .expect("running tests/vm/run.sh");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The whole story, for whoever reads the test log: the harness's own progress
    // (kernel, initramfs, boot) and then everything the scenario did inside the VM.
    eprintln!(
        "=== tests/vm/run.sh {scenario} ({}, {:.1}s) ===\n{stderr}",
        out.status,
        started.elapsed().as_secs_f64()
    );
    eprintln!(
        "=== scenario output, from inside the VM ===\n{stdout}=== end of scenario output ==="
    );
    Some(VmRun {
        stdout,
        success: out.status.success(),
        status: out.status,
    })
}
