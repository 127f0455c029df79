//! Export page tokens: the store's cursors, sealed with an HMAC over the tenant, organization
//! and user they were issued for, so that a token altered, or replayed for anyone else, is
//! refused before anything is read.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::config::ExportTokenKey;
use crate::domain::ids::{OrganizationId, UserId};
use crate::domain::tenant::Tenant;
use crate::keys::component;
use crate::store::export::Cursors;

/// The token format's version, the first byte of every token.
const VERSION: u8 = 1;
const MAC_BYTES: usize = 32;

/// What a page token is bound to: it opens only for the same tenant, organization and user.
pub struct Scope<'a> {
    pub tenant: &'a Tenant,
    pub organization: &'a OrganizationId,
    pub user: &'a UserId,
}

/// A page token that does not open for this scope: altered, truncated, or issued for another.
#[derive(Debug, thiserror::Error)]
#[error("pageToken is not valid for this organizationId and userId")]
pub struct InvalidToken;

fn mac(key: &ExportTokenKey, scope: &Scope<'_>, payload: &[u8]) -> [u8; MAC_BYTES] {
    // Every field has a fixed shape (hex hashes, a hashed tenant prefix) and is separated by a
    // NUL, so no two scopes feed the MAC the same bytes.
    let mut mac =
        Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC takes keys of any length");
    for part in [
        b"erasure export page v1".as_slice(),
        scope.tenant.as_str().as_bytes(),
        component(scope.organization.as_str()).as_bytes(),
        component(scope.user.as_str()).as_bytes(),
        payload,
    ] {
        mac.update(part);
        mac.update(&[0]);
    }
    mac.finalize().into_bytes().into()
}

/// The token of the page that starts at `cursors`: version, MAC, cursors; base64url.
pub fn seal(key: &ExportTokenKey, scope: &Scope<'_>, cursors: &Cursors) -> String {
    let payload = serde_json::to_vec(cursors).expect("cursors serialize");
    let mut token = Vec::with_capacity(1 + MAC_BYTES + payload.len());
    token.push(VERSION);
    token.extend_from_slice(&mac(key, scope, &payload));
    token.extend_from_slice(&payload);
    URL_SAFE_NO_PAD.encode(token)
}

/// The cursors of a token issued for exactly this scope; the MACs are compared in constant time.
pub fn open(key: &ExportTokenKey, scope: &Scope<'_>, token: &str) -> Result<Cursors, InvalidToken> {
    let bytes = URL_SAFE_NO_PAD.decode(token).map_err(|_| InvalidToken)?;
    let [version, rest @ ..] = bytes.as_slice() else {
        return Err(InvalidToken);
    };
    if *version != VERSION || rest.len() < MAC_BYTES {
        return Err(InvalidToken);
    }
    let (given, payload) = rest.split_at(MAC_BYTES);
    if !bool::from(mac(key, scope, payload).ct_eq(given)) {
        return Err(InvalidToken);
    }
    serde_json::from_slice(payload).map_err(|_| InvalidToken)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(raw: &str) -> ExportTokenKey {
        ExportTokenKey::parse(raw).unwrap()
    }

    #[test]
    fn a_token_opens_only_for_its_scope_and_key() {
        let k = key("0123456789abcdef0123456789abcdef");
        let tenant = Tenant::from_api_key("t");
        let o = OrganizationId::parse("o").unwrap();
        let u = UserId::parse("u").unwrap();
        let scope = Scope {
            tenant: &tenant,
            organization: &o,
            user: &u,
        };
        let token = seal(&k, &scope, &Cursors::start());
        assert_eq!(open(&k, &scope, &token).unwrap(), Cursors::start());

        let u10 = UserId::parse("u10").unwrap();
        let other_user = Scope {
            user: &u10,
            ..scope
        };
        assert!(open(&k, &other_user, &token).is_err());
        let o10 = OrganizationId::parse("o10").unwrap();
        let other_organization = Scope {
            organization: &o10,
            ..Scope {
                tenant: &tenant,
                organization: &o,
                user: &u,
            }
        };
        assert!(open(&k, &other_organization, &token).is_err());
        let other_tenant = Tenant::from_api_key("t2");
        let other = Scope {
            tenant: &other_tenant,
            ..Scope {
                tenant: &tenant,
                organization: &o,
                user: &u,
            }
        };
        assert!(open(&k, &other, &token).is_err());
        let other_key = key("0123456789abcdef0123456789abcdeX");
        let scope = Scope {
            tenant: &tenant,
            organization: &o,
            user: &u,
        };
        assert!(open(&other_key, &scope, &token).is_err());
        // Every single-character change of the token is refused.
        for i in 0..token.len() {
            let mut altered = token.clone().into_bytes();
            altered[i] = if altered[i] == b'A' { b'B' } else { b'A' };
            let altered = String::from_utf8(altered).unwrap();
            assert!(open(&k, &scope, &altered).is_err(), "position {i}");
        }
        assert!(open(&k, &scope, "").is_err());
        assert!(open(&k, &scope, "!!").is_err());
    }
}
