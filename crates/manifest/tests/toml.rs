//! The TOML front end (feature `std`).
#![cfg(feature = "std")]

mod common;

use manifest::{decode, from_toml, to_bytes, ManifestError, PortRange, Problem, TomlError};

const PING_PONG: &str = r#"
[[domain]]
name = "ping"
image = "ping"
memory_kib = 1024
priority = 3
io_ports = ["0x3f8-0x3ff", "0x80"]   # optional
control = ["pong"]                   # optional
restart = false                      # optional

[[domain]]
name = "pong"
image = "pong"
memory_kib = 1024
priority = 7
restart = true

[[channel]]
name = "ping-pong"
a = "ping"
b = "pong"
pages = 1
a_gpa = 0x10000000                   # TOML integers; hex allowed
b_gpa = 0x10000000
"#;

fn err(text: &str) -> String {
    from_toml(text).unwrap_err().to_string()
}

#[test]
fn round_trip() {
    let m = from_toml(PING_PONG).unwrap();
    assert_eq!(m, common::valid());
    let bytes = to_bytes(&m);
    assert_eq!(bytes, common::encoded(&m));
    assert_eq!(decode(&bytes), Ok(m));
}

#[test]
fn optional_keys_default() {
    let m = from_toml(
        "[[domain]]\nname = \"solo\"\nimage = \"solo-elf\"\nmemory_kib = 4\npriority = 0\n",
    )
    .unwrap();
    let d = &m.domains[0];
    assert!(d.io_ports.is_empty() && d.control.is_empty() && !d.restart);
    assert!(m.channels.is_empty());
}

#[test]
fn port_syntax() {
    let text = PING_PONG.replace(
        r#"["0x3f8-0x3ff", "0x80"]"#,
        r#"["1016 - 1023", "0X80", "0x60-0x60"]"#,
    );
    let m = from_toml(&text).unwrap();
    assert_eq!(
        m.domains[0].io_ports.as_slice(),
        &[
            PortRange {
                first: 0x3f8,
                last: 0x3ff
            },
            PortRange {
                first: 0x80,
                last: 0x80
            },
            PortRange {
                first: 0x60,
                last: 0x60
            },
        ]
    );
}

#[test]
fn unknown_key_is_named() {
    let msg = err(&PING_PONG.replace("restart = true", "restrat = true"));
    assert!(msg.contains("restrat"), "{msg}");
    assert!(msg.contains("line 16"), "{msg}");
    let msg = err(&PING_PONG.replace("pages = 1", "pages = 1\nsize = 4"));
    assert!(msg.contains("size"), "{msg}");
    let msg = err(&format!("{PING_PONG}\n[extra]\nx = 1\n"));
    assert!(msg.contains("extra"), "{msg}");
}

#[test]
fn missing_key_and_wrong_type() {
    let msg = err(&PING_PONG.replace("memory_kib = 1024\npriority = 7", "priority = 7"));
    assert!(msg.contains("memory_kib"), "{msg}");
    let msg = err(&PING_PONG.replace("pages = 1", "pages = 300"));
    assert!(matches!(
        from_toml(&PING_PONG.replace("pages = 1", "pages = 300")),
        Err(TomlError::Parse(_))
    ));
    assert!(msg.contains("pages"), "{msg}");
    let msg = err(&PING_PONG.replace("priority = 3", "priority = \"high\""));
    assert!(msg.contains("priority"), "{msg}");
}

#[test]
fn long_string_names_the_key() {
    let e =
        from_toml(&PING_PONG.replace(r#"image = "pong""#, r#"image = "pong-with-a-long-name""#))
            .unwrap_err();
    assert_eq!(
        e,
        TomlError::Value {
            line: 13,
            table: "domain",
            index: 1,
            key: "image".into(),
            problem: r#""pong-with-a-long-name" is longer than 16 bytes"#.into(),
        }
    );
    assert_eq!(
        e.to_string(),
        r#"line 13: domain 1, key image: "pong-with-a-long-name" is longer than 16 bytes"#
    );
    let msg = err(&PING_PONG.replace(
        r#"control = ["pong"]"#,
        r#"control = ["pong", "a-very-long-domain"]"#,
    ));
    assert!(msg.contains("key control[1]"), "{msg}");
    let msg = err(&PING_PONG.replace(r#"b = "pong""#, r#"b = "pong-pong-pong-pong""#));
    assert!(msg.contains("channel 0, key b:"), "{msg}");
}

#[test]
fn too_many_items() {
    let msg = err(&PING_PONG.replace(r#"["0x3f8-0x3ff", "0x80"]"#, r#"["1", "2", "3", "4", "5"]"#));
    assert!(
        msg.contains("key io_ports: 5 items given; at most 4"),
        "{msg}"
    );
    let one = "[[domain]]\nname = \"d\"\nimage = \"d\"\nmemory_kib = 4\npriority = 0\n";
    let nine: String = (0..9)
        .map(|i| one.replace("\"d\"", &format!("\"d{i}\"")))
        .collect();
    assert_eq!(
        from_toml(&nine),
        Err(TomlError::TooMany {
            table: "domain",
            max: 8,
            found: 9
        })
    );
}

#[test]
fn bad_port_syntax() {
    for bad in ["0x3f8..0x3ff", "com1", "0x10000", "-5", ""] {
        let text = PING_PONG.replace(r#""0x80""#, &format!("{bad:?}"));
        let msg = err(&text);
        assert!(msg.contains("key io_ports[1]"), "{bad}: {msg}");
        assert!(msg.contains("is not a port or port range"), "{bad}: {msg}");
    }
}

#[test]
fn validation_errors_name_the_entry() {
    let e = from_toml(&PING_PONG.replace(
        "memory_kib = 1024\npriority = 7",
        "memory_kib = 0\npriority = 7",
    ))
    .unwrap_err();
    assert!(matches!(
        e,
        TomlError::Invalid(ManifestError::Domain {
            index: 1,
            problem: Problem::MemoryNotMultipleOf4 { kib: 0 },
            ..
        })
    ));
    assert_eq!(
        e.to_string(),
        r#"domain 1 ("pong"): memory_kib 0 is not a positive multiple of 4"#
    );
    assert_eq!(err(""), "manifest has no domains");
    let msg = err(&PING_PONG.replace(r#"control = ["pong"]"#, r#"control = ["pang"]"#));
    assert_eq!(
        msg,
        r#"domain 0 ("ping"): control[0] "pang" is not a domain of the manifest"#
    );
}

#[test]
fn system_checks_catch_too_much_memory_and_priority_inversion() {
    let m = manifest::from_toml(PING_PONG).unwrap();
    assert_eq!(manifest::check_system(&m, manifest::MACHINE_KIB), Ok(()));
    let e = manifest::check_system(&m, 1024).unwrap_err();
    assert!(e.contains("memory_kib") && e.contains("1024 KiB"), "{e}");
    let mut m = m;
    m.domains[1].priority = 0;
    m.domains[0].priority = 5;
    let e = manifest::check_system(&m, manifest::MACHINE_KIB).unwrap_err();
    assert!(
        e.contains("priority inversion") && e.contains("key b"),
        "{e}"
    );
}

#[test]
fn linux_guests_take_a_bzimage_and_are_their_own_module() {
    let base = "[[domain]]\nname = \"manager\"\nimage = \"manager\"\nmemory_kib = 2048\npriority = 4\nlauncher = true\n";
    let text = format!(
        "{base}[[guest]]\nname = \"linux\"\nkind = \"linux\"\nbzimage = \"debian-cloud\"\n\
         initrd = \"busybox\"\ncmdline = \"console=ttyS0 quiet\"\nmemory_kib = 131072\npriority = 3\n\
         [[guest]]\nname = \"tiny\"\nkind = \"linux\"\nbzimage = \"k/bzImage\"\nmemory_kib = 65536\npriority = 3\n"
    );
    let m = from_toml(&text).unwrap();
    assert_eq!(m.guests[0].image.as_str(), "linux");
    let guests = manifest::linux_guests(&text).unwrap();
    assert_eq!(guests.len(), 2);
    assert_eq!(guests[0].bzimage, "debian-cloud");
    assert_eq!(guests[0].initrd.as_deref(), Some("busybox"));
    assert_eq!(guests[0].cmdline, "console=ttyS0 quiet");
    assert_eq!(guests[1].initrd, None);
    assert_eq!(guests[1].cmdline, manifest::LINUX_DEFAULT_CMDLINE);
    // Each wrong combination is an error naming the key.
    let guest = |keys: &str| {
        format!("{base}[[guest]]\nname = \"g\"\n{keys}memory_kib = 65536\npriority = 3\n")
    };
    let cases = [
        ("kind = \"linux\"\n", "bzimage"),
        (
            "kind = \"linux\"\nbzimage = \"x\"\nimage = \"y\"\n",
            "image",
        ),
        ("kind = \"wasm\"\nimage = \"y\"\n", "kind"),
        ("image = \"y\"\nbzimage = \"x\"\n", "bzimage"),
        ("image = \"y\"\ncmdline = \"quiet\"\n", "cmdline"),
        ("kind = \"elf\"\n", "image"),
    ];
    for (keys, key) in cases {
        let e = err(&guest(keys));
        assert!(e.contains(key), "{keys:?}: {e}");
    }
}
