//! Runs the `sandbay mcp` command module (from sandbay-cli) as a small
//! stand-alone binary: `mcp_stdio --backend state|fs[=DIR]|docker`.
//!
//! The MCP client test in `tests/mcp/` uses it when the `sandbay` binary
//! has no `mcp` subcommand.

use std::process::ExitCode;

#[path = "../../sandbay-cli/src/mcp.rs"]
mod mcp;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let spec = match args.as_slice() {
        [flag, spec] if flag == "--backend" => spec.clone(),
        [arg] if arg.starts_with("--backend=") => arg["--backend=".len()..].to_owned(),
        [] => "state".to_owned(),
        _ => {
            eprintln!("usage: mcp_stdio --backend state|fs[=DIR]|docker");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mcp_stdio: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(mcp::run(&spec)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sandbay mcp: {e}");
            ExitCode::FAILURE
        }
    }
}
