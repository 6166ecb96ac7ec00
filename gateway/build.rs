//! Link flags for the `mcp-gateway` binary that keep its idle memory small
//! (docs/performance.md, "Idle RSS"):
//!
//! - packed relative relocations (RELR), where the linker offers them: the
//!   loader then reads a few KB of relocations at start instead of ~600 KB,
//!   which stay resident otherwise. Needs GNU ld 2.38+ or lld, and glibc
//!   2.36+ where the binary runs.
//! - with lld (rustc's own, as rustc links by default on x86_64 Linux), the
//!   functions the gateway runs, listed in `link-order.txt`, placed first
//!   and together: the kernel maps code in 64 KB runs around each page
//!   fault, so code run at start spread over the whole text made most of it
//!   resident. `make link-order` regenerates the list from a callgrind run;
//!   names no longer in the binary are skipped, so a stale list costs memory,
//!   never correctness.
//!
//! Each flag is probed by linking an empty C program with it first, and
//! left out where that fails.

use std::{
    env,
    io::Write,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

const RELR: &str = "-Wl,-z,pack-relative-relocs";
const ORDER_FILE: &str = "link-order.txt";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed={ORDER_FILE}");
    let linux_gnu = env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux")
        && env::var("CARGO_CFG_TARGET_ENV").as_deref() == Ok("gnu");
    if !linux_gnu {
        return;
    }
    let mut flags: Vec<String> = Vec::new();
    if let Some(lld) = rust_lld_dir() {
        let order = Path::new(&env::var("CARGO_MANIFEST_DIR").unwrap_or_default()).join(ORDER_FILE);
        let with_lld = [
            "-fuse-ld=lld".to_string(),
            format!("-B{}", lld.display()),
            format!("-Wl,--symbol-ordering-file={}", order.display()),
            "-Wl,--no-warn-symbol-ordering".to_string(),
        ];
        if order.exists() && links_with(&with_lld) {
            flags.extend(with_lld);
        }
    }
    let mut with_relr = flags.clone();
    with_relr.push(RELR.to_string());
    if links_with(&with_relr) {
        flags = with_relr;
    }
    for f in flags {
        println!("cargo:rustc-link-arg-bins={f}");
    }
}

/// The directory of rustc's `ld.lld` wrapper for `cc -fuse-ld=lld`.
fn rust_lld_dir() -> Option<PathBuf> {
    let rustc = env::var("RUSTC").ok()?;
    let target = env::var("TARGET").ok()?;
    let out = Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()?;
    let sysroot = String::from_utf8(out.stdout).ok()?;
    let dir = Path::new(sysroot.trim())
        .join("lib/rustlib")
        .join(target)
        .join("bin/gcc-ld");
    dir.join("ld.lld").exists().then_some(dir)
}

/// Links an empty C program with `flags`, with the C compiler rustc links with.
fn links_with(flags: &[String]) -> bool {
    let out = Path::new(&env::var("OUT_DIR").unwrap_or_default()).join("link-probe");
    let Ok(mut cc) = Command::new("cc")
        .args(["-x", "c", "-", "-o"])
        .arg(&out)
        .args(flags)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    else {
        return false;
    };
    let wrote = cc
        .stdin
        .take()
        .is_some_and(|mut s| s.write_all(b"int main(void) { return 0; }\n").is_ok());
    cc.wait().is_ok_and(|s| s.success()) && wrote
}
