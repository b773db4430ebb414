//! The manifest's validation rules.

use crate::{
    ChannelSpec, DomainSpec, End, GuestSpec, Manifest, ManifestError, Name, Problem, GPA_LIMIT,
    MAGIC, MAX_CHANNEL_PAGES, MAX_MEMORY_KIB, MAX_PRIORITY, MIN_GUEST_KIB, PAGE_SIZE, VERSION,
};

/// Checks every rule of the manifest and returns the first violation.
///
/// Checks, in order: magic and version; at least one domain; then each
/// domain (name non-empty, only `[a-z0-9_-]`, unique; image non-empty;
/// `memory_kib` a positive multiple of 4 and at most 1 GiB; priority at most
/// 7; port ranges not reversed and not sharing a port with an earlier
/// domain; `control` entries naming other existing domains, each once); then
/// each channel (name rules as for domains; `a` and `b` existing, different
/// domains; `pages` in 1..=16; both addresses non-zero, page-aligned and with
/// `gpa + pages * 4096 <= 1 << 39`); then each guest (name rules, unique
/// among guests and domains; image non-empty; `memory_kib` a multiple of 4
/// from 1028 KiB to 1 GiB; priority at most 7); then that at most one
/// domain is the launcher and at most one has `free_memory`, and that guests
/// have a launcher. Never panics, never allocates.
pub fn validate(m: &Manifest) -> Result<(), ManifestError> {
    if m.magic != MAGIC {
        return Err(ManifestError::BadMagic { found: m.magic });
    }
    if m.version != VERSION {
        return Err(ManifestError::BadVersion { found: m.version });
    }
    if m.domains.is_empty() {
        return Err(ManifestError::NoDomains);
    }
    for (index, d) in m.domains.iter().enumerate() {
        check_domain(m, index, d).map_err(|problem| ManifestError::Domain {
            index,
            name: d.name.clone(),
            problem,
        })?;
    }
    for (index, c) in m.channels.iter().enumerate() {
        check_channel(m, index, c).map_err(|problem| ManifestError::Channel {
            index,
            name: c.name.clone(),
            problem,
        })?;
    }
    for (index, g) in m.guests.iter().enumerate() {
        check_guest(m, index, g).map_err(|problem| ManifestError::Guest {
            index,
            name: g.name.clone(),
            problem,
        })?;
    }
    for (key, pick) in [
        (
            "launcher",
            (|d: &DomainSpec| d.launcher) as fn(&DomainSpec) -> bool,
        ),
        ("free_memory", |d: &DomainSpec| d.free_memory),
        ("platform", |d: &DomainSpec| d.platform),
    ] {
        let mut flagged = m.domains.iter().enumerate().filter(|(_, d)| pick(d));
        if let (Some((first, _)), Some((second, _))) = (flagged.next(), flagged.next()) {
            return Err(ManifestError::TwoDomainsFlagged { key, first, second });
        }
    }
    if !m.guests.is_empty() && !m.domains.iter().any(|d| d.launcher) {
        return Err(ManifestError::GuestsWithoutLauncher);
    }
    Ok(())
}

fn check_guest(m: &Manifest, index: usize, g: &GuestSpec) -> Result<(), Problem> {
    check_name(&g.name)?;
    if let Some(first) = m.guests[..index].iter().position(|e| e.name == g.name) {
        return Err(Problem::NameDuplicate { first });
    }
    if let Some(domain) = m.domains.iter().position(|d| d.name == g.name) {
        return Err(Problem::NameIsADomain { domain });
    }
    if g.image.is_empty() {
        return Err(Problem::ImageEmpty);
    }
    if g.memory_kib < MIN_GUEST_KIB || !g.memory_kib.is_multiple_of(4) {
        return Err(Problem::GuestMemory { kib: g.memory_kib });
    }
    if g.memory_kib > MAX_MEMORY_KIB {
        return Err(Problem::MemoryTooLarge { kib: g.memory_kib });
    }
    if g.priority > MAX_PRIORITY {
        return Err(Problem::PriorityTooHigh {
            priority: g.priority,
        });
    }
    Ok(())
}

fn check_name(name: &str) -> Result<(), Problem> {
    if name.is_empty() {
        return Err(Problem::NameEmpty);
    }
    match name
        .chars()
        .find(|&c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-'))
    {
        Some(found) => Err(Problem::NameInvalid { found }),
        None => Ok(()),
    }
}

fn domain_exists(m: &Manifest, name: &str) -> bool {
    m.domains.iter().any(|d| d.name.as_str() == name)
}

fn check_domain(m: &Manifest, index: usize, d: &DomainSpec) -> Result<(), Problem> {
    check_name(&d.name)?;
    if let Some(first) = m.domains[..index].iter().position(|e| e.name == d.name) {
        return Err(Problem::NameDuplicate { first });
    }
    if d.image.is_empty() {
        return Err(Problem::ImageEmpty);
    }
    if d.memory_kib == 0 || !d.memory_kib.is_multiple_of(4) {
        return Err(Problem::MemoryNotMultipleOf4 { kib: d.memory_kib });
    }
    if d.memory_kib > MAX_MEMORY_KIB {
        return Err(Problem::MemoryTooLarge { kib: d.memory_kib });
    }
    if !d.spare_kib.is_multiple_of(4) || d.spare_kib > MAX_MEMORY_KIB {
        return Err(Problem::SpareMemory { kib: d.spare_kib });
    }
    if d.priority > MAX_PRIORITY {
        return Err(Problem::PriorityTooHigh {
            priority: d.priority,
        });
    }
    for (i, r) in d.io_ports.iter().enumerate() {
        if r.first > r.last {
            return Err(Problem::PortRangeReversed {
                index: i,
                first: r.first,
                last: r.last,
            });
        }
    }
    for (i, r) in d.io_ports.iter().enumerate() {
        for (other, e) in m.domains[..index].iter().enumerate() {
            // Earlier domains passed their own checks, so their ranges are ordered.
            for s in e.io_ports.iter() {
                if r.first <= s.last && s.first <= r.last {
                    return Err(Problem::PortShared {
                        index: i,
                        port: r.first.max(s.first),
                        other,
                    });
                }
            }
        }
    }
    for (i, target) in d.control.iter().enumerate() {
        if *target == d.name {
            return Err(Problem::ControlSelf { index: i });
        }
        if !domain_exists(m, target) {
            return Err(Problem::ControlUnknown {
                index: i,
                name: target.clone(),
            });
        }
        if d.control[..i].contains(target) {
            return Err(Problem::ControlDuplicate {
                index: i,
                name: target.clone(),
            });
        }
    }
    Ok(())
}

fn check_channel(m: &Manifest, index: usize, c: &ChannelSpec) -> Result<(), Problem> {
    check_name(&c.name)?;
    if let Some(first) = m.channels[..index].iter().position(|e| e.name == c.name) {
        return Err(Problem::NameDuplicate { first });
    }
    check_end(m, End::A, &c.a)?;
    check_end(m, End::B, &c.b)?;
    if c.a == c.b {
        return Err(Problem::EndsSame);
    }
    if c.pages == 0 || c.pages > MAX_CHANNEL_PAGES {
        return Err(Problem::PagesOutOfRange { pages: c.pages });
    }
    check_gpa(End::A, c.a_gpa, c.pages)?;
    check_gpa(End::B, c.b_gpa, c.pages)
}

fn check_end(m: &Manifest, end: End, name: &Name) -> Result<(), Problem> {
    if domain_exists(m, name) {
        Ok(())
    } else {
        Err(Problem::EndUnknown {
            end,
            name: name.clone(),
        })
    }
}

fn check_gpa(end: End, gpa: u64, pages: u8) -> Result<(), Problem> {
    if gpa == 0 {
        return Err(Problem::GpaZero { end });
    }
    if !gpa.is_multiple_of(PAGE_SIZE) {
        return Err(Problem::GpaUnaligned { end, gpa });
    }
    match gpa.checked_add(u64::from(pages) * PAGE_SIZE) {
        Some(limit) if limit <= GPA_LIMIT => Ok(()),
        _ => Err(Problem::GpaOutOfRange { end, gpa, pages }),
    }
}
