//! Links the `mcp-gateway` binary with packed relative relocations (RELR)
//! where the linker offers them: the loader then reads a few KB of
//! relocations at start instead of ~600 KB, which stay resident otherwise
//! (idle RSS, docs/performance.md). Needs GNU ld 2.38+ or lld, and glibc
//! 2.36+ where the binary runs; without linker support the flag is left out.

use std::{env, io::Write, process::Command, process::Stdio};

const FLAG: &str = "-Wl,-z,pack-relative-relocs";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let linux_gnu = env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux")
        && env::var("CARGO_CFG_TARGET_ENV").as_deref() == Ok("gnu");
    if linux_gnu && linker_accepts(FLAG) {
        println!("cargo:rustc-link-arg-bins={FLAG}");
    }
}

/// Links an empty C program with `flag`, with the C compiler rustc links with.
fn linker_accepts(flag: &str) -> bool {
    let out = std::path::Path::new(&env::var("OUT_DIR").unwrap_or_default()).join("relr-probe");
    let Ok(mut cc) = Command::new("cc")
        .args(["-x", "c", "-", "-o"])
        .arg(&out)
        .arg(flag)
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
