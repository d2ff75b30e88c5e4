//! Builds `berth-exec`, the sealed exec stub (`src/sys/exec_stub.rs`): a static `no_std`
//! executable of a few KB that the crate embeds and execs from a sealed memfd (see
//! `sys::exec_stub`'s docs for why). It is compiled by calling `$RUSTC` directly, for the
//! crate's target, with no C library and no start files; it needs only a C linker driver
//! (`cc`, or the target's `CARGO_TARGET_<TRIPLE>_LINKER`), as every Rust binary does.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let src = "src/sys/exec_stub.rs";
    println!("cargo:rerun-if-changed={src}");
    println!("cargo:rerun-if-changed=build.rs");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let target = env::var("TARGET").expect("cargo sets TARGET");
    let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    if arch != "x86_64" && arch != "aarch64" {
        panic!("berth-runtime's exec stub supports x86_64 and aarch64, not {arch}");
    }
    let mut cmd = Command::new(rustc);
    cmd.args([
        "--edition=2021",
        "--crate-type=bin",
        "--crate-name=berth_exec",
        "--target",
        &target,
        "-Cpanic=abort",
        "-Copt-level=s",
        "-Cdebuginfo=0",
        "-Cstrip=symbols",
        "-Crelocation-model=static",
        "-Ccodegen-units=1",
        "-Clink-arg=-nostartfiles",
        "-Clink-arg=-nostdlib",
        "-Clink-arg=-static",
        "-Clink-arg=-Wl,--build-id=none",
        "-Clink-arg=-Wl,-z,noexecstack",
    ]);
    // A cross build names its linker the way cargo reads it.
    let linker_var = format!(
        "CARGO_TARGET_{}_LINKER",
        target.to_uppercase().replace(['-', '.'], "_")
    );
    println!("cargo:rerun-if-env-changed={linker_var}");
    if let Some(linker) = env::var_os(&linker_var) {
        let mut arg = std::ffi::OsString::from("-Clinker=");
        arg.push(linker);
        cmd.arg(arg);
    }
    let bin = out.join("berth-exec");
    cmd.arg("-o").arg(&bin).arg(src);
    let status = cmd.status().expect("run rustc for the exec stub");
    assert!(status.success(), "building the exec stub ({src}) failed");
}
