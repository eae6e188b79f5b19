//! The Linux x86 boot protocol (`Documentation/arch/x86/boot.rst`), 64-bit
//! entry only; the arm64 `Image` header and placement are in [`arm64`].
//!
//! Loading a bzImage with it goes:
//! 1. read [`BzImage::HEADER_BYTES`] from the file and [`BzImage::parse`] them;
//! 2. [`place_kernel`] / [`place_initrd`] reserve memory in the
//!    [`MemoryMap`];
//! 3. copy the file from [`BzImage::kernel_offset`] to the kernel address,
//!    the initrd and the NUL-terminated command line into memory;
//! 4. [`build_boot_params`] makes the zero page, which goes into memory too;
//! 5. jump to [`entry64`] with `%rsi` pointing at the zero page.
#![no_std]
#![forbid(unsafe_code)]

use core::fmt;

use ember_mem::{E820Entry, MemError, MemKind, MemoryMap, Strategy, PAGE_SIZE};
use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, IntoBytes};

pub mod arm64;
mod bootparam;

pub use bootparam::{
    BootParams, SetupHeader, E820_MAX_ENTRIES_ZEROPAGE, SETUP_HEADER_END, SETUP_HEADER_OFFSET,
};

/// `boot_flag` value: the classic boot-sector signature.
pub const BOOT_FLAG: u16 = 0xaa55;
/// `header` value: "HdrS" read as a little-endian u32.
pub const HDRS_MAGIC: u32 = u32::from_le_bytes(*b"HdrS");
/// Oldest protocol supported: 2.12 introduced `xloadflags` and with it the
/// 64-bit entry flag.
pub const MIN_PROTOCOL: u16 = 0x020c;

/// `loadflags`: protected-mode code is loaded at 1 MiB or above (bzImage).
pub const LOADED_HIGH: u8 = 1 << 0;
/// `loadflags`: set by the kernel itself when KASLR is in use.
pub const KASLR_FLAG: u8 = 1 << 1;
/// `loadflags`: suppress early messages.
pub const QUIET_FLAG: u8 = 1 << 5;
/// `loadflags`: obsolete "do not reload segment registers".
pub const KEEP_SEGMENTS: u8 = 1 << 6;
/// `loadflags`: `heap_end_ptr` is valid.
pub const CAN_USE_HEAP: u8 = 1 << 7;

/// `xloadflags`: the kernel has the 64-bit entry point at load address + 0x200.
pub const XLF_KERNEL_64: u16 = 1 << 0;
/// `xloadflags`: kernel, zero page, command line and initrd may be above 4 GiB.
pub const XLF_CAN_BE_LOADED_ABOVE_4G: u16 = 1 << 1;
/// `xloadflags`: 32-bit EFI handover entry present.
pub const XLF_EFI_HANDOVER_32: u16 = 1 << 2;
/// `xloadflags`: 64-bit EFI handover entry present.
pub const XLF_EFI_HANDOVER_64: u16 = 1 << 3;
/// `xloadflags`: EFI kexec supported.
pub const XLF_EFI_KEXEC: u16 = 1 << 4;

/// `type_of_loader` for a boot loader without an assigned ID.
pub const LOADER_TYPE_UNDEFINED: u8 = 0xff;
/// `vid_mode` "normal" (80x25 text, do not ask).
pub const VID_MODE_NORMAL: u16 = 0xffff;
/// `heap_end_ptr` conventional value from boot.rst (setup at 0x90000, heap
/// ending at 0x9de00). Only the 16-bit setup code reads it, which the 64-bit
/// entry skips; it is filled in so the header is self-consistent.
pub const HEAP_END_PTR: u16 = 0xe000 - 0x200;

/// Offset of the 64-bit entry point from the kernel's load address.
pub const ENTRY64_OFFSET: u64 = 0x200;

/// Header end for protocol 2.12: through `handover_offset`.
const MIN_HEADER_END: usize = 0x268;

const ONE_MIB: u64 = 1 << 20;
const FOUR_GIB: u64 = 1 << 32;

/// Why a kernel could not be parsed, placed or prepared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinuxError {
    /// Fewer bytes than the header needs were supplied.
    Truncated { needed: usize, got: usize },
    /// No 0xAA55 at offset 0x1fe: not a Linux kernel image.
    BadBootFlag { found: u16 },
    /// No "HdrS" at offset 0x202: a pre-2.00 kernel or not a kernel at all.
    BadMagic { found: u32 },
    /// The boot protocol is older than 2.12.
    ProtocolTooOld { version: u16 },
    /// A zImage (loaded low); only bzImages are supported.
    NotBzImage,
    /// `XLF_KERNEL_64` is clear: the kernel has no 64-bit entry point.
    No64BitEntry,
    /// The setup sectors extend past the end of the file.
    SetupBeyondFile { setup_size: u64, file_size: u64 },
    /// `syssize` says the protected-mode code extends past the end of the file.
    KernelBeyondFile { kernel_end: u64, file_size: u64 },
    /// `kernel_alignment` is not a power of two.
    BadKernelAlignment { align: u32 },
    /// `init_size` is zero.
    BadInitSize,
    /// The jump at 0x200 says the header ends at `end`, before the fields
    /// protocol 2.12 defines.
    BadHeaderLength { end: usize },
    /// The preferred address is not free and the kernel is not relocatable.
    PreferredAddressTaken { pref_address: u64 },
    /// The supplied header bytes are not those the image was parsed from.
    HeaderMismatch,
    /// The command line is longer than the kernel's `cmdline_size`.
    CmdlineTooLong { len: u32, max: u32 },
    /// A buffer lies above 4 GiB but the kernel lacks `XLF_CAN_BE_LOADED_ABOVE_4G`.
    AboveFourGib { what: &'static str, addr: u64 },
    /// The initrd ends above `initrd_addr_max`.
    InitrdTooHigh { end: u64, max: u64 },
    /// An initrd of zero bytes was to be placed.
    EmptyInitrd,
    /// More E820 entries than the zero page holds.
    TooManyE820 { count: usize },
    /// The memory map could not satisfy an allocation.
    Mem(MemError),
}

impl From<MemError> for LinuxError {
    fn from(e: MemError) -> Self {
        LinuxError::Mem(e)
    }
}

impl fmt::Display for LinuxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            LinuxError::Truncated { needed, got } => {
                write!(f, "kernel image truncated: header needs {needed} bytes, got {got}")
            }
            LinuxError::BadBootFlag { found } => write!(
                f,
                "not a Linux kernel image (boot flag {found:#06x}, expected 0xaa55)"
            ),
            LinuxError::BadMagic { found } => write!(
                f,
                "not a bzImage: no \"HdrS\" header (found {found:#010x}); use a kernel built for x86 boot protocol 2.12+"
            ),
            LinuxError::ProtocolTooOld { version } => write!(
                f,
                "kernel boot protocol {}.{:02} is too old; 2.12 (Linux 3.8) or newer is required",
                version >> 8,
                version & 0xff
            ),
            LinuxError::NotBzImage => f.write_str("zImage kernels (loaded below 1 MiB) are not supported; use a bzImage"),
            LinuxError::No64BitEntry => {
                f.write_str("kernel has no 64-bit entry point (XLF_KERNEL_64 clear); use an x86_64 kernel")
            }
            LinuxError::SetupBeyondFile { setup_size, file_size } => write!(
                f,
                "kernel setup code ({setup_size} bytes) is larger than the file ({file_size} bytes): truncated image?"
            ),
            LinuxError::KernelBeyondFile { kernel_end, file_size } => write!(
                f,
                "kernel image ends at byte {kernel_end} but the file has only {file_size} bytes: truncated image?"
            ),
            LinuxError::BadKernelAlignment { align } => {
                write!(f, "kernel alignment {align:#x} is not a power of two: corrupt header")
            }
            LinuxError::BadHeaderLength { end } => write!(
                f,
                "kernel header claims to end at {end:#x}, too short for its protocol: corrupt header"
            ),
            LinuxError::BadInitSize => f.write_str("kernel header has init_size 0: corrupt header"),
            LinuxError::PreferredAddressTaken { pref_address } => write!(
                f,
                "kernel is not relocatable and its load address {pref_address:#x} is not free RAM"
            ),
            LinuxError::HeaderMismatch => {
                f.write_str("setup header bytes do not match the parsed kernel image")
            }
            LinuxError::CmdlineTooLong { len, max } => write!(
                f,
                "kernel command line is {len} bytes but this kernel accepts at most {max}"
            ),
            LinuxError::AboveFourGib { what, addr } => write!(
                f,
                "{what} at {addr:#x} is above 4 GiB, which this kernel cannot use"
            ),
            LinuxError::InitrdTooHigh { end, max } => write!(
                f,
                "initrd ends at {end:#x}, above the kernel's limit {max:#x}"
            ),
            LinuxError::EmptyInitrd => f.write_str("initrd is empty"),
            LinuxError::TooManyE820 { count } => write!(
                f,
                "memory map has {count} entries but the zero page holds {E820_MAX_ENTRIES_ZEROPAGE}"
            ),
            LinuxError::Mem(e) => write!(f, "cannot place kernel data: {e}"),
        }
    }
}

/// A validated bzImage header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BzImage {
    hdr: SetupHeader,
    file_size: u64,
    setup_size: u64,
}

impl BzImage {
    /// Bytes to read from the start of the file before calling
    /// [`BzImage::parse`]: the boot sector plus the first setup sector,
    /// which always hold the whole setup header. `parse` itself needs at
    /// least [`SETUP_HEADER_END`] (0x26c) bytes.
    pub const HEADER_BYTES: usize = 1024;

    /// Validates the header at the start of a bzImage of `file_size` bytes.
    pub fn parse(image_prefix: &[u8], file_size: u64) -> Result<BzImage, LinuxError> {
        let truncated = LinuxError::Truncated {
            needed: SETUP_HEADER_END,
            got: image_prefix.len(),
        };
        let hdr_bytes = image_prefix.get(SETUP_HEADER_OFFSET..).ok_or(truncated)?;
        let (hdr, _) = SetupHeader::read_from_prefix(hdr_bytes).map_err(|_| truncated)?;
        if hdr.boot_flag.get() != BOOT_FLAG {
            return Err(LinuxError::BadBootFlag {
                found: hdr.boot_flag.get(),
            });
        }
        if hdr.header.get() != HDRS_MAGIC {
            return Err(LinuxError::BadMagic {
                found: hdr.header.get(),
            });
        }
        let version = hdr.version.get();
        if version < MIN_PROTOCOL {
            return Err(LinuxError::ProtocolTooOld { version });
        }
        // The short jump at 0x200 skips the header, so its displacement gives
        // the header's length; build_boot_params copies exactly that much.
        let end = header_end(&hdr);
        if end < MIN_HEADER_END {
            return Err(LinuxError::BadHeaderLength { end });
        }
        if hdr.loadflags & LOADED_HIGH == 0 {
            return Err(LinuxError::NotBzImage);
        }
        if hdr.xloadflags.get() & XLF_KERNEL_64 == 0 {
            return Err(LinuxError::No64BitEntry);
        }
        // boot.rst: a setup_sects of 0 means 4; the boot sector adds one more.
        let sects = match hdr.setup_sects {
            0 => 4,
            n => u64::from(n),
        };
        let setup_size = (sects + 1) * 512;
        if setup_size > file_size {
            return Err(LinuxError::SetupBeyondFile {
                setup_size,
                file_size,
            });
        }
        let kernel_end = setup_size + u64::from(hdr.syssize.get()) * 16;
        if kernel_end > file_size {
            return Err(LinuxError::KernelBeyondFile {
                kernel_end,
                file_size,
            });
        }
        let align = hdr.kernel_alignment.get();
        if !align.is_power_of_two() {
            return Err(LinuxError::BadKernelAlignment { align });
        }
        if hdr.init_size.get() == 0 {
            return Err(LinuxError::BadInitSize);
        }
        Ok(BzImage {
            hdr,
            file_size,
            setup_size,
        })
    }

    /// The parsed setup header, as found in the file.
    pub fn header(&self) -> &SetupHeader {
        &self.hdr
    }

    /// Boot protocol version, e.g. `0x020f` for 2.15.
    pub fn protocol_version(&self) -> u16 {
        self.hdr.version.get()
    }

    /// Size of the real-mode part (boot sector plus setup sectors) in bytes.
    pub fn setup_size(&self) -> u64 {
        self.setup_size
    }

    /// File offset of the protected-mode kernel, which is loaded at the
    /// kernel address.
    pub fn kernel_offset(&self) -> u64 {
        self.setup_size
    }

    /// Bytes of protected-mode kernel to load: the rest of the file, as
    /// other loaders do (it may carry more than `syssize` says, e.g. a
    /// signature appended after the image).
    pub fn kernel_size(&self) -> u64 {
        self.file_size - self.setup_size
    }

    /// Address the kernel prefers to run at (also the lowest address it
    /// decompresses to when relocatable).
    pub fn pref_address(&self) -> u64 {
        self.hdr.pref_address.get()
    }

    /// Alignment required when the kernel is loaded elsewhere.
    pub fn kernel_alignment(&self) -> u64 {
        u64::from(self.hdr.kernel_alignment.get())
    }

    /// Whether the kernel may be loaded at any suitably aligned address.
    pub fn relocatable(&self) -> bool {
        self.hdr.relocatable_kernel != 0
    }

    /// Memory the kernel needs from its load address before it can look at
    /// the memory map.
    pub fn init_size(&self) -> u64 {
        u64::from(self.hdr.init_size.get())
    }

    /// Highest address (inclusive) the initrd may occupy when the kernel
    /// cannot use memory above 4 GiB.
    pub fn initrd_addr_max(&self) -> u64 {
        u64::from(self.hdr.initrd_addr_max.get())
    }

    /// Maximum command-line length in bytes, excluding the NUL.
    pub fn cmdline_size(&self) -> u32 {
        self.hdr.cmdline_size.get()
    }

    /// The `XLF_*` capability flags.
    pub fn xloadflags(&self) -> u16 {
        self.hdr.xloadflags.get()
    }

    /// Whether kernel, zero page, command line and initrd may be above 4 GiB.
    pub fn can_load_above_4g(&self) -> bool {
        self.xloadflags() & XLF_CAN_BE_LOADED_ABOVE_4G != 0
    }

    /// Bytes to reserve at the load address: the larger of the file's
    /// kernel part and `init_size`.
    pub fn load_size(&self) -> u64 {
        self.init_size().max(self.kernel_size())
    }

    /// Highest usable address (inclusive) for kernel data that must be
    /// below 4 GiB unless the kernel says otherwise.
    fn data_limit(&self) -> u64 {
        if self.can_load_above_4g() {
            u64::MAX
        } else {
            FOUR_GIB - 1
        }
    }
}

/// End of the header as given by the x86 short jump (`EB disp8`) at 0x200.
/// Anything that is not a forward short jump yields 0, which fails the
/// length check.
fn header_end(hdr: &SetupHeader) -> usize {
    let [opcode, disp] = hdr.jump.get().to_le_bytes();
    if opcode != 0xeb || disp >= 0x80 {
        return 0;
    }
    0x202 + usize::from(disp)
}

/// The 64-bit entry point of a kernel loaded at `load_addr`.
pub const fn entry64(load_addr: u64) -> u64 {
    // Load addresses come from the page allocator and end well below 2^64.
    load_addr.wrapping_add(ENTRY64_OFFSET)
}

fn pages_for(bytes: u64) -> u64 {
    bytes.div_ceil(PAGE_SIZE)
}

/// Reserves memory for the kernel and returns its load address.
///
/// The preferred address is used when all of `load_size()` there is free.
/// Otherwise a relocatable kernel goes at the lowest suitably aligned free
/// range at or above both 1 MiB and `pref_address`: a relocatable kernel
/// loaded below `pref_address` still decompresses to `pref_address`
/// (LOAD_PHYSICAL_ADDR), so memory below it would not be the memory the
/// kernel really uses.
pub fn place_kernel<const N: usize>(
    bz: &BzImage,
    map: &mut MemoryMap<N>,
) -> Result<u64, LinuxError> {
    let pages = pages_for(bz.load_size());
    let pref = bz.pref_address();
    // Below 1 MiB is the real-mode area (BIOS data, EBDA, ROMs): a header
    // naming it is taken as no preference at all.
    let pref_fits = pref >= ONE_MIB
        && pref
            .checked_add(bz.load_size())
            .is_some_and(|end| end - 1 <= bz.data_limit());
    if pref_fits && map.allocate_at(pref, pages, MemKind::Kernel).is_ok() {
        return Ok(pref);
    }
    if !bz.relocatable() {
        return Err(LinuxError::PreferredAddressTaken { pref_address: pref });
    }
    let align = bz.kernel_alignment().max(PAGE_SIZE);
    let min = pref.max(ONE_MIB);
    Ok(map.allocate_in_range(
        pages,
        align,
        min,
        bz.data_limit(),
        MemKind::Kernel,
        Strategy::BottomUp,
    )?)
}

/// Reserves `total_size` bytes for the initrd and returns its address.
///
/// It goes as high as possible below `initrd_addr_max`, keeping it out of
/// the kernel's way; if that fails and the kernel can use memory above
/// 4 GiB, as high as possible anywhere.
pub fn place_initrd<const N: usize>(
    total_size: u64,
    bz: &BzImage,
    map: &mut MemoryMap<N>,
) -> Result<u64, LinuxError> {
    if total_size == 0 {
        return Err(LinuxError::EmptyInitrd);
    }
    let pages = pages_for(total_size);
    match map.allocate(
        pages,
        PAGE_SIZE,
        bz.initrd_addr_max(),
        MemKind::Initrd,
        Strategy::TopDown,
    ) {
        Ok(addr) => Ok(addr),
        Err(MemError::OutOfMemory { .. }) if bz.can_load_above_4g() => Ok(map.allocate(
            pages,
            PAGE_SIZE,
            u64::MAX,
            MemKind::Initrd,
            Strategy::TopDown,
        )?),
        Err(e) => Err(e.into()),
    }
}

/// Where the loader put things, for [`build_boot_params`].
#[derive(Clone, Copy, Debug)]
pub struct BootInputs<'a> {
    /// Address of the NUL-terminated command line (0 for none).
    pub cmdline_addr: u64,
    /// Command-line length in bytes, excluding the NUL.
    pub cmdline_len: u32,
    /// Address of the initrd (ignored when `initrd_size` is 0).
    pub initrd_addr: u64,
    /// Size of the initrd in bytes (0 for none).
    pub initrd_size: u64,
    /// Address of the ACPI RSDP (0 to let the kernel search for it).
    pub rsdp_addr: u64,
    /// The memory map to report, already in E820 form.
    pub e820: &'a [E820Entry],
}

fn lo32(v: u64) -> U32 {
    U32::new(v as u32)
}

fn hi32(v: u64) -> U32 {
    U32::new((v >> 32) as u32)
}

/// Builds the zero page for a 64-bit entry.
///
/// `header_bytes` is the start of the image file (at least the header's
/// extent, 0x202 plus the byte at 0x201): boot.rst asks loaders to copy the
/// header from the image rather than rebuild it, so fields this code does
/// not know about reach the kernel unchanged.
pub fn build_boot_params(
    bz: &BzImage,
    header_bytes: &[u8],
    inputs: &BootInputs<'_>,
) -> Result<BootParams, LinuxError> {
    // Copy the header's own extent (validated by parse), up to the fields
    // this crate knows.
    let header_end = header_end(&bz.hdr).min(SETUP_HEADER_END);
    let src = header_bytes
        .get(SETUP_HEADER_OFFSET..header_end)
        .ok_or(LinuxError::Truncated {
            needed: header_end,
            got: header_bytes.len(),
        })?;
    // Guard against a header from a different file than the one parsed.
    if bz.hdr.as_bytes().get(..src.len()) != Some(src) {
        return Err(LinuxError::HeaderMismatch);
    }

    let mut bp = BootParams::zeroed();
    if let Some(dst) = bp.hdr.as_mut_bytes().get_mut(..src.len()) {
        dst.copy_from_slice(src);
    }

    let limit = bz.data_limit();
    let hdr = &mut bp.hdr;
    hdr.type_of_loader = LOADER_TYPE_UNDEFINED;
    hdr.loadflags =
        (hdr.loadflags | LOADED_HIGH | CAN_USE_HEAP) & !(QUIET_FLAG | KEEP_SEGMENTS | KASLR_FLAG);
    hdr.heap_end_ptr = U16::new(HEAP_END_PTR);
    hdr.vid_mode = U16::new(VID_MODE_NORMAL);

    if inputs.cmdline_len > bz.cmdline_size() {
        return Err(LinuxError::CmdlineTooLong {
            len: inputs.cmdline_len,
            max: bz.cmdline_size(),
        });
    }
    // The command line occupies its bytes plus the NUL.
    let cmd_last = inputs
        .cmdline_addr
        .saturating_add(u64::from(inputs.cmdline_len));
    if cmd_last > limit {
        return Err(LinuxError::AboveFourGib {
            what: "command line",
            addr: inputs.cmdline_addr,
        });
    }
    hdr.cmd_line_ptr = lo32(inputs.cmdline_addr);
    bp.ext_cmd_line_ptr = hi32(inputs.cmdline_addr);

    if inputs.initrd_size != 0 {
        let last = inputs
            .initrd_addr
            .checked_add(inputs.initrd_size - 1)
            .ok_or(LinuxError::InitrdTooHigh {
                end: u64::MAX,
                max: limit,
            })?;
        if last > limit {
            return Err(LinuxError::AboveFourGib {
                what: "initrd",
                addr: inputs.initrd_addr,
            });
        }
        if !bz.can_load_above_4g() && last > bz.initrd_addr_max() {
            return Err(LinuxError::InitrdTooHigh {
                end: last + 1,
                max: bz.initrd_addr_max(),
            });
        }
        let hdr = &mut bp.hdr;
        hdr.ramdisk_image = lo32(inputs.initrd_addr);
        hdr.ramdisk_size = lo32(inputs.initrd_size);
        bp.ext_ramdisk_image = hi32(inputs.initrd_addr);
        bp.ext_ramdisk_size = hi32(inputs.initrd_size);
    }

    // acpi_rsdp_addr exists from protocol 2.14; older kernels scan for the RSDP.
    if bz.protocol_version() >= 0x020e {
        bp.acpi_rsdp_addr = U64::new(inputs.rsdp_addr);
    }

    let count = inputs.e820.len();
    let slots = bp
        .e820_table
        .get_mut(..count)
        .ok_or(LinuxError::TooManyE820 { count })?;
    slots.copy_from_slice(inputs.e820);
    // count <= 128 here, so it fits the u8 field.
    bp.e820_entries = count as u8;
    Ok(bp)
}
