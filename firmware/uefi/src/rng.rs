//! EFI_RNG_PROTOCOL from the CPU's random-number instructions (on x86_64,
//! RDSEED for EFI_RNG_ALGORITHM_RAW and RDRAND, an SP800-90A CTR_DRBG with
//! AES-256 in hardware, for the SP800-90 CTR-256 algorithm; see
//! [`Machine::rng_draw`](crate::machine::Machine::rng_draw)). Installed
//! only when the CPU has them.

use crate::machine::machine;
use r_efi::efi::Status;
use r_efi::protocols::rng;

/// The algorithms offered, in preference order (the first is the default).
fn algorithms() -> ([rng::Algorithm; 2], usize) {
    let mut a = [rng::ALGORITHM_RAW; 2];
    let mut n = 0;
    let (drbg, raw) = machine().rng_algorithms();
    if drbg {
        a[n] = rng::ALGORITHM_SP800_90_CTR_256_GUID;
        n += 1;
    }
    if raw {
        a[n] = rng::ALGORITHM_RAW;
        n += 1;
    }
    (a, n)
}

extern "efiapi" fn get_info(
    this: *mut rng::Protocol,
    size: *mut usize,
    list: *mut rng::Algorithm,
) -> Status {
    if this.is_null() || size.is_null() {
        return Status::INVALID_PARAMETER;
    }
    let (a, n) = algorithms();
    let need = n * core::mem::size_of::<rng::Algorithm>();
    // SAFETY: `size` checked; `list` holds `*size` bytes when non-null.
    unsafe {
        if *size < need {
            *size = need;
            return Status::BUFFER_TOO_SMALL;
        }
        if list.is_null() {
            return Status::INVALID_PARAMETER;
        }
        core::ptr::copy_nonoverlapping(a.as_ptr(), list, n);
        *size = need;
    }
    Status::SUCCESS
}

extern "efiapi" fn get_rng(
    this: *mut rng::Protocol,
    alg: *mut rng::Algorithm,
    len: usize,
    out: *mut u8,
) -> Status {
    if this.is_null() || out.is_null() || len == 0 {
        return Status::INVALID_PARAMETER;
    }
    let (a, n) = algorithms();
    let chosen = if alg.is_null() {
        a[0]
    } else {
        // SAFETY: the caller's algorithm GUID.
        unsafe { *alg }
    };
    let seed = if chosen == rng::ALGORITHM_RAW && a[..n].contains(&rng::ALGORITHM_RAW) {
        true
    } else if chosen == rng::ALGORITHM_SP800_90_CTR_256_GUID && a[..n].contains(&chosen) {
        false
    } else {
        return Status::UNSUPPORTED;
    };
    let mut done = 0;
    while done < len {
        let Some(v) = machine().rng_draw(seed) else {
            return Status::DEVICE_ERROR;
        };
        let b = v.to_le_bytes();
        let k = (len - done).min(8);
        // SAFETY: the caller's buffer of `len` bytes.
        unsafe { core::ptr::copy_nonoverlapping(b.as_ptr(), out.add(done), k) };
        done += k;
    }
    Status::SUCCESS
}

/// The protocol, if the CPU can back it.
pub fn protocol() -> Option<rng::Protocol> {
    (algorithms().1 > 0).then_some(rng::Protocol { get_info, get_rng })
}
