//! Properties over generated input (proptest): request parsing never panics and keeps exactly
//! the valid ids, key layout never lets one id's keys match another's, and export page tokens
//! open only for the scope they were sealed for.

use erasure::api::page_token::{open, seal, Scope};
use erasure::config::ExportTokenKey;
use erasure::domain::entity::{reference_key, reference_prefix, Key};
use erasure::domain::ids::{OrganizationId, UserId};
use erasure::domain::request::{parse_delete, MAX_IDS_PER_REQUEST};
use erasure::domain::task::TaskKind;
use erasure::domain::tenant::Tenant;
use erasure::store::export::Cursors;
use proptest::prelude::*;

/// Ids as callers send them: any text, with the key syntax's own characters made likely.
fn id() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9]{1,12}",
        "[#/:|{}\\\\ a-z]{1,12}",
        "\\PC{1,40}",
        Just("#".to_owned()),
        Just("T#".to_owned()),
    ]
}

fn kind() -> impl Strategy<Value = TaskKind> {
    prop::sample::select(TaskKind::ALL.to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn parsing_any_bytes_answers_without_panicking(body in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = parse_delete(&body);
    }

    #[test]
    fn parsing_any_json_object_answers_without_panicking(
        users in prop::collection::vec(prop_oneof![id().prop_map(serde_json::Value::from), any::<i64>().prop_map(serde_json::Value::from), Just(serde_json::Value::Null)], 0..110),
        dry_run in prop_oneof![Just(serde_json::Value::Null), any::<bool>().prop_map(serde_json::Value::from), Just(serde_json::json!("yes"))],
    ) {
        let body = serde_json::json!({"data": {"userIds": users, "dryRun": dry_run}});
        let _ = parse_delete(body.to_string().as_bytes());
    }

    #[test]
    fn a_valid_request_keeps_each_distinct_user_once_in_first_seen_order(
        users in prop::collection::vec(id(), 1..=MAX_IDS_PER_REQUEST),
    ) {
        let body = serde_json::json!({"data": {"userIds": users}});
        let parsed = parse_delete(body.to_string().as_bytes());
        let mut expected: Vec<&str> = Vec::new();
        for user in &users {
            if !expected.contains(&user.as_str()) {
                expected.push(user);
            }
        }
        let valid = users.iter().all(|u| UserId::parse(u.clone()).is_ok());
        prop_assert_eq!(parsed.is_ok(), valid);
        if let Ok(request) = parsed {
            let got: Vec<&str> = request.user_ids.iter().map(|u| u.as_str()).collect();
            prop_assert_eq!(got, expected);
            prop_assert!(!request.dry_run);
        }
    }

    #[test]
    fn more_than_the_limit_of_users_is_refused(extra in 1usize..20) {
        let users: Vec<String> = (0..MAX_IDS_PER_REQUEST + extra).map(|i| format!("u{i}")).collect();
        let body = serde_json::json!({"data": {"userIds": users}});
        prop_assert!(parse_delete(body.to_string().as_bytes()).is_err());
    }

    #[test]
    fn two_users_never_share_a_partition_and_two_tenants_never_share_a_user(
        a in id(), b in id(), key_a in id(), key_b in id(),
    ) {
        let (ta, tb) = (Tenant::from_api_key(&key_a), Tenant::from_api_key(&key_b));
        prop_assert_eq!(ta.user_partition(&a) == ta.user_partition(&b), a == b);
        prop_assert_eq!(ta.user_partition(&a) == tb.user_partition(&a), key_a == key_b);
        // No partition is a prefix of another's: a key range of one never covers another.
        if a != b {
            prop_assert!(!ta.user_partition(&b).starts_with(&ta.user_partition(&a)));
        }
    }

    #[test]
    fn one_organizations_references_never_fall_in_anothers_range(
        user in id(), org in id(), other in id(), kind in kind(), target_pk in id(), target_sk in id(),
    ) {
        prop_assume!(org != other);
        let tenant = Tenant::from_api_key("k");
        let target = Key { pk: target_pk, sk: target_sk };
        let reference = reference_key(&tenant, &user, kind, Some(&org), &target);
        prop_assert!(reference.sk.starts_with(&reference_prefix(kind, Some(&org))));
        prop_assert!(!reference.sk.starts_with(&reference_prefix(kind, Some(&other))));
        for different in TaskKind::ALL.into_iter().filter(|k| *k != kind) {
            prop_assert!(!reference.sk.starts_with(&reference_prefix(different, Some(&org))));
            prop_assert!(!reference.sk.starts_with(&reference_prefix(different, None)));
        }
        // Ids are data: nothing of them appears in the key, so no id can forge key syntax.
        prop_assert!(org.len() < 8 || !reference.sk.contains(&org));
    }

    #[test]
    fn a_page_token_opens_only_for_its_own_scope_and_unaltered(
        org in id(), user in id(), other in id(), flip in any::<prop::sample::Index>(), bit in 0u8..8,
    ) {
        let key = ExportTokenKey::parse("a-test-key-of-at-least-thirty-two-bytes").unwrap();
        let tenant = Tenant::from_api_key("k");
        let (org, user) = (OrganizationId::parse(org).unwrap(), UserId::parse(user).unwrap());
        let scope = Scope { tenant: &tenant, organization: &org, user: &user };
        let token = seal(&key, &scope, &Cursors::start());
        prop_assert!(open(&key, &scope, &token).is_ok());

        let someone = UserId::parse(other.clone()).unwrap();
        if someone != user {
            let theirs = Scope { tenant: &tenant, organization: &org, user: &someone };
            prop_assert!(open(&key, &theirs, &token).is_err());
        }
        let elsewhere = OrganizationId::parse(other).unwrap();
        if elsewhere != org {
            let there = Scope { tenant: &tenant, organization: &elsewhere, user: &user };
            prop_assert!(open(&key, &there, &token).is_err());
        }
        let another_tenant = Tenant::from_api_key("another");
        let theirs = Scope { tenant: &another_tenant, organization: &org, user: &user };
        prop_assert!(open(&key, &theirs, &token).is_err());

        // Any one bit changed, anywhere in the token's bytes, and it no longer opens.
        use base64::Engine as _;
        let mut bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&token).unwrap();
        let at = flip.index(bytes.len());
        bytes[at] ^= 1 << bit;
        let altered = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes);
        prop_assert!(open(&key, &scope, &altered).is_err());
    }
}
