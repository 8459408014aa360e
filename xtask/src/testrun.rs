//! `cargo xtask test` and `cargo xtask ci`: every check in one run, one
//! closing line `N passed, N failed, N skipped`.
//!
//! A skip is counted as a skip. A test that lacks a capability prints
//! `skipped: <reason>` (through `sandbay_testkit::skip`) and returns, which
//! libtest reports as passed; the tests run with `--show-output`, so the
//! captured output of every passed test is read here, and a test with such
//! a line counts as skipped, not passed. Ignored tests count as skipped
//! too. The skips are listed by reason before the closing line. Under CI
//! (`CI` = `true` or `1`) the skip helpers fail instead, and any skip line
//! that still reaches this runner fails the run.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

/// Which steps to run.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    lint: bool,
    doc: bool,
    extra: Vec<String>,
}

impl Plan {
    /// The test plan: lints and every suite. `--no-lint` skips fmt and
    /// clippy; other arguments go to `cargo test` (e.g. `-p sandbay-fs`).
    pub(crate) fn test(args: &[&str]) -> Plan {
        let lint = !args.contains(&"--no-lint");
        let extra = args
            .iter()
            .filter(|a| **a != "--no-lint")
            .map(|a| a.to_string())
            .collect();
        Plan {
            lint,
            doc: false,
            extra,
        }
    }

    /// The CI plan: the test plan plus rustdoc with warnings denied.
    pub(crate) fn ci(args: &[&str]) -> Plan {
        Plan {
            doc: true,
            ..Plan::test(args)
        }
    }
}

/// Running totals over all steps.
#[derive(Debug, Default)]
struct Tally {
    passed: u64,
    failed: u64,
    skipped: u64,
    failures: Vec<String>,
    /// Skipped tests by reason (capability skips and ignored tests).
    skips: BTreeMap<String, Vec<String>>,
    /// How many of the skips were capability skips (not `#[ignore]`).
    capability_skips: u64,
}

impl Tally {
    fn check(&mut self, name: &str, ok: bool) {
        if ok {
            self.passed += 1;
        } else {
            self.failed += 1;
            self.failures.push(name.to_string());
        }
    }

    fn skip(&mut self, reason: &str, what: &str) {
        self.skipped += 1;
        self.skips
            .entry(reason.to_string())
            .or_default()
            .push(what.to_string());
    }
}

/// Where the reader is in libtest's `--show-output` report of one binary.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Section {
    /// Test lines (`test x ... ok`).
    #[default]
    Tests,
    /// The captured output of passed tests (`---- name stdout ----` blocks).
    SuccessOutput,
    /// The list of passed tests.
    SuccessList,
    /// The failures' sections.
    Failures,
}

/// Reads libtest's output of one test binary after another.
#[derive(Debug, Default)]
struct Libtest {
    section: Section,
    current: Option<String>,
    /// Passed tests that printed a skip line, with the first reason.
    skipped: BTreeMap<String, String>,
    /// Ignored tests with their reason.
    ignored: Vec<(String, String)>,
}

impl Libtest {
    /// Takes one line; returns whether to echo it (the output of passed
    /// tests is read, not shown).
    fn line(&mut self, tally: &mut Tally, line: &str) -> bool {
        if let Some((p, f, i)) = parse_result_line(line) {
            let skipped = std::mem::take(&mut self.skipped);
            let ignored = std::mem::take(&mut self.ignored);
            let capability = skipped.len() as u64;
            tally.passed += p.saturating_sub(capability);
            tally.failed += f;
            tally.capability_skips += capability;
            for (test, reason) in &skipped {
                tally.skip(reason, test);
            }
            for (test, reason) in &ignored {
                tally.skip(&format!("ignored: {reason}"), test);
            }
            // ignored tests libtest counted but whose line was not read
            for _ in (ignored.len() as u64)..i {
                tally.skip("ignored", "?");
            }
            *self = Libtest::default();
            return true;
        }
        if (line.starts_with("running ") && line.ends_with(" tests")) || line == "running 1 test" {
            *self = Libtest::default();
            return true;
        }
        if line == "successes:" {
            self.section = match self.section {
                Section::Tests => Section::SuccessOutput,
                _ => Section::SuccessList,
            };
            return false;
        }
        if line == "failures:" {
            self.section = Section::Failures;
            return true;
        }
        match self.section {
            Section::Tests => {
                if let Some(name) = line
                    .strip_prefix("test ")
                    .and_then(|l| l.strip_suffix(" ... FAILED"))
                {
                    tally.failures.push(name.to_string());
                }
                if let Some((name, rest)) = line
                    .strip_prefix("test ")
                    .and_then(|l| l.split_once(" ... ignored"))
                {
                    // rustdoc names a doc test `file - item (line N)`; an
                    // ignored one is a block marked `ignore` (text, not run)
                    let doc_block = name.contains(" - ") && name.ends_with(')');
                    let reason = rest.strip_prefix(", ").unwrap_or(if doc_block {
                        "a doc block marked ignore (shown, not compiled)"
                    } else {
                        "no reason given"
                    });
                    self.ignored.push((name.to_string(), reason.to_string()));
                }
                true
            }
            Section::SuccessOutput => {
                if let Some(name) = line
                    .strip_prefix("---- ")
                    .and_then(|l| l.strip_suffix(" stdout ----"))
                {
                    self.current = Some(name.to_string());
                } else if let (Some(test), Some(reason)) = (
                    self.current.as_ref(),
                    line.trim_start().strip_prefix(SKIP_PREFIX),
                ) {
                    self.skipped
                        .entry(test.clone())
                        .or_insert_with(|| reason.trim().to_string());
                }
                false
            }
            Section::SuccessList => false,
            Section::Failures => true,
        }
    }
}

use sandbay_testkit::skip::{SKIP_PREFIX, in_ci};

pub(crate) fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(workspace_root());
    cmd
}

fn banner(title: &str) {
    println!("\n==> {title}");
}

/// Runs a command, inheriting output; true on success.
fn status(mut cmd: Command) -> bool {
    match cmd.status() {
        Ok(s) => s.success(),
        Err(e) => {
            eprintln!("xtask: cannot run {cmd:?}: {e}");
            false
        }
    }
}

/// Parses libtest's `test result: ok. 3 passed; 1 failed; 2 ignored; ...`.
fn parse_result_line(line: &str) -> Option<(u64, u64, u64)> {
    let rest = line.trim().strip_prefix("test result: ")?;
    let mut passed = None;
    let mut failed = None;
    let mut ignored = 0;
    for part in rest.split(';') {
        let words: Vec<&str> = part.split_whitespace().collect();
        let n = |i: usize| words.get(i).and_then(|w| w.parse::<u64>().ok());
        match words.as_slice() {
            [_, _, "passed"] => passed = n(1),
            [_, "passed"] => passed = n(0),
            [_, "failed"] => failed = n(0),
            [_, "ignored"] => ignored = n(0).unwrap_or(0),
            _ => {}
        }
    }
    Some((passed?, failed?, ignored))
}

/// Runs `cargo test` with `--show-output`, streaming its output (without
/// the captured output of passed tests) and adding its counts.
fn cargo_test(tally: &mut Tally, extra: &[String]) {
    let mut cmd = cargo();
    cmd.args(["test", "--no-fail-fast"]);
    let (cargo_args, test_args) = match extra.iter().position(|a| a == "--") {
        Some(i) => (&extra[..i], &extra[i + 1..]),
        None => (extra, &[][..]),
    };
    if !cargo_args
        .iter()
        .any(|a| a == "-p" || a.starts_with("--package"))
    {
        cmd.arg("--workspace");
    }
    cmd.args(cargo_args);
    cmd.args(["--", "--show-output"]);
    cmd.args(test_args);
    cmd.stdout(Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("xtask: cannot run cargo test: {e}");
            tally.check("cargo test", false);
            return;
        }
    };
    let stdout = child.stdout.take().expect("piped stdout");
    let failed_before = tally.failed;
    let mut reader = Libtest::default();
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        if reader.line(tally, &line) {
            println!("{line}");
        }
    }
    let ok = child.wait().map(|s| s.success()).unwrap_or(false);
    if !ok && tally.failed == failed_before {
        // a build failure or a crashed test binary: no result line said so
        tally.check("cargo test (build or harness failure)", false);
    }
}

/// An external suite script (e.g. the MCP client test) that prints its own
/// `N passed, N failed` line.
fn script_suite(tally: &mut Tally, name: &str, script: &Path) {
    banner(name);
    if !script.exists() {
        println!("{name}: {} is missing", script.display());
        tally.check(name, false);
        return;
    }
    let mut cmd = Command::new("bash");
    cmd.arg(script).current_dir(workspace_root());
    cmd.stdout(Stdio::piped());
    let Ok(mut child) = cmd.spawn() else {
        tally.check(name, false);
        return;
    };
    let stdout = child.stdout.take().expect("piped stdout");
    let mut reported_failures = 0;
    let mut counted = false;
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        println!("{line}");
        if let Some(reason) = line.strip_prefix(SKIP_PREFIX) {
            tally.capability_skips += 1;
            tally.skip(reason.trim(), name);
        }
        if let Some((p, f)) = parse_plain_line(&line) {
            tally.passed += p;
            tally.failed += f;
            reported_failures += f;
            if f > 0 {
                tally.failures.push(format!("{name}: {f} failed"));
            }
            counted = true;
        }
    }
    let ok = child.wait().map(|s| s.success()).unwrap_or(false);
    if !counted || (!ok && reported_failures == 0) {
        // no count printed, or a failing exit that no count explains
        tally.check(name, ok && counted);
    }
}

/// Parses `N passed, N failed` (optionally after one `word:`).
fn parse_plain_line(line: &str) -> Option<(u64, u64)> {
    let line = line.trim();
    let line = match line.split_once(": ") {
        Some((head, rest)) if !head.contains(' ') => rest,
        _ => line,
    };
    let (a, b) = line.split_once(", ")?;
    let passed = a.strip_suffix(" passed")?.parse().ok()?;
    let b = b.split(", ").next()?;
    let failed = b.strip_suffix(" failed")?.parse().ok()?;
    Some((passed, failed))
}

/// `cargo deny check` for licences, bans and sources (`deny.toml`); it
/// fetches the crates it reads licence files from (the registry is
/// reachable). Advisories need the advisory database from GitHub, so they
/// are left to `cargo deny check advisories` where that can be fetched. Without
/// `cargo-deny` installed the step is skipped, and fails under `CI=true`
/// (`.ci/run` installs it).
fn deny_check(tally: &mut Tally) {
    banner("cargo deny check licenses bans sources");
    let installed = cargo()
        .args(["deny", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !installed {
        let reason = "cargo-deny is not installed (`cargo install --locked cargo-deny`)";
        if in_ci() {
            println!("{reason}, under CI");
            tally.check("cargo deny", false);
        } else {
            println!("{SKIP_PREFIX}{reason}");
            tally.capability_skips += 1;
            tally.skip(reason, "cargo deny");
        }
        return;
    }
    let mut cmd = cargo();
    cmd.args(["deny", "check", "licenses", "bans", "sources"]);
    tally.check("cargo deny", status(cmd));
}

/// Each published crate builds alone with no default features and with
/// each of its features on its own, so no feature leans on another that
/// the workspace build happens to switch on (a `cargo hack
/// --each-feature` without the extra tool).
fn feature_checks(tally: &mut Tally) {
    banner("cargo check: each published crate, each feature alone");
    let out = cargo()
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .stderr(Stdio::inherit())
        .output();
    let packages = match out
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| serde_json::from_slice::<serde_json::Value>(&o.stdout).ok())
    {
        Some(meta) => meta["packages"].as_array().cloned().unwrap_or_default(),
        None => {
            tally.check("cargo metadata", false);
            return;
        }
    };
    for package in packages {
        // `publish = false` appears as an empty list of registries
        if package["publish"].as_array().is_some_and(Vec::is_empty) {
            continue;
        }
        let Some(name) = package["name"].as_str() else {
            continue;
        };
        let mut features: Vec<String> = package["features"]
            .as_object()
            .map(|f| f.keys().filter(|k| *k != "default").cloned().collect())
            .unwrap_or_default();
        features.sort();
        let sets = std::iter::once(None).chain(features.iter().map(Some));
        for feature in sets {
            let mut cmd = cargo();
            cmd.args(["check", "--quiet", "-p", name, "--no-default-features"]);
            let label = match feature {
                Some(f) => {
                    cmd.args(["--features", f]);
                    format!("{name} --features {f}")
                }
                None => format!("{name} --no-default-features"),
            };
            println!("check {label}");
            tally.check(&format!("cargo check {label}"), status(cmd));
        }
    }
}

/// `cargo package` of every published crate, verification builds
/// included: each `.crate` builds on its own from what it ships, against
/// the other crates as packaged (`--allow-dirty`: a working tree with
/// changes packages them as they are).
fn package(tally: &mut Tally) {
    banner("cargo package --workspace (verified)");
    forget_unpacked_packages();
    let mut cmd = cargo();
    cmd.args([
        "package",
        "--workspace",
        "--exclude",
        "xtask",
        "--exclude",
        "sandbay-tests",
        "--allow-dirty",
    ]);
    cmd.env("CARGO_TARGET_DIR", package_target());
    tally.check("cargo package", status(cmd));
    // a few GiB of verification builds: not kept
    let _ = std::fs::remove_dir_all(package_target());
}

/// Where `cargo package` builds: a target directory of its own, emptied
/// before each run (see [`forget_unpacked_packages`]).
fn package_target() -> PathBuf {
    workspace_root().join("target/package-verify")
}

/// Forgets what an earlier `cargo package` run left: this workspace's
/// crates unpacked from its temporary registry into
/// `$CARGO_HOME/registry/src`, and the verification builds. Cargo neither
/// unpacks a version it has unpacked before nor rebuilds a registry crate
/// whose version did not change, so a verification build would otherwise
/// use the earlier sources of a crate. Only local registries (their
/// directory names start with `-`) and only `sandbay*` crates are
/// touched there.
fn forget_unpacked_packages() {
    let _ = std::fs::remove_dir_all(package_target());
    let home = std::env::var_os("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".cargo")));
    let Some(src) = home.map(|h| h.join("registry/src")) else {
        return;
    };
    let Ok(registries) = std::fs::read_dir(&src) else {
        return;
    };
    for registry in registries.flatten() {
        if !registry.file_name().to_string_lossy().starts_with('-') {
            continue;
        }
        let Ok(crates) = std::fs::read_dir(registry.path()) else {
            continue;
        };
        for krate in crates.flatten() {
            if krate.file_name().to_string_lossy().starts_with("sandbay") {
                let _ = std::fs::remove_dir_all(krate.path());
            }
        }
    }
}

/// Runs the plan and prints the closing line.
pub(crate) fn run(plan: Plan) -> ExitCode {
    let started = Instant::now();
    let mut tally = Tally::default();
    if plan.lint {
        banner("cargo fmt --check");
        let mut cmd = cargo();
        cmd.args(["fmt", "--all", "--", "--check"]);
        tally.check("cargo fmt --check", status(cmd));

        banner("cargo clippy --all-targets -D warnings");
        let mut cmd = cargo();
        cmd.args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]);
        tally.check("cargo clippy", status(cmd));
        feature_checks(&mut tally);
        deny_check(&mut tally);
    }
    if plan.doc {
        banner("cargo doc (warnings denied)");
        let mut cmd = cargo();
        cmd.args(["doc", "--workspace", "--no-deps"]);
        cmd.env("RUSTDOCFLAGS", "-D warnings");
        tally.check("cargo doc", status(cmd));
    }
    banner("cargo test");
    cargo_test(&mut tally, &plan.extra);
    if plan.extra.is_empty() {
        // suites behind optional features
        banner("cargo test: rig adapter (feature rig-test-utils)");
        cargo_test(
            &mut tally,
            &[
                "-p",
                "sandbay-middleware",
                "--features",
                "rig-test-utils",
                "--test",
                "rig",
            ]
            .map(String::from),
        );
        banner("cargo test: the README's examples (sandbay --features full --doc)");
        cargo_test(
            &mut tally,
            &["-p", "sandbay", "--features", "full", "--doc"].map(String::from),
        );
        script_suite(
            &mut tally,
            "mcp-client",
            &workspace_root().join("tests/mcp/run.sh"),
        );
        package(&mut tally);
    }
    println!("\n==> done in {:.0}s", started.elapsed().as_secs_f64());
    if !tally.failures.is_empty() {
        println!("failures:");
        for f in &tally.failures {
            println!("    {f}");
        }
    }
    if in_ci() && tally.capability_skips > 0 {
        // the skip helpers fail under CI: a skip line here escaped them
        tally.check(
            &format!(
                "{} capability skips under CI (nothing may be skipped there)",
                tally.capability_skips
            ),
            false,
        );
    }
    if !tally.skips.is_empty() {
        println!("skipped, by reason:");
        for (reason, tests) in &tally.skips {
            let shown: Vec<&str> = tests.iter().take(3).map(String::as_str).collect();
            let more = if tests.len() > shown.len() {
                ", ..."
            } else {
                ""
            };
            println!("    {} x {reason}", tests.len());
            println!("        {}{more}", shown.join(", "));
        }
    }
    println!(
        "{} passed, {} failed, {} skipped",
        tally.passed, tally.failed, tally.skipped
    );
    if tally.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `cargo xtask docker-image`.
pub(crate) fn docker_image() -> ExitCode {
    match crate::docker_image::build_test_image() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask docker-image: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_libtest_lines() {
        assert_eq!(
            parse_result_line(
                "test result: ok. 26 passed; 0 failed; 3 ignored; 0 measured; 0 filtered out; finished in 0.04s"
            ),
            Some((26, 0, 3))
        );
        assert_eq!(
            parse_result_line("test result: FAILED. 25 passed; 1 failed; 0 ignored; 0 measured"),
            Some((25, 1, 0))
        );
        assert_eq!(parse_result_line("running 3 tests"), None);
    }

    /// A `--show-output` report with a passed test, a skipped one, an
    /// ignored one and a failure.
    const REPORT: &str = "
running 5 tests
test a ... ok
test b ... ok
test c ... ignored, the backend does not declare the execute capability
test e ... ok
test d ... FAILED

successes:

---- b stdout ----
note: something
skipped: no Docker daemon at unix:///x (refused)

---- e stdout ----
skipped: no Docker daemon at unix:///x (refused)
skipped: a second reason


successes:
    a
    b
    e

failures:

---- d stdout ----
skipped: printed by a test that then failed
thread 'd' panicked

failures:
    d

test result: FAILED. 3 passed; 1 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s
";

    #[test]
    fn skip_lines_make_skips_not_passes() {
        let mut tally = Tally::default();
        let mut reader = Libtest::default();
        let shown: Vec<&str> = REPORT
            .lines()
            .filter(|l| reader.line(&mut tally, l))
            .collect();
        assert_eq!(
            (tally.passed, tally.failed, tally.skipped),
            (1, 1, 3),
            "{tally:?}"
        );
        assert_eq!(tally.capability_skips, 2);
        assert_eq!(tally.failures, ["d"]);
        assert_eq!(
            tally.skips["no Docker daemon at unix:///x (refused)"],
            ["b", "e"]
        );
        assert_eq!(
            tally.skips["ignored: the backend does not declare the execute capability"],
            ["c"]
        );
        assert!(!shown.iter().any(|l| l.contains("note: something")));
        assert!(shown.iter().any(|l| l.contains("thread 'd' panicked")));
    }

    #[test]
    fn parses_plain_lines() {
        assert_eq!(parse_plain_line("12 passed, 0 failed"), Some((12, 0)));
        assert_eq!(
            parse_plain_line("mcp: 3 passed, 1 failed, 2 skipped"),
            Some((3, 1))
        );
        assert_eq!(parse_plain_line("hello world"), None);
    }
}
