//! Runtime services at virtual addresses, as an OS that does not keep the
//! firmware's 1:1 mapping uses them: ExitBootServices; SetVirtualAddressMap
//! with every run of physically contiguous runtime ranges moved high, each
//! by its own offset and in reverse order (as Linux lays them out); then
//! page tables of our own in which the runtime ranges exist only at those
//! virtual addresses; then every service through the converted tables, and
//! finally ResetSystem(EfiResetShutdown) from there.
//!
//! Boot services (ConOut, the allocator) are gone after ExitBootServices:
//! output goes straight to COM1 (`out::to_serial`), and every buffer is
//! set up before. A CPU exception in this phase lands in our own handlers,
//! which print it and power the VM off, so the harness sees what broke.

use crate::out::{self, check, expect_eq, expect_status, St};
use crate::util::{bs, guid, image, rt, st};
use core::arch::{asm, global_asm};
use core::ffi::c_void;
use core::ptr::null_mut;
use core::sync::atomic::{AtomicU64, Ordering};
use r_efi::efi;

const VENDOR: efi::Guid = guid(
    0x6d1c_0a55,
    0x3e2f,
    0x4b8a,
    [0x9c, 0x47, 0x51, 0x7e, 0x0b, 0x26, 0xd4, 0x13],
);
const NV_BS_RT: u32 =
    efi::VARIABLE_NON_VOLATILE | efi::VARIABLE_BOOTSERVICE_ACCESS | efi::VARIABLE_RUNTIME_ACCESS;
const BS_RT: u32 = efi::VARIABLE_BOOTSERVICE_ACCESS | efi::VARIABLE_RUNTIME_ACCESS;

/// Set before ExitBootServices, read at the virtual addresses.
const PROBE: &[u8] = b"set during boot services";
const VOLATILE: &[u8] = b"volatile";
const WRITTEN: &[u8] = b"written at a virtual address";

/// Where the moved ranges go: top-down from here (PML4 slot 510).
const VA_TOP: u64 = 0xffff_ff7f_0000_0000;
/// Pages for our page tables.
const TABLE_PAGES: usize = 256;
/// The memory map's buffer.
const MAP_PAGES: usize = 16;
const PAGE: u64 = 4096;
const MAX_RUNS: usize = 128;

/// NUL-terminated UCS-2 names, as constants (no allocator after
/// ExitBootServices).
const fn ucs2<const N: usize>(s: &[u8; N]) -> [u16; N] {
    let mut out = [0u16; N];
    let mut i = 0;
    while i < N {
        out[i] = s[i] as u16;
        i += 1;
    }
    out
}
static N_PROBE: [u16; 15] = ucs2(b"EmberVirtProbe\0");
static N_VOLATILE: [u16; 18] = ucs2(b"EmberVirtVolatile\0");
static N_WRITTEN: [u16; 17] = ucs2(b"EmberVirtWritten\0");
/// Written at the virtual address and left in place: with a writable
/// variable flash the harness then finds it in the file (and the probe
/// gone), which shows the writes reached the flash from virtual mode.
static N_KEPT: [u16; 14] = ucs2(b"EmberVirtKept\0");

/// A run of physically contiguous runtime ranges and where it goes.
#[derive(Clone, Copy, Default)]
struct Run {
    phys: u64,
    pages: u64,
    virt: u64,
}

struct Runs {
    runs: [Run; MAX_RUNS],
    len: usize,
}

impl Runs {
    fn virt_of(&self, pa: u64) -> Option<u64> {
        self.runs[..self.len]
            .iter()
            .find(|r| pa >= r.phys && pa - r.phys < r.pages * PAGE)
            .map(|r| r.virt + (pa - r.phys))
    }
    fn is_virtual(&self, va: u64) -> bool {
        self.runs[..self.len]
            .iter()
            .any(|r| va >= r.virt && va - r.virt < r.pages * PAGE)
    }
    fn overlaps(&self, start: u64, end: u64) -> bool {
        self.runs[..self.len]
            .iter()
            .any(|r| start < r.phys + r.pages * PAGE && r.phys < end)
    }
}

/// Page tables built in a pool of pages allocated before ExitBootServices.
struct Tables {
    pool: u64,
    used: usize,
    pml4: *mut u64,
}

const P: u64 = 1;
const RW: u64 = 2;
const PS: u64 = 0x80;

impl Tables {
    unsafe fn page(&mut self) -> Option<*mut u64> {
        if self.used == TABLE_PAGES {
            return None;
        }
        let p = (self.pool + self.used as u64 * PAGE) as *mut u64;
        self.used += 1;
        core::ptr::write_bytes(p, 0, 512);
        Some(p)
    }
    /// The table below entry `i` of `t`, made if missing.
    unsafe fn next(&mut self, t: *mut u64, i: u64) -> Option<*mut u64> {
        let e = t.add(i as usize);
        if *e & P == 0 {
            let n = self.page()?;
            *e = n as u64 | P | RW;
        }
        Some((*e & 0x000f_ffff_ffff_f000) as *mut u64)
    }
    unsafe fn map(&mut self, va: u64, pa: u64, big: bool) -> Option<()> {
        let pdpt = self.next(self.pml4, (va >> 39) & 511)?;
        let pd = self.next(pdpt, (va >> 30) & 511)?;
        if big {
            *pd.add(((va >> 21) & 511) as usize) = pa | P | RW | PS;
            return Some(());
        }
        let pt = self.next(pd, (va >> 21) & 511)?;
        *pt.add(((va >> 12) & 511) as usize) = pa | P | RW;
        Some(())
    }
}

// Exception handlers for this phase: the firmware's are behind our page
// tables' back (and for the runtime part, unmapped).
global_asm!(
    r#"
    .global ember_vfault_noerr
    .global ember_vfault_err
ember_vfault_noerr:
    push 0
ember_vfault_err:
    mov rdi, [rsp]          # error code
    mov rsi, [rsp + 8]      # faulting rip
    mov rdx, cr2
    and rsp, -16
    call {fault}
    ud2
    "#,
    fault = sym fault,
);

extern "C" {
    fn ember_vfault_noerr();
    fn ember_vfault_err();
}

extern "sysv64" fn fault(err: u64, rip: u64, cr2: u64) -> ! {
    out::line(format_args!(
        "FAIL virtual mode: CPU exception at rip {rip:#x} (error {err:#x}, cr2 {cr2:#x})"
    ));
    out::line(format_args!("CONFORMANCE: crashed in virtual mode"));
    // SAFETY: QEMU's PC machines: the ACPI PM1a control block at 0x604
    // (SLP_EN, S5 type 0), where both OVMF and Ember put it.
    unsafe {
        asm!("out dx, ax", in("dx") 0x604u16, in("ax") 0x2000u16);
        loop {
            asm!("cli; hlt");
        }
    }
}

#[repr(C, packed)]
struct DescPtr {
    limit: u16,
    base: u64,
}

/// The descriptor tables of this phase. They live in `run`'s frame, which
/// is never left (it ends in ResetSystem), so they stay valid and in place.
struct DescriptorTables {
    idt: [[u64; 2]; 32],
    gdt: [u64; 16],
}

/// Load `t` as our own GDT (a copy of the firmware's) and an IDT with the
/// handlers above: both in our memory, which stays 1:1.
///
/// # Safety
/// `t` must stay where it is, untouched, for as long as the CPU uses it.
unsafe fn own_descriptor_tables(t: &mut DescriptorTables) {
    let mut g = DescPtr { limit: 0, base: 0 };
    asm!("sgdt [{}]", in(reg) &mut g);
    let len = (usize::from(g.limit) + 1).min(core::mem::size_of_val(&t.gdt));
    // SAFETY: the firmware's GDT (SGDT's base and limit) into our copy,
    // at most its size.
    core::ptr::copy_nonoverlapping(g.base as *const u8, t.gdt.as_mut_ptr() as *mut u8, len);
    let ng = DescPtr {
        limit: (len - 1) as u16,
        base: t.gdt.as_ptr() as u64,
    };
    asm!("lgdt [{}]", in(reg) &ng);
    let cs: u16;
    asm!("mov {0:x}, cs", out(reg) cs);
    for (v, gate) in t.idt.iter_mut().enumerate() {
        let with_err = matches!(v, 8 | 10 | 11 | 12 | 13 | 14 | 17);
        let h = if with_err {
            ember_vfault_err as *const () as u64
        } else {
            ember_vfault_noerr as *const () as u64
        };
        // Present 64-bit interrupt gate, DPL 0.
        let lo =
            (h & 0xffff) | (u64::from(cs) << 16) | (0x8e00u64 << 32) | ((h >> 16) & 0xffff) << 48;
        *gate = [lo, h >> 32];
    }
    let ni = DescPtr {
        limit: (core::mem::size_of_val(&t.idt) - 1) as u16,
        base: t.idt.as_ptr() as u64,
    };
    asm!("lidt [{}]", in(reg) &ni);
}

unsafe fn alloc_pages(n: usize) -> Option<u64> {
    let mut a: efi::PhysicalAddress = 0;
    let s = (bs().allocate_pages)(efi::ALLOCATE_ANY_PAGES, efi::LOADER_DATA, n, &mut a);
    (s == efi::Status::SUCCESS).then_some(a)
}

unsafe fn set(name: &[u16], attrs: u32, data: &[u8]) -> efi::Status {
    let mut g = VENDOR;
    (rt().set_variable)(
        name.as_ptr() as *mut u16,
        &mut g,
        attrs,
        data.len(),
        data.as_ptr() as *mut c_void,
    )
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in bytes {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ 0xedb8_8320
            } else {
                c >> 1
            };
        }
    }
    !c
}

/// A table's header CRC, checked with the field zeroed.
unsafe fn crc_ok(table: *const u8, size: usize) -> bool {
    let mut copy = [0u8; 256];
    if size > copy.len() || size < 24 {
        return false;
    }
    core::ptr::copy_nonoverlapping(table, copy.as_mut_ptr(), size);
    let want = u32::from_le_bytes([copy[16], copy[17], copy[18], copy[19]]);
    copy[16..20].fill(0);
    crc32(&copy[..size]) == want
}

/// What our EVT_SIGNAL_VIRTUAL_ADDRESS_CHANGE notification saw: how often
/// it ran, and what ConvertPointer made of the runtime-services table's
/// physical address (with its status).
static NOTIFIED: AtomicU64 = AtomicU64::new(0);
static RT_PHYS: AtomicU64 = AtomicU64::new(0);
static CONVERTED: AtomicU64 = AtomicU64::new(0);
static CONVERT_STATUS: AtomicU64 = AtomicU64::new(u64::MAX);

/// Runs inside SetVirtualAddressMap, in physical mode: ConvertPointer is
/// the one service it may call.
extern "efiapi" fn on_address_change(_ev: efi::Event, _ctx: *mut c_void) {
    NOTIFIED.fetch_add(1, Ordering::SeqCst);
    let rt = RT_PHYS.load(Ordering::SeqCst);
    let mut p = rt as *mut c_void;
    // SAFETY: the runtime-services table at its physical address, which
    // the firmware's tables still map during SetVirtualAddressMap.
    let s = unsafe { ((*(rt as *const efi::RuntimeServices)).convert_pointer)(0, &mut p) };
    CONVERT_STATUS.store(s.as_usize() as u64, Ordering::SeqCst);
    CONVERTED.store(p as u64, Ordering::SeqCst);
}

/// Map [start, end) 1:1, in 2 MiB pages where no runtime range is in the
/// way; the runtime ranges' own pages are left out.
unsafe fn identity(t: &mut Tables, runs: &Runs, start: u64, end: u64) -> bool {
    const BIG: u64 = 1 << 21;
    let mut block = start & !(BIG - 1);
    while block < end {
        if runs.overlaps(block, block + BIG) {
            let mut p = block;
            while p < block + BIG {
                if !runs.overlaps(p, p + PAGE) && t.map(p, p, false).is_none() {
                    return false;
                }
                p += PAGE;
            }
        } else if t.map(block, block, true).is_none() {
            return false;
        }
        block += BIG;
    }
    true
}

/// The whole phase; does not return (it ends in ResetSystem).
pub unsafe fn run() -> ! {
    out::line(format_args!(
        "virtual mode: ExitBootServices, SetVirtualAddressMap, no 1:1 map of runtime memory"
    ));
    // Variables the runtime part must carry over.
    let s1 = set(&N_PROBE, NV_BS_RT, PROBE);
    let s2 = set(&N_VOLATILE, BS_RT, VOLATILE);
    // Left over by an earlier run on the same variables.
    let _ = set(&N_WRITTEN, NV_BS_RT, &[]);
    let _ = set(&N_KEPT, NV_BS_RT, &[]);
    let (Some(pool), Some(mapbuf)) = (alloc_pages(TABLE_PAGES), alloc_pages(MAP_PAGES)) else {
        check(
            "virtual mode: page-table memory",
            false,
            format_args!("AllocatePages failed"),
        );
        out::summary_and_shutdown()
    };
    expect_status(
        "virtual mode: SetVariable(NV probe) before ExitBootServices",
        s1,
        efi::Status::SUCCESS,
    );
    expect_status(
        "virtual mode: SetVariable(volatile probe) before ExitBootServices",
        s2,
        efi::Status::SUCCESS,
    );
    let st_pa = st();
    let rt_pa = (*st_pa).runtime_services as u64;
    let vendor_pa = (*st_pa).firmware_vendor as u64;
    RT_PHYS.store(rt_pa, Ordering::SeqCst);
    let mut ev: efi::Event = null_mut();
    let s = (bs().create_event)(
        efi::EVT_SIGNAL_VIRTUAL_ADDRESS_CHANGE,
        efi::TPL_NOTIFY,
        Some(on_address_change),
        null_mut(),
        &mut ev,
    );
    expect_status(
        "virtual mode: CreateEvent(EVT_SIGNAL_VIRTUAL_ADDRESS_CHANGE)",
        s,
        efi::Status::SUCCESS,
    );

    // The final memory map, and ExitBootServices (retried once if the map
    // changed under us, as the spec allows).
    let mut size = 0usize;
    let (mut key, mut dsize, mut dver) = (0usize, 0usize, 0u32);
    let mut exited = efi::Status::ABORTED;
    for _ in 0..2 {
        size = MAP_PAGES * PAGE as usize;
        let s = (bs().get_memory_map)(
            &mut size,
            mapbuf as *mut efi::MemoryDescriptor,
            &mut key,
            &mut dsize,
            &mut dver,
        );
        if s != efi::Status::SUCCESS {
            check(
                "virtual mode: GetMemoryMap",
                false,
                format_args!("returned {}", St(s)),
            );
            out::summary_and_shutdown()
        }
        exited = (bs().exit_boot_services)(image(), key);
        if exited == efi::Status::SUCCESS {
            break;
        }
    }
    if exited != efi::Status::SUCCESS {
        check(
            "virtual mode: ExitBootServices",
            false,
            format_args!("returned {}", St(exited)),
        );
        out::summary_and_shutdown()
    }
    // From here: no boot services, no ConOut, no allocation.
    out::to_serial();
    asm!("cli");
    expect_status(
        "virtual mode: ExitBootServices",
        exited,
        efi::Status::SUCCESS,
    );

    // Runs of contiguous runtime ranges, each its own offset, laid out
    // top-down in reverse order with a guard gap between runs.
    let n = size / dsize;
    let desc = |i: usize| (mapbuf as usize + i * dsize) as *mut efi::MemoryDescriptor;
    let mut runs = Runs {
        runs: [Run::default(); MAX_RUNS],
        len: 0,
    };
    for i in 0..n {
        let d = &*desc(i);
        if d.attribute & efi::MEMORY_RUNTIME == 0 {
            continue;
        }
        if let Some(r) = runs.runs[..runs.len]
            .iter_mut()
            .find(|r| r.phys + r.pages * PAGE == d.physical_start)
        {
            r.pages += d.number_of_pages;
            continue;
        }
        if runs.len == MAX_RUNS {
            check(
                "virtual mode: runtime ranges",
                false,
                format_args!("more than {MAX_RUNS} runs"),
            );
            out::summary_and_shutdown()
        }
        runs.runs[runs.len] = Run {
            phys: d.physical_start,
            pages: d.number_of_pages,
            virt: 0,
        };
        runs.len += 1;
    }
    // Merging may have made runs that now touch (a range listed after its
    // successor); merge again until nothing changes.
    let mut merged = true;
    while merged {
        merged = false;
        'outer: for a in 0..runs.len {
            for b in 0..runs.len {
                let (ra, rb) = (runs.runs[a], runs.runs[b]);
                if a != b && ra.phys + ra.pages * PAGE == rb.phys {
                    runs.runs[a].pages += rb.pages;
                    runs.runs[b] = runs.runs[runs.len - 1];
                    runs.len -= 1;
                    merged = true;
                    break 'outer;
                }
            }
        }
    }
    // Highest physical run first, each below the previous (so the order is
    // reversed and every run has a different offset).
    let mut order: [usize; MAX_RUNS] = [0; MAX_RUNS];
    for (i, o) in order.iter_mut().enumerate().take(runs.len) {
        *o = i;
    }
    order[..runs.len].sort_unstable_by_key(|&i| core::cmp::Reverse(runs.runs[i].phys));
    let mut va = VA_TOP;
    for &i in &order[..runs.len] {
        va -= runs.runs[i].pages * PAGE + PAGE; // a guard page between runs
        runs.runs[i].virt = va;
    }
    for i in 0..n {
        let d = &mut *desc(i);
        if d.attribute & efi::MEMORY_RUNTIME != 0 {
            d.virtual_start = runs.virt_of(d.physical_start).unwrap_or(0);
        }
    }

    // Our page tables: 1:1 for everything but the runtime ranges, which
    // appear only at their new addresses.
    let mut t = Tables {
        pool,
        used: 0,
        pml4: null_mut(),
    };
    let mut built = t.page().map(|p| t.pml4 = p).is_some();
    // The low 4 GiB (RAM, and the MMIO the firmware may touch), then RAM
    // above it: not all of the physical address space (64-bit PCI windows
    // would take thousands of table pages).
    built = built && identity(&mut t, &runs, 0, 1 << 32);
    for i in 0..n {
        let d = &*desc(i);
        let end = d.physical_start + d.number_of_pages * PAGE;
        if built && end > 1 << 32 && d.r#type != efi::MEMORY_MAPPED_IO {
            built = identity(&mut t, &runs, d.physical_start.max(1 << 32), end);
        }
    }
    for r in &runs.runs[..runs.len] {
        for k in 0..r.pages {
            if built {
                built = t.map(r.virt + k * PAGE, r.phys + k * PAGE, false).is_some();
            }
        }
    }
    if !check(
        "virtual mode: page tables without a 1:1 map of runtime memory",
        built,
        format_args!("ran out of the {TABLE_PAGES} table pages"),
    ) {
        out::summary_and_shutdown()
    }

    // SetVirtualAddressMap, in physical mode (still the firmware's tables).
    let s = ((*(rt_pa as *const efi::RuntimeServices)).set_virtual_address_map)(
        n * dsize,
        dsize,
        dver,
        mapbuf as *mut efi::MemoryDescriptor,
    );
    if !expect_status("SetVirtualAddressMap", s, efi::Status::SUCCESS) {
        out::summary_and_shutdown()
    }
    expect_eq(
        "SetVirtualAddressMap: the address-change notification ran once",
        NOTIFIED.load(Ordering::SeqCst),
        1,
    );
    check(
        "SetVirtualAddressMap: ConvertPointer in the notification gives the new address",
        CONVERT_STATUS.load(Ordering::SeqCst) == 0
            && Some(CONVERTED.load(Ordering::SeqCst)) == runs.virt_of(rt_pa),
        format_args!(
            "status {}, {:#x} became {:#x}",
            St(efi::Status::from_usize(
                CONVERT_STATUS.load(Ordering::SeqCst) as usize
            )),
            rt_pa,
            CONVERTED.load(Ordering::SeqCst)
        ),
    );
    // The system table stays where it is; its runtime fields now hold
    // virtual addresses.
    let rt_va = (*st_pa).runtime_services as u64;
    expect_eq(
        "SetVirtualAddressMap: SystemTable.RuntimeServices is converted",
        rt_va,
        runs.virt_of(rt_pa).unwrap_or(u64::MAX),
    );
    expect_eq(
        "SetVirtualAddressMap: SystemTable.FirmwareVendor is converted",
        (*st_pa).firmware_vendor as u64,
        runs.virt_of(vendor_pa).unwrap_or(vendor_pa),
    );
    check(
        "SetVirtualAddressMap: SystemTable CRC32 recomputed",
        crc_ok(st_pa as *const u8, core::mem::size_of::<efi::SystemTable>()),
        format_args!("header CRC does not match the table"),
    );

    // Our tables and descriptor tables; from now on the runtime ranges
    // exist only at their virtual addresses.
    let mut tables = DescriptorTables {
        idt: [[0; 2]; 32],
        gdt: [0; 16],
    };
    own_descriptor_tables(&mut tables);
    asm!("mov cr3, {}", in(reg) t.pml4 as u64);
    // Global pages would outlive the CR3 switch: flush them too.
    let cr4: u64;
    asm!("mov {}, cr4", out(reg) cr4);
    if cr4 & 0x80 != 0 {
        asm!("mov cr4, {}", in(reg) cr4 & !0x80);
        asm!("mov cr4, {}", in(reg) cr4);
    }
    out::line(format_args!(
        "virtual mode: running on our page tables, {} runtime run(s) moved",
        runs.len
    ));

    let rtv = &*(rt_va as *const efi::RuntimeServices);
    check(
        "virtual mode: RuntimeServices CRC32 recomputed",
        crc_ok(
            rt_va as *const u8,
            core::mem::size_of::<efi::RuntimeServices>(),
        ),
        format_args!("header CRC does not match the table"),
    );
    // What an OS may call once in virtual mode: not SetVirtualAddressMap
    // or ConvertPointer, which belong to the switch itself (OVMF leaves
    // both physical).
    let fns: [(&str, u64); 12] = [
        ("GetTime", rtv.get_time as usize as u64),
        ("SetTime", rtv.set_time as usize as u64),
        ("GetWakeupTime", rtv.get_wakeup_time as usize as u64),
        ("SetWakeupTime", rtv.set_wakeup_time as usize as u64),
        ("GetVariable", rtv.get_variable as usize as u64),
        (
            "GetNextVariableName",
            rtv.get_next_variable_name as usize as u64,
        ),
        ("SetVariable", rtv.set_variable as usize as u64),
        (
            "GetNextHighMonotonicCount",
            rtv.get_next_high_mono_count as usize as u64,
        ),
        ("ResetSystem", rtv.reset_system as usize as u64),
        ("UpdateCapsule", rtv.update_capsule as usize as u64),
        (
            "QueryCapsuleCapabilities",
            rtv.query_capsule_capabilities as usize as u64,
        ),
        ("QueryVariableInfo", rtv.query_variable_info as usize as u64),
    ];
    let mut bad = 0;
    for (name, addr) in fns {
        if !runs.is_virtual(addr) {
            bad += 1;
            out::line(format_args!(
                "  {name} is at {addr:#x}, not at a virtual address"
            ));
        }
    }
    check(
        "virtual mode: the RuntimeServices an OS calls are at virtual addresses",
        bad == 0,
        format_args!("{bad} of {} are not", fns.len()),
    );

    // Time.
    let mut now = efi::Time::default();
    let s = (rtv.get_time)(&mut now, null_mut());
    expect_status("virtual mode: GetTime", s, efi::Status::SUCCESS);
    check(
        "virtual mode: GetTime gives a plausible date",
        (2020..=2200).contains(&now.year) && (1..=12).contains(&now.month),
        format_args!("{}-{}-{}", now.year, now.month, now.day),
    );
    let s = (rtv.set_time)(&mut now);
    expect_status(
        "virtual mode: SetTime(the time just read)",
        s,
        efi::Status::SUCCESS,
    );
    let (mut en, mut pend, mut wt) = (
        efi::Boolean::FALSE,
        efi::Boolean::FALSE,
        efi::Time::default(),
    );
    let s = (rtv.get_wakeup_time)(&mut en, &mut pend, &mut wt);
    check(
        "virtual mode: GetWakeupTime",
        s == efi::Status::SUCCESS || s == efi::Status::UNSUPPORTED,
        format_args!("returned {}", St(s)),
    );

    // Variables set during boot services.
    let get = |name: &[u16], buf: &mut [u8]| -> (efi::Status, u32, usize) {
        let mut g = VENDOR;
        let (mut attrs, mut len) = (0u32, buf.len());
        let s = (rtv.get_variable)(
            name.as_ptr() as *mut u16,
            &mut g,
            &mut attrs,
            &mut len,
            buf.as_mut_ptr() as *mut c_void,
        );
        (s, attrs, len)
    };
    let mut buf = [0u8; 256];
    let (s, a, l) = get(&N_PROBE, &mut buf);
    check(
        "virtual mode: GetVariable(NV variable set during boot services)",
        s == efi::Status::SUCCESS && a == NV_BS_RT && &buf[..l.min(256)] == PROBE,
        format_args!("returned {}, attributes {a:#x}, {l} bytes", St(s)),
    );
    let (s, a, l) = get(&N_VOLATILE, &mut buf);
    check(
        "virtual mode: GetVariable(volatile variable set during boot services)",
        s == efi::Status::SUCCESS && a == BS_RT && &buf[..l.min(256)] == VOLATILE,
        format_args!("returned {}, attributes {a:#x}, {l} bytes", St(s)),
    );
    // GetNextVariableName from the start finds the probe and ends.
    let mut name = [0u16; 128];
    let mut g = efi::Guid::from_fields(0, 0, 0, 0, 0, &[0; 6]);
    let (mut found, mut steps, mut last) = (false, 0, efi::Status::SUCCESS);
    while steps < 1000 {
        let mut sz = name.len() * 2;
        last = (rtv.get_next_variable_name)(&mut sz, name.as_mut_ptr(), &mut g);
        if last != efi::Status::SUCCESS {
            break;
        }
        steps += 1;
        if g == VENDOR && name[..N_PROBE.len()] == N_PROBE {
            found = true;
        }
    }
    check(
        "virtual mode: GetNextVariableName enumerates to NOT_FOUND, probe included",
        found && last == efi::Status::NOT_FOUND,
        format_args!(
            "{steps} names, probe found {found}, ended with {}",
            St(last)
        ),
    );
    // Writes: create, append, read back, delete.
    let mut g = VENDOR;
    let s = (rtv.set_variable)(
        N_WRITTEN.as_ptr() as *mut u16,
        &mut g,
        NV_BS_RT,
        WRITTEN.len(),
        WRITTEN.as_ptr() as *mut c_void,
    );
    expect_status(
        "virtual mode: SetVariable(new NV variable)",
        s,
        efi::Status::SUCCESS,
    );
    let s = (rtv.set_variable)(
        N_WRITTEN.as_ptr() as *mut u16,
        &mut g,
        NV_BS_RT | efi::VARIABLE_APPEND_WRITE,
        PROBE.len(),
        PROBE.as_ptr() as *mut c_void,
    );
    expect_status(
        "virtual mode: SetVariable(APPEND_WRITE)",
        s,
        efi::Status::SUCCESS,
    );
    let (s, _, l) = get(&N_WRITTEN, &mut buf);
    check(
        "virtual mode: GetVariable(the variable written and appended to)",
        s == efi::Status::SUCCESS
            && l == WRITTEN.len() + PROBE.len()
            && &buf[..WRITTEN.len()] == WRITTEN
            && &buf[WRITTEN.len()..l] == PROBE,
        format_args!("returned {}, {l} bytes", St(s)),
    );
    let s = (rtv.set_variable)(
        N_WRITTEN.as_ptr() as *mut u16,
        &mut g,
        NV_BS_RT,
        0,
        null_mut(),
    );
    expect_status("virtual mode: SetVariable(delete)", s, efi::Status::SUCCESS);
    let (s, _, _) = get(&N_WRITTEN, &mut buf);
    expect_status(
        "virtual mode: GetVariable(deleted variable)",
        s,
        efi::Status::NOT_FOUND,
    );
    let s = (rtv.set_variable)(
        N_PROBE.as_ptr() as *mut u16,
        &mut g,
        NV_BS_RT,
        0,
        null_mut(),
    );
    expect_status(
        "virtual mode: SetVariable(delete the probe)",
        s,
        efi::Status::SUCCESS,
    );
    let s = (rtv.set_variable)(
        N_KEPT.as_ptr() as *mut u16,
        &mut g,
        NV_BS_RT,
        WRITTEN.len(),
        WRITTEN.as_ptr() as *mut c_void,
    );
    expect_status(
        "virtual mode: SetVariable(a variable left for the harness)",
        s,
        efi::Status::SUCCESS,
    );
    let (mut max, mut rem, mut maxv) = (0u64, 0u64, 0u64);
    let s = (rtv.query_variable_info)(NV_BS_RT, &mut max, &mut rem, &mut maxv);
    expect_status(
        "virtual mode: QueryVariableInfo(NV|BS|RT)",
        s,
        efi::Status::SUCCESS,
    );
    check(
        "virtual mode: QueryVariableInfo sizes are consistent",
        max > 0 && rem <= max && maxv > 0,
        format_args!("max {max}, remaining {rem}, largest {maxv}"),
    );

    // The rest.
    let mut high = 0u32;
    let s = (rtv.get_next_high_mono_count)(&mut high);
    expect_status(
        "virtual mode: GetNextHighMonotonicCount",
        s,
        efi::Status::SUCCESS,
    );

    out::summary_and_shutdown_with(rtv)
}
