//! Declares the `loom` cfg so `--cfg loom` builds (tests/loom.rs) are not
//! flagged as unexpected; the workspace `[lints]` table cannot be combined
//! with a crate-level `[lints.rust]` table.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(loom)");
}
