//! Boot Loader Specification entry parsing: `file name \0 contents`.
#![no_main]

use ember_fuzz::Bytes;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut r = Bytes(data);
    let name = String::from_utf8_lossy(r.until(0));
    let contents = r.0;
    if let Ok(e) = ember_bls::parse_entry(&name, contents) {
        assert_eq!(e.file_name, name, "file_name is the name as given");
        // The id is the file name stripped of `.conf` and the counter.
        assert!(
            name.starts_with(e.id.as_str()),
            "id {:?} not a prefix of {name:?}",
            e.id
        );
        // What the boot path does next with a parsed entry.
        let mut v = vec![e.clone(), e];
        ember_bls::sort_entries(&mut v);
        let _ = ember_bls::select_default(&v, &ember_bls::LoaderConf::default());
    }
});
