//! The images `cargo xtask build` cuts from the linked firmware ELF:
//!
//! - the flash image (`ember-x86_64.bin`, for `-bios` or pflash unit 0):
//!   erased-flash padding, the image bytes, and the reset stub last, so the
//!   stub's final 16 bytes land on the reset vector at 0xFFFFFFF0;
//! - a bzImage (`ember-x86_64.bzimage`) for loaders that speak only the
//!   Linux boot protocol: a setup header and the same image bytes, entered
//!   at load address + 0x200 in 64-bit mode;
//! - the blank variable store (`ember-x86_64-vars.fd`, pflash unit 1).
//!
//! The ELF's first bytes are Ember's header (see `firmware/x86_64/src/arch/entry.s`),
//! which names the addresses these layouts need.

use crate::util::Result;
use ember_linux::SetupHeader;
use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Flash images must be a multiple of 64 KiB (QEMU's `-bios` rule).
pub const FLASH_GRANULE: usize = 64 * 1024;
/// The variable store: erased flash of OVMF_VARS_4M.fd's size.
pub const VARS_SIZE: usize = 540_672;

/// Ember's image header (entry.s `ember_header`).
#[derive(FromBytes, IntoBytes, KnownLayout, Immutable, Clone, Copy, Debug)]
#[repr(C)]
pub struct Header {
    pub magic: [u8; 8],
    pub version: U32,
    pub image_start: U32,
    pub load_end: U32,
    pub image_end: U32,
    pub reset_stub_start: U32,
    pub reset_stub_end: U32,
    pub linux64_entry: U32,
    pub pvh_entry: U32,
    pub bz_trampoline_start: U32,
    pub bz_trampoline_end: U32,
}
const _: () = assert!(core::mem::size_of::<Header>() == 48);

pub const MAGIC: &[u8; 8] = b"EMBERX64";

/// The memory image an ELF describes: bytes from its lowest PT_LOAD
/// address, with the segments' file contents in place.
pub struct LoadImage {
    pub base: u64,
    pub bytes: Vec<u8>,
    pub header: Header,
}

fn le(b: &[u8], off: usize, n: usize) -> Result<u64> {
    let s = b
        .get(off..off + n)
        .ok_or_else(|| format!("ELF truncated at {off:#x}"))?;
    Ok(s.iter().rev().fold(0u64, |a, &x| a << 8 | u64::from(x)))
}

/// The bytes a 64-bit little-endian ELF's PT_LOAD segments put in memory,
/// by physical (load) address, from the lowest one; segments at or above
/// `limit` are left out (e.g. RAM-only ones of a flash image).
pub fn flatten(elf: &[u8], limit: u64) -> Result<(u64, Vec<u8>)> {
    if elf.get(..4) != Some(b"\x7fELF") || elf.get(4) != Some(&2) || elf.get(5) != Some(&1) {
        return Err("not a 64-bit little-endian ELF".into());
    }
    let phoff = le(elf, 0x20, 8)? as usize;
    let phentsize = le(elf, 0x36, 2)? as usize;
    let phnum = le(elf, 0x38, 2)? as usize;
    let mut segs = Vec::new();
    for i in 0..phnum {
        let p = phoff + i * phentsize;
        if le(elf, p, 4)? != 1 {
            continue; // not PT_LOAD
        }
        let (off, paddr, filesz) = (le(elf, p + 8, 8)?, le(elf, p + 24, 8)?, le(elf, p + 32, 8)?);
        if filesz > 0 && paddr < limit {
            segs.push((off as usize, paddr, filesz as usize));
        }
    }
    let base = segs
        .iter()
        .map(|s| s.1)
        .min()
        .ok_or("ELF has no PT_LOAD segment")?;
    let end = segs.iter().map(|s| s.1 + s.2 as u64).max().unwrap_or(base);
    let mut bytes = vec![0u8; (end - base) as usize];
    for (off, paddr, filesz) in segs {
        let src = elf
            .get(off..off + filesz)
            .ok_or("PT_LOAD segment beyond the end of the ELF")?;
        let at = (paddr - base) as usize;
        bytes[at..at + filesz].copy_from_slice(src);
    }
    Ok((base, bytes))
}

/// Lay out the PT_LOAD segments of a 64-bit little-endian ELF.
pub fn load_image(elf: &[u8]) -> Result<LoadImage> {
    let (base, mut bytes) = flatten(elf, u64::MAX)?;
    let header = Header::read_from_prefix(&bytes)
        .map_err(|_| "image too small for Ember's header")?
        .0;
    if &header.magic != MAGIC || header.version.get() != 1 {
        return Err("the image does not start with Ember's header".into());
    }
    if u64::from(header.image_start.get()) != base {
        return Err(format!(
            "header says the image starts at {:#x}, the ELF at {base:#x}",
            header.image_start.get()
        ));
    }
    let load_len = (header.load_end.get() - header.image_start.get()) as usize;
    if load_len > bytes.len() {
        return Err("header's load end lies beyond the ELF's contents".into());
    }
    bytes.truncate(load_len);
    Ok(LoadImage {
        base,
        bytes,
        header,
    })
}

impl LoadImage {
    fn offset(&self, addr: U32) -> usize {
        (u64::from(addr.get()) - self.base) as usize
    }

    pub fn reset_stub(&self) -> Result<&[u8]> {
        let (s, e) = (
            self.offset(self.header.reset_stub_start),
            self.offset(self.header.reset_stub_end),
        );
        self.bytes
            .get(s..e)
            .filter(|b| b.len() >= 16)
            .ok_or_else(|| "reset stub outside the image".into())
    }

    /// `[0xFF padding][image][reset stub]`, a multiple of 64 KiB.
    pub fn flash_image(&self) -> Result<Vec<u8>> {
        let stub = self.reset_stub()?;
        let used = self.bytes.len() + stub.len();
        let size = used.next_multiple_of(FLASH_GRANULE);
        let mut out = vec![0xffu8; size - used];
        out.extend_from_slice(&self.bytes);
        out.extend_from_slice(stub);
        Ok(out)
    }

    /// A bzImage (boot protocol 2.15, 64-bit entry only, relocatable).
    ///
    /// Its protected-mode part is a page holding the relocating trampoline
    /// (at 0x200, where loaders enter) and its parameters (at 0x100), then
    /// the image. The trampoline moves the image to its link address.
    pub fn bzimage(&self) -> Result<Vec<u8>> {
        if self.header.linux64_entry.get() as u64 != self.base + 0x200 {
            return Err("the Linux 64-bit entry is not at load address + 0x200".into());
        }
        let (ts, te) = (
            self.offset(self.header.bz_trampoline_start),
            self.offset(self.header.bz_trampoline_end),
        );
        let tramp = self
            .bytes
            .get(ts..te)
            .filter(|t| !t.is_empty() && t.len() <= 0xe00)
            .ok_or("bzImage trampoline outside the image")?;
        let image_end = u64::from(self.header.image_end.get()).next_multiple_of(4096);
        let mut prot = vec![0u8; 0x1000];
        for (i, v) in [
            self.bytes.len() as u64,
            self.base,
            u64::from(self.header.linux64_entry.get()),
            image_end,
        ]
        .into_iter()
        .enumerate()
        {
            prot[0x100 + 8 * i..0x108 + 8 * i].copy_from_slice(&v.to_le_bytes());
        }
        prot[0x200..0x200 + tramp.len()].copy_from_slice(tramp);
        prot.extend_from_slice(&self.bytes);
        // Room from the load address: the image behind the trampoline page
        // and six table pages, or (loaded at the link address) the image
        // with .bss and the tables.
        let tables = 6 * 4096;
        let init_size = (0x1000 + (self.bytes.len() as u64).next_multiple_of(4096) + tables)
            .max(image_end - self.base + tables);
        const SETUP_SECTS: u8 = 1;
        let mut setup = vec![0u8; (usize::from(SETUP_SECTS) + 1) * 512];
        let hdr = SetupHeader {
            setup_sects: SETUP_SECTS,
            root_flags: U16::new(0),
            syssize: U32::new((prot.len() as u32).div_ceil(16)),
            ram_size: U16::new(0),
            vid_mode: U16::new(0xffff),
            root_dev: U16::new(0),
            boot_flag: U16::new(0xaa55),
            // Short jump over the header (its displacement gives the header's
            // length); there is no real-mode code behind it.
            jump: U16::from_bytes([0xeb, (0x26c - 0x202) as u8]),
            header: U32::from_bytes(*b"HdrS"),
            version: U16::new(0x020f),
            realmode_swtch: U32::new(0),
            start_sys_seg: U16::new(0x1000),
            kernel_version: U16::new(0),
            type_of_loader: 0,
            loadflags: 0x01, // LOADED_HIGH
            setup_move_size: U16::new(0),
            code32_start: U32::new(self.base as u32),
            ramdisk_image: U32::new(0),
            ramdisk_size: U32::new(0),
            bootsect_kludge: U32::new(0),
            heap_end_ptr: U16::new(0),
            ext_loader_ver: 0,
            ext_loader_type: 0,
            cmd_line_ptr: U32::new(0),
            initrd_addr_max: U32::new(0x7fff_ffff),
            kernel_alignment: U32::new(0x20_0000),
            relocatable_kernel: 1,
            min_alignment: 12,
            xloadflags: U16::new(0x1), // XLF_KERNEL_64
            cmdline_size: U32::new(4095),
            hardware_subarch: U32::new(0),
            hardware_subarch_data: U64::new(0),
            payload_offset: U32::new(0),
            payload_length: U32::new(0),
            setup_data: U64::new(0),
            pref_address: U64::new(self.base),
            init_size: U32::new(init_size as u32),
            handover_offset: U32::new(0),
            kernel_info_offset: U32::new(0),
        };
        let off = ember_linux::SETUP_HEADER_OFFSET;
        setup[off..off + core::mem::size_of::<SetupHeader>()].copy_from_slice(hdr.as_bytes());
        setup.extend_from_slice(&prot);
        // syssize counts 16-byte paragraphs.
        setup.resize(setup.len().next_multiple_of(16), 0);
        Ok(setup)
    }
}

/// The blank variable store: erased flash, which Ember formats on first use.
pub fn vars_template() -> Vec<u8> {
    vec![0xff; VARS_SIZE]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake linked image: header, some code, a stub ending in a jump.
    fn fake() -> LoadImage {
        let base = 0x10_0000u64;
        let mut bytes = vec![0u8; 0x3000];
        let stub_start = base + 0x2000;
        let stub_end = base + 0x2040;
        let header = Header {
            magic: *MAGIC,
            version: U32::new(1),
            image_start: U32::new(base as u32),
            load_end: U32::new((base + 0x3000) as u32),
            image_end: U32::new((base + 0x9000) as u32),
            reset_stub_start: U32::new(stub_start as u32),
            reset_stub_end: U32::new(stub_end as u32),
            linux64_entry: U32::new((base + 0x200) as u32),
            pvh_entry: U32::new((base + 0x400) as u32),
            bz_trampoline_start: U32::new((base + 0x1000) as u32),
            bz_trampoline_end: U32::new((base + 0x1080) as u32),
        };
        bytes[..48].copy_from_slice(header.as_bytes());
        bytes[0x1000] = 0xfa; // the trampoline's first byte
        bytes[0x2030] = 0xeb; // the reset vector's jump
        LoadImage {
            base,
            bytes,
            header,
        }
    }

    #[test]
    fn flash_image_ends_with_the_stub_and_keeps_the_image_below_it() {
        let img = fake();
        let flash = img.flash_image().unwrap();
        assert_eq!(flash.len() % FLASH_GRANULE, 0);
        // 0xFFFFFFF0 is 16 bytes before the end.
        assert_eq!(flash[flash.len() - 16], 0xeb);
        let image_at = flash.len() - 0x40 - img.bytes.len();
        assert_eq!(&flash[image_at..image_at + 8], MAGIC);
        assert!(flash[..image_at].iter().all(|&b| b == 0xff));
    }

    #[test]
    fn bzimage_is_accepted_by_embers_own_linux_loader() {
        let img = fake();
        let bz = img.bzimage().unwrap();
        let parsed = ember_linux::BzImage::parse(&bz, bz.len() as u64).unwrap();
        assert_eq!(parsed.pref_address(), 0x10_0000);
        assert!(parsed.relocatable());
        assert_eq!(parsed.kernel_offset(), 1024);
        // Loaded at the link address: image with .bss (0x9000) + six table pages.
        assert_eq!(parsed.init_size(), 0x9000 + 0x6000);
        // The loader enters at +0x200 of the protected-mode part: the trampoline.
        let prot = &bz[1024..];
        assert_eq!(prot[0x200], 0xfa);
        let param =
            |i: usize| u64::from_le_bytes(prot[0x100 + 8 * i..0x108 + 8 * i].try_into().unwrap());
        assert_eq!(param(0), 0x3000, "image length");
        assert_eq!(param(1), 0x10_0000, "link address");
        assert_eq!(param(2), 0x10_0200, "entry");
        assert_eq!(param(3), 0x10_9000, "end with .bss");
        assert_eq!(&prot[0x1000..0x1008], MAGIC);
    }

    #[test]
    fn rejects_non_ember_elves() {
        assert!(load_image(b"not an elf").is_err());
        let mut elf = vec![0u8; 64];
        elf[..6].copy_from_slice(b"\x7fELF\x02\x01");
        assert!(load_image(&elf).is_err(), "no PT_LOAD");
    }
}
