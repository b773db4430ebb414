//! Counting the core's size: non-blank, non-comment Rust lines, with tests
//! left out (files named `tests.rs`, `tests/` directories, and
//! `#[cfg(test)]` modules).

use std::fs;
use std::path::Path;

use crate::Result;

/// The crates that make up the core (the code in VMX root mode and the
/// libraries it links), as named in `docs/BENCHMARKS.md`.
pub const CORE_CRATES: &[&str] = &[
    "crates/kernel",
    "crates/vmx",
    "crates/ept",
    "crates/vcpu",
    "crates/hypercall-abi",
    "crates/capspace",
    "crates/manifest",
    "loaders/elf",
];

/// Lines per crate and in all.
pub struct Loc {
    /// (crate path, lines).
    pub crates: Vec<(String, usize)>,
    /// The sum.
    pub total: usize,
}

/// Counts [`CORE_CRATES`] under `root`.
pub fn count(root: &Path) -> Result<Loc> {
    let mut crates = Vec::new();
    for c in CORE_CRATES {
        let mut n = 0;
        walk(&root.join(c).join("src"), &mut n)?;
        crates.push((c.to_string(), n));
    }
    let total = crates.iter().map(|c| c.1).sum();
    Ok(Loc { crates, total })
}

fn walk(dir: &Path, n: &mut usize) -> Result<()> {
    let mut entries: Vec<_> = fs::read_dir(dir)?.collect::<std::result::Result<_, _>>()?;
    entries.sort_by_key(|e| e.path());
    for e in entries {
        let path = e.path();
        let name = e.file_name();
        if path.is_dir() {
            if name != "tests" {
                walk(&path, n)?;
            }
        } else if path.extension().is_some_and(|x| x == "rs") && name != "tests.rs" {
            *n += count_source(&fs::read_to_string(&path)?);
        }
    }
    Ok(())
}

/// Counts code lines in one file, skipping `#[cfg(test)]` items.
pub fn count_source(text: &str) -> usize {
    let mut n = 0;
    let mut in_block_comment = false;
    let mut skip_depth: Option<i64> = None;
    let mut pending_cfg_test = false;
    for raw in text.lines() {
        let line = raw.trim();
        if in_block_comment {
            if line.contains("*/") {
                in_block_comment = false;
            }
            continue;
        }
        if line.starts_with("/*") {
            in_block_comment = !line.contains("*/");
            continue;
        }
        if let Some(depth) = skip_depth.as_mut() {
            *depth += braces(line);
            if *depth <= 0 && line.contains('}') {
                skip_depth = None;
            }
            continue;
        }
        if line.is_empty() || line.starts_with("//") {
            continue;
        }
        if line == "#[cfg(test)]" {
            pending_cfg_test = true;
            continue;
        }
        if pending_cfg_test {
            pending_cfg_test = false;
            let d = braces(line);
            if d > 0 {
                skip_depth = Some(d);
            }
            // `mod tests;` (one line) or an item opening a block: skipped.
            continue;
        }
        n += 1;
    }
    n
}

fn braces(line: &str) -> i64 {
    line.chars().fold(0, |d, c| match c {
        '{' => d + 1,
        '}' => d - 1,
        _ => d,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_blanks_and_test_modules_are_not_counted() {
        let src = "//! doc\n\nfn a() {\n    // note\n    1\n}\n/* block\n still */\n#[cfg(test)]\nmod tests {\n    fn t() {\n    }\n}\nfn b() {}\n#[cfg(test)]\nmod more;\n";
        assert_eq!(count_source(src), 4);
    }
}
