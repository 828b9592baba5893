//! `cargo xtask <command>`: the project's automation. It orchestrates (installs prerequisites, runs
//! cargo, builds test topologies); the eBPF object itself is built by `sipd/build.rs`.

mod bench;
mod demo;
mod netns;
mod setup;

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "sipd project automation")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install what building and testing needs (apt packages, rust-src, bpf-linker); idempotent.
    Setup,
    /// The main job: a UAC / sipd (AF_XDP) / UAS topology in network namespaces, real
    /// registrations and calls through sipd, a summary of what happened; then teardown.
    Demo {
        /// Seconds of calls.
        #[arg(long, default_value_t = 5)]
        seconds: u32,
        /// Calls per second offered.
        #[arg(long, default_value_t = 500)]
        rate: u32,
        /// sipd's datapath: afxdp, socket or auto.
        #[arg(long, default_value = "afxdp")]
        mode: String,
    },
    /// The whole test suite: setup, rustfmt, clippy (-D warnings), every test.
    Test {
        /// Skip the formatting and lint checks (only run the tests).
        #[arg(long)]
        no_lint: bool,
    },
    /// Throughput and latency of sipd (AF_XDP and sockets) beside Kamailio and the AF_XDP limit,
    /// in network namespaces on this machine (root). Writes target/bench/<timestamp>.json + .svg.
    Bench(bench::BenchArgs),
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let root = workspace_root();
    std::env::set_current_dir(&root).context("cd to the workspace root")?;
    match cli.command {
        Cmd::Setup => setup::ensure_all(),
        Cmd::Test { no_lint } => test(no_lint),
        Cmd::Bench(args) => bench::run(&root, args),
        Cmd::Demo {
            seconds,
            rate,
            mode,
        } => demo::run(&demo::DemoOptions {
            seconds,
            rate,
            mode,
        }),
    }
}

fn test(no_lint: bool) -> Result<()> {
    setup::ensure_all()?;
    if !no_lint {
        cargo(&["fmt", "--all", "--check"])?;
        cargo(&[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ])?;
    }
    // Libraries, binaries and integration tests. Benches are compiled by clippy above and run
    // with `cargo bench`: in test mode they would build their large fixtures in a debug build.
    cargo(&["test", "--workspace", "--lib", "--bins", "--tests"])?;
    cargo(&["test", "--workspace", "--doc"])?;
    Ok(())
}

/// Runs `cargo <args>` from the workspace root, echoing the command line.
pub(crate) fn cargo(args: &[&str]) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    run(Command::new(cargo).args(args))
}

/// Runs a command to completion, echoing it, failing on a non-zero exit.
pub(crate) fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("xtask: $ {}", display(cmd));
    let status = cmd
        .status()
        .with_context(|| format!("starting {}", display(cmd)))?;
    if !status.success() {
        bail!("{} failed with {status}", display(cmd));
    }
    Ok(())
}

fn display(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

fn workspace_root() -> PathBuf {
    let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    here.parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}
