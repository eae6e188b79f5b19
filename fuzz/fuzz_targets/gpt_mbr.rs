//! GPT/MBR parsing of arbitrary disks: no panics, and every partition returned
//! is non-empty and lies on the disk (the boot path wraps each one in a
//! `Slice` and mounts it).
#![no_main]

use ember_block::{BlockDevice, MemDisk, Slice};
use ember_fuzz::SparseDisk;
use libfuzzer_sys::fuzz_target;

fn check<D: BlockDevice>(dev: &mut D) {
    let disk_blocks = dev.num_blocks();
    let Ok(table) = ember_part::read_partitions(dev) else {
        return;
    };
    for p in &table.partitions {
        assert!(p.num_blocks != 0, "empty partition {p:?}");
        let end = p.first_lba.checked_add(p.num_blocks);
        assert!(
            end.is_some_and(|e| e <= disk_blocks),
            "partition {p:?} runs past the disk ({disk_blocks} blocks)"
        );
        let mut part = Slice::new(&mut *dev, p.first_lba, p.num_blocks)
            .expect("a partition that fits the disk makes a valid slice");
        let mut first = [0u8; 512];
        part.read_blocks(0, &mut first)
            .expect("the first block of a partition is readable");
    }
}

fuzz_target!(|data: &[u8]| {
    // The input as a literal disk image (small disks, MBR, primary GPT)...
    check(&mut MemDisk::from_bytes(data.to_vec()));
    // ...and as a sparse description (large disks with a backup GPT).
    check(&mut SparseDisk::from_fuzz(data));
});
