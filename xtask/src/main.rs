//! Project automation for sandbay.
//!
//! ```text
//! cargo xtask test          fmt check, clippy -D warnings, every test suite, cargo package; ends with "N passed, N failed, N skipped"
//! cargo xtask ci            `test` plus `cargo doc` with warnings denied
//! cargo xtask bench         benchmarks -> target/bench/report.{json,md}
//! cargo xtask docker-image  build the local test image sandbay/busybox:test
//! cargo xtask agent         build the static sandbay-agent (and the probe helper)
//! ```
//!
//! `test`, `ci` and `bench` build the agent first and hand its path to
//! the suites in `SANDBAY_AGENT` (unless it is set already), and point
//! `SANDBAY_IMAGE` (the CLI's Docker image) at the local test image.

mod agent;
mod bench;
mod docker_image;
mod testrun;

use std::process::ExitCode;

fn usage() -> ExitCode {
    eprintln!(
        "usage: cargo xtask <command>\n\n\
         commands:\n  \
         test          fmt check, clippy, every test suite; prints `N passed, N failed, N skipped`\n  \
         ci            test + rustdoc with warnings denied\n  \
         bench         run benchmarks, write target/bench/report.json and report.md\n  \
         docker-image  build the test image sandbay/busybox:test (idempotent)\n  \
         agent         build the static sandbay-agent and the probe helper"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let needs_agent = matches!(args.first(), Some(&("test" | "ci" | "bench")));
    if needs_agent && std::env::var_os("SANDBAY_IMAGE").is_none_or(|v| v.is_empty()) {
        // The CLI's Docker sandboxes (demo, mcp, serve) run the local test
        // image here: no registry is needed.
        // SAFETY: called at start, before this process starts any thread.
        unsafe { std::env::set_var("SANDBAY_IMAGE", docker_image::IMAGE) };
    }
    if let Err(e) = needs_agent.then(agent::prepare).unwrap_or(Ok(())) {
        eprintln!("xtask: {e}");
        return ExitCode::FAILURE;
    }
    match args.as_slice() {
        ["agent"] => agent::main(),
        ["test", rest @ ..] => testrun::run(testrun::Plan::test(rest)),
        ["ci", rest @ ..] => testrun::run(testrun::Plan::ci(rest)),
        ["bench", rest @ ..] => bench::main(rest),
        ["docker-image"] => testrun::docker_image(),
        _ => usage(),
    }
}
