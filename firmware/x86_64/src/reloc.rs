//! Ember moving itself to the virtual address the OS gives its runtime
//! image at SetVirtualAddressMap.
//!
//! The code is position-independent (built with `relocation-model=pie`),
//! so it runs wherever it is mapped. What is not are the absolute pointers
//! the linker wrote into Ember's data (vtables, `&'static` references in
//! statics, the GOT). `cargo xtask build` reads the linker's relocation
//! records (`--emit-relocs`) and fills [`RELOCS`] with a bitmap of those
//! words; [`apply`] adds the image's delta to each. `cargo xtask build`
//! also refuses an image whose absolute addresses are anywhere but in the
//! data or the boot-time assembly.
//!
//! Pointers Ember stores at run time (in its heaps, or in statics) are not
//! covered; the runtime services rebuild what they keep (`efi::runtime`).

use core::sync::atomic::{AtomicBool, Ordering};

/// Words of bitmap: one bit per 8-byte word of the data segment, so 128
/// KiB of `.data` (today it is about 20 KiB; `cargo xtask build` fails if
/// it outgrows this).
const BITMAP_WORDS: usize = 256;

/// The table `cargo xtask build` fills in. Layout shared with
/// `xtask/src/reloc.rs`.
#[repr(C)]
pub struct RelocTable {
    /// `EMBRELO0` as built; `EMBRELO1` once xtask has filled it in.
    magic: [u8; 8],
    /// Link-time address of the first word the bitmap covers (`__data_start`).
    base: u64,
    /// How many words the bitmap covers.
    words: u64,
    /// How many bits are set (a cross-check).
    count: u64,
    bitmap: [u64; BITMAP_WORDS],
}
const _: () = assert!(core::mem::size_of::<RelocTable>() == 32 + 8 * BITMAP_WORDS);

/// Read only through volatile reads: the compiler knows the initialiser
/// but not what xtask wrote over it.
#[link_section = ".rodata.relocs"]
#[used]
static RELOCS: RelocTable = RelocTable {
    magic: *b"EMBRELO0",
    base: 0,
    words: 0,
    count: 0,
    bitmap: [0; BITMAP_WORDS],
};

const FILLED: [u8; 8] = *b"EMBRELO1";

extern "C" {
    static __image_start: u8;
    static __image_end: u8;
    static __data_start: u8;
}

/// Ember's image as built: [start, end).
fn image() -> (u64, u64) {
    // SAFETY: linker symbols; only their addresses are taken.
    unsafe {
        (
            &__image_start as *const u8 as u64,
            &__image_end as *const u8 as u64,
        )
    }
}

/// Read a field of [`RELOCS`] as linked (volatile: the compiler knows the
/// initialiser, not what xtask wrote over it). Field by field, so the 2 KiB
/// table is never copied onto the OS's stack.
macro_rules! field {
    ($($f:tt)+) => {
        // SAFETY: a field of a static of that type.
        unsafe { core::ptr::read_volatile(core::ptr::addr_of!(RELOCS.$($f)+)) }
    };
}

/// Whether the image carries a table xtask filled in for this very build.
/// Without it (a firmware built by plain `cargo build`) Ember cannot move.
pub fn ready() -> bool {
    // SAFETY: linker symbol; only its address is taken.
    let data = unsafe { &__data_start as *const u8 as u64 };
    field!(magic) == FILLED && field!(base) == data && field!(words) <= (BITMAP_WORDS * 64) as u64
}

/// How many pointers the table lists.
pub fn count() -> u64 {
    field!(count)
}

static APPLIED: AtomicBool = AtomicBool::new(false);

/// Add `delta` to every absolute pointer into the image that the linker
/// wrote in Ember's data; returns how many were adjusted. A word the
/// firmware has since overwritten with something that is not a pointer into
/// the image (null, a heap address) is left alone. Runs at most once.
///
/// # Safety
/// Call at SetVirtualAddressMap, with the OS's virtual mapping of the image
/// at `image start + delta` decided, as the last thing before returning to
/// the OS: afterwards Ember's vtables and static references name the
/// virtual addresses, which the caller (still in physical mode) may not map
/// yet. No other code of Ember may run concurrently.
pub unsafe fn apply(delta: u64) -> usize {
    if APPLIED.swap(true, Ordering::SeqCst) || !ready() {
        return 0;
    }
    let (start, end) = image();
    let (base, words) = (field!(base), field!(words));
    let mut n = 0;
    for w in 0..BITMAP_WORDS {
        let mut bits = field!(bitmap[w]);
        while bits != 0 {
            let idx = w as u64 * 64 + u64::from(bits.trailing_zeros());
            bits &= bits - 1;
            if idx >= words {
                break;
            }
            let p = (base + idx * 8) as *mut u64;
            // SAFETY: `ready` checked the table is this image's; every
            // listed word lies in Ember's data segment (xtask checked), is
            // 8-byte aligned and is mapped writable at its physical address
            // while the caller is in physical mode.
            unsafe {
                let v = core::ptr::read_volatile(p);
                if (start..=end).contains(&v) {
                    core::ptr::write_volatile(p, v.wrapping_add(delta));
                    n += 1;
                }
            }
        }
    }
    n
}
