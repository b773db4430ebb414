//! The core decodes the boot manifest from a boot module it does not trust:
//! any bytes must decode to a valid manifest or a clear error, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = manifest::decode(data) {
        // What decodes is valid, and encodes again.
        assert!(manifest::validate(&m).is_ok());
        let mut buf = [0u8; manifest::MAX_ENCODED_LEN];
        assert!(manifest::encode(&m, &mut buf).is_ok());
    }
});
