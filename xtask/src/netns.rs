//! Network namespaces for the demo (and anything else xtask builds): created with a unique
//! name, removed on drop (also when the caller fails or panics), commands run inside with
//! `ip netns exec`. Deleting a namespace removes the veth ends inside it.

use std::ffi::OsStr;
use std::process::Command;

use anyhow::{Context, Result, bail};

/// A network namespace that is deleted when dropped.
#[derive(Debug)]
pub struct Namespace {
    name: String,
}

impl Namespace {
    pub fn create(name: &str) -> Result<Namespace> {
        // A leftover of the same name (a killed earlier run with the same pid) goes first.
        let _ = Command::new("ip")
            .args(["netns", "del", name])
            .stderr(std::process::Stdio::null())
            .status();
        ip(&["netns", "add", name])?;
        Ok(Namespace {
            name: name.to_owned(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// A command that runs inside the namespace.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(program);
        c
    }

    /// Runs a command inside the namespace to completion.
    pub fn run(&self, argv: &[&str]) -> Result<()> {
        let status = self
            .command(argv[0])
            .args(&argv[1..])
            .status()
            .with_context(|| format!("{argv:?}"))?;
        if !status.success() {
            bail!("in {}: {} failed with {status}", self.name, argv.join(" "));
        }
        Ok(())
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// `ip <args>` in the current namespace.
pub fn ip(args: &[&str]) -> Result<()> {
    let status = Command::new("ip")
        .args(args)
        .status()
        .context("running ip (iproute2)")?;
    if !status.success() {
        bail!("ip {} failed with {status}", args.join(" "));
    }
    Ok(())
}
