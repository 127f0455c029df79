//! Key hashing: every id in a DynamoDB key is a fixed-length hash, so ids are data, never syntax.
//!
//! A key component is the first 128 bits of SHA-256 over the id, in hex. An id that contains the
//! separator, or that is a prefix of another id, therefore cannot reach any key but its own, and
//! keys stay within DynamoDB's size limits whatever the ids' lengths.

use sha2::{Digest, Sha256};

/// The hex component that stands for `id` in keys.
pub fn component(id: &str) -> String {
    let digest = Sha256::digest(id.as_bytes());
    hex::encode(&digest[..16])
}

/// A short, non-reversible stand-in for an id or secret in logs and debug output.
pub fn fingerprint(value: &str) -> String {
    let digest = Sha256::digest([b"log\0", value.as_bytes()].concat());
    hex::encode(&digest[..6])
}

/// SHA-256 of a secret, in hex: what the tenant table keeps instead of the auth token.
pub fn secret_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_that_share_a_prefix_get_unrelated_components() {
        let a = component("u1");
        let b = component("u10");
        assert_eq!(a.len(), 32);
        assert!(!b.starts_with(&a));
        assert_ne!(component("org1"), component("org10"));
    }

    #[test]
    fn components_never_contain_the_separator() {
        assert!(!component("a#b").contains('#'));
        assert!(component("#").bytes().all(|b| b.is_ascii_hexdigit()));
    }

    #[test]
    fn fingerprints_differ_from_components() {
        assert!(!component("u1").starts_with(&fingerprint("u1")));
    }
}
