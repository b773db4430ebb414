/work/main/loaders/bzimage/fuzz/target/debug/deps/load-f43f279b934225fb.d: fuzz_targets/load.rs

/work/main/loaders/bzimage/fuzz/target/debug/deps/libload-f43f279b934225fb.rmeta: fuzz_targets/load.rs

fuzz_targets/load.rs:
