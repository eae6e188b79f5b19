//! Hands the linker script to the linker for the firmware target only.
fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    let target = std::env::var("TARGET").unwrap();
    if target == "x86_64-unknown-none" {
        println!("cargo:rustc-link-arg-bins=-T{dir}/layout.ld");
        // Linked at a fixed address: no dynamic relocations to process at boot.
        println!("cargo:rustc-link-arg-bins=--no-pie");
        println!("cargo:rustc-link-arg-bins=-znoexecstack");
        // Keep the relocations in the output: `cargo xtask build` turns the
        // absolute pointers among them into the table the firmware adjusts
        // itself with at SetVirtualAddressMap (see src/reloc.rs).
        println!("cargo:rustc-link-arg-bins=--emit-relocs");
    }
    println!("cargo:rerun-if-changed=layout.ld");
}
