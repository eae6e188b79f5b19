fn main() {
    // Only the bare-metal aarch64 build is the firmware.
    if std::env::var("TARGET").is_ok_and(|t| t == "aarch64-unknown-none") {
        let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
        println!("cargo:rustc-link-arg-bins=-T{dir}/layout.ld");
        println!("cargo:rerun-if-changed=layout.ld");
        println!("cargo:rerun-if-changed=src/entry.s");
    }
}
