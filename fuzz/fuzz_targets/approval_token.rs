//! An approval link's token as presented in the URL: only a bounded,
//! prefixed string is ever hashed and looked up.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(token) = std::str::from_utf8(data) {
        if lethe::http::approvals::token_digest(token).is_some() {
            assert!(token.len() <= 128);
            assert!(token.starts_with(lethe::domain::approval::TOKEN_PREFIX));
        }
    }
});
