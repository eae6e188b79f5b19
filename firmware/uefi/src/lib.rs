//! Ember's UEFI layer: the system table, boot and runtime services, and the
//! protocols that EFI loaders (shim, GRUB, systemd-boot, the Linux EFI stub)
//! call. The bookkeeping — handle database, events and TPLs, device paths,
//! the memory map, variables, PE images — lives in host-tested crates
//! (`ember-efi`, `ember-uefi-data`, `ember-pe`); this module holds the
//! pointers and the `extern "efiapi"` entry points. What differs between
//! machines (console, clock, page tables, RTC, reset) sits behind
//! [`machine::Machine`], which each firmware implements.
//!
//! Locking: all state sits behind one lock that is never held while guest
//! code runs (notify functions, image entry points), because that code may
//! call back into any service.

#![no_std]
// The `extern "efiapi"` services take raw pointers from UEFI callers by
// contract (the spec's, not Rust's): they check what can be checked and
// must stay safe function pointers for the tables.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

extern crate alloc;

mod arch;
pub mod block;
pub mod console;
pub mod disk;
pub mod drivers;
pub mod espvars;
pub mod flash;
pub mod fs;
pub mod image;
pub mod initrd;
pub mod loader_vars;
pub mod machine;
pub mod memattr;
pub mod memory;
pub mod phys;
pub mod platform;
pub mod protocols;
pub mod ram;
pub mod rng;
pub mod runtime;
pub mod services;

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use core::ffi::c_void;
use ember_efi::{BootState, EventId, Handle, Tpl};
use r_efi::efi::{self, Status};
use spin::Mutex;

/// Everything the boot services keep between calls.
pub struct Efi {
    pub st: BootState,
    /// Loaded images by handle.
    pub images: BTreeMap<u64, image::Image>,
    /// Images currently executing, innermost last (for Exit).
    pub running: Vec<u64>,
    /// Configuration tables, mirrored into the system table on change.
    pub config: Vec<efi::ConfigurationTable>,
    pub monotonic: u64,
    /// Handle of Ember itself, the agent for firmware-internal opens.
    pub firmware_handle: Option<Handle>,
}

// SAFETY: Ember runs on one CPU without interrupts; the raw pointers in the
// state (configuration tables) are only used under the lock.
unsafe impl Send for Efi {}

pub static EFI: Mutex<Option<Efi>> = Mutex::new(None);

/// The tables handed to images, allocated once in runtime memory.
pub struct Tables {
    pub system: *mut efi::SystemTable,
}
// SAFETY: as for `Efi`.
unsafe impl Send for Tables {}
pub static TABLES: Mutex<Option<Tables>> = Mutex::new(None);

/// Run `f` on the state. Must not be nested and must not run guest code.
pub fn with<R>(f: impl FnOnce(&mut Efi) -> R) -> R {
    let mut g = EFI.lock();
    let e = g.as_mut().expect("UEFI layer used before efi::init");
    f(e)
}

/// `EFI_GUID` (r-efi) to the bookkeeping crates' GUID; same bytes.
pub fn guid(g: &efi::Guid) -> ember_efi::Guid {
    ember_efi::Guid(*g.as_bytes())
}

/// # Safety
/// `p` must be null or point at a readable EFI_GUID.
pub unsafe fn guid_at(p: *const efi::Guid) -> Option<ember_efi::Guid> {
    // SAFETY: caller contract.
    (!p.is_null()).then(|| guid(unsafe { &*p }))
}

pub fn status(s: ember_efi::Status) -> Status {
    Status::from_usize(s.0)
}

pub fn result(r: Result<(), ember_efi::Status>) -> Status {
    match r {
        Ok(()) => Status::SUCCESS,
        Err(e) => status(e),
    }
}

pub fn handle_ptr(h: Handle) -> efi::Handle {
    h.raw() as usize as efi::Handle
}

pub fn handle_of(p: efi::Handle) -> Option<Handle> {
    Handle::from_raw(p as usize as u64)
}

pub fn event_ptr(e: EventId) -> efi::Event {
    e.raw() as usize as efi::Event
}

pub fn event_of(p: efi::Event) -> Option<EventId> {
    EventId::from_raw(p as usize as u64)
}

/// Time in the 100 ns units UEFI timers use.
pub fn now_100ns() -> u64 {
    crate::machine::machine().now_ns() / 100
}

/// Fire due timers and run every notification above the current TPL. Called
/// from the services that can wait or lower the TPL, so timers work without
/// interrupts.
pub fn dispatch() {
    let now = now_100ns();
    let current = with(|e| {
        e.st.events.tick(now);
        e.st.tpl()
    });
    run_notifications(current);
}

/// Call pending notify functions for TPLs above `target`, highest first,
/// with the lock released; the bookkeeping sets the TPL around each.
pub fn run_notifications(target: Tpl) {
    while let Some(n) = with(|e| e.st.dispatch(target)) {
        // SAFETY: `function` was registered by CreateEvent as an
        // EFI_EVENT_NOTIFY; the event and context are what the guest gave.
        let f: efi::EventNotify = unsafe { core::mem::transmute(n.function) };
        f(event_ptr(n.event), n.context as *mut c_void);
    }
}

/// Signal an event from firmware code (e.g. completing a File token).
///
/// # Safety
/// None beyond passing an event pointer from the guest; unknown ones are ignored.
pub unsafe fn signal_event_raw(ev: efi::Event) {
    if let Some(id) = event_of(ev) {
        let _ = with(|e| e.st.events.signal_event(id));
        dispatch();
    }
}

/// CRC32 of a table header plus body, as the spec defines for `Hdr.CRC32`.
pub fn table_crc(bytes: &[u8]) -> u32 {
    crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC).checksum(bytes)
}

/// Recompute the system table's CRC after a change to it.
pub fn refresh_system_crc() {
    if let Some(t) = TABLES.lock().as_ref() {
        // SAFETY: the system table Ember allocated; nothing else holds a
        // Rust reference to it.
        unsafe {
            let st = &mut *t.system;
            st.hdr.crc32 = 0;
            let bytes = core::slice::from_raw_parts(
                t.system as *const u8,
                core::mem::size_of::<efi::SystemTable>(),
            );
            st.hdr.crc32 = table_crc(bytes);
        }
    }
}

/// Device-path bytes of an installed interface (for the database's lookups).
pub fn services_dp<'a>(iface: usize) -> Option<&'a [u8]> {
    // SAFETY: only interfaces installed under the device-path GUID are
    // passed here by the database.
    unsafe { services::device_path_bytes(iface) }
}

/// Write the configuration-table array (fresh runtime memory) into the
/// system table.
pub fn publish_config_tables() {
    let list = with(|e| e.config.clone());
    let bytes = list.len().max(1) * core::mem::size_of::<efi::ConfigurationTable>();
    let Some(p) = memory::pool_alloc(efi::RUNTIME_SERVICES_DATA, bytes) else {
        return;
    };
    let arr = p as *mut efi::ConfigurationTable;
    for (i, c) in list.iter().enumerate() {
        // SAFETY: fresh pool block sized for the list.
        unsafe { arr.add(i).write(*c) };
    }
    if let Some(t) = TABLES.lock().as_ref() {
        // SAFETY: the system table Ember allocated.
        unsafe {
            let old = (*t.system).configuration_table;
            (*t.system).configuration_table = arr;
            (*t.system).number_of_table_entries = list.len();
            if !old.is_null() {
                memory::free_pool(old as *mut c_void);
            }
        }
    }
    refresh_system_crc();
}

/// The system table's FirmwareVendor, NUL-terminated UCS-2.
static FIRMWARE_VENDOR: [u16; 6] = {
    let s = *b"Ember\0";
    let mut out = [0u16; 6];
    let mut i = 0;
    while i < s.len() {
        out[i] = s[i] as u16;
        i += 1;
    }
    out
};

extern "efiapi" fn key_wait_notify(ev: efi::Event, _ctx: *mut c_void) {
    if console::key_available() {
        if let Some(id) = event_of(ev) {
            let _ = with(|e| e.st.events.signal_event(id));
        }
    }
}

/// Install a protocol set on a new handle; logs and returns None on failure.
fn install(pairs: &[(&efi::Guid, usize)]) -> Option<Handle> {
    let v: Vec<(ember_efi::Guid, usize)> = pairs.iter().map(|(g, i)| (guid(g), *i)).collect();
    match with(|e| e.st.install_multiple(None, &v, services_dp)) {
        Ok(h) => Some(h),
        Err(s) => {
            log::warn!("UEFI: installing protocols failed: {s}");
            None
        }
    }
}

fn leak_path(p: Vec<u8>) -> usize {
    alloc::boxed::Box::leak(p.into_boxed_slice()).as_ptr() as usize
}

/// What init recorded about each partition, for booting from it later.
pub struct PartHandle {
    pub disk: usize,
    pub first_lba: u64,
    pub handle: Handle,
    pub path: Vec<u8>,
}

pub static PARTS: Mutex<Vec<PartHandle>> = Mutex::new(Vec::new());

/// A disk's device path: where its controller sits.
pub fn base_path(loc: crate::disk::Location) -> Vec<u8> {
    use ember_uefi_data::devpath as dp;
    let mut nodes: Vec<Vec<u8>> = Vec::new();
    match loc {
        crate::disk::Location::Pci(b) => {
            nodes.push(dp::pci_root(u32::from(b.bus)));
            nodes.push(dp::pci(b.device, b.function));
        }
        crate::disk::Location::Mmio(base) => nodes.push(dp::virtio_mmio(base)),
    }
    let refs: Vec<&[u8]> = nodes.iter().map(|n| n.as_slice()).collect();
    dp::from_nodes(&refs).unwrap_or_else(|_| dp::end_entire().to_vec())
}

/// Build the UEFI world: tables, console, disks, partitions, filesystems.
/// Done only when an entry needs it: a native Linux boot never pays for it.
pub fn init(disks: &[crate::disk::Disk], rsdp: u64) -> Result<(), alloc::string::String> {
    use crate::ram::MAP;
    use ember_mem::MemKind;
    use r_efi::protocols::{
        block_io, device_path, disk_io, simple_file_system, simple_text_input,
        simple_text_input_ex, simple_text_output,
    };
    if EFI.lock().is_some() {
        return Ok(());
    }
    let t0 = crate::machine::machine().now_ns();
    // The tables first: without them there is no UEFI world to build, and
    // nothing has been changed yet. System and runtime tables go in runtime
    // memory.
    let rt_page = memory::pool_alloc(
        efi::RUNTIME_SERVICES_DATA,
        core::mem::size_of::<efi::SystemTable>() + core::mem::size_of::<efi::RuntimeServices>(),
    )
    .ok_or("no memory for the UEFI system table")?;
    let bs_mem = memory::pool_alloc(
        efi::BOOT_SERVICES_DATA,
        core::mem::size_of::<efi::BootServices>(),
    )
    .ok_or("no memory for the boot services table")?;
    runtime::init();
    // Without a variable flash, the store goes in a file on an ESP: created
    // now if needed, before the ESPs are mounted for loaders.
    runtime::attach_esp(disks, true);
    // Ember's own image becomes runtime memory: its runtime services run
    // from there after ExitBootServices.
    // One descriptor for all of it where it is contiguous (x86_64): at
    // SetVirtualAddressMap the OS gives each descriptor its own virtual
    // address, and Ember's code and data must move together (its code
    // reaches its data PC-relative). The memory-attributes table still
    // tells the OS which part is code. On aarch64 the code stays in flash
    // and the data is in RAM: two descriptors.
    // Ember's LoadedImage: its first region (the whole image on x86_64,
    // the code in flash on aarch64).
    let (img, end) = image_regions().first().copied().unwrap_or((0, 0));
    {
        let mut m = MAP.lock();
        let map = m.map_mut();
        for (s, e) in image_regions() {
            let _ = map.add(s, e, MemKind::Allocated(efi::RUNTIME_SERVICES_CODE));
        }
    }

    *EFI.lock() = Some(Efi {
        st: BootState::new(),
        images: BTreeMap::new(),
        running: Vec::new(),
        config: Vec::new(),
        monotonic: 0,
        firmware_handle: None,
    });

    let system = rt_page as *mut efi::SystemTable;
    let rts = (rt_page + core::mem::size_of::<efi::SystemTable>()).next_multiple_of(8)
        as *mut efi::RuntimeServices;
    let bs = bs_mem as *mut efi::BootServices;
    let hdr = |sig: u64, size: usize| efi::TableHeader {
        signature: sig,
        revision: efi::SYSTEM_TABLE_REVISION,
        header_size: size as u32,
        crc32: 0,
        reserved: 0,
    };
    // SAFETY: fresh pool memory of the right sizes, written once here.
    unsafe {
        rts.write(efi::RuntimeServices {
            hdr: hdr(
                efi::RUNTIME_SERVICES_SIGNATURE,
                core::mem::size_of::<efi::RuntimeServices>(),
            ),
            get_time: runtime::get_time,
            set_time: runtime::set_time,
            get_wakeup_time: runtime::get_wakeup_time,
            set_wakeup_time: runtime::set_wakeup_time,
            set_virtual_address_map: runtime::set_virtual_address_map,
            convert_pointer: runtime::convert_pointer,
            get_variable: runtime::get_variable,
            get_next_variable_name: runtime::get_next_variable_name,
            set_variable: runtime::set_variable,
            get_next_high_mono_count: runtime::get_next_high_mono_count,
            reset_system: runtime::reset_system,
            update_capsule: runtime::update_capsule,
            query_capsule_capabilities: runtime::query_capsule_capabilities,
            query_variable_info: runtime::query_variable_info,
        });
        arch::wrap_runtime(&mut *rts);
        (*rts).hdr.crc32 = table_crc(core::slice::from_raw_parts(
            rts as *const u8,
            core::mem::size_of::<efi::RuntimeServices>(),
        ));
        bs.write(efi::BootServices {
            hdr: hdr(
                efi::BOOT_SERVICES_SIGNATURE,
                core::mem::size_of::<efi::BootServices>(),
            ),
            raise_tpl: services::raise_tpl,
            restore_tpl: services::restore_tpl,
            allocate_pages: memory::allocate_pages,
            free_pages: memory::free_pages,
            get_memory_map: memory::get_memory_map,
            allocate_pool: memory::allocate_pool,
            free_pool: memory::free_pool,
            create_event: services::create_event,
            set_timer: services::set_timer,
            wait_for_event: services::wait_for_event,
            signal_event: services::signal_event,
            close_event: services::close_event,
            check_event: services::check_event,
            install_protocol_interface: services::install_protocol_interface,
            reinstall_protocol_interface: services::reinstall_protocol_interface,
            uninstall_protocol_interface: services::uninstall_protocol_interface,
            handle_protocol: services::handle_protocol,
            reserved: core::ptr::null_mut(),
            register_protocol_notify: services::register_protocol_notify,
            locate_handle: services::locate_handle,
            locate_device_path: services::locate_device_path,
            install_configuration_table: services::install_configuration_table,
            load_image: image::load_image,
            start_image: image::start_image,
            exit: image::exit,
            unload_image: image::unload_image,
            exit_boot_services: image::exit_boot_services,
            get_next_monotonic_count: services::get_next_monotonic_count,
            stall: services::stall,
            set_watchdog_timer: services::set_watchdog_timer,
            connect_controller: drivers::connect_controller,
            disconnect_controller: drivers::disconnect_controller,
            open_protocol: services::open_protocol,
            close_protocol: services::close_protocol,
            open_protocol_information: services::open_protocol_information,
            protocols_per_handle: services::protocols_per_handle,
            locate_handle_buffer: services::locate_handle_buffer,
            locate_protocol: services::locate_protocol,
            install_multiple_protocol_interfaces: services::efi_install_multiple_shim,
            uninstall_multiple_protocol_interfaces: services::efi_uninstall_multiple_shim,
            calculate_crc32: services::calculate_crc32,
            copy_mem: services::copy_mem,
            set_mem: services::set_mem,
            create_event_ex: services::create_event_ex,
        });
        (*bs).hdr.crc32 = table_crc(core::slice::from_raw_parts(
            bs as *const u8,
            core::mem::size_of::<efi::BootServices>(),
        ));
    }

    // Console.
    let out = alloc::boxed::Box::leak(console::new_text_out());
    let serial_path = leak_path(
        ember_uefi_data::devpath::from_nodes(&[&ember_uefi_data::devpath::acpi(0x0501_41d0, 0)])
            .unwrap_or_default(),
    );
    let out_h = install(&[
        (
            &simple_text_output::PROTOCOL_GUID,
            &mut out.proto as *mut _ as usize,
        ),
        (&device_path::PROTOCOL_GUID, serial_path),
    ]);
    let wait = with(|e| {
        e.st.events.create_event(
            efi::EVT_NOTIFY_WAIT,
            Tpl::NOTIFY,
            Some((key_wait_notify as *const () as usize, 0)),
            None,
        )
    });
    let wait = wait.map(event_ptr).unwrap_or(core::ptr::null_mut());
    let inp = alloc::boxed::Box::leak(console::new_text_in(wait));
    let in_h = out_h.and_then(|h| {
        let r = with(|e| {
            e.st.install_protocol(
                Some(h),
                guid(&simple_text_input::PROTOCOL_GUID),
                &mut inp.proto as *mut _ as usize,
            )?;
            e.st.install_protocol(
                Some(h),
                guid(&simple_text_input_ex::PROTOCOL_GUID),
                &mut inp.proto_ex as *mut _ as usize,
            )
        });
        r.ok()
    });
    let con = out_h.map(handle_ptr).unwrap_or(core::ptr::null_mut());

    // Ember's own image handle: the parent of everything it loads.
    let fw_li = alloc::boxed::Box::leak(alloc::boxed::Box::new(
        r_efi::protocols::loaded_image::Protocol {
            revision: r_efi::protocols::loaded_image::REVISION,
            parent_handle: core::ptr::null_mut(),
            system_table: system,
            device_handle: core::ptr::null_mut(),
            file_path: core::ptr::null_mut(),
            reserved: core::ptr::null_mut(),
            load_options_size: 0,
            load_options: core::ptr::null_mut(),
            image_base: img as *mut c_void,
            image_size: end - img,
            image_code_type: efi::RUNTIME_SERVICES_CODE,
            image_data_type: efi::RUNTIME_SERVICES_DATA,
            unload: None,
        },
    ));
    let fw_h = install(&[(
        &r_efi::protocols::loaded_image::PROTOCOL_GUID,
        fw_li as *mut _ as usize,
    )]);
    if let Some(h) = fw_h {
        with(|e| {
            e.firmware_handle = Some(h);
            e.st.handles.set_firmware_agent(Some(h));
            e.images
                .insert(h.raw(), image::Image::firmware(img, end, fw_li));
        });
    }

    // SAFETY: fresh pool memory for the system table.
    unsafe {
        system.write(efi::SystemTable {
            hdr: hdr(
                efi::SYSTEM_TABLE_SIGNATURE,
                core::mem::size_of::<efi::SystemTable>(),
            ),
            // In Ember's image (runtime memory), not the boot heap.
            firmware_vendor: FIRMWARE_VENDOR.as_ptr() as *mut u16,
            firmware_revision: 0x0001_0000,
            console_in_handle: in_h.map(|_| con).unwrap_or(core::ptr::null_mut()),
            con_in: &mut inp.proto,
            console_out_handle: con,
            con_out: &mut out.proto,
            standard_error_handle: con,
            std_err: &mut out.proto,
            runtime_services: rts,
            boot_services: bs,
            number_of_table_entries: 0,
            configuration_table: core::ptr::null_mut(),
        });
    }
    *TABLES.lock() = Some(Tables { system });

    // Disks and partitions.
    for (di, d) in disks.iter().enumerate() {
        let base = base_path(d.location);
        let whole = alloc::boxed::Box::leak(block::BlockInstance::new(
            d.dev.clone(),
            0,
            ember_block::BlockDevice::num_blocks(&d.dev),
            false,
        ));
        whole.fix_media();
        let Some(_) = install(&[
            (&device_path::PROTOCOL_GUID, leak_path(base.clone())),
            (
                &block_io::PROTOCOL_GUID,
                &mut whole.block_io as *mut _ as usize,
            ),
            (
                &disk_io::PROTOCOL_GUID,
                &mut whole.disk_io as *mut _ as usize,
            ),
        ]) else {
            continue;
        };
        let Ok(table) = ember_part::read_partitions(&mut d.dev.clone()) else {
            continue;
        };
        for p in &table.partitions {
            use ember_uefi_data::devpath as dp;
            let sig = match p.unique_guid {
                Some(g) => dp::PartitionSignature::Gpt(ember_uefi_data::Guid(g.to_bytes())),
                None => dp::PartitionSignature::None,
            };
            let node = dp::hard_drive(p.number, p.first_lba, p.num_blocks, sig);
            let Ok(path) = dp::append_node(&base, &node) else {
                continue;
            };
            let inst = alloc::boxed::Box::leak(block::BlockInstance::new(
                d.dev.clone(),
                p.first_lba,
                p.num_blocks,
                true,
            ));
            inst.fix_media();
            let mut pairs: Vec<(&efi::Guid, usize)> = alloc::vec![
                (&device_path::PROTOCOL_GUID, leak_path(path.clone())),
                (
                    &block_io::PROTOCOL_GUID,
                    &mut inst.block_io as *mut _ as usize
                ),
                (
                    &disk_io::PROTOCOL_GUID,
                    &mut inst.disk_io as *mut _ as usize
                ),
            ];
            let slice = ember_block::Slice::new(d.dev.clone(), p.first_lba, p.num_blocks);
            let sfs = slice
                .ok()
                .and_then(|s| fs::mount(s).ok())
                .map(alloc::boxed::Box::leak);
            if let Some(s) = sfs {
                pairs.push((
                    &simple_file_system::PROTOCOL_GUID,
                    &mut s.proto as *mut _ as usize,
                ));
            }
            if p.kind == ember_part::PartKind::EfiSystem {
                // EDK2 marks ESPs with this GUID (NULL interface); loaders look for it.
                pairs.push((&ESP_MARKER_GUID, 0));
            }
            if let Some(h) = install(&pairs) {
                PARTS.lock().push(PartHandle {
                    disk: di,
                    first_lba: p.first_lba,
                    handle: h,
                    path,
                });
            }
        }
    }

    // Firmware utility protocols, on a handle of their own.
    let util = alloc::boxed::Box::leak(alloc::boxed::Box::new(protocols::new()));
    install(&[
        (
            &r_efi::protocols::device_path_to_text::PROTOCOL_GUID,
            &mut util.to_text as *mut _ as usize,
        ),
        (
            &r_efi::protocols::device_path_from_text::PROTOCOL_GUID,
            &mut util.from_text as *mut _ as usize,
        ),
        (
            &r_efi::protocols::device_path_utilities::PROTOCOL_GUID,
            &mut util.util as *mut _ as usize,
        ),
        (
            &protocols::UNICODE_COLLATION2_GUID,
            &mut util.collation as *mut _ as usize,
        ),
    ]);
    match rng::protocol() {
        Some(r) => {
            let r = alloc::boxed::Box::leak(alloc::boxed::Box::new(r));
            install(&[(&r_efi::protocols::rng::PROTOCOL_GUID, r as *mut _ as usize)]);
        }
        None => log::info!("UEFI: no random-number instructions in this CPU: no EFI_RNG_PROTOCOL"),
    }
    if machine::machine().enable_nx() {
        let m = alloc::boxed::Box::leak(alloc::boxed::Box::new(memattr::protocol()));
        install(&[(
            &r_efi::protocols::memory_attribute::PROTOCOL_GUID,
            m as *mut _ as usize,
        )]);
    } else {
        log::info!("UEFI: CPU without NX: no EFI_MEMORY_ATTRIBUTE_PROTOCOL");
    }
    platform::standard_variables();

    // Configuration tables: ACPI and SMBIOS from the VMM (ACPI upgraded to
    // 2.0 with an XSDT when the VMM gave only 1.0), and what runtime
    // services remain.
    for (g, t) in platform::acpi_tables(rsdp)
        .into_iter()
        .chain(platform::smbios_tables())
    {
        with(|e| {
            e.config.push(efi::ConfigurationTable {
                vendor_guid: g,
                vendor_table: t as *mut c_void,
            })
        });
    }
    if let Some(p) = memory::pool_alloc(efi::RUNTIME_SERVICES_DATA, 8) {
        // SAFETY: fresh 8-byte pool block.
        unsafe {
            (p as *mut efi::RtPropertiesTable).write(efi::RtPropertiesTable {
                version: efi::RT_PROPERTIES_TABLE_VERSION,
                length: 8,
                runtime_services_supported: runtime::supported_at_runtime(),
            })
        };
        with(|e| {
            e.config.push(efi::ConfigurationTable {
                vendor_guid: efi::RT_PROPERTIES_TABLE_GUID,
                vendor_table: p as *mut c_void,
            })
        });
    }
    publish_config_tables();
    log::info!(
        "UEFI: ready in {} us: {} partition handle(s), system table at {:#x}",
        (crate::machine::machine().now_ns() - t0) / 1000,
        PARTS.lock().len(),
        system as usize
    );
    Ok(())
}

/// Ember's image as page-aligned regions: the machine's code, read-only
/// data and data ranges, merged where they touch.
pub fn image_regions() -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for (s, e) in machine::machine().image_ranges() {
        let (s, e) = (s & !0xfff, e.next_multiple_of(4096));
        match out.last_mut() {
            Some(last) if last.1 >= s => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

/// Add a configuration table (the device tree on aarch64) and republish
/// the list.
pub fn add_config_table(guid: efi::Guid, table: u64) {
    with(|e| {
        e.config.retain(|c| c.vendor_guid != guid);
        e.config.push(efi::ConfigurationTable {
            vendor_guid: guid,
            vendor_table: table as *mut c_void,
        })
    });
    publish_config_tables();
}

/// The UEFI handle of a partition (by disk index and first LBA).
pub fn partition_handle(disk: usize, first_lba: u64) -> Option<Handle> {
    PARTS
        .lock()
        .iter()
        .find(|p| p.disk == disk && p.first_lba == first_lba)
        .map(|p| p.handle)
}

/// gEfiPartTypeSystemPartGuid (C12A7328-F81F-11D2-BA4B-00A0C93EC93B).
pub const ESP_MARKER_GUID: efi::Guid = efi::Guid::from_fields(
    0xc12a7328,
    0xf81f,
    0x11d2,
    0xba,
    0x4b,
    &[0x00, 0xa0, 0xc9, 0x3e, 0xc9, 0x3b],
);

/// Start `path` (on the partition at `first_lba` of disk `disk`) as an EFI
/// application with `options` as its load options. Returns its exit status
/// if it comes back.
pub fn start_file(
    disk: usize,
    first_lba: u64,
    path: &str,
    options: &[u8],
) -> Result<Status, alloc::string::String> {
    use ember_uefi_data::devpath as dp;
    let (part_h, part_path) = {
        let parts = PARTS.lock();
        let p = parts
            .iter()
            .find(|p| p.disk == disk && p.first_lba == first_lba)
            .ok_or("partition has no UEFI handle")?;
        (p.handle, p.path.clone())
    };
    let _ = part_h;
    let efi_path = path.replace('/', "\\");
    let node = dp::file_path(&efi_path).map_err(|e| alloc::format!("{e}"))?;
    let full = dp::append_node(&part_path, &node).map_err(|e| alloc::format!("{e}"))?;
    let parent = with(|e| e.firmware_handle).ok_or("no firmware image handle")?;
    let mut child: efi::Handle = core::ptr::null_mut();
    let st = image::load_image(
        efi::Boolean::FALSE,
        handle_ptr(parent),
        full.as_ptr() as *mut r_efi::protocols::device_path::Protocol,
        core::ptr::null_mut(),
        0,
        &mut child,
    );
    if st != Status::SUCCESS {
        return Err(alloc::format!(
            "{path}: LoadImage failed: {}",
            status_name(st)
        ));
    }
    if !options.is_empty() {
        let bytes = options.len();
        let leaked = alloc::boxed::Box::leak(options.to_vec().into_boxed_slice());
        if let Some(h) = handle_of(child) {
            with(|e| {
                if let Some(img) = e.images.get(&h.raw()) {
                    // SAFETY: the LoadedImage Ember made for this image.
                    unsafe {
                        (*img.loaded).load_options = leaked.as_mut_ptr() as *mut c_void;
                        (*img.loaded).load_options_size = bytes as u32;
                    }
                }
            });
        }
    }
    platform::publish_memory_attributes();
    if options.is_empty() {
        log::info!("UEFI: starting {path}");
    } else {
        log::info!(
            "UEFI: starting {path} with options: {}",
            options_text(options)
        );
    }
    Ok(image::start_image(
        child,
        core::ptr::null_mut(),
        core::ptr::null_mut(),
    ))
}

/// Load options for the console: UCS-2 text when they look like it (what
/// loaders and efibootmgr -u pass), else their size.
pub fn options_text(o: &[u8]) -> alloc::string::String {
    let units: Vec<u16> = o
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .take_while(|&u| u != 0)
        .collect();
    let text = alloc::string::String::from_utf16(&units)
        .ok()
        .filter(|t| t.chars().all(|c| !c.is_control()));
    match text {
        Some(t) if o.len().is_multiple_of(2) => t,
        _ => alloc::format!("{} bytes of binary data", o.len()),
    }
}

/// A readable name for an EFI status.
pub fn status_name(s: Status) -> alloc::string::String {
    alloc::format!("{}", ember_efi::Status(s.as_usize()))
}
