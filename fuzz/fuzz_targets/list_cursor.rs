//! The list endpoint's `cursor`: anything not issued by lethe is a 400, never
//! a panic; a decoded cursor encodes back to itself.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(id) = lethe::http::requests::decode_cursor(s) {
            let again = lethe::http::requests::encode_cursor(id);
            assert_eq!(lethe::http::requests::decode_cursor(&again).ok(), Some(id));
        }
    }
});
