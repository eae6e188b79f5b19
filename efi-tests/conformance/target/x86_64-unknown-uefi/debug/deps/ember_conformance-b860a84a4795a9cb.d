/work/main/efi-tests/conformance/target/x86_64-unknown-uefi/debug/deps/ember_conformance-b860a84a4795a9cb.d: src/main.rs src/console.rs src/events.rs src/image.rs src/media.rs src/memory.rs src/misc.rs src/out.rs src/protocols.rs src/runtime.rs src/util.rs Cargo.toml

/work/main/efi-tests/conformance/target/x86_64-unknown-uefi/debug/deps/libember_conformance-b860a84a4795a9cb.rmeta: src/main.rs src/console.rs src/events.rs src/image.rs src/media.rs src/memory.rs src/misc.rs src/out.rs src/protocols.rs src/runtime.rs src/util.rs Cargo.toml

src/main.rs:
src/console.rs:
src/events.rs:
src/image.rs:
src/media.rs:
src/memory.rs:
src/misc.rs:
src/out.rs:
src/protocols.rs:
src/runtime.rs:
src/util.rs:
Cargo.toml:

# env-dep:CLIPPY_ARGS=-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__
# env-dep:CLIPPY_CONF_DIR
