//! Facebook's `signed_request`: raw input must fail cleanly, and any JSON
//! payload that carries a valid signature must be parsed without a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

const SECRET: &[u8] = b"fuzz-app-secret";

fuzz_target!(|data: &[u8]| {
    let now = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = lethe::domain::facebook::verify(s, SECRET, now);
        let _ = lethe::domain::facebook::looks_like_code(s);
    }
    if let Ok(payload) = serde_json::from_slice::<serde_json::Value>(data) {
        let signed = lethe::domain::facebook::sign(&payload, SECRET);
        let _ = lethe::domain::facebook::verify(&signed, SECRET, now);
    }
});
