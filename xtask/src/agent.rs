//! `cargo xtask agent`: builds the static `sandbay-agent` (and the `probe`
//! helper the isolation tests run inside containers) for
//! x86_64-unknown-linux-gnu, and points `SANDBAY_AGENT` / `SANDBAY_PROBE`
//! at them for everything this process starts (test suites, benches).

use std::path::PathBuf;
use std::process::{Command, ExitCode};

use crate::testrun::workspace_root;

const TARGET: &str = "x86_64-unknown-linux-gnu";

/// Builds the agent and the probe; their paths.
pub(crate) fn build() -> Result<(PathBuf, PathBuf), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(workspace_root())
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .args([
            "build",
            "--release",
            "--target",
            TARGET,
            "-p",
            "sandbay-agent",
            "--bin",
            "sandbay-agent",
            "--example",
            "probe",
        ])
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err("building the static sandbay-agent failed".into());
    }
    let dir = workspace_root().join("target").join(TARGET).join("release");
    Ok((
        dir.join("sandbay-agent"),
        dir.join("examples").join("probe"),
    ))
}

/// Builds them and exports their paths to the children of this process,
/// unless `SANDBAY_AGENT` is already set.
pub(crate) fn prepare() -> Result<(), String> {
    if std::env::var_os("SANDBAY_AGENT").is_some_and(|v| !v.is_empty()) {
        return Ok(());
    }
    let (agent, probe) = build()?;
    // SAFETY: called at start, before this process starts any thread.
    unsafe {
        std::env::set_var("SANDBAY_AGENT", &agent);
        std::env::set_var("SANDBAY_PROBE", &probe);
    }
    Ok(())
}

/// `cargo xtask agent`.
pub(crate) fn main() -> ExitCode {
    match build() {
        Ok((agent, probe)) => {
            println!("{}\n{}", agent.display(), probe.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("xtask agent: {e}");
            ExitCode::FAILURE
        }
    }
}
