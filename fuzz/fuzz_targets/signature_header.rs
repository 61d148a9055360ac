//! `Lethe-Signature` header: parse and verify never panic, whatever arrives.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(header) = std::str::from_utf8(data) {
        let _ = lethe::domain::signature::parse(header);
        let _ = lethe::domain::signature::verify(header, b"secret", data, 1_700_000_000);
    }
});
