//! virtio-blk against a fake device that serves requests from a `Vec<u8>`
//! by walking the real descriptor chains in host memory.

extern crate std;

use super::*;
use crate::features::{RING_EVENT_IDX, RING_INDIRECT_DESC, VERSION_1};
use crate::queue::DESC_F_WRITE;
use crate::testutil::{HostDma, RingView};
use std::vec::Vec;

#[derive(Default)]
struct Stats {
    notifies: usize,
    max_batch: usize,
    /// (type, sector, data bytes, data segments) per request, in service order.
    requests: Vec<(u32, u64, usize, usize)>,
    resets: usize,
}

struct FakeBlk {
    disk: Vec<u8>,
    offered: u64,
    accepted: u64,
    config: [u8; 24],
    status: u8,
    max_queue: u16,
    ring: Option<RingView>,
    /// Complete each batch in reverse order (exercises out-of-order completion).
    reverse: bool,
    /// Never complete anything.
    stall: bool,
    /// Fail requests touching this sector with IOERR.
    bad_sector: Option<u64>,
    /// Report a used id that was never made available.
    bogus_used: bool,
    /// Clear FEATURES_OK when set.
    reject_features: bool,
    stats: Stats,
}

impl FakeBlk {
    fn new(disk_bytes: usize) -> Self {
        let disk: Vec<u8> = (0..disk_bytes)
            .map(|i| (i / 512 * 7 + i) as u8 ^ (i >> 16) as u8)
            .collect();
        let mut f = FakeBlk {
            disk,
            offered: VERSION_1 | F_FLUSH | RING_EVENT_IDX | RING_INDIRECT_DESC,
            accepted: 0,
            config: [0; 24],
            status: 0,
            max_queue: 256,
            ring: None,
            reverse: true,
            stall: false,
            bad_sector: None,
            bogus_used: false,
            reject_features: false,
            stats: Stats::default(),
        };
        f.set_config_u64(0, (disk_bytes / 512) as u64);
        f
    }
    fn set_config_u64(&mut self, at: usize, v: u64) {
        self.config[at..at + 8].copy_from_slice(&v.to_le_bytes());
    }
    fn limits(mut self, size_max: u32, seg_max: u32) -> Self {
        self.offered |= F_SIZE_MAX | F_SEG_MAX;
        self.config[8..12].copy_from_slice(&size_max.to_le_bytes());
        self.config[12..16].copy_from_slice(&seg_max.to_le_bytes());
        self
    }

    /// Serve every available request, as a device would on notification.
    fn process(&mut self) {
        let Some(mut ring) = self.ring.take() else {
            return;
        };
        let mut heads = ring.take_avail();
        self.stats.max_batch = self.stats.max_batch.max(heads.len());
        if self.reverse {
            heads.reverse();
        }
        for head in heads {
            let written = self.serve(&ring.chain(head));
            let id = if self.bogus_used {
                head.wrapping_add(1) % 256
            } else {
                head
            };
            ring.push_used(id, written);
        }
        self.ring = Some(ring);
    }

    fn serve(&mut self, chain: &[crate::Descriptor]) -> u32 {
        assert!(chain.len() >= 2, "request needs header and status");
        let (hd, rest) = chain.split_first().unwrap();
        let (st, data) = rest.split_last().unwrap();
        assert_eq!(
            (hd.len, hd.flags & DESC_F_WRITE),
            (16, 0),
            "header must be device-readable"
        );
        assert_eq!(
            (st.len, st.flags & DESC_F_WRITE),
            (1, DESC_F_WRITE),
            "status must be device-writable"
        );
        // SAFETY: the driver published this chain; the header lives in its
        // request page (HostDma memory) for the request's lifetime.
        let header = unsafe { ptr::read(hd.addr as *const BlkReqHeader) };
        let total: usize = data.iter().map(|d| d.len as usize).sum();
        self.stats
            .requests
            .push((header.req_type, header.sector, total, data.len()));
        let start = header.sector as usize * 512;
        let in_range = start + total <= self.disk.len();
        let bad = self.bad_sector.is_some_and(|s| {
            (header.sector..header.sector + (total as u64).div_ceil(512)).contains(&s)
        });
        let mut status = if !in_range || bad { S_IOERR } else { S_OK };
        let mut written = 1;
        if status == S_OK {
            let mut pos = start;
            for d in data {
                let len = d.len as usize;
                match header.req_type {
                    T_IN => {
                        assert_ne!(d.flags & DESC_F_WRITE, 0);
                        // SAFETY: data descriptors of a read point into the
                        // caller's buffer, which the driver keeps borrowed
                        // until this request completes.
                        unsafe {
                            ptr::copy_nonoverlapping(
                                self.disk[pos..].as_ptr(),
                                d.addr as *mut u8,
                                len,
                            )
                        };
                        written += d.len;
                    }
                    T_OUT => {
                        assert_eq!(d.flags & DESC_F_WRITE, 0);
                        // SAFETY: as above, for the source buffer of a write.
                        unsafe {
                            ptr::copy_nonoverlapping(
                                d.addr as *const u8,
                                self.disk[pos..].as_mut_ptr(),
                                len,
                            )
                        };
                    }
                    _ => {}
                }
                pos += len;
            }
            if !matches!(header.req_type, T_IN | T_OUT | T_FLUSH) {
                status = S_UNSUPP;
            }
        }
        // SAFETY: the status byte in the driver's request page.
        unsafe { ptr::write(st.addr as *mut u8, status) };
        written
    }
}

impl Transport for FakeBlk {
    fn device_type(&self) -> u32 {
        device_type::BLOCK
    }
    fn vendor_id(&self) -> u32 {
        0x1af4
    }
    fn is_modern(&self) -> bool {
        true
    }
    fn read_device_features(&mut self) -> u64 {
        self.offered
    }
    fn write_driver_features(&mut self, f: u64) {
        assert_eq!(
            f & !self.offered,
            0,
            "driver accepted a feature never offered"
        );
        self.accepted = f;
    }
    fn status(&mut self) -> u8 {
        self.status
    }
    fn set_status(&mut self, s: u8) {
        self.status = s;
        if s == 0 {
            self.ring = None;
            self.stats.resets += 1;
        }
        if self.reject_features {
            self.status &= !status::FEATURES_OK;
        }
    }
    fn max_queue_size(&mut self, _: u16) -> u16 {
        self.max_queue
    }
    fn setup_queue(
        &mut self,
        index: u16,
        size: u16,
        desc: u64,
        avail: u64,
        used: u64,
    ) -> Result<(), VirtioError> {
        assert_eq!(index, 0);
        self.ring = Some(RingView::new((desc, avail, used), size));
        Ok(())
    }
    fn notify(&mut self, _: u16) {
        self.stats.notifies += 1;
        if !self.stall {
            self.process();
        }
    }
    fn config_generation(&mut self) -> u32 {
        0
    }
    fn config_read8(&mut self, o: usize) -> u8 {
        self.config[o]
    }
    fn config_read16(&mut self, o: usize) -> u16 {
        u16::from_le_bytes([self.config[o], self.config[o + 1]])
    }
    fn config_read32(&mut self, o: usize) -> u32 {
        u32::from_le_bytes(self.config[o..o + 4].try_into().unwrap())
    }
}

fn open(dev: FakeBlk) -> VirtioBlk<FakeBlk> {
    // SAFETY: host test: buffers are host memory the fake device accesses
    // by the same addresses; HostDma provides the queue memory.
    unsafe { VirtioBlk::new(dev, &HostDma, Timeout::Spins(10_000)) }.unwrap()
}

const MIB: usize = 1 << 20;

#[test]
fn plan_respects_device_limits() {
    // No limits: one segment per request, capped at MAX_REQUEST_BYTES.
    let p = plan_requests(256, None, None, 512).unwrap();
    assert_eq!(
        (
            p.segment_bytes as usize,
            p.request_bytes,
            p.descriptors_per_request
        ),
        (MIB, MIB, 3)
    );
    assert_eq!(p.in_flight, 64);
    // QEMU-like: seg_max = queue - 2, 64 KiB segments -> 16 segments of 64 KiB per MiB.
    let p = plan_requests(256, Some(254), Some(65536), 512).unwrap();
    assert_eq!(
        (p.request_bytes, p.descriptors_per_request, p.in_flight),
        (MIB, 18, 14)
    );
    // Small limits: 4 x 64 KiB.
    let p = plan_requests(64, Some(4), Some(65536), 512).unwrap();
    assert_eq!(
        (p.request_bytes, p.descriptors_per_request, p.in_flight),
        (256 * 1024, 6, 10)
    );
    // size_max not a block multiple: requests still whole blocks.
    let p = plan_requests(128, Some(3), Some(1000), 512).unwrap();
    assert_eq!((p.request_bytes, p.descriptors_per_request), (2560, 5));
    let p = plan_requests(128, Some(2), Some(6000), 4096).unwrap();
    assert_eq!(p.request_bytes, 8192);
    // seg_max is bounded by the queue: at most queue - 2 data descriptors.
    let p = plan_requests(8, Some(1000), Some(512), 512).unwrap();
    assert_eq!(
        (p.request_bytes, p.descriptors_per_request, p.in_flight),
        (3072, 8, 1)
    );
    // Zero limits mean "no limit"; impossible configurations are errors.
    assert_eq!(
        plan_requests(256, Some(0), Some(0), 512)
            .unwrap()
            .request_bytes,
        MIB
    );
    assert_eq!(
        plan_requests(2, None, None, 512),
        Err(VirtioError::QueueTooSmall(2))
    );
    assert!(matches!(
        plan_requests(64, Some(1), Some(100), 512),
        Err(VirtioError::BadConfig(_))
    ));
}

#[test]
fn data_segments_cover_buffer_exactly() {
    let segs: Vec<Segment> = data_segments(0x10_0000, 10_000, 4096, true).collect();
    assert_eq!(
        segs.iter().map(|s| s.len).collect::<Vec<_>>(),
        [4096, 4096, 1808]
    );
    assert_eq!(segs[2].addr, 0x10_0000 + 8192);
    assert!(segs.iter().all(|s| s.device_writes));
}

#[test]
fn reads_5_mib_intact_with_many_requests_in_flight() {
    let mut dev = FakeBlk::new(8 * MIB).limits(65536, 4);
    dev.max_queue = 64;
    let mut blk = open(dev);
    assert_eq!(blk.plan().request_bytes, 256 * 1024);
    let lba = 100;
    let mut buf = vec![0u8; 5 * MIB];
    blk.read_blocks(lba, &mut buf).unwrap();
    let start = lba as usize * 512;
    assert!(
        buf == blk.transport().disk[start..start + 5 * MIB],
        "data mismatch"
    );
    let stats = &blk.transport().stats;
    assert_eq!(stats.requests.len(), 20);
    assert!(stats
        .requests
        .iter()
        .all(|&(t, _, len, segs)| t == T_IN && len <= 256 * 1024 && segs <= 4));
    // Ten requests went out under the first notification.
    assert_eq!(stats.max_batch, 10);
    assert!(stats.notifies <= 20, "refills are batched");
    let mut sectors: Vec<u64> = stats.requests.iter().map(|r| r.1).collect();
    sectors.sort();
    assert_eq!(sectors, (0..20).map(|i| lba + i * 512).collect::<Vec<_>>());
    assert_eq!(blk.queue().num_free(), usize::from(blk.queue().size()));
}

#[test]
fn unlimited_device_reads_32_mib_in_one_batch_of_1_mib_requests() {
    let mut blk = open(FakeBlk::new(33 * MIB));
    let mut buf = vec![0u8; 32 * MIB];
    blk.read_blocks(2048, &mut buf).unwrap();
    assert!(buf == blk.transport().disk[MIB..33 * MIB]);
    let stats = &blk.transport().stats;
    assert_eq!(
        (stats.requests.len(), stats.max_batch, stats.notifies),
        (32, 32, 1)
    );
    assert!(stats.requests.iter().all(|r| r.2 == MIB && r.3 == 1));
}

#[test]
fn negotiates_only_supported_features() {
    let blk = open(FakeBlk::new(MIB).limits(4096, 8));
    let accepted = blk.transport().accepted;
    assert_eq!(accepted, VERSION_1 | F_FLUSH | F_SIZE_MAX | F_SEG_MAX);
    assert_eq!(blk.info().seg_max, Some(8));
    assert_eq!(blk.info().size_max, Some(4096));
    let s = blk.transport().status;
    assert_eq!(
        s,
        status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK | status::DRIVER_OK
    );
}

#[test]
fn refused_features_or_missing_version_1_fail_the_device() {
    let mut dev = FakeBlk::new(MIB);
    dev.offered &= !VERSION_1;
    // SAFETY: as in `open`.
    let err = unsafe { VirtioBlk::new(dev, &HostDma, Timeout::Spins(100)) }
        .err()
        .unwrap();
    assert_eq!(err, VirtioError::NoVersion1);
    let mut dev = FakeBlk::new(MIB);
    dev.reject_features = true;
    // SAFETY: as in `open`.
    let err = unsafe { VirtioBlk::new(dev, &HostDma, Timeout::Spins(100)) }
        .err()
        .unwrap();
    assert_eq!(err, VirtioError::FeaturesRejected);
    assert_eq!(
        std::format!("{err}"),
        "device rejected the negotiated features"
    );
}

#[test]
fn write_then_read_back_and_flush() {
    let mut blk = open(FakeBlk::new(4 * MIB).limits(8192, 3));
    let data: Vec<u8> = (0..3 * MIB + 4096).map(|i| (i * 31 % 251) as u8).collect();
    blk.write_blocks(8, &data).unwrap();
    assert!(blk.transport().disk[4096..4096 + data.len()] == data[..]);
    let mut back = vec![0u8; data.len()];
    blk.read_blocks(8, &mut back).unwrap();
    assert!(back == data);
    blk.flush().unwrap();
    let last = *blk.transport().stats.requests.last().unwrap();
    assert_eq!((last.0, last.2, last.3), (T_FLUSH, 0, 0));
    assert!(blk
        .transport()
        .stats
        .requests
        .iter()
        .all(|r| r.2 <= 3 * 8192 && r.3 <= 3));
}

#[test]
fn large_blk_size_scales_sectors() {
    let mut dev = FakeBlk::new(MIB);
    dev.offered |= F_BLK_SIZE;
    dev.config[20..24].copy_from_slice(&4096u32.to_le_bytes());
    let mut blk = open(dev);
    assert_eq!((blk.block_size(), blk.num_blocks()), (4096, 256));
    let mut buf = vec![0u8; 8192];
    blk.read_blocks(3, &mut buf).unwrap();
    assert_eq!(blk.transport().stats.requests[0].1, 24);
    assert!(buf == blk.transport().disk[3 * 4096..5 * 4096]);
    let mut odd = vec![0u8; 512];
    assert_eq!(
        blk.read_blocks(0, &mut odd),
        Err(BlockError::Misaligned {
            len: 512,
            block_size: 4096
        })
    );
}

#[test]
fn read_only_device_refuses_writes() {
    let mut dev = FakeBlk::new(MIB);
    dev.offered |= F_RO;
    let mut blk = open(dev);
    assert!(blk.read_only());
    assert_eq!(blk.write_blocks(0, &[0u8; 512]), Err(BlockError::ReadOnly));
    assert!(blk.transport().stats.requests.is_empty());
}

#[test]
fn io_error_is_reported_after_draining_the_queue() {
    let mut dev = FakeBlk::new(4 * MIB).limits(65536, 2);
    dev.bad_sector = Some(1000);
    let mut blk = open(dev);
    let mut buf = vec![0u8; 3 * MIB];
    assert_eq!(blk.read_blocks(0, &mut buf), Err(BlockError::Io(S_IOERR)));
    // Every chain came back; the device remains usable.
    assert_eq!(blk.queue().num_free(), usize::from(blk.queue().size()));
    let mut ok = vec![0u8; 4096];
    blk.read_blocks(0, &mut ok).unwrap();
    assert!(ok == blk.transport().disk[..4096]);
}

#[test]
fn out_of_range_never_reaches_the_device() {
    let mut blk = open(FakeBlk::new(MIB));
    let mut buf = vec![0u8; 1024];
    assert_eq!(
        blk.read_blocks(2047, &mut buf),
        Err(BlockError::OutOfRange {
            lba: 2047,
            blocks: 2,
            capacity: 2048
        })
    );
    assert!(blk.transport().stats.requests.is_empty());
    blk.read_blocks(0, &mut []).unwrap();
    assert!(blk.transport().stats.requests.is_empty());
}

#[test]
fn dead_device_times_out_and_is_reset() {
    let mut dev = FakeBlk::new(MIB);
    dev.stall = true;
    let mut blk = open(dev);
    let resets = blk.transport().stats.resets;
    let mut buf = vec![0u8; 4096];
    assert_eq!(blk.read_blocks(0, &mut buf), Err(BlockError::Timeout));
    assert_eq!(blk.transport().stats.resets, resets + 1);
    assert_eq!(
        blk.read_blocks(0, &mut buf),
        Err(BlockError::Io(S_DEVICE_ABANDONED))
    );
}

#[test]
fn bogus_used_id_abandons_the_device() {
    let mut dev = FakeBlk::new(MIB);
    dev.bogus_used = true;
    let mut blk = open(dev);
    let mut buf = vec![0u8; 4096];
    assert_eq!(
        blk.read_blocks(0, &mut buf),
        Err(BlockError::Io(S_DEVICE_ABANDONED))
    );
    assert_eq!(blk.transport().status, 0, "device was reset");
}

#[test]
fn clock_timeout_expires() {
    fn fake_now() -> u64 {
        use std::sync::atomic::{AtomicU64, Ordering};
        static T: AtomicU64 = AtomicU64::new(0);
        T.fetch_add(1_000, Ordering::Relaxed)
    }
    let mut d = Timeout::Clock {
        now_ns: fake_now,
        timeout_ns: 50_000,
    }
    .start();
    let mut polls = 0;
    while !d.expired() {
        polls += 1;
        assert!(polls < 1000);
    }
    assert!(polls >= 40);
}
