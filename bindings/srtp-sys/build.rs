//! Build script for `srtp-sys`, written as a list of named steps (as `dpdk-sys/build.rs`):
//!
//! 1. [`find_srtp`]: ask pkg-config for `libsrtp2` (include paths, libraries); this also
//!    tells cargo to link it (dynamically).
//! 2. [`generate_bindings`]: bindgen over `bindings.h` with regex allowlists.
//!
//! libsrtp2 has no `static inline` functions we need, so there is no C shim.

use std::env;
use std::path::{Path, PathBuf};

const NOT_FOUND: &str = "libsrtp2 not found by pkg-config (libsrtp2). On Debian: apt-get \
                         install libsrtp2-dev libclang1-14 libclang-common-14-dev pkg-config";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=bindings.h");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
    let include_paths = find_srtp();
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    generate_bindings(&include_paths, &out_dir);
}

/// Step 1: locate libsrtp2 through pkg-config and emit its link flags.
fn find_srtp() -> Vec<PathBuf> {
    let lib = pkg_config::Config::new()
        .atleast_version("2.0")
        .probe("libsrtp2")
        .unwrap_or_else(|e| panic!("{NOT_FOUND}\n(pkg-config said: {e})"));
    lib.include_paths
}

/// Step 2: run bindgen over `bindings.h`, keeping only libsrtp's own names.
fn generate_bindings(include_paths: &[PathBuf], out_dir: &Path) {
    let mut builder = bindgen::Builder::default()
        .header("bindings.h")
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .allowlist_function("srtp_.*")
        .allowlist_type("srtp_.*")
        .allowlist_var("SRTP_.*")
        .derive_debug(true)
        .derive_default(true)
        .layout_tests(true)
        .generate_comments(true)
        .prepend_enum_name(false)
        .default_enum_style(bindgen::EnumVariation::Consts);
    for inc in include_paths {
        builder = builder.clang_arg(format!("-I{}", inc.display()));
    }
    let bindings = builder
        .generate()
        .unwrap_or_else(|e| panic!("bindgen failed on bindings.h: {e}"));
    bindings
        .write_to_file(out_dir.join("bindings.rs"))
        .expect("writing bindings.rs to OUT_DIR");
}
