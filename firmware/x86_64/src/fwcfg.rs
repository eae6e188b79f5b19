//! QEMU's fw_cfg device on x86: the selector/data ports and, where QEMU
//! offers it, the DMA interface (one port write per transfer, straight into
//! place — how kernels and initrds are loaded fast). The wire formats live in
//! `ember-fwcfg`; this is only the hardware access.

use crate::arch::io::{inb, outl, outw};
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use ember_fwcfg::dma::{dma_address_halves, DmaStatus};
use ember_fwcfg::{
    Directory, DmaAccess, FwCfgFile, ID_DMA, PORT_DATA, PORT_DMA, PORT_DMA_LOW, PORT_SELECTOR,
};
use zerocopy::{FromBytes, IntoBytes};

/// A file in fw_cfg's directory.
#[derive(Clone, Debug)]
pub struct File {
    pub name: String,
    pub size: u32,
    pub select: u16,
}

/// A probed fw_cfg device.
pub struct FwCfg {
    dma: bool,
    files: Vec<File>,
}

/// Why a transfer failed.
#[derive(Debug)]
pub enum DmaError {
    /// The device set the error bit.
    Device,
    /// The device never finished (a VMM that does not complete DMA
    /// synchronously would otherwise hang Ember here).
    Timeout,
    /// A write needs the DMA interface, which this fw_cfg lacks.
    NoDma,
}

impl core::fmt::Display for DmaError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            DmaError::Device => "fw_cfg DMA transfer reported an error",
            DmaError::Timeout => "fw_cfg DMA transfer did not finish within 1 s",
            DmaError::NoDma => "fw_cfg has no DMA interface (needed for writes)",
        })
    }
}

/// How long a DMA transfer may take (QEMU completes them synchronously).
const DMA_TIMEOUT_NS: u64 = 1_000_000_000;

fn select(key: u16) {
    // SAFETY: the fw_cfg selector port (probe's contract).
    unsafe { outw(PORT_SELECTOR, key) }
}

fn read_pio(buf: &mut [u8]) {
    for b in buf {
        // SAFETY: the fw_cfg data port (probe's contract).
        *b = unsafe { inb(PORT_DATA) };
    }
}

impl FwCfg {
    /// Find fw_cfg by its "QEMU" signature.
    ///
    /// # Safety
    /// Ports 0x510-0x51b must be QEMU's fw_cfg or unclaimed (reads of
    /// unclaimed ports return 0xff, which fails the signature check).
    pub unsafe fn probe() -> Option<FwCfg> {
        // SAFETY: per our contract.
        let mut cfg = unsafe { Self::probe_early() }?;
        cfg.files = cfg.load_directory();
        log::debug!(
            "fw_cfg: {} file(s), DMA {}",
            cfg.files.len(),
            if cfg.dma { "yes" } else { "no" }
        );
        Some(cfg)
    }

    /// Probe without allocating: for the memory map, before the heap exists.
    ///
    /// # Safety
    /// As [`FwCfg::probe`].
    pub unsafe fn probe_early() -> Option<FwCfg> {
        select(ember_fwcfg::SIGNATURE);
        let mut sig = [0u8; 4];
        read_pio(&mut sig);
        if &sig != b"QEMU" {
            return None;
        }
        select(ember_fwcfg::ID);
        let mut id = [0u8; 4];
        read_pio(&mut id);
        Some(FwCfg {
            dma: u32::from_le_bytes(id) & ID_DMA != 0,
            files: Vec::new(),
        })
    }

    fn load_directory(&mut self) -> Vec<File> {
        let mut head = [0u8; 4];
        self.read(ember_fwcfg::FILE_DIR, &mut head);
        let parsed = Directory::required_len(&head).and_then(|len| {
            let mut raw = vec![0u8; len];
            self.read(ember_fwcfg::FILE_DIR, &mut raw);
            Directory::parse(&raw).map(|d| {
                d.iter()
                    .filter_map(|f| {
                        Some(File {
                            name: String::from(f.name()?),
                            size: f.size,
                            select: f.select,
                        })
                    })
                    .collect()
            })
        });
        parsed.unwrap_or_else(|e| {
            log::warn!("fw_cfg: file directory: {e}");
            Vec::new()
        })
    }

    /// Look a file up by streaming the directory through the data port:
    /// no allocation, for use before the heap exists.
    pub fn find_early(&mut self, name: &str) -> Option<(u16, u32)> {
        select(ember_fwcfg::FILE_DIR);
        let mut count = [0u8; 4];
        read_pio(&mut count);
        for _ in 0..u32::from_be_bytes(count).min(ember_fwcfg::dir::MAX_FILES) {
            let mut raw = [0u8; 64];
            read_pio(&mut raw);
            let f = FwCfgFile::read_from_bytes(&raw).ok()?;
            let end = f.name.iter().position(|&b| b == 0).unwrap_or(f.name.len());
            if &f.name[..end] == name.as_bytes() {
                return Some((f.select.get(), f.size.get()));
            }
        }
        None
    }

    /// The named file's directory entry.
    pub fn file(&self, name: &str) -> Option<&File> {
        self.files.iter().find(|f| f.name == name)
    }

    /// Read the start of item `key` into `buf`.
    pub fn read(&mut self, key: u16, buf: &mut [u8]) {
        if self.dma {
            // A DMA failure falls back to port reads, which cannot fail.
            // SAFETY: `buf` is identity-mapped memory we exclusively borrow.
            if unsafe {
                self.dma(DmaAccess::read(
                    Some(key),
                    buf.len() as u32,
                    buf.as_mut_ptr() as u64,
                ))
            }
            .is_ok()
            {
                return;
            }
        }
        select(key);
        read_pio(buf);
    }

    /// Read a whole named file.
    pub fn read_file(&mut self, name: &str) -> Option<Vec<u8>> {
        let f = self.file(name)?.clone();
        let mut v = vec![0u8; f.size as usize];
        self.read(f.select, &mut v);
        Some(v)
    }

    /// A named file as text (e.g. `opt/ember/cmdline`, `bootorder`).
    pub fn read_string(&mut self, name: &str) -> Option<String> {
        let v = self.read_file(name)?;
        let end = v.iter().position(|&b| b == 0).unwrap_or(v.len());
        Some(String::from_utf8_lossy(&v[..end]).into_owned())
    }

    /// DMA `len` bytes of item `key` straight to physical memory at `addr`.
    ///
    /// # Safety
    /// `[addr, addr+len)` must be RAM allocated for this data and not
    /// otherwise referenced.
    pub unsafe fn read_to_phys(&mut self, key: u16, addr: u64, len: u32) -> Result<(), DmaError> {
        if self.dma {
            // SAFETY: per the caller.
            return unsafe { self.dma(DmaAccess::read(Some(key), len, addr)) };
        }
        // SAFETY: per the caller.
        let dst = unsafe { crate::phys::bytes_mut(addr, len as usize) };
        select(key);
        read_pio(dst);
        Ok(())
    }

    /// Write `bytes` at `offset` into item `key` (DMA only: writes through
    /// the data port were removed from QEMU).
    pub fn write(&mut self, key: u16, offset: u32, bytes: &[u8]) -> Result<(), DmaError> {
        if !self.dma {
            return Err(DmaError::NoDma);
        }
        // SAFETY: the skip only moves fw_cfg's offset; nothing is written to memory.
        unsafe { self.dma(DmaAccess::skip(Some(key), offset))? };
        // SAFETY: QEMU only reads from `bytes` for a write.
        unsafe {
            self.dma(DmaAccess::write(
                None,
                bytes.len() as u32,
                bytes.as_ptr() as u64,
            ))
        }
    }

    /// Run one DMA command and wait for it.
    ///
    /// # Safety
    /// The command's buffer must be valid for the transfer's direction.
    unsafe fn dma(&mut self, cmd: DmaAccess) -> Result<(), DmaError> {
        let mut cmd = cmd;
        let ptr: *mut DmaAccess = &mut cmd;
        let (high, low) = dma_address_halves(cmd.as_mut_bytes().as_mut_ptr() as u64);
        // SAFETY: the DMA address register, high half then low half (the low
        // write starts the transfer); `cmd` stays alive until it completes.
        unsafe {
            outl(PORT_DMA, high.to_be());
            outl(PORT_DMA_LOW, low.to_be());
        }
        let t0 = crate::time::now_ns();
        loop {
            // SAFETY: `cmd` is ours; QEMU updates it in place, hence volatile.
            match unsafe { core::ptr::read_volatile(ptr) }.status() {
                DmaStatus::Done => return Ok(()),
                DmaStatus::Error => return Err(DmaError::Device),
                DmaStatus::Busy if crate::time::now_ns() - t0 > DMA_TIMEOUT_NS => {
                    log::error!("fw_cfg: {}", DmaError::Timeout);
                    return Err(DmaError::Timeout);
                }
                DmaStatus::Busy => core::hint::spin_loop(),
            }
        }
    }
}
