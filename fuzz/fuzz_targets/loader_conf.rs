//! `loader.conf` parsing, then its `default` glob applied to a few entry ids
//! the way the boot path does.
#![no_main]

use ember_bls::{parse_entry, parse_loader_conf, select_default, sort_entries};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let conf = parse_loader_conf(data);
    if let Some(p) = &conf.default {
        // A pattern matches itself when it has no glob metacharacters.
        if !p.contains(['*', '?', '[', '\\']) {
            assert!(
                ember_bls::glob_match(p, p),
                "literal pattern {p:?} must match itself"
            );
        }
    }
    let mut entries: Vec<_> = ["debian-6.1.0-10.conf", "fedora+2-1.conf", "a+0.conf"]
        .iter()
        .map(|n| parse_entry(n, b"linux /vmlinuz\n").expect("fixed entry parses"))
        .collect();
    sort_entries(&mut entries);
    let sel = select_default(&entries, &conf).expect("non-empty list has a default");
    assert!(sel.index < entries.len());
});
