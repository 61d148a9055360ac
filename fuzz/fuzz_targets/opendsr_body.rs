//! An OpenDSR / OpenGDPR request body: a typed error or a request, never a
//! panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = lethe::domain::opendsr::parse_request(data);
});
