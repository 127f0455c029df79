//! The export endpoint (CONTRACT §1.4) against dynalite: every user of a rich world, in every
//! organization, exported page by page through the real handler, equals item for item what an
//! independent model — written here from the contract, over a full scan of the table — says
//! the world holds for that user there. Then a user with hundreds of items per feature (pages
//! of at most 100, the last token null), tampered and replayed tokens (400, nothing read),
//! other tenants, and users with a deletion job accepted (nothing exported).

mod common;

use std::collections::BTreeMap;

use common::{entity_of, request_to, Item, TestEnv, API_KEY, AUTH_TOKEN};
use erasure::api::Api;
use erasure::config::ExportTokenKey;
use erasure::control::ControlStore;
use erasure::domain::entity::Entity;
use erasure::domain::tenant::Tenant;
use erasure::queue::TaskQueue;
use erasure::store::DataStore;
use serde_json::{json, Value};

const RICH_WORLD: &str = include_str!("fixtures/world-rich.json");
const EXPORT: &str = "/v2/users/data/get";
const OTHER_KEY: &str = "other-key";
const OTHER_TOKEN: &str = "other-token";
const SECTIONS: [&str; 8] = [
    "comments",
    "reactions",
    "recordings",
    "notifications",
    "profile",
    "access",
    "contacts",
    "views",
];

/// Per section, the exported items as canonical JSON text, sorted: a multiset.
type Export = BTreeMap<&'static str, Vec<String>>;

// ---------------------------------------------------------------------------------------------
// The model: what a user's export in an organization holds, from the contract
// ---------------------------------------------------------------------------------------------

/// Every entity of `tenant`, by full scan (the test may scan; the service never does).
async fn entities(env: &TestEnv, tenant: &Tenant) -> Vec<Entity> {
    let prefix = format!("{}#", tenant.as_str());
    env.scan(&env.tables.data)
        .await
        .into_iter()
        .filter(|item| item["pk"].as_s().unwrap().starts_with(&prefix))
        .filter(|item| !matches!(entity_of(item), "Reference" | "Tombstone"))
        .map(|mut item: Item| {
            for key in ["pk", "sk", "version"] {
                item.remove(key);
            }
            serde_dynamo::from_item(item).unwrap()
        })
        .collect()
}

fn tokens(text: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        found.push(&after[..end]);
        rest = &after[end + 2..];
    }
    found
}

/// The section and the user's involvement for one entity, or `None` when the entity is not
/// part of the user's export in `org`. CONTRACT §1.4: comments U wrote or is tagged, assigned
/// or resolver in; reactions U made; notifications U is involved in; recordings U made; and,
/// beyond Velt, U's profile, access, contact entries and views.
fn placed(entity: &Entity, user: &str, org: &str) -> Option<(&'static str, Vec<&'static str>)> {
    if let Entity::Profile(p) = entity {
        return (p.user_id == user).then(|| ("profile", vec![]));
    }
    let in_org = serde_json::to_value(entity).unwrap()["organizationId"] == org;
    if !in_org {
        return None;
    }
    let flags = |pairs: &[(bool, &'static str)]| -> Vec<&'static str> {
        pairs
            .iter()
            .filter(|(yes, _)| *yes)
            .map(|(_, w)| *w)
            .collect()
    };
    let found = match entity {
        Entity::Comment(c) => {
            let tagged = c.to.iter().any(|u| u == user)
                || c.tagged_user_contacts.iter().any(|t| t.user_id == user)
                || tokens(&c.text).contains(&user);
            let involvement = flags(&[(c.from == user, "author"), (tagged, "tagged")]);
            ("comments", involvement)
        }
        Entity::Annotation(a) => (
            "comments",
            flags(&[
                (a.assigned_to.as_deref() == Some(user), "assignee"),
                (a.resolved_by.as_deref() == Some(user), "resolver"),
            ]),
        ),
        Entity::Notification(n) => (
            "notifications",
            flags(&[
                (n.to == user, "recipient"),
                (n.from == user, "sender"),
                (tokens(&n.text).contains(&user), "mentioned"),
            ]),
        ),
        Entity::CommentReaction(r) if r.user_id == user => ("reactions", vec![]),
        Entity::DocumentReaction(r) if r.user_id == user => ("reactions", vec![]),
        Entity::Recording(r) if r.from == user => ("recordings", vec![]),
        Entity::Member(m) if m.user_id == user => ("access", vec![]),
        Entity::GroupMember(m) if m.user_id == user => ("access", vec![]),
        Entity::FolderAccess(m) if m.user_id == user => ("access", vec![]),
        Entity::DocumentAccess(m) if m.user_id == user => ("access", vec![]),
        Entity::Contact(c) if c.user_id == user => ("contacts", vec![]),
        Entity::View(v) if v.user_id == user => ("views", vec![]),
        _ => return None,
    };
    // Comments, annotations and notifications belong only when the user is involved.
    let needs_involvement = matches!(found.0, "comments" | "notifications");
    (!needs_involvement || !found.1.is_empty()).then_some(found)
}

fn canonical(mut value: Value) -> String {
    fn sort(value: &mut Value) {
        match value {
            Value::Object(map) => {
                let sorted: serde_json::Map<String, Value> = std::mem::take(map)
                    .into_iter()
                    .collect::<BTreeMap<_, _>>()
                    .into_iter()
                    .collect();
                *map = sorted;
                map.values_mut().for_each(sort);
            }
            Value::Array(items) => items.iter_mut().for_each(sort),
            _ => {}
        }
    }
    sort(&mut value);
    value.to_string()
}

fn model(world: &[Entity], user: &str, org: &str) -> Export {
    let mut expected: Export = SECTIONS.iter().map(|s| (*s, vec![])).collect();
    for entity in world {
        if let Some((section, involvement)) = placed(entity, user, org) {
            let mut item = serde_json::to_value(entity).unwrap();
            // GDPR art. 15(4): other users a comment tags appear by their id only; the user's
            // own contact stays whole.
            if let Some(contacts) = item
                .get_mut("taggedUserContacts")
                .and_then(Value::as_array_mut)
            {
                for contact in contacts.iter_mut() {
                    if contact["userId"] != user {
                        *contact = json!({"userId": contact["userId"]});
                    }
                }
            }
            if !involvement.is_empty() {
                item["involvement"] = json!(involvement);
            }
            expected.get_mut(section).unwrap().push(canonical(item));
        }
    }
    expected.values_mut().for_each(|items| items.sort());
    expected
}

// ---------------------------------------------------------------------------------------------
// Exporting through the handler
// ---------------------------------------------------------------------------------------------

fn body(org: &str, user: &str, token: Option<&str>) -> String {
    json!({"data": {"organizationId": org, "userId": user, "pageToken": token}}).to_string()
}

async fn post_as(api: &Api, key: &str, token: &str, body: &str) -> (u16, Value) {
    request_to(
        api,
        "POST",
        EXPORT,
        &[("x-velt-api-key", key), ("x-velt-auth-token", token)],
        body,
    )
    .await
}

/// Every page of a user's export; checks each page's shape. Returns the items and the pages.
async fn export_all(env: &TestEnv, org: &str, user: &str) -> (Export, usize) {
    let mut got: Export = SECTIONS.iter().map(|s| (*s, vec![])).collect();
    let mut token: Option<String> = None;
    for page in 1.. {
        assert!(page < 100, "the export does not end");
        let (status, answer) = env.post(EXPORT, &body(org, user, token.as_deref())).await;
        assert_eq!(status, 200, "{answer}");
        let result = &answer["result"];
        assert_eq!(result["status"], "success");
        assert_eq!(result["message"], "Data fetched successfully.");
        let data = result["data"].as_object().unwrap();
        assert_eq!(data.len(), SECTIONS.len(), "{data:?}");
        for section in SECTIONS {
            let items = data[section]
                .as_array()
                .unwrap_or_else(|| panic!("{section}"));
            assert!(items.len() <= 100, "{section}: {} items", items.len());
            let into = got.get_mut(section).unwrap();
            into.extend(items.iter().map(|i| canonical(i.clone())));
        }
        match &result["nextPageToken"] {
            Value::Null => {
                got.values_mut().for_each(|items| items.sort());
                return (got, page);
            }
            Value::String(next) => token = Some(next.clone()),
            other => panic!("nextPageToken {other}"),
        }
    }
    unreachable!()
}

fn organizations(fixture: &str) -> Vec<String> {
    let fixture: Value = serde_json::from_str(fixture).unwrap();
    let ids = fixture["organizations"].as_array().unwrap().iter();
    ids.map(|o| o["organizationId"].as_str().unwrap().to_owned())
        .chain(["no-such-org".to_owned()])
        .collect()
}

fn users(fixture: &str) -> Vec<String> {
    let fixture: Value = serde_json::from_str(fixture).unwrap();
    let ids = fixture["users"].as_array().unwrap().iter();
    ids.map(|u| u["userId"].as_str().unwrap().to_owned())
        .chain(["nobody".to_owned()])
        .collect()
}

/// The rich world with every text changed: another tenant's data that must never show up.
fn altered(fixture: &str) -> String {
    fixture.replace("\"text\": \"", "\"text\": \"other tenant: ")
}

/// `u1`'s world with hundreds of items per feature in `org1`, a few in `org10` (a prefix of
/// `org1`'s id) and a few for `u10` (a prefix of `u1`'s), so that pages run out at different
/// times per section and the comments section crosses from its own comments to mentions.
fn big_world() -> String {
    let many = |n: usize, f: &dyn Fn(usize) -> Value| (0..n).map(f).collect::<Vec<_>>();
    let org = |id: &str, n: usize| {
        json!({
            "organizationId": id,
            "members": [{"userId": "u1", "accessRole": "editor"}, {"userId": "u10", "accessRole": "viewer"}],
            "contacts": ["u1", "u10"],
            "documents": [{
                "documentId": "d#1",
                "users": [{"userId": "u1", "accessRole": "editor"}],
                "contacts": ["u1"],
                "commentAnnotations": many(n + 30, &|i| {
                    let (from, text, to) = if i < n {
                        // A few notes to self: the comment is exported once, as the author's.
                        let text = if i % 40 == 0 { format!("note to {{{{u1}}}} {i}") } else { format!("mine {i}") };
                        ("u1", text, json!([]))
                    } else {
                        ("u10", format!("for {{{{u1}}}} {i}"), json!(["u1"]))
                    };
                    json!({
                        "annotationId": format!("a{i}"),
                        "assignedTo": if i % 50 == 0 { json!("u1") } else { json!(null) },
                        "resolvedBy": if i % 70 == 0 { json!("u10") } else { json!(null) },
                        "viewedBy": if i % 2 == 0 { json!(["u1"]) } else { json!(["u10"]) },
                        "comments": [{"commentId": format!("c{i}"), "from": from, "text": text, "to": to,
                                      "reactions": [{"emoji": "👍", "userId": if i % 3 == 0 { "u1" } else { "u10" }}]}]
                    })
                }),
                "reactions": many(n / 2, &|i| json!({"reactionId": format!("r{i}"), "emoji": "🎉", "userId": "u1"})),
                "recordings": many(n / 2 + 1, &|i| json!({"recordingId": format!("rec{i}"), "from": "u1", "url": format!("https://example.com/{i}.webm")})),
                "notifications": many(n, &|i| json!({"notificationId": format!("n{i}"),
                    "to": if i % 2 == 0 { "u1" } else { "u10" }, "from": "u10", "text": format!("note {i}")})),
            }]
        })
    };
    json!({
        "users": [
            {"userId": "u1", "name": "Ada Lovelace", "email": "ada@example.com"},
            {"userId": "u10", "name": "Alan Turing", "email": "alan@example.com"}
        ],
        "organizations": [org("org1", 210), org("org10", 7)]
    })
    .to_string()
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn every_user_of_a_rich_world_exports_exactly_their_data_in_each_organization() {
    let env = TestEnv::new().await;
    let tenant = env.tenant();
    let other = env.add_tenant(OTHER_KEY, OTHER_TOKEN).await;
    env.seed(&tenant, RICH_WORLD).await;
    env.seed(&other, &altered(RICH_WORLD)).await;
    let world = entities(&env, &tenant).await;
    let mut exported = 0;
    for org in organizations(RICH_WORLD) {
        for user in users(RICH_WORLD) {
            let (got, _) = export_all(&env, &org, &user).await;
            let expected = model(&world, &user, &org);
            assert_eq!(got, expected, "user {user:?} in {org:?}");
            exported += got.values().map(Vec::len).sum::<usize>();
        }
    }
    // The world is rich enough for the comparison to mean something.
    assert!(exported > 200, "{exported} items exported");
}

/// GDPR art. 15(4): no export carries another user's email or name, though comments the user
/// wrote or is tagged in stored those of everyone they tag; the user's own stay (fails without
/// `as_exported` in `src/store/export.rs`).
#[tokio::test]
async fn an_export_shows_other_tagged_users_by_id_only() {
    let env = TestEnv::new().await;
    env.seed(&env.tenant(), RICH_WORLD).await;
    let fixture: Value = serde_json::from_str(RICH_WORLD).unwrap();
    let people: Vec<(&str, &str, &str)> = fixture["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            let field = |name: &str| u[name].as_str().unwrap();
            (field("userId"), field("name"), field("email"))
        })
        .collect();
    let mut own_contacts_seen = 0;
    let mut others_tagged_seen = 0;
    for org in organizations(RICH_WORLD) {
        for (user, _, email) in &people {
            let (got, _) = export_all(&env, &org, user).await;
            for comment in &got["comments"] {
                let comment: Value = serde_json::from_str(comment).unwrap();
                for contact in comment["taggedUserContacts"]
                    .as_array()
                    .into_iter()
                    .flatten()
                {
                    if contact["userId"] == *user {
                        own_contacts_seen += usize::from(contact["email"] == *email);
                    } else {
                        others_tagged_seen += 1;
                    }
                }
            }
            let text = serde_json::to_string(&got).unwrap();
            for (other, name, email) in people.iter().filter(|p| p.0 != *user) {
                assert!(
                    !text.contains(email) && !text.contains(name),
                    "{user}'s export in {org} shows {other}'s name or email"
                );
            }
        }
    }
    assert!(
        others_tagged_seen > 0 && own_contacts_seen > 0,
        "{others_tagged_seen} {own_contacts_seen}"
    );
}

#[tokio::test]
async fn a_large_export_comes_in_pages_of_at_most_100_per_feature_and_ends_with_a_null_token() {
    let env = TestEnv::new().await;
    let tenant = env.tenant();
    let world = big_world();
    env.seed(&tenant, &world).await;
    let entities = entities(&env, &tenant).await;
    for (org, user) in [
        ("org1", "u1"),
        ("org10", "u1"),
        ("org1", "u10"),
        ("org10", "u10"),
    ] {
        let (got, pages) = export_all(&env, org, user).await;
        let expected = model(&entities, user, org);
        assert_eq!(got, expected, "user {user} in {org}");
        let largest = expected.values().map(Vec::len).max().unwrap();
        // Exactly as many pages as the largest section needs: no empty page at the end.
        assert_eq!(pages, largest.div_ceil(100).max(1), "user {user} in {org}");
    }
    let (got, _) = export_all(&env, "org1", "u1").await;
    assert_eq!(
        got["comments"].len(),
        210 + 30 + 5,
        "own, tagged in, assigned"
    );
}

async fn second_page_token(env: &TestEnv, org: &str, user: &str) -> String {
    let (status, answer) = env.post(EXPORT, &body(org, user, None)).await;
    assert_eq!(status, 200, "{answer}");
    answer["result"]["nextPageToken"]
        .as_str()
        .expect("a second page")
        .to_owned()
}

fn assert_refused(status: u16, answer: &Value) {
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"]["status"], "INVALID_ARGUMENT", "{answer}");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(message.contains("pageToken"), "{message}");
}

#[tokio::test]
async fn a_token_altered_or_issued_for_another_user_organization_or_tenant_is_refused() {
    let env = TestEnv::new().await;
    let tenant = env.tenant();
    let other = env.add_tenant(OTHER_KEY, OTHER_TOKEN).await;
    let world = big_world();
    env.seed(&tenant, &world).await;
    env.seed(&other, &world).await;
    let token = second_page_token(&env, "org1", "u1").await;

    // The api below has no data table: a refusal that read anything would answer 500, not 400.
    let blind = Api::new(
        ControlStore::new(env.dynamodb.clone(), &env.tables.control),
        DataStore::new(env.dynamodb.clone(), "no-such-table"),
        TaskQueue::new(env.sqs.clone(), &env.queue_url),
        erasure::config::ApiConfig {
            tables: env.tables.clone(),
            task_queue_url: env.queue_url.clone(),
            rate_limit_per_minute: 10_000,
            job_retention_days: 30,
            export_token_key: ExportTokenKey::parse("export-token-key-for-tests-only-0123456789")
                .unwrap(),
            webhook_queue_url: None,
        },
    );
    let (status, answer) = post_as(&blind, API_KEY, AUTH_TOKEN, &body("org1", "u1", None)).await;
    assert_eq!(status, 500, "the blind api reads nothing: {answer}");

    let mut refused = vec![];
    for i in (0..token.len()).step_by(3) {
        let mut altered = token.clone().into_bytes();
        altered[i] = if altered[i] == b'A' { b'B' } else { b'A' };
        refused.push((String::from_utf8(altered).unwrap(), "org1", "u1"));
    }
    refused.push((token[..token.len() - 1].to_owned(), "org1", "u1"));
    refused.push((format!("{token}A"), "org1", "u1"));
    refused.push(("not base64!".to_owned(), "org1", "u1"));
    refused.push((token.clone(), "org1", "u10"));
    refused.push((token.clone(), "org10", "u1"));
    refused.push((token.clone(), "org1", "u1 "));
    for (candidate, org, user) in &refused {
        let (status, answer) = post_as(
            &blind,
            API_KEY,
            AUTH_TOKEN,
            &body(org, user, Some(candidate)),
        )
        .await;
        assert_refused(status, &answer);
    }
    // Another tenant, same ids, its own credentials: the token was not issued to it.
    let (status, answer) = post_as(
        &env.api,
        OTHER_KEY,
        OTHER_TOKEN,
        &body("org1", "u1", Some(&token)),
    )
    .await;
    assert_refused(status, &answer);
    // A token issued with another key (a key rotated, or forged) is refused as well.
    let rotated = Api::new(
        env.control.clone(),
        env.data.clone(),
        TaskQueue::new(env.sqs.clone(), &env.queue_url),
        erasure::config::ApiConfig {
            tables: env.tables.clone(),
            task_queue_url: env.queue_url.clone(),
            rate_limit_per_minute: 10_000,
            job_retention_days: 30,
            export_token_key: ExportTokenKey::parse("another-export-token-key-0123456789abcdef")
                .unwrap(),
            webhook_queue_url: None,
        },
    );
    let (status, answer) = post_as(
        &rotated,
        API_KEY,
        AUTH_TOKEN,
        &body("org1", "u1", Some(&token)),
    )
    .await;
    assert_refused(status, &answer);
    // And the genuine token still works for its own user.
    let (status, answer) = env.post(EXPORT, &body("org1", "u1", Some(&token))).await;
    assert_eq!(status, 200, "{answer}");
}

#[tokio::test]
async fn a_user_with_a_deletion_job_accepted_exports_nothing_even_mid_export() {
    let env = TestEnv::new().await;
    let tenant = env.tenant();
    env.seed(&tenant, &big_world()).await;
    let token = second_page_token(&env, "org1", "u1").await;
    let (before, _) = export_all(&env, "org10", "u1").await;
    assert!(before.values().any(|items| !items.is_empty()));

    // A job scoped to org1: u1 exports nothing there, from the start or mid-export...
    env.start_job(r#"{"data":{"userIds":["u1"],"organizationIds":["org1"]}}"#)
        .await;
    let (got, pages) = export_all(&env, "org1", "u1").await;
    assert_eq!(pages, 1);
    assert!(got.values().all(Vec::is_empty), "{got:?}");
    let (status, answer) = env.post(EXPORT, &body("org1", "u1", Some(&token))).await;
    assert_eq!(status, 200, "{answer}");
    let data = answer["result"]["data"].as_object().unwrap();
    assert!(data.values().all(|v| v == &json!([])), "{answer}");
    assert_eq!(answer["result"]["nextPageToken"], Value::Null);
    // ...still everything in org10, and u10 (whose id u1 is a prefix of) is untouched.
    assert_eq!(export_all(&env, "org10", "u1").await.0, before);
    let u10 = export_all(&env, "org1", "u10").await.0;
    assert!(!u10["comments"].is_empty());

    // A job everywhere: nothing anywhere.
    env.start_job(r#"{"data":{"userIds":["u1"]}}"#).await;
    let (got, _) = export_all(&env, "org10", "u1").await;
    assert!(got.values().all(Vec::is_empty), "{got:?}");
}

#[tokio::test]
async fn export_requests_are_checked_and_rate_limited_like_the_other_calls() {
    let env = TestEnv::with_rate_limit(2).await;
    let (status, answer) = env.post(EXPORT, r#"{"data":{"userId":"u1"}}"#).await;
    assert_eq!(status, 400);
    assert_eq!(
        answer,
        json!({"error": {"message": "organizationId is required", "status": "INVALID_ARGUMENT"}})
    );
    let (status, _) = request_to(&env.api, "POST", EXPORT, &[], &body("o", "u", None)).await;
    assert_eq!(status, 401);
    let (status, _) = request_to(
        &env.api,
        "GET",
        EXPORT,
        &[
            ("x-velt-api-key", API_KEY),
            ("x-velt-auth-token", AUTH_TOKEN),
        ],
        "",
    )
    .await;
    assert_eq!(status, 405);
    let (status, answer) = env.post(EXPORT, &body("o", "u", None)).await;
    assert_eq!(status, 200, "the second call of the minute: {answer}");
    let (status, answer) = env.post(EXPORT, &body("o", "u", None)).await;
    assert_eq!(status, 429, "{answer}");
    assert_eq!(answer["error"]["status"], "RESOURCE_EXHAUSTED");
}

#[tokio::test]
async fn a_stale_reference_exports_nothing_of_an_entity_that_no_longer_names_the_user() {
    let env = TestEnv::new().await;
    let tenant = env.tenant();
    env.seed(&tenant, &big_world()).await;
    // Overwrite a comment u10 wrote tagging u1 so that it no longer tags u1: u1's mention
    // reference stays behind (the write path keeps old references), its target does not name
    // u1 any more, and the export must not show it.
    let before = export_all(&env, "org10", "u1").await.0;
    let world = entities(&env, &tenant).await;
    let mut comment = world
        .iter()
        .find_map(|e| match e {
            Entity::Comment(c) if c.organization_id == "org10" && c.from == "u10" => {
                Some(c.clone())
            }
            _ => None,
        })
        .unwrap();
    comment.text = "no one".into();
    comment.to = vec![];
    env.data
        .write(&tenant, vec![Entity::Comment(comment)])
        .await
        .unwrap();
    let after = export_all(&env, "org10", "u1").await.0;
    assert_eq!(after["comments"].len(), before["comments"].len() - 1);
    assert_eq!(after, model(&entities(&env, &tenant).await, "u1", "org10"));
}
