//! Links the service at 1 MiB with the runtime's linker script and
//! defmt's.
fn main() {
    let target = std::env::var("TARGET").unwrap_or_default();
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    println!("cargo:rerun-if-changed=../../crates/rt/domain.ld");
    if target == "x86_64-unknown-none" {
        println!("cargo:rustc-link-arg-bins=-T{dir}/../../crates/rt/domain.ld");
        println!("cargo:rustc-link-arg-bins=--no-dynamic-linker");
        // The `defmt` section (interned log strings), from the defmt crate.
        println!("cargo:rustc-link-arg-bins=-Tdefmt.x");
    }
}
