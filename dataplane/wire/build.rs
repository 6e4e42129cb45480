//! Declares the `fuzzing` cfg (set by cargo-fuzz) so rustc's check-cfg knows it.
fn main() {
    println!("cargo::rustc-check-cfg=cfg(fuzzing)");
}
