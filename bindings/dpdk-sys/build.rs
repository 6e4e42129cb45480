//! Build script for `dpdk-sys`, written as a list of named steps (rust-dpdk `dpdk-sys/build.rs`):
//!
//! 1. [`check_os`]: DPDK is Linux-only here.
//! 2. [`find_dpdk`]: ask pkg-config for `libdpdk` (include paths, the "other" cflags such as
//!    `-include rte_config.h -march=corei7`, and the libraries).
//! 3. [`generate_bindings`]: bindgen over `bindings.h` with regex allowlists.
//! 4. [`compile_shim`]: `cc` compiles `shim.c` (wrappers for `static inline` functions).
//! 5. [`link`]: dynamic link against DPDK's shared libraries.
//!
//! The same include paths and cflags go to BOTH bindgen and cc, so the struct layouts bindgen
//! sees are the ones the shim is compiled against.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const NOT_FOUND: &str = "DPDK not found by pkg-config (libdpdk). On Debian: apt-get install \
                         libdpdk-dev libclang1-14 libclang-common-14-dev pkg-config";

/// Types that are `__rte_packed` yet contain an `__rte_aligned` member (or otherwise defeat
/// rustc's layout rules); bindgen emits them as opaque byte blobs.
const OPAQUE_TYPES: &[&str] = &[
    "rte_arp_ipv4",
    "rte_arp_hdr",
    "rte_l2tpv2_combined_msg_hdr",
    "rte_gtp_psc_generic_hdr",
];

/// What pkg-config told us about `libdpdk`.
struct Dpdk {
    /// `-I` directories.
    include_paths: Vec<PathBuf>,
    /// `--cflags-only-other`, e.g. `-include rte_config.h -march=corei7`.
    other_cflags: Vec<String>,
    /// `-L` directories.
    link_paths: Vec<PathBuf>,
    /// `-l` names, in pkg-config's order.
    libs: Vec<String>,
}

fn main() {
    check_os();
    let dpdk = find_dpdk();
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    generate_bindings(&dpdk, &out_dir);
    compile_shim(&dpdk);
    link(&dpdk);
}

/// Step 1: refuse non-Linux targets early with a readable message.
fn check_os() {
    let os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os != "linux" {
        panic!("dpdk-sys supports Linux only (target_os = {os:?})");
    }
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=bindings.h");
    println!("cargo:rerun-if-changed=shim.h");
    println!("cargo:rerun-if-changed=shim.c");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
}

/// Step 2: locate DPDK through pkg-config `libdpdk`.
fn find_dpdk() -> Dpdk {
    let lib = pkg_config::Config::new()
        .cargo_metadata(false)
        .env_metadata(true)
        .probe("libdpdk")
        .unwrap_or_else(|e| panic!("{NOT_FOUND}\n(pkg-config said: {e})"));
    let other = Command::new(env::var("PKG_CONFIG").unwrap_or_else(|_| "pkg-config".into()))
        .args(["--cflags-only-other", "libdpdk"])
        .output()
        .unwrap_or_else(|e| panic!("{NOT_FOUND}\n(running pkg-config failed: {e})"));
    if !other.status.success() {
        panic!("{NOT_FOUND}\n({})", String::from_utf8_lossy(&other.stderr));
    }
    let other_cflags = split_flags(&String::from_utf8_lossy(&other.stdout));
    Dpdk {
        include_paths: lib.include_paths,
        other_cflags,
        link_paths: lib.link_paths,
        libs: lib.libs,
    }
}

/// Splits pkg-config output into flags, keeping `-include FILE` as two separate arguments.
fn split_flags(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_owned).collect()
}

/// Step 3: run bindgen over `bindings.h`.
fn generate_bindings(dpdk: &Dpdk, out_dir: &Path) {
    let mut builder = bindgen::Builder::default()
        .header("bindings.h")
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .allowlist_function("rte_.*")
        .allowlist_function("_rte_.*")
        .allowlist_type("rte_.*")
        .allowlist_type("_rte_.*")
        .allowlist_var("rte_.*")
        .allowlist_var("RTE_.*")
        .allowlist_var("_rte_.*")
        .derive_debug(true)
        .derive_default(true)
        .impl_debug(false)
        .layout_tests(true)
        .generate_comments(true)
        .prepend_enum_name(false)
        .default_enum_style(bindgen::EnumVariation::Consts)
        // Inline functions have no symbol in the shared libraries; the shim re-exports the
        // ones we need under `_rte_`.
        .generate_inline_functions(false)
        .clang_arg("-I.");
    for ty in OPAQUE_TYPES {
        builder = builder.opaque_type(*ty);
    }
    for inc in &dpdk.include_paths {
        builder = builder.clang_arg(format!("-I{}", inc.display()));
    }
    for flag in &dpdk.other_cflags {
        builder = builder.clang_arg(flag.clone());
    }
    let bindings = builder
        .generate()
        .unwrap_or_else(|e| panic!("bindgen failed on bindings.h: {e}"));
    bindings
        .write_to_file(out_dir.join("bindings.rs"))
        .expect("writing bindings.rs to OUT_DIR");
}

/// Step 4: compile the shim for DPDK's `static inline` functions.
fn compile_shim(dpdk: &Dpdk) {
    let mut build = cc::Build::new();
    build
        .file("shim.c")
        .include(".")
        .warnings(true)
        .opt_level(3);
    for inc in &dpdk.include_paths {
        build.include(inc);
    }
    for flag in &dpdk.other_cflags {
        build.flag(flag);
    }
    build.compile("callbridge_dpdk_shim");
}

/// Step 5: link dynamically against DPDK's shared libraries.
///
/// With shared DPDK the poll-mode drivers (net_null, net_ring, net_af_packet, the ring mempool
/// driver, …) are plugins: EAL `dlopen`s every library in its driver directory
/// (`RTE_EAL_PMD_PATH`, on Debian 12 `/usr/lib/x86_64-linux-gnu/dpdk/pmds-23.0`) when it sees
/// that `librte_eal` itself is a shared object. Naming them on the link line does not help:
/// they export no symbols we reference, so `--as-needed` (rustc's default) drops them, and a
/// `-sys` crate cannot pass `--no-as-needed` to its dependents' links. The safe layer's EAL
/// argument builder can add `-d <path>` to load a driver explicitly.
fn link(dpdk: &Dpdk) {
    for dir in &dpdk.link_paths {
        println!("cargo:rustc-link-search=native={}", dir.display());
    }
    for lib in &dpdk.libs {
        println!("cargo:rustc-link-lib=dylib={lib}");
    }
    // Exposed to dependents' build scripts as DEP_DPDK_INCLUDE (package has `links = "dpdk"`).
    let includes: Vec<String> = dpdk
        .include_paths
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    println!("cargo:include={}", includes.join(":"));
}
