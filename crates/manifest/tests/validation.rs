//! One test per validation problem, plus the error format.

mod common;

use common::{channel, domain, name, valid};
use manifest::{
    decode, encode, validate, End, Manifest, ManifestError, PortRange, Problem, MAX_ENCODED_LEN,
};

fn domain_problem(m: &Manifest) -> (usize, String, Problem) {
    match validate(m) {
        Err(ManifestError::Domain {
            index,
            name,
            problem,
        }) => (index, name.to_string(), problem),
        other => panic!("expected a domain error, got {other:?}"),
    }
}

fn channel_problem(m: &Manifest) -> (usize, String, Problem) {
    match validate(m) {
        Err(ManifestError::Channel {
            index,
            name,
            problem,
        }) => (index, name.to_string(), problem),
        other => panic!("expected a channel error, got {other:?}"),
    }
}

#[test]
fn valid_manifest_passes_and_decodes() {
    let m = valid();
    assert_eq!(validate(&m), Ok(()));
    assert_eq!(decode(&common::encoded(&m)), Ok(m));
}

#[test]
fn bad_magic() {
    let mut m = valid();
    m.magic = *b"ELF\x7f";
    assert_eq!(
        validate(&m),
        Err(ManifestError::BadMagic { found: *b"ELF\x7f" })
    );
    // decode reports it before looking at the body.
    assert_eq!(
        decode(b"\x7fELF\x02\x01"),
        Err(ManifestError::BadMagic { found: *b"\x7fELF" })
    );
}

#[test]
fn bad_version() {
    let mut m = valid();
    m.version = 1;
    assert_eq!(validate(&m), Err(ManifestError::BadVersion { found: 1 }));
    // decode reports it from the header alone, even if the body is garbage.
    let mut bytes = b"BHMF".to_vec();
    bytes.extend_from_slice(&[0x01, 0xff, 0xff]);
    assert_eq!(decode(&bytes), Err(ManifestError::BadVersion { found: 1 }));
}

#[test]
fn no_domains() {
    let m = Manifest::new();
    assert_eq!(validate(&m), Err(ManifestError::NoDomains));
    assert_eq!(decode(&common::encoded(&m)), Err(ManifestError::NoDomains));
}

#[test]
fn domain_name_empty() {
    let mut m = valid();
    m.domains[1].name = name("");
    m.domains[0].control.clear();
    m.channels.clear();
    assert_eq!(domain_problem(&m), (1, String::new(), Problem::NameEmpty));
}

#[test]
fn domain_name_invalid_char() {
    let mut m = valid();
    m.domains[0].name = name("Ping");
    assert_eq!(
        domain_problem(&m),
        (0, "Ping".into(), Problem::NameInvalid { found: 'P' })
    );
    m.domains[0].name = name("pi ng");
    assert_eq!(domain_problem(&m).2, Problem::NameInvalid { found: ' ' });
    m.domains[0].name = name("pïng");
    assert_eq!(domain_problem(&m).2, Problem::NameInvalid { found: 'ï' });
}

#[test]
fn domain_name_duplicate() {
    let mut m = valid();
    m.domains.push(domain("ping")).unwrap();
    assert_eq!(
        domain_problem(&m),
        (2, "ping".into(), Problem::NameDuplicate { first: 0 })
    );
}

#[test]
fn image_empty() {
    let mut m = valid();
    m.domains[1].image = name("");
    assert_eq!(domain_problem(&m), (1, "pong".into(), Problem::ImageEmpty));
}

#[test]
fn memory_zero_or_unaligned() {
    let mut m = valid();
    m.domains[1].memory_kib = 0;
    assert_eq!(
        domain_problem(&m),
        (1, "pong".into(), Problem::MemoryNotMultipleOf4 { kib: 0 })
    );
    m.domains[1].memory_kib = 1026;
    assert_eq!(
        domain_problem(&m).2,
        Problem::MemoryNotMultipleOf4 { kib: 1026 }
    );
}

#[test]
fn memory_too_large() {
    let mut m = valid();
    m.domains[0].memory_kib = 1 << 20;
    assert_eq!(validate(&m), Ok(()));
    m.domains[0].memory_kib = (1 << 20) + 4;
    assert_eq!(
        domain_problem(&m),
        (
            0,
            "ping".into(),
            Problem::MemoryTooLarge { kib: (1 << 20) + 4 }
        )
    );
}

#[test]
fn priority_too_high() {
    let mut m = valid();
    m.domains[0].priority = 8;
    assert_eq!(
        domain_problem(&m),
        (0, "ping".into(), Problem::PriorityTooHigh { priority: 8 })
    );
}

#[test]
fn port_range_reversed() {
    let mut m = valid();
    m.domains[0].io_ports[1] = PortRange {
        first: 0x81,
        last: 0x80,
    };
    assert_eq!(
        domain_problem(&m),
        (
            0,
            "ping".into(),
            Problem::PortRangeReversed {
                index: 1,
                first: 0x81,
                last: 0x80
            }
        )
    );
}

#[test]
fn port_shared_between_domains() {
    let mut m = valid();
    m.domains[1]
        .io_ports
        .push(PortRange {
            first: 0x3f0,
            last: 0x3f8,
        })
        .unwrap();
    assert_eq!(
        domain_problem(&m),
        (
            1,
            "pong".into(),
            Problem::PortShared {
                index: 0,
                port: 0x3f8,
                other: 0
            }
        )
    );
    // Adjacent ranges do not share a port.
    m.domains[1].io_ports[0].last = 0x3f7;
    assert_eq!(validate(&m), Ok(()));
}

#[test]
fn control_self() {
    let mut m = valid();
    m.domains[0].control.push(name("ping")).unwrap();
    assert_eq!(
        domain_problem(&m),
        (0, "ping".into(), Problem::ControlSelf { index: 1 })
    );
}

#[test]
fn control_unknown() {
    let mut m = valid();
    m.domains[1].control.push(name("pang")).unwrap();
    assert_eq!(
        domain_problem(&m),
        (
            1,
            "pong".into(),
            Problem::ControlUnknown {
                index: 0,
                name: name("pang")
            }
        )
    );
}

#[test]
fn control_duplicate() {
    let mut m = valid();
    m.domains[0].control.push(name("pong")).unwrap();
    assert_eq!(
        domain_problem(&m),
        (
            0,
            "ping".into(),
            Problem::ControlDuplicate {
                index: 1,
                name: name("pong")
            }
        )
    );
}

#[test]
fn channel_name_empty_invalid_duplicate() {
    let mut m = valid();
    m.channels[0].name = name("");
    assert_eq!(channel_problem(&m), (0, String::new(), Problem::NameEmpty));
    m.channels[0].name = name("ping/pong");
    assert_eq!(channel_problem(&m).2, Problem::NameInvalid { found: '/' });
    m.channels[0].name = name("ping-pong");
    m.channels
        .push(channel("ping-pong", "pong", "ping"))
        .unwrap();
    assert_eq!(
        channel_problem(&m),
        (1, "ping-pong".into(), Problem::NameDuplicate { first: 0 })
    );
}

#[test]
fn channel_end_unknown() {
    let mut m = valid();
    m.channels[0].a = name("pang");
    assert_eq!(
        channel_problem(&m),
        (
            0,
            "ping-pong".into(),
            Problem::EndUnknown {
                end: End::A,
                name: name("pang")
            }
        )
    );
    m.channels[0].a = name("ping");
    m.channels[0].b = name("");
    assert_eq!(
        channel_problem(&m).2,
        Problem::EndUnknown {
            end: End::B,
            name: name("")
        }
    );
}

#[test]
fn channel_ends_same() {
    let mut m = valid();
    m.channels[0].b = name("ping");
    assert_eq!(channel_problem(&m).2, Problem::EndsSame);
}

#[test]
fn channel_pages_out_of_range() {
    let mut m = valid();
    m.channels[0].pages = 0;
    assert_eq!(channel_problem(&m).2, Problem::PagesOutOfRange { pages: 0 });
    m.channels[0].pages = 17;
    assert_eq!(
        channel_problem(&m).2,
        Problem::PagesOutOfRange { pages: 17 }
    );
    m.channels[0].pages = 16;
    assert_eq!(validate(&m), Ok(()));
}

#[test]
fn channel_gpa_zero() {
    let mut m = valid();
    m.channels[0].b_gpa = 0;
    assert_eq!(channel_problem(&m).2, Problem::GpaZero { end: End::B });
}

#[test]
fn channel_gpa_unaligned() {
    let mut m = valid();
    m.channels[0].a_gpa = 0x1000_0800;
    assert_eq!(
        channel_problem(&m).2,
        Problem::GpaUnaligned {
            end: End::A,
            gpa: 0x1000_0800
        }
    );
}

#[test]
fn channel_gpa_out_of_range() {
    let mut m = valid();
    m.channels[0].pages = 2;
    // The last two pages below 1 << 39 are fine ...
    m.channels[0].a_gpa = (1 << 39) - 2 * 4096;
    assert_eq!(validate(&m), Ok(()));
    // ... one page higher reaches past the limit ...
    m.channels[0].a_gpa = (1 << 39) - 4096;
    assert_eq!(
        channel_problem(&m).2,
        Problem::GpaOutOfRange {
            end: End::A,
            gpa: (1 << 39) - 4096,
            pages: 2
        }
    );
    // ... and an address whose end overflows u64 is rejected, not wrapped.
    m.channels[0].a_gpa = 0x1000;
    m.channels[0].b_gpa = 0xffff_ffff_ffff_f000;
    assert_eq!(
        channel_problem(&m).2,
        Problem::GpaOutOfRange {
            end: End::B,
            gpa: 0xffff_ffff_ffff_f000,
            pages: 2
        }
    );
}

#[test]
fn display_names_the_entry() {
    let mut m = valid();
    m.domains.push(domain("pang")).unwrap();
    m.domains[2].memory_kib = 0;
    assert_eq!(
        validate(&m).unwrap_err().to_string(),
        r#"domain 2 ("pang"): memory_kib 0 is not a positive multiple of 4"#
    );
    let mut m = valid();
    m.domains.push(domain("ping")).unwrap();
    assert_eq!(
        validate(&m).unwrap_err().to_string(),
        r#"domain 2 ("ping"): name is already used by domain 0"#
    );
    let mut m = valid();
    m.channels[0].a_gpa = 0x1234;
    assert_eq!(
        validate(&m).unwrap_err().to_string(),
        r#"channel 0 ("ping-pong"): a_gpa 0x1234 is not 4096-aligned"#
    );
}

#[test]
fn encode_into_small_buffer_fails() {
    let m = valid();
    let len = common::encoded(&m).len();
    let mut buf = vec![0u8; len - 1];
    assert_eq!(encode(&m, &mut buf), Err(ManifestError::BufferTooSmall));
}

#[test]
fn max_encoded_len_bounds_the_largest_manifest() {
    let long = "abcdefghijklmnop";
    let mut m = Manifest::new();
    m.version = u16::MAX;
    for _ in 0..8 {
        let mut d = domain(long);
        d.memory_kib = u32::MAX;
        d.spare_kib = u32::MAX;
        d.priority = u8::MAX;
        for _ in 0..4 {
            d.io_ports
                .push(PortRange {
                    first: u16::MAX,
                    last: u16::MAX,
                })
                .unwrap();
            d.control.push(name(long)).unwrap();
        }
        m.domains.push(d).unwrap();
    }
    for d in m.domains.iter_mut() {
        d.launcher = true;
        d.free_memory = true;
    }
    for _ in 0..8 {
        let mut g = common::guest(long);
        g.memory_kib = u32::MAX;
        g.priority = u8::MAX;
        m.guests.push(g).unwrap();
    }
    for _ in 0..8 {
        let mut c = channel(long, long, long);
        c.pages = u8::MAX;
        c.a_gpa = u64::MAX;
        c.b_gpa = u64::MAX;
        m.channels.push(c).unwrap();
    }
    let mut buf = [0u8; MAX_ENCODED_LEN];
    let len = encode(&m, &mut buf).unwrap().len();
    assert_eq!(len, MAX_ENCODED_LEN);
}

#[test]
fn trailing_bytes_rejected() {
    let mut bytes = common::encoded(&valid());
    bytes.push(0);
    assert_eq!(
        decode(&bytes),
        Err(ManifestError::TrailingBytes { count: 1 })
    );
}

#[test]
fn manifest_is_small_enough_for_a_kernel_stack() {
    let size = core::mem::size_of::<Manifest>();
    eprintln!("size_of::<Manifest>() = {size}");
    assert!(size <= 4096, "{size}");
}

#[test]
fn spare_memory_must_be_a_multiple_of_4_and_bounded() {
    let mut m = common::valid();
    m.domains[0].spare_kib = 6;
    assert!(manifest::validate(&m)
        .unwrap_err()
        .to_string()
        .contains("spare_kib 6"));
    m.domains[0].spare_kib = manifest::MAX_MEMORY_KIB + 4;
    assert!(manifest::validate(&m).is_err());
    m.domains[0].spare_kib = 4096;
    assert!(manifest::validate(&m).is_ok());
}

fn guest_problem(m: &Manifest) -> (usize, String, Problem) {
    match validate(m) {
        Err(ManifestError::Guest {
            index,
            name,
            problem,
        }) => (index, name.as_str().to_string(), problem),
        other => panic!("expected a guest error, got {other:?}"),
    }
}

/// `valid()` with ping as the launcher and one guest, `demo`.
fn with_guest() -> Manifest {
    let mut m = valid();
    m.domains[0].launcher = true;
    m.guests.push(common::guest("demo")).unwrap();
    m
}

#[test]
fn guests_with_a_launcher_pass_and_round_trip() {
    let m = with_guest();
    assert_eq!(validate(&m), Ok(()));
    assert_eq!(decode(&common::encoded(&m)), Ok(m));
}

#[test]
fn guest_name_rules() {
    let mut m = with_guest();
    m.guests[0].name = name("");
    assert_eq!(guest_problem(&m), (0, String::new(), Problem::NameEmpty));
    let mut m = with_guest();
    m.guests.push(common::guest("demo")).unwrap();
    assert_eq!(
        guest_problem(&m),
        (1, "demo".into(), Problem::NameDuplicate { first: 0 })
    );
    let mut m = with_guest();
    m.guests[0].name = name("pong");
    assert_eq!(
        guest_problem(&m),
        (0, "pong".into(), Problem::NameIsADomain { domain: 1 })
    );
    assert_eq!(
        validate(&m).unwrap_err().to_string(),
        "guest 0 (\"pong\"): name is already used by domain 1"
    );
}

#[test]
fn guest_image_memory_and_priority() {
    let mut m = with_guest();
    m.guests[0].image = name("");
    assert_eq!(guest_problem(&m).2, Problem::ImageEmpty);
    for kib in [0, 1024, 1030] {
        let mut m = with_guest();
        m.guests[0].memory_kib = kib;
        assert_eq!(guest_problem(&m).2, Problem::GuestMemory { kib });
    }
    let mut m = with_guest();
    m.guests[0].memory_kib = (1 << 20) + 4;
    assert_eq!(
        guest_problem(&m).2,
        Problem::MemoryTooLarge { kib: (1 << 20) + 4 }
    );
    let mut m = with_guest();
    m.guests[0].priority = 8;
    assert_eq!(
        guest_problem(&m).2,
        Problem::PriorityTooHigh { priority: 8 }
    );
}

#[test]
fn at_most_one_launcher_and_one_free_memory_holder() {
    let mut m = with_guest();
    m.domains[1].launcher = true;
    assert_eq!(
        validate(&m),
        Err(ManifestError::TwoDomainsFlagged {
            key: "launcher",
            first: 0,
            second: 1
        })
    );
    let mut m = valid();
    m.domains[0].free_memory = true;
    assert_eq!(validate(&m), Ok(()));
    m.domains[1].free_memory = true;
    assert_eq!(
        validate(&m).unwrap_err().to_string(),
        "domains 0 and 1 both set free_memory; at most one domain may"
    );
    let mut m = valid();
    m.domains[0].platform = true;
    assert_eq!(validate(&m), Ok(()));
    m.domains[1].platform = true;
    assert_eq!(
        validate(&m).unwrap_err().to_string(),
        "domains 0 and 1 both set platform; at most one domain may"
    );
}

#[test]
fn guests_need_a_launcher() {
    let mut m = with_guest();
    m.domains[0].launcher = false;
    assert_eq!(validate(&m), Err(ManifestError::GuestsWithoutLauncher));
}
