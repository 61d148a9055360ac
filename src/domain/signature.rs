//! Webhook signatures: `Lethe-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256
//! of "t.body">`. The same scheme signs lethe's calls to erasure targets and
//! platforms, and verifies targets' confirmations.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

pub const HEADER: &str = "Lethe-Signature";

/// How far a signature's timestamp may be from now.
pub const TOLERANCE_SECS: i64 = 300;

fn mac(secret: &[u8], t: i64, body: &[u8]) -> Hmac<Sha256> {
    let mut m = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    m.update(t.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m
}

/// The header value for `body` signed at `t`.
pub fn sign(secret: &[u8], t: i64, body: &[u8]) -> String {
    format!(
        "t={t},v1={}",
        hex::encode(mac(secret, t, body).finalize().into_bytes())
    )
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the signature header is malformed")]
    Malformed,
    #[error("the signature is too old or from the future")]
    Stale,
    #[error("the signature does not match")]
    Mismatch,
}

/// A parsed header: its timestamp and every `v1` signature it carries (more
/// than one while a secret is rotated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedSignature {
    pub t: i64,
    pub v1: Vec<Vec<u8>>,
}

pub fn parse(header: &str) -> Result<ParsedSignature, SignatureError> {
    if header.len() > 1024 {
        return Err(SignatureError::Malformed);
    }
    let mut t = None;
    let mut v1 = Vec::new();
    for part in header.split(',') {
        let (k, v) = part
            .trim()
            .split_once('=')
            .ok_or(SignatureError::Malformed)?;
        match k {
            "t" => {
                if t.is_some()
                    || v.is_empty()
                    || v.len() > 12
                    || !v.bytes().all(|b| b.is_ascii_digit())
                {
                    return Err(SignatureError::Malformed);
                }
                t = Some(v.parse::<i64>().map_err(|_| SignatureError::Malformed)?);
            }
            "v1" => {
                let bytes = hex::decode(v).map_err(|_| SignatureError::Malformed)?;
                if bytes.len() != 32 {
                    return Err(SignatureError::Malformed);
                }
                v1.push(bytes);
            }
            _ => {} // unknown schemes are ignored, as in the convention this follows
        }
    }
    match (t, v1.is_empty()) {
        (Some(t), false) => Ok(ParsedSignature { t, v1 }),
        _ => Err(SignatureError::Malformed),
    }
}

/// Check a header against `body` at `now` (unix seconds).
pub fn verify(header: &str, secret: &[u8], body: &[u8], now: i64) -> Result<(), SignatureError> {
    let parsed = parse(header)?;
    if (now - parsed.t).abs() > TOLERANCE_SECS {
        return Err(SignatureError::Stale);
    }
    let expected = mac(secret, parsed.t, body).finalize().into_bytes();
    if parsed
        .v1
        .iter()
        .any(|sig| bool::from(sig.as_slice().ct_eq(expected.as_slice())))
    {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tampering() {
        let h = sign(b"secret", 1_700_000_000, b"{\"a\":1}");
        assert!(h.starts_with("t=1700000000,v1="));
        assert_eq!(verify(&h, b"secret", b"{\"a\":1}", 1_700_000_010), Ok(()));
        assert_eq!(
            verify(&h, b"other", b"{\"a\":1}", 1_700_000_010),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(&h, b"secret", b"{\"a\":2}", 1_700_000_010),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(&h, b"secret", b"{\"a\":1}", 1_700_001_000),
            Err(SignatureError::Stale)
        );
    }

    #[test]
    fn malformed_headers() {
        for bad in [
            "",
            "t=1",
            "v1=00",
            "t=x,v1=00",
            "t=1,v1=zz",
            "t=1,t=2,v1=00",
            "garbage",
            "t=1,v1=0011",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        let ok = format!("t=5,v1={},v0=ignored", "ab".repeat(32));
        assert_eq!(parse(&ok).unwrap().t, 5);
    }
}
