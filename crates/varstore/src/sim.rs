//! [`SimFlash`]: NOR flash in RAM with fault injection, for tests and
//! fuzzing (and usable as a volatile store where there is no flash).
//!
//! It enforces NOR rules — programming may only clear bits, erase works on
//! whole [`BLOCK_SIZE`] blocks — and counts program/erase operations. A
//! [`Fault`] interrupts operation number `at_op`: the operation either does
//! not happen at all or is *torn* (a prefix of the bytes lands with the next
//! byte half-programmed, or a random subset of the bits lands; for erase, a
//! prefix of the block is erased or every byte gets a random subset of its
//! bits set). With `power_loss` the device then refuses everything — reads
//! included — until [`SimFlash::power_cycle`], like a machine that lost
//! power. Torn results are pseudo-random but fully determined by the seed.

use alloc::vec;
use alloc::vec::Vec;

use crate::{Flash, FlashError, FlashOp, BLOCK_SIZE};

/// An injected failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    /// Index (counting from 0 since creation) of the program/erase operation
    /// that fails.
    pub at_op: u64,
    /// The operation partly happens instead of not at all.
    pub torn: bool,
    /// Everything fails afterwards until [`SimFlash::power_cycle`];
    /// otherwise only this operation fails (a device error).
    pub power_loss: bool,
    /// Chooses how the operation is torn.
    pub seed: u64,
}

/// NOR flash simulated in RAM.
#[derive(Clone, Debug)]
pub struct SimFlash {
    data: Vec<u8>,
    ops: u64,
    programs: u64,
    erases: u64,
    fault: Option<Fault>,
    dead: bool,
    violations: u64,
}

/// splitmix64: small, deterministic, good enough to pick torn bits.
fn mix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl SimFlash {
    /// An erased device of `len` bytes.
    pub fn blank(len: u32) -> Self {
        Self::from_image(vec![0xFF; len as usize])
    }

    /// A device holding `image` (its length should be a multiple of
    /// [`BLOCK_SIZE`] and fit a `u32`).
    pub fn from_image(image: Vec<u8>) -> Self {
        SimFlash {
            data: image,
            ops: 0,
            programs: 0,
            erases: 0,
            fault: None,
            dead: false,
            violations: 0,
        }
    }

    /// The current contents.
    pub fn image(&self) -> &[u8] {
        &self.data
    }

    /// The contents, for corrupting them directly (no NOR rules apply).
    pub fn image_mut(&mut self) -> &mut [u8] {
        &mut self.data
    }

    /// Take the contents.
    pub fn into_image(self) -> Vec<u8> {
        self.data
    }

    /// Program and erase operations attempted so far (the failing one
    /// included; none are counted while the power is off).
    pub fn ops(&self) -> u64 {
        self.ops
    }

    /// Program operations attempted.
    pub fn programs(&self) -> u64 {
        self.programs
    }

    /// Erase operations attempted.
    pub fn erases(&self) -> u64 {
        self.erases
    }

    /// Programs that tried to set a bit (0 → 1). They fail without
    /// changing anything; a correct store never causes one.
    pub fn violations(&self) -> u64 {
        self.violations
    }

    /// Power is off after a [`Fault`] with `power_loss`.
    pub fn is_dead(&self) -> bool {
        self.dead
    }

    /// Fail operation `fault.at_op` as described (replaces any armed fault).
    pub fn arm(&mut self, fault: Fault) {
        self.fault = Some(fault);
    }

    /// The armed fault has not triggered yet.
    pub fn armed(&self) -> bool {
        self.fault.is_some()
    }

    /// Turn the power back on and forget any armed fault.
    pub fn power_cycle(&mut self) {
        self.dead = false;
        self.fault = None;
    }

    fn range(&self, offset: u32, len: usize) -> Result<core::ops::Range<usize>, FlashError> {
        let start = offset as usize;
        match start.checked_add(len) {
            Some(end) if end <= self.data.len() => Ok(start..end),
            _ => Err(FlashError::OutOfRange {
                offset,
                len: u32::try_from(len).unwrap_or(u32::MAX),
            }),
        }
    }

    /// Count an operation; `Some(fault)` if it is the one to fail.
    fn begin(&mut self, op: FlashOp, offset: u32) -> Result<Option<Fault>, FlashError> {
        if self.dead {
            return Err(FlashError::Device { op, offset });
        }
        let idx = self.ops;
        self.ops += 1;
        match self.fault {
            Some(f) if f.at_op == idx => {
                self.fault = None;
                self.dead = f.power_loss;
                Ok(Some(f))
            }
            _ => Ok(None),
        }
    }
}

impl Flash for SimFlash {
    fn len(&self) -> u32 {
        u32::try_from(self.data.len()).unwrap_or(u32::MAX)
    }

    fn read(&mut self, offset: u32, buf: &mut [u8]) -> Result<(), FlashError> {
        if self.dead {
            return Err(FlashError::Device {
                op: FlashOp::Read,
                offset,
            });
        }
        let r = self.range(offset, buf.len())?;
        buf.copy_from_slice(&self.data[r]);
        Ok(())
    }

    fn program(&mut self, offset: u32, data: &[u8]) -> Result<(), FlashError> {
        let r = self.range(offset, data.len())?;
        let fault = self.begin(FlashOp::Program, offset)?;
        self.programs += 1;
        let cur = &mut self.data[r];
        if cur.iter().zip(data).any(|(&c, &d)| c & d != d) {
            self.violations += 1;
            return Err(FlashError::Device {
                op: FlashOp::Program,
                offset,
            });
        }
        let Some(f) = fault else {
            for (c, &d) in cur.iter_mut().zip(data) {
                *c &= d;
            }
            return Ok(());
        };
        if f.torn && !data.is_empty() {
            let mut rng = f.seed ^ f.at_op.rotate_left(32);
            if mix(&mut rng).is_multiple_of(2) {
                // In address order: a prefix, then one partly programmed byte.
                let n = (mix(&mut rng) % (data.len() as u64 + 1)) as usize;
                for (c, &d) in cur.iter_mut().zip(data).take(n) {
                    *c &= d;
                }
                if let (Some(c), Some(&d)) = (cur.get_mut(n), data.get(n)) {
                    *c &= d | mix(&mut rng) as u8;
                }
            } else {
                // Some cells made it, some did not.
                for (c, &d) in cur.iter_mut().zip(data) {
                    *c &= d | mix(&mut rng) as u8;
                }
            }
        }
        Err(FlashError::Device {
            op: FlashOp::Program,
            offset,
        })
    }

    fn erase(&mut self, block: u32) -> Result<(), FlashError> {
        let offset = block.saturating_mul(BLOCK_SIZE);
        let r = self.range(offset, BLOCK_SIZE as usize)?;
        let fault = self.begin(FlashOp::Erase, offset)?;
        self.erases += 1;
        let cur = &mut self.data[r];
        let Some(f) = fault else {
            cur.fill(0xFF);
            return Ok(());
        };
        if f.torn {
            let mut rng = f.seed ^ f.at_op.rotate_left(32);
            if mix(&mut rng).is_multiple_of(2) {
                let n = (mix(&mut rng) % (BLOCK_SIZE as u64 + 1)) as usize;
                cur[..n].fill(0xFF);
            } else {
                for c in cur.iter_mut() {
                    *c |= mix(&mut rng) as u8;
                }
            }
        }
        Err(FlashError::Device {
            op: FlashOp::Erase,
            offset,
        })
    }
}
