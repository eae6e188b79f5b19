//! The variable-store snapshot Ember rebuilds its store from at
//! SetVirtualAddressMap: any bytes are refused with an error or give a
//! store whose own snapshot restores to the same store (same bytes again).
#![no_main]

use ember_uefi_data::vars::{VarLimits, VarStore};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = VarLimits::default();
    let Ok(store) = VarStore::restore(limits, data) else {
        return;
    };
    let snap = store.snapshot();
    let again = VarStore::restore(limits, &snap).expect("a store's own snapshot restores");
    assert_eq!(again.snapshot(), snap, "snapshot is not stable");
    assert_eq!(again.used(), store.used());
});
