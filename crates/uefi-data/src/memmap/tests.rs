use super::*;
use alloc::vec;
use alloc::vec::Vec;
use ember_mem::{E820Entry, E820_ACPI, E820_RAM, E820_RESERVED};

const MIB: u64 = 1 << 20;

/// A q35-like layout: low RAM, the BIOS hole, RAM from 1 MiB to 512 MiB
/// with ACPI tables at the top, and the reserved flash window.
fn base_map() -> MemoryMap<64> {
    MemoryMap::from_e820(&[
        E820Entry::new(0, 0x9_F000, E820_RAM),
        E820Entry::new(0x9_F000, 0x6_1000, E820_RESERVED),
        E820Entry::new(MIB, 511 * MIB - 0x2_0000, E820_RAM),
        E820Entry::new(512 * MIB - 0x2_0000, 0x2_0000, E820_ACPI),
        E820Entry::new(0xFFC0_0000, 4 * MIB, E820_RESERVED),
    ])
    .unwrap()
}

fn descriptors(buf: &[u8], size: usize) -> Vec<EfiMemoryDescriptor> {
    buf.chunks_exact(size)
        .map(|c| EfiMemoryDescriptor::read_from_bytes(&c[..40]).unwrap())
        .collect()
}

fn d(ty: u32, start: u64, pages: u64, attr: u64) -> EfiMemoryDescriptor {
    EfiMemoryDescriptor {
        ty: U32::new(ty),
        pad: U32::new(0),
        physical_start: U64::new(start),
        virtual_start: U64::new(0),
        number_of_pages: U64::new(pages),
        attribute: U64::new(attr),
    }
}

#[test]
fn kind_to_type_table() {
    // Values from UEFI spec 7.2, EFI_MEMORY_TYPE.
    assert_eq!(efi_type(MemKind::Free).0, 7);
    assert_eq!(efi_type(MemKind::Reserved).0, 0);
    assert_eq!(efi_type(MemKind::AcpiReclaim).0, 9);
    assert_eq!(efi_type(MemKind::AcpiNvs).0, 10);
    assert_eq!(efi_type(MemKind::Unusable).0, 8);
    assert_eq!(efi_type(MemKind::Mmio).0, 11);
    assert_eq!(efi_type(MemKind::Firmware).0, 3);
    assert_eq!(efi_type(MemKind::FirmwareData).0, 4);
    for k in [
        MemKind::Kernel,
        MemKind::Initrd,
        MemKind::Loader,
        MemKind::BootParams,
    ] {
        assert_eq!(efi_type(k).0, 2);
    }
    assert_eq!(efi_type(MemKind::Allocated(0x8000_0001)).0, 0x8000_0001);
    assert_eq!(attributes(MemKind::Free), 0xF);
    assert_eq!(attributes(MemKind::Allocated(6)), 0x8000_0000_0000_000F);
    assert_eq!(attributes(MemKind::Mmio), 0x1);
    assert_eq!(attributes(MemKind::Allocated(11)), 0x8000_0000_0000_0001);
}

#[test]
fn allocatable_types() {
    assert!(EfiMemoryType::LOADER_DATA.is_allocatable());
    assert!(EfiMemoryType::RESERVED.is_allocatable());
    assert!(EfiMemoryType(0x7000_0000).is_allocatable());
    assert!(EfiMemoryType(0xFFFF_FFFF).is_allocatable());
    assert!(!EfiMemoryType::CONVENTIONAL.is_allocatable());
    assert!(!EfiMemoryType::PERSISTENT.is_allocatable());
    assert!(!EfiMemoryType::UNACCEPTED.is_allocatable());
    assert!(!EfiMemoryType(16).is_allocatable());
    assert!(!EfiMemoryType(0x6FFF_FFFF).is_allocatable());
}

#[test]
fn map_is_sorted_merged_and_honours_descriptor_size() {
    let mut map = base_map();
    // Kernel and initrd side by side merge into one LoaderData descriptor.
    map.allocate_at(16 * MIB, 256, MemKind::Kernel).unwrap();
    map.allocate_at(17 * MIB, 256, MemKind::Initrd).unwrap();
    map.allocate_at(2 * MIB, 16, MemKind::Allocated(6)).unwrap();
    map.add(0xFEC0_0000, 0xFEC0_1000, MemKind::Mmio).unwrap();
    let mut buf = vec![0xAAu8; 4096];
    let n = write_map(&map, &mut buf, DESCRIPTOR_SIZE).unwrap();
    assert_eq!(n % DESCRIPTOR_SIZE, 0);
    // The padding past the 40-byte struct is zeroed.
    assert!(buf[40..48].iter().all(|&b| b == 0));
    let got = descriptors(&buf[..n], DESCRIPTOR_SIZE);
    let want = vec![
        d(7, 0, 0x9F, 0xF),
        d(0, 0x9_F000, 0x61, 0xF),
        d(7, MIB, 0x100, 0xF),
        d(6, 2 * MIB, 16, 0x8000_0000_0000_000F),
        d(
            7,
            2 * MIB + 0x1_0000,
            (14 * MIB - 0x1_0000) / PAGE_SIZE,
            0xF,
        ),
        d(2, 16 * MIB, 512, 0xF),
        d(7, 18 * MIB, (494 * MIB - 0x2_0000) / PAGE_SIZE, 0xF),
        d(9, 512 * MIB - 0x2_0000, 0x20, 0xF),
        d(11, 0xFEC0_0000, 1, 0x1),
        d(0, 0xFFC0_0000, 0x400, 0xF),
    ];
    assert_eq!(got, want);
    assert_eq!(descriptor_count(&map), want.len());
    // Tight buffer works; one byte less reports the size needed.
    let mut tight = vec![0u8; n];
    assert_eq!(write_map(&map, &mut tight, DESCRIPTOR_SIZE), Ok(n));
    assert_eq!(
        write_map(&map, &mut tight[..n - 1], DESCRIPTOR_SIZE),
        Err(MapError::BufferTooSmall { needed: n })
    );
    assert_eq!(write_map(&map, &mut buf, 40).unwrap(), want.len() * 40);
    assert_eq!(
        write_map(&map, &mut buf, 36),
        Err(MapError::BadDescriptorSize { size: 36 })
    );
    assert_eq!(
        write_map(&map, &mut buf, 44),
        Err(MapError::BadDescriptorSize { size: 44 })
    );
    assert_eq!(
        MapError::BufferTooSmall { needed: 1 }.efi_status(),
        status::BUFFER_TOO_SMALL
    );
}

#[test]
fn aligned_allocations_honour_the_alignment() {
    let mut mem = UefiMemory::new(base_map());
    // A 4 KiB allocation first, so the top is no longer 64 KiB aligned.
    let a = mem
        .allocate_pages(AllocateType::AnyPages, EfiMemoryType::LOADER_DATA, 1)
        .unwrap();
    let k = mem.key();
    let b = mem
        .allocate_aligned(EfiMemoryType::LOADER_CODE, 3, 64 * 1024, u64::MAX)
        .unwrap();
    assert_eq!(b % (64 * 1024), 0);
    assert!(b + 3 * PAGE_SIZE <= a, "below the first, top-down");
    assert_eq!(mem.map().kind_at(b), Some(MemKind::Allocated(1)));
    assert_ne!(mem.key(), k);
    let c = mem
        .allocate_aligned(EfiMemoryType::LOADER_CODE, 1, 2 * MIB, 64 * MIB - 1)
        .unwrap();
    assert_eq!(c, 62 * MIB);
    let e = mem
        .allocate_aligned(EfiMemoryType::CONVENTIONAL, 1, PAGE_SIZE, u64::MAX)
        .unwrap_err();
    assert_eq!(e.efi_status(), status::INVALID_PARAMETER);
}

#[test]
fn allocate_and_free_pages_bump_the_key() {
    let mut mem = UefiMemory::new(base_map());
    let k0 = mem.key();
    let a = mem
        .allocate_pages(AllocateType::AnyPages, EfiMemoryType::LOADER_DATA, 3)
        .unwrap();
    assert_eq!(a % PAGE_SIZE, 0);
    assert_eq!(mem.map().kind_at(a), Some(MemKind::Allocated(2)));
    let k1 = mem.key();
    assert_ne!(k0, k1);
    let b = mem
        .allocate_pages(
            AllocateType::MaxAddress(64 * MIB - 1),
            EfiMemoryType::BOOT_SERVICES_DATA,
            1,
        )
        .unwrap();
    assert_eq!(b, 64 * MIB - PAGE_SIZE);
    let c = mem
        .allocate_pages(
            AllocateType::Address(0x10_0000),
            EfiMemoryType(0x8000_0000),
            2,
        )
        .unwrap();
    assert_eq!(c, 0x10_0000);
    // Same address again: not free.
    let e = mem
        .allocate_pages(
            AllocateType::Address(0x10_0000),
            EfiMemoryType::LOADER_CODE,
            1,
        )
        .unwrap_err();
    assert_eq!(e.efi_status(), status::NOT_FOUND);
    let e = mem
        .allocate_pages(AllocateType::AnyPages, EfiMemoryType::CONVENTIONAL, 1)
        .unwrap_err();
    assert_eq!(e.efi_status(), status::INVALID_PARAMETER);
    let e = mem
        .allocate_pages(
            AllocateType::Address(0x10_0800),
            EfiMemoryType::LOADER_CODE,
            1,
        )
        .unwrap_err();
    assert_eq!(e.efi_status(), status::INVALID_PARAMETER);
    let e = mem
        .allocate_pages(AllocateType::AnyPages, EfiMemoryType::LOADER_CODE, 1 << 40)
        .unwrap_err();
    assert_eq!(e.efi_status(), status::OUT_OF_RESOURCES);
    let e = mem
        .allocate_pages(AllocateType::AnyPages, EfiMemoryType::LOADER_CODE, 0)
        .unwrap_err();
    assert_eq!(e.efi_status(), status::INVALID_PARAMETER);

    let k2 = mem.key();
    mem.free_pages(a, 3).unwrap();
    assert_ne!(mem.key(), k2);
    assert_eq!(mem.map().kind_at(a), Some(MemKind::Free));
    // Double free, Ember's own memory, a hole, unaligned: refused.
    assert_eq!(
        mem.free_pages(a, 3).unwrap_err().efi_status(),
        status::NOT_FOUND
    );
    mem.map_mut()
        .allocate_at(8 * MIB, 1, MemKind::Firmware)
        .unwrap();
    assert_eq!(
        mem.free_pages(8 * MIB, 1).unwrap_err().efi_status(),
        status::NOT_FOUND
    );
    assert_eq!(
        mem.free_pages(0xA_0000, 1).unwrap_err().efi_status(),
        status::NOT_FOUND
    );
    assert_eq!(
        mem.free_pages(c + 1, 1).unwrap_err().efi_status(),
        status::INVALID_PARAMETER
    );
    assert_eq!(
        mem.free_pages(c, u64::MAX).unwrap_err().efi_status(),
        status::INVALID_PARAMETER
    );
    // Partly beyond the allocation: refused, allocation intact.
    assert_eq!(
        mem.free_pages(c, 3).unwrap_err().efi_status(),
        status::NOT_FOUND
    );
    mem.free_pages(c, 2).unwrap();

    let mut buf = vec![0u8; 4096];
    let (n, key) = mem.get_memory_map(&mut buf, DESCRIPTOR_SIZE).unwrap();
    assert_eq!(key, mem.key());
    assert_eq!(n, descriptor_count(mem.map()) * DESCRIPTOR_SIZE);
}

/// A page source over a UefiMemory, as the firmware would wire it.
fn pages_from(mem: &mut UefiMemory<64>) -> impl FnMut(u64, u32) -> Option<u64> + '_ {
    |n, t| {
        mem.allocate_pages(AllocateType::AnyPages, EfiMemoryType(t), n)
            .ok()
    }
}

#[test]
fn pool_small_allocations_are_aligned_disjoint_and_typed() {
    let mut mem = UefiMemory::new(base_map());
    let mut pool = Pool::new();
    let mut got: Vec<(u64, u64)> = Vec::new();
    for (i, size) in [1u64, 7, 8, 9, 100, 0, 4000, 33].iter().enumerate() {
        let t = if i % 2 == 0 { 2 } else { 4 };
        let a = pool.allocate(*size, t, pages_from(&mut mem)).unwrap();
        assert_eq!(a % 8, 0, "8-byte alignment (UEFI spec 7.2 AllocatePool)");
        assert_eq!(mem.map().kind_at(a), Some(MemKind::Allocated(t)));
        let (sz, ty) = pool.lookup(a).unwrap();
        assert_eq!(ty, t);
        assert!(sz >= (*size).max(1));
        for &(b, bs) in &got {
            assert!(a + sz <= b || b + bs <= a, "overlap");
        }
        got.push((a, sz));
    }
    assert_eq!(pool.len(), 8);
    // 8-byte requests are packed: two consecutive 8-byte blocks touch.
    let x = pool.allocate(8, 9, pages_from(&mut mem)).unwrap();
    let y = pool.allocate(8, 9, pages_from(&mut mem)).unwrap();
    assert_eq!(y, x + 8);
}

#[test]
fn pool_free_releases_pages_and_rejects_bad_pointers() {
    let mut mem = UefiMemory::new(base_map());
    let mut pool = Pool::new();
    let a = pool.allocate(100, 4, pages_from(&mut mem)).unwrap();
    let b = pool.allocate(200, 4, pages_from(&mut mem)).unwrap();
    let big = pool
        .allocate(3 * PAGE_SIZE + 1, 4, pages_from(&mut mem))
        .unwrap();
    assert_eq!(pool.lookup(big), Some((4 * PAGE_SIZE, 4)));
    assert_eq!(
        pool.free(big),
        Ok(Some(ReleasedPages {
            addr: big,
            pages: 4
        }))
    );
    assert_eq!(pool.free(big), Err(PoolError::UnknownAddress { addr: big }));
    assert_eq!(
        pool.free(a + 8),
        Err(PoolError::UnknownAddress { addr: a + 8 })
    );
    assert_eq!(
        PoolError::UnknownAddress { addr: 0 }.efi_status(),
        status::INVALID_PARAMETER
    );
    assert_eq!(pool.free(a), Ok(None));
    // The freed block is reused (first fit, coalesced with its neighbour).
    let c = pool.allocate(100, 4, pages_from(&mut mem)).unwrap();
    assert_eq!(c, a);
    assert_eq!(pool.free(c), Ok(None));
    let r = pool.free(b).unwrap().unwrap();
    assert_eq!(r.pages, POOL_CHUNK_PAGES);
    assert!(r.addr <= a && a < r.addr + POOL_CHUNK_PAGES * PAGE_SIZE);
    mem.free_pages(r.addr, r.pages).unwrap();
    assert!(pool.is_empty());
}

#[test]
fn pool_failures_do_not_panic() {
    let mut pool = Pool::new();
    assert_eq!(pool.allocate(u64::MAX, 4, |_, _| Some(0x1000)), None);
    assert_eq!(pool.allocate(u64::MAX - 7, 4, |_, _| Some(0x1000)), None);
    assert_eq!(pool.allocate(16, 4, |_, _| None), None);
    // A page source that returns unaligned or repeated bases is refused.
    assert_eq!(pool.allocate(16, 4, |_, _| Some(0x1001)), None);
    assert_eq!(pool.allocate(8192, 4, |_, _| Some(0x2000)), Some(0x2000));
    assert_eq!(pool.allocate(8192, 4, |_, _| Some(0x2000)), None);
    assert_eq!(pool.len(), 1);
}
