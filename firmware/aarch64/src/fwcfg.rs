//! QEMU's fw_cfg over MMIO (virt): items by selector, read by DMA straight
//! into their destination.

/// Well-known selectors.
pub const ID: u16 = 0x01;
pub const KERNEL_SIZE: u16 = 0x08;
pub const INITRD_SIZE: u16 = 0x0b;
pub const KERNEL_DATA: u16 = 0x11;
pub const INITRD_DATA: u16 = 0x12;
pub const CMDLINE_SIZE: u16 = 0x14;
pub const CMDLINE_DATA: u16 = 0x15;

/// The file directory.
pub const FILE_DIR: u16 = 0x19;

/// DMA control bits.
const DMA_ERROR: u32 = 0x01;
const DMA_READ: u32 = 0x02;
const DMA_SELECT: u32 = 0x08;

/// The DMA descriptor, big-endian, as QEMU reads it from guest memory.
#[repr(C, align(16))]
struct DmaAccess {
    control: u32,
    length: u32,
    address: u64,
}

pub struct FwCfg {
    base: usize,
}

impl FwCfg {
    /// # Safety
    /// `base` must be the fw_cfg MMIO registers the device tree names,
    /// mapped as device memory.
    pub unsafe fn new(base: usize) -> FwCfg {
        FwCfg { base }
    }

    fn select(&self, key: u16) {
        // SAFETY: the selector register (big-endian, +8).
        unsafe { core::ptr::write_volatile((self.base + 8) as *mut u16, key.to_be()) };
    }

    /// A little-endian u32 item (sizes, the feature bitmap).
    pub fn read_u32(&self, key: u16) -> u32 {
        self.select(key);
        let mut b = [0u8; 4];
        for x in &mut b {
            // SAFETY: the data register (+0), one byte per read.
            *x = unsafe { core::ptr::read_volatile(self.base as *const u8) };
        }
        u32::from_le_bytes(b)
    }

    /// Whether the DMA interface is there (feature bit 1 of the ID item).
    pub fn has_dma(&self) -> bool {
        self.read_u32(ID) & 2 != 0
    }

    /// Read `len` bytes of item `key` into physical memory at `dest`.
    ///
    /// # Safety
    /// `dest..dest + len` must be RAM that nothing else uses.
    pub unsafe fn dma_read(&self, key: u16, dest: usize, len: u32) -> Result<(), &'static str> {
        let d = DmaAccess {
            control: ((u32::from(key) << 16) | DMA_SELECT | DMA_READ).to_be(),
            length: len.to_be(),
            address: (dest as u64).to_be(),
        };
        let p = &d as *const DmaAccess as usize as u64;
        // SAFETY: the DMA address register (+16, big-endian; writing it
        // starts the transfer); `d` lives on this stack frame until QEMU
        // has cleared its control word.
        unsafe {
            core::ptr::write_volatile((self.base + 16) as *mut u32, ((p >> 32) as u32).to_be());
            core::ptr::write_volatile((self.base + 20) as *mut u32, (p as u32).to_be());
        }
        // QEMU completes the transfer before the write returns; a bounded
        // poll covers a VMM that does it asynchronously.
        for _ in 0..100_000_000u32 {
            // SAFETY: reading back the descriptor QEMU updates.
            let c = u32::from_be(unsafe { core::ptr::read_volatile(&d.control) });
            if c & DMA_ERROR != 0 {
                return Err("fw_cfg DMA reported an error");
            }
            if c == 0 {
                return Ok(());
            }
            core::hint::spin_loop();
        }
        Err("fw_cfg DMA did not complete")
    }

    /// The file directory's bytes (parse with `ember_fwcfg::dir`), read by
    /// DMA; `None` without DMA or on an error.
    pub fn directory(&self) -> Option<alloc::vec::Vec<u8>> {
        if !self.has_dma() {
            return None;
        }
        let mut head = [0u8; 4];
        // SAFETY: `head` is ours for the transfer.
        unsafe {
            self.dma_read(FILE_DIR, head.as_mut_ptr() as usize, 4)
                .ok()?
        };
        let len = ember_fwcfg::dir::Directory::required_len(&head).ok()?;
        let mut dir = alloc::vec![0u8; len];
        // SAFETY: `dir` is ours, `len` bytes.
        unsafe {
            self.dma_read(FILE_DIR, dir.as_mut_ptr() as usize, len as u32)
                .ok()?
        };
        Some(dir)
    }

    /// A named file (`-fw_cfg name=…`), read whole by DMA; `None` if
    /// absent or unreadable. At most `limit` bytes.
    pub fn read_file(&self, name: &str, limit: usize) -> Option<alloc::vec::Vec<u8>> {
        let dir = self.directory()?;
        let d = ember_fwcfg::dir::Directory::parse(&dir).ok()?;
        self.read_entry(&d.find(name)?, limit)
    }

    /// A file of a directory already read ([`FwCfg::directory`]), whole by
    /// DMA, at most `limit` bytes; `None` if unreadable.
    pub fn read_entry(
        &self,
        f: &ember_fwcfg::dir::FileEntry<'_>,
        limit: usize,
    ) -> Option<alloc::vec::Vec<u8>> {
        let size = (f.size as usize).min(limit);
        let mut buf = alloc::vec![0u8; size];
        // SAFETY: `buf` is ours, `size` bytes.
        unsafe {
            self.dma_read(f.select, buf.as_mut_ptr() as usize, size as u32)
                .ok()?
        };
        Some(buf)
    }
}
