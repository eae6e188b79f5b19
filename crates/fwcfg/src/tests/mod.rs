//! Unit tests. Fixtures in `testdata/` were read out of QEMU 7.2 through
//! qtest port I/O (see the crate docs); large zero-padded items are stored
//! with their trailing zeros stripped and re-padded to QEMU's size here.

mod bootorder;
mod dir;
mod dma;
mod e820;
mod loader;
mod name;

/// `bytes` extended with zeros to `len`.
fn padded(bytes: &[u8], len: usize) -> std::vec::Vec<u8> {
    assert!(bytes.len() <= len);
    let mut v = bytes.to_vec();
    v.resize(len, 0);
    v
}
