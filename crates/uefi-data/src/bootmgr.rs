//! The boot manager's decisions (UEFI spec 3.1), with no hardware access:
//! which `Boot####` options Ember keeps for the disks it found, the order in
//! which options are tried, and what an option's device path points at.
//!
//! The firmware reads the variables and the partition tables, calls these
//! functions, writes back what [`reconcile`] asks for, and boots the
//! [`Target`]s [`resolve`] returns. Variables are OS-written data: every
//! decoder here is bounds-checked and an option that cannot be used is
//! reported, never trusted.

use crate::devpath::{DevPathError, DevicePath, HardDrive, Node, PartitionSignature};
use crate::loadopt::{LoadOption, LOAD_OPTION_ACTIVE};
use crate::Guid;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

/// Optional data that marks a `Boot####` option as one Ember made for a
/// disk it found. Ember refreshes such options every boot (new disks get
/// one, vanished disks lose theirs); options without it belong to the OS or
/// the user and are never rewritten.
pub const AUTO_TAG: [u8; 16] = Guid::from_str_const("8f0c7a3e-5b1d-4e6a-9c2f-e3b7d4a1c0f5").0;

/// One partition as the boot manager matches it against Hard Drive nodes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaPartition {
    /// 1-based partition number.
    pub number: u32,
    pub first_lba: u64,
    pub num_blocks: u64,
    /// GPT unique partition GUID; `None` on MBR disks.
    pub guid: Option<Guid>,
}

/// One disk: the device path Ember gives it and its partitions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaDisk {
    /// The disk's device path, End-Entire included.
    pub path: Vec<u8>,
    /// How the console names it; also the auto option's description.
    pub name: String,
    pub partitions: Vec<MediaPartition>,
}

/// What a load option's device path designates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A whole disk: boot it Ember's way (its Boot Loader Specification
    /// entries, then the removable-media path).
    Disk { disk: usize },
    /// A partition with no file: the removable-media path on it.
    Partition { disk: usize, part: usize },
    /// A file on a partition (a `\`-separated path).
    File {
        disk: usize,
        part: usize,
        path: String,
    },
}

/// Why a load option's device path designates nothing bootable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResolveError {
    /// The device path itself is malformed.
    Malformed(DevPathError),
    /// No disk or partition Ember found matches it.
    NotFound,
    /// A kind of device path Ember cannot boot (network, a file with no
    /// device, a file on an unpartitioned disk, ...).
    Unsupported(&'static str),
}

impl fmt::Display for ResolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResolveError::Malformed(e) => write!(f, "malformed device path: {e}"),
            ResolveError::NotFound => f.write_str("no disk or partition found matches it"),
            ResolveError::Unsupported(what) => write!(f, "unsupported: {what}"),
        }
    }
}

/// Whether a Hard Drive node names this partition. GPT options match on
/// the unique partition GUID alone (it is unique across disks, which is
/// what makes short-form `HD(...)/File(...)` paths work); others on number,
/// start and size.
fn hd_matches(hd: &HardDrive, p: &MediaPartition) -> bool {
    match (hd.signature, p.guid) {
        (PartitionSignature::Gpt(g), Some(pg)) => g == pg,
        (PartitionSignature::Gpt(_), None) => false,
        _ => hd.partition == p.number && hd.start_lba == p.first_lba && hd.size_lba == p.num_blocks,
    }
}

/// What follows a partition: nothing, or File Path nodes.
fn after_partition(rest: &[Node<'_>], disk: usize, part: usize) -> Result<Target, ResolveError> {
    if rest.is_empty() {
        return Ok(Target::Partition { disk, part });
    }
    let mut path = String::new();
    for n in rest {
        let Some(name) = n.file_name() else {
            return Err(ResolveError::Unsupported(
                "a node other than a file path after the partition",
            ));
        };
        let name = name.map_err(ResolveError::Malformed)?;
        // Consecutive File Path nodes concatenate (spec 10.3.5.4); supply
        // the separator when neither side has one.
        if !path.is_empty() && !path.ends_with('\\') && !name.starts_with('\\') {
            path.push('\\');
        }
        path.push_str(&name);
    }
    if path.is_empty() {
        return Ok(Target::Partition { disk, part });
    }
    Ok(Target::File { disk, part, path })
}

/// What `path` (a load option's first device path) points at among `disks`.
///
/// Full paths (`PciRoot(0)/Pci(3,0)/HD(...)/File(...)`) must start with a
/// disk's own path; short-form ones starting at the Hard Drive node are
/// matched against every disk's partitions, as the spec's boot manager
/// does (3.1.2).
pub fn resolve(path: &[u8], disks: &[MediaDisk]) -> Result<Target, ResolveError> {
    let dp = DevicePath::parse(path).map_err(ResolveError::Malformed)?;
    let nodes: Vec<Node<'_>> = dp.nodes().take_while(|n| !n.is_end_instance()).collect();
    let first = nodes
        .first()
        .ok_or(ResolveError::Unsupported("an empty device path"))?;
    if let Some(hd) = HardDrive::from_node(first) {
        for (di, d) in disks.iter().enumerate() {
            if let Some(pi) = d.partitions.iter().position(|p| hd_matches(&hd, p)) {
                return after_partition(&nodes[1..], di, pi);
            }
        }
        return Err(ResolveError::NotFound);
    }
    if first.is_file_path() {
        return Err(ResolveError::Unsupported("a file path with no device"));
    }
    for (di, d) in disks.iter().enumerate() {
        let Ok(disk_dp) = DevicePath::parse(&d.path) else {
            continue;
        };
        let Some(rest) = dp.strip_prefix(&disk_dp) else {
            continue;
        };
        let rest_nodes: Vec<Node<'_>> = DevicePath::parse(rest)
            .map_err(ResolveError::Malformed)?
            .nodes()
            .take_while(|n| !n.is_end_instance())
            .collect();
        let Some(next) = rest_nodes.first() else {
            return Ok(Target::Disk { disk: di });
        };
        let Some(hd) = HardDrive::from_node(next) else {
            return Err(ResolveError::Unsupported(
                "a disk path not followed by a partition",
            ));
        };
        let pi = d
            .partitions
            .iter()
            .position(|p| hd_matches(&hd, p))
            .ok_or(ResolveError::NotFound)?;
        return after_partition(&rest_nodes[1..], di, pi);
    }
    Err(ResolveError::NotFound)
}

/// The variable changes [`reconcile`] asks for, and the resulting order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// The new `BootOrder`.
    pub boot_order: Vec<u16>,
    /// Whether `boot_order` differs from the stored one.
    pub order_changed: bool,
    /// `Boot####` options to create or rewrite.
    pub write: Vec<(u16, LoadOption)>,
    /// `Boot####` options to delete (auto options of disks now gone).
    pub delete: Vec<u16>,
    /// The auto option of each disk, by disk index.
    pub disk_option: Vec<u16>,
}

/// The auto option Ember makes for a disk.
pub fn auto_option(disk: &MediaDisk) -> LoadOption {
    LoadOption {
        attributes: LOAD_OPTION_ACTIVE,
        description: alloc::format!("Ember: {}", disk.name)
            .encode_utf16()
            .collect(),
        file_path: disk.path.clone(),
        optional_data: AUTO_TAG.to_vec(),
    }
}

/// Whether an option is one of Ember's auto options.
pub fn is_auto(o: &LoadOption) -> bool {
    o.optional_data == AUTO_TAG
}

/// Bring the boot options in line with the disks found.
///
/// - Every disk gets an auto option (reused when one with its device path
///   exists, keeping the attributes the user may have changed, e.g. made
///   inactive); auto options of vanished disks are deleted.
/// - `BootOrder` keeps everyone else's options where they are and drops
///   numbers with no `Boot####` variable; the auto options sit together, in
///   disk discovery order (which follows the VMM's boot order), where the
///   first of them was, or at the end.
///
/// `options` holds every `Boot####` present, `None` for ones that do not
/// decode (left alone, and kept in the order: they are somebody's data).
pub fn reconcile(
    order: &[u16],
    options: &BTreeMap<u16, Option<LoadOption>>,
    disks: &[MediaDisk],
) -> Plan {
    let mut plan = Plan::default();
    let autos: Vec<(u16, &LoadOption)> = options
        .iter()
        .filter_map(|(&n, o)| o.as_ref().filter(|o| is_auto(o)).map(|o| (n, o)))
        .collect();
    let mut used: Vec<u16> = Vec::new();
    let taken =
        |n: u16, plan: &Plan| options.contains_key(&n) || plan.write.iter().any(|(w, _)| *w == n);
    for d in disks {
        let want = auto_option(d);
        let existing = autos
            .iter()
            .find(|(n, o)| o.file_path == d.path && !used.contains(n));
        let n = match existing {
            Some(&(n, o)) => {
                if o.description != want.description {
                    let mut o = o.clone();
                    o.description = want.description;
                    plan.write.push((n, o));
                }
                n
            }
            None => {
                let Some(n) = (0..=u16::MAX).find(|&n| !taken(n, &plan)) else {
                    break;
                };
                plan.write.push((n, want));
                n
            }
        };
        used.push(n);
        plan.disk_option.push(n);
    }
    for &(n, _) in &autos {
        if !used.contains(&n) {
            plan.delete.push(n);
        }
    }
    let is_auto_num = |n: u16| autos.iter().any(|(a, _)| *a == n) || plan.disk_option.contains(&n);
    let mut placed = false;
    let mut new_order: Vec<u16> = Vec::new();
    for &n in order {
        if is_auto_num(n) {
            if !placed {
                new_order.extend_from_slice(&plan.disk_option);
                placed = true;
            }
            continue;
        }
        if options.contains_key(&n) && !new_order.contains(&n) {
            new_order.push(n);
        }
    }
    if !placed {
        new_order.extend_from_slice(&plan.disk_option);
    }
    plan.order_changed = new_order != order;
    plan.boot_order = new_order;
    plan
}

/// The options to try, in order: `BootNext` first (whether or not it is
/// active: the user asked for it once), then the active boot-category
/// options of `BootOrder`, each once.
pub fn attempts(
    boot_next: Option<u16>,
    order: &[u16],
    options: &BTreeMap<u16, Option<LoadOption>>,
) -> Vec<u16> {
    let mut out = Vec::new();
    if let Some(n) = boot_next {
        if options.get(&n).is_some_and(|o| o.is_some()) {
            out.push(n);
        }
    }
    for &n in order {
        if out.contains(&n) {
            continue;
        }
        if options
            .get(&n)
            .and_then(|o| o.as_ref())
            .is_some_and(|o| o.is_bootable())
        {
            out.push(n);
        }
    }
    out
}

/// `Boot####` → option number; `None` for other names (the four digits
/// must be upper-case hex, as the spec requires).
pub fn parse_boot_name(name: &str) -> Option<u16> {
    let hex = name.strip_prefix("Boot")?;
    if hex.len() != 4
        || !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
    {
        return None;
    }
    u16::from_str_radix(hex, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devpath as dp;
    use alloc::vec;

    fn disk_path(dev: u8) -> Vec<u8> {
        dp::from_nodes(&[&dp::pci_root(0), &dp::pci(dev, 0)]).unwrap()
    }

    fn g(n: u8) -> Guid {
        Guid([n; 16])
    }

    fn disks() -> Vec<MediaDisk> {
        vec![
            MediaDisk {
                path: disk_path(3),
                name: "virtio-blk 00:03.0".into(),
                partitions: vec![
                    MediaPartition {
                        number: 1,
                        first_lba: 2048,
                        num_blocks: 4096,
                        guid: Some(g(1)),
                    },
                    MediaPartition {
                        number: 2,
                        first_lba: 6144,
                        num_blocks: 8192,
                        guid: Some(g(2)),
                    },
                ],
            },
            MediaDisk {
                path: disk_path(4),
                name: "virtio-blk 00:04.0".into(),
                partitions: vec![MediaPartition {
                    number: 1,
                    first_lba: 63,
                    num_blocks: 1000,
                    guid: None,
                }],
            },
        ]
    }

    fn hd_gpt(n: u8) -> Vec<u8> {
        dp::hard_drive(1, 2048, 4096, PartitionSignature::Gpt(g(n)))
    }

    fn path(nodes: &[&[u8]]) -> Vec<u8> {
        dp::from_nodes(nodes).unwrap()
    }

    #[test]
    fn short_form_hd_file_finds_the_partition_by_guid_on_any_disk() {
        let f = dp::file_path("\\EFI\\debian\\shimx64.efi").unwrap();
        // Start and size deliberately wrong: the GUID decides for GPT.
        let hd = dp::hard_drive(2, 1, 1, PartitionSignature::Gpt(g(2)));
        let t = resolve(&path(&[&hd, &f]), &disks()).unwrap();
        assert_eq!(
            t,
            Target::File {
                disk: 0,
                part: 1,
                path: "\\EFI\\debian\\shimx64.efi".into()
            }
        );
    }

    #[test]
    fn full_path_to_a_file() {
        let f = dp::file_path("\\vmlinuz").unwrap();
        let t = resolve(
            &path(&[&dp::pci_root(0), &dp::pci(3, 0), &hd_gpt(1), &f]),
            &disks(),
        )
        .unwrap();
        assert_eq!(
            t,
            Target::File {
                disk: 0,
                part: 0,
                path: "\\vmlinuz".into()
            }
        );
    }

    #[test]
    fn split_file_nodes_are_joined() {
        let a = dp::file_path("\\EFI\\debian").unwrap();
        let b = dp::file_path("grubx64.efi").unwrap();
        let t = resolve(&path(&[&hd_gpt(1), &a, &b]), &disks()).unwrap();
        assert_eq!(
            t,
            Target::File {
                disk: 0,
                part: 0,
                path: "\\EFI\\debian\\grubx64.efi".into()
            }
        );
    }

    #[test]
    fn disk_and_partition_targets() {
        assert_eq!(
            resolve(&disk_path(4), &disks()),
            Ok(Target::Disk { disk: 1 })
        );
        let mbr = dp::hard_drive(1, 63, 1000, PartitionSignature::Mbr(0x1234));
        assert_eq!(
            resolve(&path(&[&dp::pci_root(0), &dp::pci(4, 0), &mbr]), &disks()),
            Ok(Target::Partition { disk: 1, part: 0 })
        );
    }

    #[test]
    fn what_matches_nothing_or_cannot_boot_is_an_error() {
        // A disk Ember did not find.
        assert_eq!(
            resolve(&disk_path(9), &disks()),
            Err(ResolveError::NotFound)
        );
        // A partition GUID no disk has.
        assert_eq!(
            resolve(&path(&[&hd_gpt(7)]), &disks()),
            Err(ResolveError::NotFound)
        );
        // MBR numbers must match start and size too.
        let mbr = dp::hard_drive(1, 64, 1000, PartitionSignature::Mbr(0));
        assert_eq!(
            resolve(&path(&[&mbr]), &disks()),
            Err(ResolveError::NotFound)
        );
        // A bare file: no device to read it from.
        let f = dp::file_path("\\x.efi").unwrap();
        assert!(matches!(
            resolve(&path(&[&f]), &disks()),
            Err(ResolveError::Unsupported(_))
        ));
        // A file straight on a partitioned disk.
        assert!(matches!(
            resolve(&path(&[&dp::pci_root(0), &dp::pci(3, 0), &f]), &disks()),
            Err(ResolveError::Unsupported(_))
        ));
        // Garbage.
        assert!(matches!(
            resolve(&[1, 2, 3], &disks()),
            Err(ResolveError::Malformed(_))
        ));
        assert!(matches!(
            resolve(&[], &disks()),
            Err(ResolveError::Malformed(_))
        ));
    }

    fn user_option(desc: &str, p: Vec<u8>) -> LoadOption {
        LoadOption {
            attributes: LOAD_OPTION_ACTIVE,
            description: desc.encode_utf16().collect(),
            file_path: p,
            optional_data: vec![],
        }
    }

    #[test]
    fn first_boot_creates_an_auto_option_per_disk_in_order() {
        let plan = reconcile(&[], &BTreeMap::new(), &disks());
        assert_eq!(plan.boot_order, vec![0, 1]);
        assert!(plan.order_changed);
        assert_eq!(plan.write.len(), 2);
        assert_eq!(plan.write[1].1.file_path, disk_path(4));
        assert_eq!(plan.write[1].1.description(), "Ember: virtio-blk 00:04.0");
        assert!(is_auto(&plan.write[0].1));
        assert!(plan.delete.is_empty());
    }

    #[test]
    fn a_second_boot_changes_nothing() {
        let first = reconcile(&[], &BTreeMap::new(), &disks());
        let opts: BTreeMap<u16, Option<LoadOption>> = first
            .write
            .iter()
            .map(|(n, o)| (*n, Some(o.clone())))
            .collect();
        let again = reconcile(&first.boot_order, &opts, &disks());
        assert!(!again.order_changed);
        assert!(again.write.is_empty());
        assert!(again.delete.is_empty());
        assert_eq!(again.disk_option, vec![0, 1]);
    }

    #[test]
    fn user_options_keep_their_place_and_numbers_are_not_reused() {
        let mut opts = BTreeMap::new();
        let shim = path(&[
            &hd_gpt(1),
            &dp::file_path("\\EFI\\debian\\shimx64.efi").unwrap(),
        ]);
        opts.insert(0, Some(user_option("debian", shim)));
        // An auto option of a disk that is gone, and one undecodable option.
        let mut gone = auto_option(&disks()[0]);
        gone.file_path = disk_path(7);
        opts.insert(1, Some(gone));
        opts.insert(2, None);
        // The user put the stale auto option first, and references Boot0009,
        // which does not exist.
        let plan = reconcile(&[1, 0, 9, 2], &opts, &disks());
        assert_eq!(plan.delete, vec![1]);
        // New auto options take free numbers (1 is still in use until deleted).
        assert_eq!(plan.disk_option, vec![3, 4]);
        // The auto group replaces the stale one's place; 9 is dropped.
        assert_eq!(plan.boot_order, vec![3, 4, 0, 2]);
    }

    #[test]
    fn disk_order_changes_reorder_the_auto_group_only() {
        let first = reconcile(&[], &BTreeMap::new(), &disks());
        let mut opts: BTreeMap<u16, Option<LoadOption>> = first
            .write
            .iter()
            .map(|(n, o)| (*n, Some(o.clone())))
            .collect();
        opts.insert(5, Some(user_option("mine", disk_path(3))));
        let mut swapped = disks();
        swapped.reverse();
        let plan = reconcile(&[5, 0, 1], &opts, &swapped);
        assert_eq!(plan.boot_order, vec![5, 1, 0]);
        assert!(plan.write.is_empty());
    }

    #[test]
    fn inactive_auto_options_stay_inactive() {
        let first = reconcile(&[], &BTreeMap::new(), &disks());
        let mut opts: BTreeMap<u16, Option<LoadOption>> = first
            .write
            .iter()
            .map(|(n, o)| (*n, Some(o.clone())))
            .collect();
        if let Some(Some(o)) = opts.get_mut(&0) {
            o.attributes = 0;
        }
        let plan = reconcile(&[0, 1], &opts, &disks());
        assert!(plan.write.is_empty());
        assert_eq!(attempts(None, &plan.boot_order, &opts), vec![1]);
    }

    #[test]
    fn boot_next_goes_first_once_even_if_inactive() {
        let mut opts = BTreeMap::new();
        let mut a = user_option("a", disk_path(3));
        a.attributes = 0;
        opts.insert(4, Some(a));
        opts.insert(1, Some(user_option("b", disk_path(4))));
        opts.insert(2, None);
        assert_eq!(attempts(Some(4), &[1, 4, 2], &opts), vec![4, 1]);
        assert_eq!(attempts(Some(1), &[1, 4], &opts), vec![1]);
        // A BootNext naming nothing (or garbage) is skipped.
        assert_eq!(attempts(Some(8), &[1], &opts), vec![1]);
        assert_eq!(attempts(Some(2), &[1], &opts), vec![1]);
    }

    #[test]
    fn boot_variable_names() {
        assert_eq!(parse_boot_name("Boot000A"), Some(10));
        assert_eq!(parse_boot_name("BootFFFF"), Some(0xffff));
        assert_eq!(parse_boot_name("Boot000a"), None);
        assert_eq!(parse_boot_name("BootOrder"), None);
        assert_eq!(parse_boot_name("Boot00001"), None);
        assert_eq!(parse_boot_name("Driver0001"), None);
    }
}
