//! UAPI version comparison: a total order (antisymmetric, reflexive, and
//! transitive on the sampled triple), and entry sorting never panics.
#![no_main]

use ember_bls::{entry_cmp, sort_entries, version_cmp, Entry};
use ember_fuzz::Bytes;
use libfuzzer_sys::fuzz_target;
use std::cmp::Ordering;

fuzz_target!(|data: &[u8]| {
    let mut r = Bytes(data);
    let a = String::from_utf8_lossy(r.until(0)).into_owned();
    let b = String::from_utf8_lossy(r.until(0)).into_owned();
    let c = String::from_utf8_lossy(r.0).into_owned();
    let ab = version_cmp(&a, &b);
    assert_eq!(
        ab,
        version_cmp(&b, &a).reverse(),
        "antisymmetry: {a:?} vs {b:?}"
    );
    assert_eq!(version_cmp(&a, &a), Ordering::Equal, "reflexive: {a:?}");
    let bc = version_cmp(&b, &c);
    if ab == bc && ab != Ordering::Equal {
        assert_eq!(version_cmp(&a, &c), ab, "transitive: {a:?} {b:?} {c:?}");
    }

    // Entries whose ids, versions and sort keys come from the strings: the
    // comparator must be consistent enough for sort not to panic, and
    // sorting must not depend on the input order (ties aside, by id).
    let mk = |id: &str, v: &str, key: Option<&str>, tries: Option<u32>| Entry {
        id: id.to_string(),
        file_name: format!("{id}.conf"),
        version: Some(v.to_string()),
        sort_key: key.map(str::to_string),
        tries_left: tries,
        ..Entry::default()
    };
    let entries = vec![
        mk(&a, &b, None, None),
        mk(&b, &c, Some(&a), Some(1)),
        mk(&c, &a, Some(&b), Some(0)),
        mk(&a, &c, Some(&a), None),
        mk(&b, &a, None, Some(3)),
    ];
    for x in &entries {
        for y in &entries {
            assert_eq!(
                entry_cmp(x, y),
                entry_cmp(y, x).reverse(),
                "entry_cmp antisymmetry"
            );
        }
    }
    let mut fwd = entries.clone();
    sort_entries(&mut fwd);
    let mut rev: Vec<Entry> = entries.into_iter().rev().collect();
    sort_entries(&mut rev);
    for (x, y) in fwd.iter().zip(&rev) {
        assert_eq!(
            entry_cmp(x, y),
            Ordering::Equal,
            "sort depends on input order"
        );
    }
});
