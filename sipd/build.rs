//! Builds the XDP program (`sipd-ebpf`) for `bpfel-unknown-none` with aya-build; `sipd::xdp`
//! embeds the object from `OUT_DIR/sipd-xdp`.
//!
//! The eBPF build compiles `core` from source (`-Z build-std=core`). On the pinned stable toolchain
//! that needs `RUSTC_BOOTSTRAP=1`, which is set here, for the inner cargo only, so nobody has to
//! export it. It also needs `bpf-linker` and the toolchain's `rust-src`: `cargo xtask setup`
//! installs both.

use std::env;
use std::path::PathBuf;

use anyhow::{Context as _, anyhow, bail};
use aya_build::{Package, Toolchain};

fn main() -> anyhow::Result<()> {
    println!("cargo:rerun-if-env-changed=PATH");
    let skip = env::var("AYA_BUILD_SKIP").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
    if !skip {
        let linker = find_in_path("bpf-linker").ok_or_else(|| {
            anyhow!(
                "bpf-linker not found in PATH: building the XDP program (sipd-ebpf) needs it. \
                 Run `cargo xtask setup` (installs bpf-linker 0.10.4, rust-src and the C \
                 packages), or set AYA_BUILD_SKIP=1 to build without the XDP program (the \
                 datapath then refuses to start)"
            )
        })?;
        println!("cargo:rerun-if-changed={}", linker.display());
    }

    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").context("CARGO_MANIFEST_DIR")?);
    let ebpf_dir = manifest_dir
        .parent()
        .context("sipd lives one level below the workspace root")?
        .join("sipd-ebpf");
    if !ebpf_dir.join("Cargo.toml").is_file() {
        bail!("{} not found", ebpf_dir.display());
    }
    let root_dir = ebpf_dir
        .to_str()
        .context("workspace path is not UTF-8")?
        .to_owned();

    // The toolchain running this build (rustup sets RUSTUP_TOOLCHAIN for the proxies): the one
    // pinned in rust-toolchain.toml, whose LLVM bpf-linker 0.10.4 loads.
    println!("cargo:rerun-if-env-changed=RUSTUP_TOOLCHAIN");
    let toolchain = env::var("RUSTUP_TOOLCHAIN").unwrap_or_else(|_| "1.95.0".to_owned());
    if env::var_os("RUSTC_BOOTSTRAP").is_none() {
        // SAFETY: the build script is single-threaded here; nothing else reads the environment
        // concurrently. The variable is inherited by the inner `cargo build` for the eBPF crate.
        #[allow(unsafe_code)]
        unsafe {
            env::set_var("RUSTC_BOOTSTRAP", "1")
        };
    }

    aya_build::build_ebpf(
        [Package {
            name: "sipd-ebpf",
            root_dir: &root_dir,
            ..Default::default()
        }],
        Toolchain::Custom(&toolchain),
    )
    .context(
        "building the XDP program failed (if the error mentions bpf-linker, rust-src or \
         build-std, run `cargo xtask setup`)",
    )?;

    // With AYA_BUILD_SKIP=1 aya-build builds nothing: embed an empty object, which
    // `sipd::xdp` reports as "built without the XDP program" at run time.
    // Overwrite, so an object from an earlier build in the same OUT_DIR is not embedded.
    let object = PathBuf::from(env::var_os("OUT_DIR").context("OUT_DIR")?).join("sipd-xdp");
    if skip || !object.exists() {
        std::fs::write(&object, b"").context("writing the empty XDP object")?;
    }
    Ok(())
}

fn find_in_path(program: &str) -> Option<PathBuf> {
    env::split_paths(&env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}
