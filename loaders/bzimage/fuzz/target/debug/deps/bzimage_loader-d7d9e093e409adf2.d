/work/main/loaders/bzimage/fuzz/target/debug/deps/bzimage_loader-d7d9e093e409adf2.d: /work/main/loaders/bzimage/src/lib.rs

/work/main/loaders/bzimage/fuzz/target/debug/deps/libbzimage_loader-d7d9e093e409adf2.rmeta: /work/main/loaders/bzimage/src/lib.rs

/work/main/loaders/bzimage/src/lib.rs:
