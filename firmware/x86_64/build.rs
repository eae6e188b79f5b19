//! Hands the linker script to the linker for the firmware target only.
fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    let target = std::env::var("TARGET").unwrap();
    if target == "x86_64-unknown-none" {
        println!("cargo:rustc-link-arg-bins=-T{dir}/layout.ld");
        // A fixed-address image: no PIE, no dynamic relocations to process.
        println!("cargo:rustc-link-arg-bins=--no-pie");
        println!("cargo:rustc-link-arg-bins=-znoexecstack");
    }
    println!("cargo:rerun-if-changed=layout.ld");
}
