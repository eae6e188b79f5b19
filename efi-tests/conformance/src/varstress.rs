//! Variable-store stress for the crash test (`cargo xtask test`, case
//! `var-crash`): `var-stress` rewrites a few non-volatile variables in a
//! loop, forever, while the harness kills QEMU at random moments;
//! `var-check` then reads them back and says whether each is whole.
//!
//! Every value is one 8-byte counter repeated, so a torn write (part old,
//! part new) cannot pass for a whole value; the variables are written in
//! order 0..N each round, so the counters must also be ordered: v0 >= v1 >=
//! ... >= v(N-1) >= v0 - 1.

use crate::out;
use crate::util::{rt, u16z};
use alloc::format;
use alloc::vec;
use alloc::vec::Vec;
use r_efi::efi;

/// Vendor GUID for the stress variables.
const GUID: efi::Guid = efi::Guid::from_fields(
    0x3c1f_1e2e,
    0x8a3d,
    0x4b57,
    0x9e,
    0x21,
    &[0x45, 0x6d, 0x62, 0x65, 0x72, 0x21],
);
const ATTRS: u32 =
    efi::VARIABLE_NON_VOLATILE | efi::VARIABLE_BOOTSERVICE_ACCESS | efi::VARIABLE_RUNTIME_ACCESS;
/// Sizes differ so records of several lengths interleave in the log.
const SIZES: [usize; 4] = [8, 200, 1000, 3000];

fn name(k: usize) -> Vec<u16> {
    u16z(&format!("EmberStress{k}"))
}

/// Rewrite the variables forever (until the harness kills the VM).
pub unsafe fn stress() -> efi::Status {
    // SAFETY: boot services are up; the watchdog would reset a long run.
    unsafe { ((crate::util::bs()).set_watchdog_timer)(0, 0, 0, core::ptr::null_mut()) };
    // Continue from where the last (killed) run got to.
    // SAFETY: boot services are up; read_all only reads variables.
    let (start, _) = unsafe { read_all() };
    let mut round = start.iter().flatten().copied().max().unwrap_or(0) + 1;
    loop {
        for (k, &size) in SIZES.iter().enumerate() {
            let data: Vec<u8> = round
                .to_le_bytes()
                .iter()
                .copied()
                .cycle()
                .take(size)
                .collect();
            let mut n = name(k);
            let mut g = GUID;
            // SAFETY: valid name, GUID and buffer.
            let s = unsafe {
                (rt().set_variable)(
                    n.as_mut_ptr(),
                    &mut g,
                    ATTRS,
                    data.len(),
                    data.as_ptr() as *mut _,
                )
            };
            if s != efi::Status::SUCCESS {
                out::line(format_args!(
                    "VARSTRESS failed: SetVariable(EmberStress{k}) = {:#x}",
                    s.as_usize()
                ));
                return s;
            }
        }
        out::line(format_args!("VARSTRESS {round}"));
        round += 1;
    }
}

/// Each variable's counter (None: missing) and whether all are whole.
unsafe fn read_all() -> (Vec<Option<u64>>, Vec<&'static str>) {
    let mut vals = Vec::new();
    let mut bad = Vec::new();
    for (k, &size) in SIZES.iter().enumerate() {
        let mut n = name(k);
        let mut g = GUID;
        let mut attrs = 0u32;
        let mut len = 8192usize;
        let mut buf = vec![0u8; len];
        // SAFETY: valid name, GUID and buffer.
        let s = unsafe {
            (rt().get_variable)(
                n.as_mut_ptr(),
                &mut g,
                &mut attrs,
                &mut len,
                buf.as_mut_ptr() as *mut _,
            )
        };
        if s == efi::Status::NOT_FOUND {
            vals.push(None);
            continue;
        }
        let whole = s == efi::Status::SUCCESS
            && len == size
            && attrs == ATTRS
            && buf[..len].chunks(8).all(|c| c == &buf[..c.len()]);
        if !whole {
            bad.push(
                [
                    "EmberStress0",
                    "EmberStress1",
                    "EmberStress2",
                    "EmberStress3",
                ][k],
            );
            vals.push(None);
            continue;
        }
        let mut w = [0u8; 8];
        w.copy_from_slice(&buf[..8]);
        vals.push(Some(u64::from_le_bytes(w)));
    }
    (vals, bad)
}

/// Read the variables back and report.
pub unsafe fn check() -> efi::Status {
    // SAFETY: boot services are up.
    let (vals, bad) = unsafe { read_all() };
    let present: Vec<u64> = vals.iter().flatten().copied().collect();
    let ordered = present.len() == vals.len()
        && present.windows(2).all(|w| w[0] >= w[1])
        && present
            .first()
            .zip(present.last())
            .is_some_and(|(f, l)| *l + 1 >= *f);
    if bad.is_empty() && ordered {
        out::line(format_args!("VARCHECK ok {present:?}"));
    } else {
        out::line(format_args!("VARCHECK bad: torn {bad:?}, values {vals:?}"));
    }
    efi::Status::SUCCESS
}
