//! Entry parsing, ordering and default selection.

extern crate std;

use super::*;
use alloc::format;
use alloc::string::String;
use alloc::vec;
use core::cmp::Ordering;

/// The complete example entry from the Boot Loader Specification.
const SPEC_EXAMPLE: &str = "\
# /boot/loader/entries/6a9857a393724b7a981ebb5b8495b9ea-3.8.0-2.fc19.x86_64.conf
title        Fedora 19 (Rawhide)
sort-key     fedora
machine-id   6a9857a393724b7a981ebb5b8495b9ea
version      3.8.0-2.fc19.x86_64
options      root=UUID=6d3376e4-fc93-4509-95ec-a21d68011da2 quiet
architecture x64
linux        /6a9857a393724b7a981ebb5b8495b9ea/3.8.0-2.fc19.x86_64/linux
initrd       /6a9857a393724b7a981ebb5b8495b9ea/3.8.0-2.fc19.x86_64/initrd
";

#[test]
fn parses_spec_example() {
    let name = "6a9857a393724b7a981ebb5b8495b9ea-3.8.0-2.fc19.x86_64.conf";
    let e = parse_entry(name, SPEC_EXAMPLE.as_bytes()).unwrap();
    assert_eq!(e.id, "6a9857a393724b7a981ebb5b8495b9ea-3.8.0-2.fc19.x86_64");
    assert_eq!(e.file_name, name);
    assert_eq!(e.title.as_deref(), Some("Fedora 19 (Rawhide)"));
    assert_eq!(e.sort_key.as_deref(), Some("fedora"));
    assert_eq!(
        e.machine_id.as_deref(),
        Some("6a9857a393724b7a981ebb5b8495b9ea")
    );
    assert_eq!(e.version.as_deref(), Some("3.8.0-2.fc19.x86_64"));
    assert_eq!(
        e.options.as_deref(),
        Some("root=UUID=6d3376e4-fc93-4509-95ec-a21d68011da2 quiet")
    );
    assert_eq!(e.architecture.as_deref(), Some("x64"));
    assert_eq!(
        e.linux.as_deref(),
        Some("/6a9857a393724b7a981ebb5b8495b9ea/3.8.0-2.fc19.x86_64/linux")
    );
    assert_eq!(
        e.initrd,
        vec!["/6a9857a393724b7a981ebb5b8495b9ea/3.8.0-2.fc19.x86_64/initrd"]
    );
    assert_eq!((e.tries_left, e.tries_done), (None, None));
    assert!(e.unknown.is_empty());
    assert!(arch_matches(&e, "x64") && arch_matches(&e, "X64") && !arch_matches(&e, "aa64"));
}

#[test]
fn repeated_keys_crlf_tabs_and_unknown_keys() {
    let text = "title  first\r\n\r\n   # indented comment\r\n\toptions\tquiet  splash \r\ninitrd /a\r\n\
                options root=/dev/vda1\r\ninitrd /b\r\ntitle second\r\nARCHITECTURE AA64\r\n\
                devicetree-overlay /x.dtbo /y.dtbo\r\nefi /EFI/tool.efi\r\nversion\r\nlinux /vmlinuz\r\n";
    let e = parse_entry("e.conf", text.as_bytes()).unwrap();
    assert_eq!(
        e.title.as_deref(),
        Some("second"),
        "last single-valued key wins"
    );
    assert_eq!(e.options.as_deref(), Some("quiet  splash root=/dev/vda1"));
    assert_eq!(e.initrd, vec!["/a", "/b"]);
    assert_eq!(e.efi.as_deref(), Some("/EFI/tool.efi"));
    assert_eq!(e.version, None, "key without a value is ignored");
    // Keys are case-sensitive in the spec; "ARCHITECTURE" is unknown.
    assert_eq!(e.architecture, None);
    assert_eq!(
        e.unknown,
        vec![
            (String::from("ARCHITECTURE"), String::from("AA64")),
            (
                String::from("devicetree-overlay"),
                String::from("/x.dtbo /y.dtbo")
            ),
        ]
    );
}

#[test]
fn efi_only_entry_is_bootable() {
    let e = parse_entry(
        "shell.conf",
        b"title UEFI Shell\nefi /shellx64.efi\narchitecture AA64\n",
    )
    .unwrap();
    assert_eq!(e.linux, None);
    assert_eq!(e.architecture.as_deref(), Some("aa64"));
    assert!(arch_matches(&e, "aa64") && !arch_matches(&e, "x64"));
}

#[test]
fn missing_linux_and_efi_is_an_error() {
    let err = parse_entry("x.conf", b"title nothing\noptions quiet\ninitrd /i\n").unwrap_err();
    assert_eq!(
        err,
        EntryError::NotBootable {
            file: String::from("x.conf")
        }
    );
    assert!(format!("{err}").contains("neither a 'linux' nor an 'efi'"));
    assert!(matches!(
        parse_entry("x.conf", b""),
        Err(EntryError::NotBootable { .. })
    ));
    assert!(matches!(
        parse_entry("x.conf", b"# linux /vmlinuz\n"),
        Err(EntryError::NotBootable { .. })
    ));
}

#[test]
fn boot_counting_file_names() {
    let p = |name: &str| {
        let e = parse_entry(name, b"linux /k").unwrap();
        (e.id, e.tries_left, e.tries_done)
    };
    let s = String::from;
    assert_eq!(p("fedora-6.1+3.conf"), (s("fedora-6.1"), Some(3), None));
    assert_eq!(
        p("fedora-6.1+2-1.conf"),
        (s("fedora-6.1"), Some(2), Some(1))
    );
    assert_eq!(
        p("fedora-6.1+0-3.conf"),
        (s("fedora-6.1"), Some(0), Some(3))
    );
    assert_eq!(p("a+b+1.conf"), (s("a+b"), Some(1), None));
    assert_eq!(p("FOO.CONF"), (s("FOO"), None, None));
    // Not a valid counter: the whole stem is the id.
    assert_eq!(p("x+.conf"), (s("x+"), None, None));
    assert_eq!(p("x+1-.conf"), (s("x+1-"), None, None));
    assert_eq!(p("x+-1.conf"), (s("x+-1"), None, None));
    assert_eq!(p("x+1a.conf"), (s("x+1a"), None, None));
    assert_eq!(p("x+ 1.conf"), (s("x+ 1"), None, None));
    assert_eq!(p("x+99999999999.conf"), (s("x+99999999999"), None, None));
    assert_eq!(p("x+4294967295-0.conf"), (s("x"), Some(u32::MAX), Some(0)));
}

#[test]
fn bad_file_names() {
    for name in [
        "",
        ".conf",
        "+3.conf",
        "+3-1.conf",
        "entry.txt",
        "conf",
        "a/b.conf",
        "é.con",
    ] {
        assert_eq!(
            parse_entry(name, b"linux /k"),
            Err(EntryError::BadFileName {
                file: String::from(name)
            }),
            "{name:?}"
        );
    }
}

#[test]
fn junk_and_binary_input() {
    let err = parse_entry("j.conf", b"title ok\nlinux /k\ntitle \xff\xfe\n").unwrap_err();
    assert_eq!(
        err,
        EntryError::NotUtf8 {
            file: String::from("j.conf"),
            line: 3
        }
    );
    assert!(format!("{err}").contains("line 3 is not valid UTF-8"));

    let err = parse_entry("b.conf", b"linux /k\n\x7fELF\x02\x01\x01\0\0\0").unwrap_err();
    assert_eq!(
        err,
        EntryError::Binary {
            file: String::from("b.conf"),
            line: 2
        }
    );

    // Pseudo-random bytes never panic and are never accepted.
    let mut x = 0x1234_5678_u32;
    for len in 0..300 {
        let data: std::vec::Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        assert!(parse_entry("r.conf", &data).is_err());
        let _ = parse_loader_conf(&data);
    }
}

#[test]
fn huge_input() {
    // A long options line within the cap is fine.
    let long = "a".repeat(MAX_FILE_SIZE - 100);
    let text = format!("linux /k\noptions {long}\n");
    assert_eq!(
        parse_entry("h.conf", text.as_bytes())
            .unwrap()
            .options
            .unwrap()
            .len(),
        long.len()
    );
    // One byte over the cap is refused up front.
    let big = vec![b'x'; MAX_FILE_SIZE + 1];
    let err = parse_entry("h.conf", &big).unwrap_err();
    assert_eq!(
        err,
        EntryError::TooLarge {
            file: String::from("h.conf"),
            size: MAX_FILE_SIZE + 1
        }
    );
    assert!(format!("{err}").contains("too large"));
    // Many tiny lines.
    let many = "options x\n".repeat(MAX_FILE_SIZE / 10 - 1) + "linux /k";
    let e = parse_entry("m.conf", many.as_bytes()).unwrap();
    assert_eq!(e.options.unwrap().len(), (MAX_FILE_SIZE / 10 - 1) * 2 - 1);
}

fn entry(name: &str, body: &str) -> Entry {
    parse_entry(name, format!("linux /k\n{body}").as_bytes()).unwrap()
}

fn ids(v: &[Entry]) -> std::vec::Vec<&str> {
    v.iter().map(|e| e.file_name.as_str()).collect()
}

#[test]
fn spec_sorting_rules() {
    let mut v = vec![
        // Bad (tries exhausted) goes last despite having a sort-key.
        entry("fedora-6.3+0-3.conf", "sort-key fedora\nversion 6.3"),
        // No sort-key: after all entries with one; ordered by id, newest first.
        entry("old-5.10.conf", ""),
        entry("old-5.9.conf", ""),
        // Sort-key ascending, then machine-id ascending, then version descending.
        entry(
            "fedora-6.1.conf",
            "sort-key fedora\nmachine-id bbbb\nversion 6.1.9",
        ),
        entry(
            "fedora-6.2.conf",
            "sort-key fedora\nmachine-id bbbb\nversion 6.1.10",
        ),
        entry(
            "fedora-a.conf",
            "sort-key fedora\nmachine-id aaaa\nversion 1",
        ),
        entry("arch.conf", "sort-key arch\nversion 1"),
        // Empty and unset machine-id compare equal, before any value.
        entry("fedora-z.conf", "sort-key fedora\nversion 0.1"),
    ];
    sort_entries(&mut v);
    assert_eq!(
        ids(&v),
        [
            "arch.conf",
            "fedora-z.conf",
            "fedora-a.conf",
            "fedora-6.2.conf",
            "fedora-6.1.conf",
            "old-5.10.conf",
            "old-5.9.conf",
            "fedora-6.3+0-3.conf",
        ]
    );
}

#[test]
fn counting_tie_breaks() {
    // Same id; more tries left first, then fewer tries done; uncounted
    // entries compare equal to counted ones (stable sort keeps input order).
    let mut v = vec![
        entry("k+1-2.conf", ""),
        entry("k+3-1.conf", ""),
        entry("k+3.conf", ""),
        entry("k+0-9.conf", ""),
        entry("k+0-1.conf", ""),
    ];
    sort_entries(&mut v);
    assert_eq!(
        ids(&v),
        [
            "k+3.conf",
            "k+3-1.conf",
            "k+1-2.conf",
            "k+0-1.conf",
            "k+0-9.conf"
        ]
    );
    assert_eq!(
        entry_cmp(&entry("k.conf", ""), &entry("k+3.conf", "")),
        Ordering::Equal
    );
}

#[test]
fn default_selection() {
    let mut v = vec![
        entry("fedora-6.1.9.conf", ""),
        entry("fedora-6.1.10.conf", ""),
        entry("arch-6.5.conf", ""),
    ];
    sort_entries(&mut v);
    assert_eq!(
        ids(&v),
        ["fedora-6.1.10.conf", "fedora-6.1.9.conf", "arch-6.5.conf"]
    );

    let conf = |d: Option<&str>| LoaderConf {
        default: d.map(String::from),
        timeout: None,
    };
    let sel = select_default(&v, &conf(None)).unwrap();
    assert_eq!(
        (sel.index, sel.reason, sel.all_exhausted),
        (0, Reason::FirstInOrder, false)
    );

    let sel = select_default(&v, &conf(Some("arch-*"))).unwrap();
    assert_eq!(
        (sel.index, sel.reason),
        (2, Reason::MatchedDefaultPattern(String::from("arch-*")))
    );

    // Matches the file name with ".conf" too, and the first match wins.
    let sel = select_default(&v, &conf(Some("fedora-*.conf"))).unwrap();
    assert_eq!(sel.index, 0);
    let sel = select_default(&v, &conf(Some("fedora-6.1.[0-9].conf"))).unwrap();
    assert_eq!(sel.index, 1);

    let sel = select_default(&v, &conf(Some("debian-*"))).unwrap();
    assert_eq!(
        (sel.index, sel.reason),
        (0, Reason::DefaultPatternUnmatched(String::from("debian-*")))
    );

    assert_eq!(select_default(&[], &conf(Some("*"))), None);
    let one = [entry("only.conf", "")];
    assert_eq!(
        select_default(&one, &conf(Some("nope"))).unwrap().reason,
        Reason::OnlyEntry
    );
}

#[test]
fn exhausted_entries_only_as_last_resort() {
    let conf = LoaderConf {
        default: Some(String::from("bad*")),
        timeout: None,
    };
    let mut v = vec![entry("bad+0-3.conf", ""), entry("good.conf", "")];
    sort_entries(&mut v);
    let sel = select_default(&v, &conf).unwrap();
    assert_eq!(
        v[sel.index].id, "good",
        "pattern must not pick an exhausted entry"
    );
    assert_eq!(sel.reason, Reason::OnlyEntry);
    assert!(!sel.all_exhausted);

    let v = [entry("bad+0-3.conf", ""), entry("worse+0-5.conf", "")];
    let sel = select_default(&v, &conf).unwrap();
    assert_eq!((sel.index, sel.all_exhausted), (0, true));
    assert_eq!(
        sel.reason,
        Reason::MatchedDefaultPattern(String::from("bad*"))
    );
}

#[test]
fn foreign_architectures_are_skipped() {
    let v = [
        entry("arm.conf", "architecture aa64"),
        entry("pc.conf", "architecture x64"),
        entry("any.conf", ""),
    ];
    let conf = LoaderConf::default();
    let sel = select_default_for_arch(&v, &conf, "x64").unwrap();
    assert_eq!(sel.index, 1);
    let conf = LoaderConf {
        default: Some(String::from("arm")),
        timeout: None,
    };
    let sel = select_default_for_arch(&v, &conf, "X64").unwrap();
    assert_eq!(
        (sel.index, sel.reason),
        (1, Reason::DefaultPatternUnmatched(String::from("arm")))
    );
    assert_eq!(select_default_for_arch(&v[..1], &conf, "x64"), None);
    assert_eq!(select_default_for_arch(&v, &conf, "aa64").unwrap().index, 0);
}

/// A tiny UKI-shaped x86_64 image built by GNU binutils (ember-pe's fixture,
/// `crates/pe/tests/data/uki-reloc.S`): `.osrel` "ID=ember", `.cmdline`
/// "console=ttyS0".
const UKI: &[u8] = include_bytes!("../../pe/tests/data/uki-reloc.efi");

fn read_from(file: &[u8]) -> impl FnMut(u64, &mut [u8]) -> Result<usize, String> + '_ {
    |off, buf| {
        let off = usize::try_from(off).map_err(|_| String::from("offset"))?;
        let src = file
            .get(off..)
            .ok_or_else(|| String::from("past the end"))?;
        let n = src.len().min(buf.len());
        buf[..n].copy_from_slice(&src[..n]);
        Ok(n)
    }
}

#[test]
fn read_uki_takes_osrel_and_cmdline_from_the_image() {
    let e = crate::read_uki(
        "ember-6.1.efi",
        "/EFI/Linux/ember-6.1.efi",
        UKI.len() as u64,
        &[0x8664],
        read_from(UKI),
    )
    .unwrap();
    assert_eq!(e.id, "ember-6.1");
    assert_eq!(e.sort_key.as_deref(), Some("ember"));
    assert_eq!(e.options.as_deref(), Some("console=ttyS0"));
    assert_eq!(e.efi.as_deref(), Some("/EFI/Linux/ember-6.1.efi"));
}

#[test]
fn read_uki_refuses_other_machines_and_non_ukis() {
    // The same image on an arm64 firmware: not for this CPU.
    let err = crate::read_uki(
        "a.efi",
        "/EFI/Linux/a.efi",
        UKI.len() as u64,
        &[0xaa64],
        read_from(UKI),
    )
    .unwrap_err();
    assert!(err.starts_with("not a UKI: "), "{err}");
    // Not a PE at all, and a read error.
    let junk = [0u8; 512];
    assert!(crate::read_uki("b.efi", "/b", 512, &[0x8664], read_from(&junk)).is_err());
    let failing = |_: u64, _: &mut [u8]| -> Result<usize, String> { Err("I/O".into()) };
    assert_eq!(
        crate::read_uki("c.efi", "/c", 4096, &[0x8664], failing).unwrap_err(),
        "I/O"
    );
}
