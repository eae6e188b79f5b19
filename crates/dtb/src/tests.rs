//! Blobs built here token by token; the results are read back with the
//! independent `fdt` crate.
extern crate std;
use super::*;
use std::vec;
use std::vec::Vec;

/// A tiny DTB builder: nodes and properties in order.
struct Builder {
    structure: Vec<u8>,
    strings: Vec<u8>,
}

impl Builder {
    fn new() -> Self {
        Builder {
            structure: Vec::new(),
            strings: Vec::new(),
        }
    }
    fn u32(&mut self, v: u32) -> &mut Self {
        self.structure.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn pad(&mut self) {
        while !self.structure.len().is_multiple_of(4) {
            self.structure.push(0);
        }
    }
    fn begin(&mut self, name: &str) -> &mut Self {
        self.u32(BEGIN_NODE);
        self.structure.extend_from_slice(name.as_bytes());
        self.structure.push(0);
        self.pad();
        self
    }
    fn end(&mut self) -> &mut Self {
        self.u32(END_NODE)
    }
    fn prop(&mut self, name: &str, value: &[u8]) -> &mut Self {
        let off = self.strings.len() as u32;
        self.strings.extend_from_slice(name.as_bytes());
        self.strings.push(0);
        self.u32(PROP).u32(value.len() as u32).u32(off);
        self.structure.extend_from_slice(value);
        self.pad();
        self
    }
    fn finish(&mut self) -> Vec<u8> {
        self.u32(END);
        let rsv = HEADER_LEN;
        let st = rsv + 16;
        let strs = st + self.structure.len();
        let total = strs + self.strings.len();
        let mut b = Vec::new();
        for v in [
            MAGIC,
            total as u32,
            st as u32,
            strs as u32,
            rsv as u32,
            17,
            16,
            0,
            self.strings.len() as u32,
            self.structure.len() as u32,
        ] {
            b.extend_from_slice(&v.to_be_bytes());
        }
        b.extend_from_slice(&[0; 16]);
        b.extend_from_slice(&self.structure);
        b.extend_from_slice(&self.strings);
        b
    }
}

fn virt_like(with_chosen: bool) -> Vec<u8> {
    let mut b = Builder::new();
    b.begin("")
        .prop("#address-cells", &2u32.to_be_bytes())
        .prop("#size-cells", &2u32.to_be_bytes());
    b.prop("compatible", b"linux,dummy-virt\0");
    b.begin("memory@40000000").prop("device_type", b"memory\0");
    let mut reg = Vec::new();
    reg.extend_from_slice(&0x4000_0000u64.to_be_bytes());
    reg.extend_from_slice(&0x4000_0000u64.to_be_bytes());
    b.prop("reg", &reg).end();
    if with_chosen {
        b.begin("chosen")
            .prop("stdout-path", b"/pl011@9000000\0")
            .prop("bootargs", b"old\0")
            .end();
    }
    b.begin("pl011@9000000")
        .prop("compatible", b"arm,pl011\0")
        .end();
    b.end();
    b.finish()
}

fn edit(dtb: &[u8]) -> Vec<u8> {
    let start = 0x4800_0000u64.to_be_bytes();
    let end = 0x4810_0000u64.to_be_bytes();
    let props: [(&str, &[u8]); 3] = [
        ("bootargs", b"console=ttyAMA0 panic=-1\0"),
        ("linux,initrd-start", &start),
        ("linux,initrd-end", &end),
    ];
    let mut out = vec![0u8; dtb.len() + 256];
    let n = set_chosen(dtb, &props, &mut out).expect("edit");
    out.truncate(n);
    out
}

fn check(out: &[u8]) {
    let f = fdt::Fdt::new(out).expect("the result parses");
    let chosen = f.find_node("/chosen").expect("/chosen");
    assert_eq!(
        chosen.property("bootargs").and_then(|p| p.as_str()),
        Some("console=ttyAMA0 panic=-1")
    );
    assert_eq!(
        chosen
            .property("linux,initrd-start")
            .and_then(|p| p.as_usize()),
        Some(0x4800_0000)
    );
    assert_eq!(
        chosen
            .property("linux,initrd-end")
            .and_then(|p| p.as_usize()),
        Some(0x4810_0000)
    );
    // Everything else survived.
    let mem: Vec<_> = f.memory().regions().collect();
    assert_eq!(mem.len(), 1);
    assert_eq!(mem[0].size, Some(0x4000_0000));
    assert!(f.find_node("/pl011@9000000").is_some());
    assert_eq!(f.root().compatible().first(), "linux,dummy-virt");
}

#[test]
fn replaces_chosen_properties_and_keeps_the_rest() {
    let out = edit(&virt_like(true));
    check(&out);
    let f = fdt::Fdt::new(&out).unwrap();
    let chosen = f.find_node("/chosen").unwrap();
    assert_eq!(
        chosen.property("stdout-path").and_then(|p| p.as_str()),
        Some("/pl011@9000000")
    );
    // The old bootargs is gone, not duplicated.
    assert_eq!(
        chosen.properties().filter(|p| p.name == "bootargs").count(),
        1
    );
}

#[test]
fn adds_chosen_when_there_is_none() {
    check(&edit(&virt_like(false)));
}

#[test]
fn editing_twice_is_stable() {
    let once = edit(&virt_like(true));
    let twice = edit(&once);
    check(&twice);
    assert_eq!(once.len(), twice.len(), "names already present are reused");
}

#[test]
fn small_output_and_broken_input_are_errors() {
    let dtb = virt_like(true);
    let mut small = vec![0u8; 64];
    assert!(matches!(
        set_chosen(&dtb, &[("bootargs", b"x\0")], &mut small),
        Err(DtbError::OutputTooSmall { .. })
    ));
    let mut out = vec![0u8; 4096];
    assert_eq!(
        set_chosen(&[0u8; 8], &[], &mut out),
        Err(DtbError::BadMagic)
    );
    // Every truncation fails cleanly (totalsize then points past the end).
    for cut in 0..dtb.len() {
        assert!(
            set_chosen(&dtb[..cut], &[("bootargs", b"x\0")], &mut out).is_err(),
            "cut at {cut}"
        );
    }
    // A flipped byte anywhere: an error or a blob, never a panic.
    for i in 0..dtb.len() {
        let mut bad = dtb.clone();
        bad[i] ^= 0xff;
        let _ = set_chosen(&bad, &[("bootargs", b"x\0")], &mut out);
    }
}
