//! Idempotent installation of what the build and the tests need on a fresh Debian machine.
//! Each step checks first and prints what it installs.

use std::process::Command;

use anyhow::{Context, Result};

use crate::run as run_cmd;

/// Debian packages: clang, m4 and libelf-dev for libxdp-sys's configure; iproute2 for the netns
/// tests; pkg-config/make/zlib for the C builds.
const APT_PACKAGES: &[&str] = &[
    "clang",
    "m4",
    "libelf-dev",
    "zlib1g-dev",
    "pkg-config",
    "make",
    "iproute2",
];

/// bpf-linker 0.10.4 uses the invoking toolchain's LLVM; newer ones pick up Debian's LLVM 14.
const BPF_LINKER_VERSION: &str = "0.10.4";

pub fn ensure_all() -> Result<()> {
    apt_install(APT_PACKAGES)?;
    rust_src()?;
    bpf_linker()?;
    Ok(())
}

/// Installs the Debian packages that are missing (runs `apt-get update` once if any are).
pub fn apt_install(packages: &[&str]) -> Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| !dpkg_installed(p))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("xtask: installing Debian packages: {}", missing.join(" "));
    let sudo = !is_root();
    let mut update = Command::new(if sudo { "sudo" } else { "apt-get" });
    if sudo {
        update.arg("apt-get");
    }
    update.args(["update", "-qq"]);
    run_cmd(&mut update)?;
    let mut install = Command::new(if sudo { "sudo" } else { "apt-get" });
    if sudo {
        install.arg("apt-get");
    }
    install
        .env("DEBIAN_FRONTEND", "noninteractive")
        .args(["install", "-y", "-qq"])
        .args(&missing);
    run_cmd(&mut install)
}

fn dpkg_installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        .unwrap_or(false)
}

pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// rust-src for the pinned toolchain (the eBPF build compiles `core` from source).
fn rust_src() -> Result<()> {
    let out = Command::new("rustup")
        .args(["component", "list", "--installed"])
        .output()
        .context("running rustup")?;
    if String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.starts_with("rust-src"))
    {
        return Ok(());
    }
    eprintln!("xtask: installing rustup component rust-src");
    run_cmd(Command::new("rustup").args(["component", "add", "rust-src"]))
}

fn bpf_linker() -> Result<()> {
    let have = Command::new("bpf-linker")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains(BPF_LINKER_VERSION))
        .unwrap_or(false);
    if have {
        return Ok(());
    }
    eprintln!("xtask: installing bpf-linker {BPF_LINKER_VERSION} (about a minute)");
    let version = format!("bpf-linker@{BPF_LINKER_VERSION}");
    crate::cargo(&["install", &version, "--locked"])
}
