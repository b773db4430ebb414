//! Shared fixtures for the manifest tests.
#![allow(dead_code)]

use manifest::{ChannelSpec, DomainSpec, GuestSpec, Manifest, Name, PortRange};

pub fn name(s: &str) -> Name {
    Name::try_from(s).unwrap()
}

pub fn domain(n: &str) -> DomainSpec {
    DomainSpec {
        name: name(n),
        image: name(n),
        memory_kib: 1024,
        priority: 3,
        io_ports: heapless::Vec::new(),
        control: heapless::Vec::new(),
        restart: false,
        spare_kib: 0,
        launcher: false,
        free_memory: false,
        platform: false,
    }
}

pub fn guest(n: &str) -> GuestSpec {
    GuestSpec {
        name: name(n),
        image: name(n),
        memory_kib: 4096,
        priority: 2,
    }
}

pub fn channel(n: &str, a: &str, b: &str) -> ChannelSpec {
    ChannelSpec {
        name: name(n),
        a: name(a),
        b: name(b),
        pages: 1,
        a_gpa: 0x1000_0000,
        b_gpa: 0x1000_0000,
    }
}

/// A valid manifest: ping (ports 0x3f8-0x3ff and 0x80, controls pong),
/// pong, and a one-page channel between them.
pub fn valid() -> Manifest {
    let mut m = Manifest::new();
    let mut ping = domain("ping");
    ping.io_ports
        .push(PortRange {
            first: 0x3f8,
            last: 0x3ff,
        })
        .unwrap();
    ping.io_ports
        .push(PortRange {
            first: 0x80,
            last: 0x80,
        })
        .unwrap();
    ping.control.push(name("pong")).unwrap();
    m.domains.push(ping).unwrap();
    let mut pong = domain("pong");
    pong.restart = true;
    pong.priority = 7;
    m.domains.push(pong).unwrap();
    m.channels
        .push(channel("ping-pong", "ping", "pong"))
        .unwrap();
    m
}

pub fn encoded(m: &Manifest) -> Vec<u8> {
    let mut buf = [0u8; manifest::MAX_ENCODED_LEN];
    manifest::encode(m, &mut buf).unwrap().to_vec()
}
