//! The `Erasure-Signature` header: HMAC-SHA256 with the tenant's webhook secret over
//! `"<t>.<body>"`, sent as `t=<unix seconds>,v1=<hex>`. The timestamp is signed with the body,
//! so a receiver that refuses a `t` older than [`TOLERANCE_SECONDS`] refuses replays.

use hmac::{Hmac, Mac};
use rand::distr::{Alphanumeric, SampleString};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The header that carries the signature.
pub const HEADER: &str = "Erasure-Signature";
/// How old a signature a receiver accepts (and how far in the future, for clock skew).
pub const TOLERANCE_SECONDS: i64 = 300;

/// A new webhook secret: `whsec_` and 40 alphanumerics (about 238 bits).
pub fn generate_secret() -> String {
    format!("whsec_{}", Alphanumeric.sample_string(&mut rand::rng(), 40))
}

fn mac(secret: &str, timestamp: i64, body: &[u8]) -> Vec<u8> {
    // HMAC takes a key of any length: this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

/// The header's value for `body` signed at `timestamp` (unix seconds).
pub fn header_value(secret: &str, timestamp: i64, body: &[u8]) -> String {
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac(secret, timestamp, body))
    )
}

/// Why a receiver refuses a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the signature header is not of the form t=<unix>,v1=<hex>")]
    Malformed,
    #[error("the signature's timestamp is more than {TOLERANCE_SECONDS} s away from now")]
    Stale,
    #[error("no signature in the header matches the body")]
    Mismatch,
}

/// The receiver's check: a well-formed header, a timestamp within [`TOLERANCE_SECONDS`] of
/// `now` (unix seconds), and a `v1` equal, in constant time, to the HMAC of `"<t>.<body>"`.
pub fn verify(secret: &str, header: &str, body: &[u8], now: i64) -> Result<(), VerifyError> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", v)) => signatures.push(hex::decode(v).map_err(|_| VerifyError::Malformed)?),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(VerifyError::Malformed)?;
    if signatures.is_empty() {
        return Err(VerifyError::Malformed);
    }
    if (now - timestamp).abs() > TOLERANCE_SECONDS {
        return Err(VerifyError::Stale);
    }
    let expected = mac(secret, timestamp, body);
    // Several v1 values let a sender sign with an old and a new secret during a rotation.
    if signatures
        .iter()
        .any(|s| bool::from(s.as_slice().ct_eq(expected.as_slice())))
    {
        Ok(())
    } else {
        Err(VerifyError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_test";
    const BODY: &[u8] = br#"{"id":"j.completed"}"#;

    #[test]
    fn a_signed_body_verifies_within_five_minutes() {
        let header = header_value(SECRET, 1_000, BODY);
        assert!(header.starts_with("t=1000,v1="));
        assert_eq!(verify(SECRET, &header, BODY, 1_000), Ok(()));
        assert_eq!(verify(SECRET, &header, BODY, 1_300), Ok(()));
    }

    #[test]
    fn a_replay_older_than_five_minutes_is_refused() {
        let header = header_value(SECRET, 1_000, BODY);
        assert_eq!(
            verify(SECRET, &header, BODY, 1_301),
            Err(VerifyError::Stale)
        );
        assert_eq!(verify(SECRET, &header, BODY, 699), Err(VerifyError::Stale));
    }

    #[test]
    fn another_body_timestamp_or_secret_does_not_verify() {
        let header = header_value(SECRET, 1_000, BODY);
        assert_eq!(
            verify(SECRET, &header, b"{}", 1_000),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify("whsec_other", &header, BODY, 1_000),
            Err(VerifyError::Mismatch)
        );
        let moved = header.replace("t=1000", "t=1001");
        assert_eq!(
            verify(SECRET, &moved, BODY, 1_000),
            Err(VerifyError::Mismatch)
        );
    }

    #[test]
    fn malformed_headers_are_refused() {
        for header in ["", "t=1000", "v1=00", "t=x,v1=00", "t=1000,v1=zz"] {
            assert_eq!(
                verify(SECRET, header, BODY, 1_000),
                Err(VerifyError::Malformed),
                "{header}"
            );
        }
    }

    #[test]
    fn the_signature_is_hmac_sha256_of_timestamp_dot_body() {
        // Computed independently: printf '1000.{"id":"j.completed"}' | openssl dgst -sha256 -hmac whsec_test
        let header = header_value(SECRET, 1_000, BODY);
        let v1 = header.split("v1=").nth(1).unwrap();
        assert_eq!(
            v1,
            "d171636dbef1b80268c79cdd41c29879d0f020b0e166b72b41c5fb1ec7a60ff9"
        );
    }

    #[test]
    fn secrets_are_long_and_distinct() {
        let (a, b) = (generate_secret(), generate_secret());
        assert_eq!(a.len(), 46);
        assert!(a.starts_with("whsec_"));
        assert_ne!(a, b);
    }
}
