//! Erasure end to end on a rich world (CONTRACT §2–§4): every item of the data table is
//! snapshotted, users are erased through the HTTP API and the worker, and the table after is
//! compared item by item with an explicit model of what deletion must do, written here from the
//! contract — not derived from what the engine changed. Then the same per feature, through the
//! store directly, with idempotence; the dry run against the real run; and the write path's
//! refusal of data for an erased user.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_dynamodb::types::AttributeValue;
use common::{entity_of, Item, TestEnv};
use erasure::domain::entity::{
    self as e, reference_key, reference_prefix, Entity, Key, TOMBSTONE_SORT_KEY,
};
use erasure::domain::ids::{OrganizationId, UserId};
use erasure::domain::mention::MENTION_PLACEHOLDER;
use erasure::domain::task::Outcome;
use erasure::domain::task::TaskKind;
use erasure::domain::tenant::Tenant;
use erasure::features::deleter;
use erasure::keys::component;
use erasure::store::StoreError;
use serde_json::{json, Value};

const RICH_WORLD: &str = include_str!("fixtures/world-rich.json");
const SMALL_WORLD: &str = include_str!("fixtures/world-small.json");
const OTHER_KEY: &str = "other-key";
const OTHER_TOKEN: &str = "other-token";
const DELETE: &str = "/v2/users/data/delete";

type Table = BTreeMap<(String, String), Item>;

// ---------------------------------------------------------------------------------------------
// Reading the table
// ---------------------------------------------------------------------------------------------

async fn snapshot(env: &TestEnv) -> Table {
    env.scan(&env.tables.data)
        .await
        .into_iter()
        .map(|item| (common::key_of(&item), item))
        .collect()
}

fn tenant_prefix(tenant: &Tenant) -> String {
    format!("{}#", tenant.as_str())
}

fn of_tenant(table: &Table, tenant: &Tenant) -> Table {
    let prefix = tenant_prefix(tenant);
    table
        .iter()
        .filter(|((pk, _), _)| pk.starts_with(&prefix))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Every string an attribute value holds, through maps, lists and sets.
fn strings(value: &AttributeValue, out: &mut Vec<String>) {
    match value {
        AttributeValue::S(s) => out.push(s.clone()),
        AttributeValue::Ss(ss) => out.extend(ss.iter().cloned()),
        AttributeValue::L(list) => list.iter().for_each(|v| strings(v, out)),
        AttributeValue::M(map) => map.values().for_each(|v| strings(v, out)),
        _ => {}
    }
}

/// An entity item as the entity it stores, with its `version` (0 when it has none).
fn parse_entity(item: &Item) -> Option<(Entity, u64)> {
    let kind = entity_of(item);
    if kind == "Reference" || kind == "Tombstone" {
        return None;
    }
    let mut bare = item.clone();
    bare.remove("pk");
    bare.remove("sk");
    let version = match bare.remove("version") {
        None => 0,
        Some(AttributeValue::N(n)) => n.parse().unwrap(),
        Some(other) => panic!("version is not a number: {other:?}"),
    };
    let entity = serde_dynamo::from_item(bare).unwrap_or_else(|err| panic!("{kind}: {err}"));
    Some((entity, version))
}

fn describe(item: &Item) -> String {
    match parse_entity(item) {
        Some((entity, version)) => format!("{entity:?} v{version}"),
        None => format!("{item:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// The model of CONTRACT §3
// ---------------------------------------------------------------------------------------------

/// The `{{userId}}` tokens of a text: a token ends at the first `}}`.
fn tokens(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        found.push(after[..end].to_owned());
        rest = &after[end + 2..];
    }
    found
}

fn token(user: &str) -> String {
    format!("{{{{{user}}}}}")
}

/// The (user, feature) pairs an entity names: the reference items the write path must keep.
fn names(entity: &Entity) -> BTreeSet<(String, TaskKind)> {
    use TaskKind::*;
    let pairs: Vec<(String, TaskKind)> = match entity {
        Entity::Organization(_)
        | Entity::UserGroup(_)
        | Entity::Folder(_)
        | Entity::Document(_) => {
            vec![]
        }
        Entity::Profile(p) => vec![(p.user_id.clone(), Profile)],
        Entity::Member(m) => vec![(m.user_id.clone(), Access)],
        Entity::GroupMember(m) => vec![(m.user_id.clone(), Access)],
        Entity::FolderAccess(m) => vec![(m.user_id.clone(), Access)],
        Entity::DocumentAccess(m) => vec![(m.user_id.clone(), Access)],
        Entity::Contact(c) => vec![(c.user_id.clone(), Contacts)],
        Entity::Annotation(a) => a
            .assigned_to
            .iter()
            .chain(&a.resolved_by)
            .map(|u| (u.clone(), Comments))
            .collect(),
        Entity::View(v) => vec![(v.user_id.clone(), Views)],
        Entity::Comment(c) => std::iter::once((c.from.clone(), Comments))
            .chain(c.to.iter().map(|u| (u.clone(), Mentions)))
            .chain(
                c.tagged_user_contacts
                    .iter()
                    .map(|t| (t.user_id.clone(), Mentions)),
            )
            .chain(tokens(&c.text).into_iter().map(|u| (u, Mentions)))
            .collect(),
        Entity::CommentReaction(r) => vec![(r.user_id.clone(), Reactions)],
        Entity::DocumentReaction(r) => vec![(r.user_id.clone(), Reactions)],
        Entity::Recording(r) => vec![(r.from.clone(), Recordings)],
        Entity::Notification(n) => [n.to.clone(), n.from.clone()]
            .into_iter()
            .chain(tokens(&n.text))
            .map(|u| (u, Notifications))
            .collect(),
    };
    pairs.into_iter().collect()
}

/// Whether erasing `kind` of `user` removes `entity` itself (CONTRACT §3, "removed").
fn removes(entity: &Entity, user: &str, kind: TaskKind) -> bool {
    match (kind, entity) {
        (TaskKind::Profile, Entity::Profile(p)) => p.user_id == user,
        (TaskKind::Access, Entity::Member(m)) => m.user_id == user,
        (TaskKind::Access, Entity::GroupMember(m)) => m.user_id == user,
        (TaskKind::Access, Entity::FolderAccess(m)) => m.user_id == user,
        (TaskKind::Access, Entity::DocumentAccess(m)) => m.user_id == user,
        (TaskKind::Contacts, Entity::Contact(c)) => c.user_id == user,
        (TaskKind::Comments, Entity::Comment(c)) => c.from == user,
        // "reactions on comments and documents: U's reactions removed"
        (TaskKind::Reactions, Entity::CommentReaction(r)) => r.user_id == user,
        (TaskKind::Reactions, Entity::DocumentReaction(r)) => r.user_id == user,
        // "notifications to U and notifications about U's actions"
        (TaskKind::Notifications, Entity::Notification(n)) => {
            n.to == user || n.from == user || n.text.contains(&token(user))
        }
        (TaskKind::Recordings, Entity::Recording(r)) => r.from == user,
        (TaskKind::Views, Entity::View(v)) => v.user_id == user,
        _ => false,
    }
}

/// What erasing `kind` of `user` rewrites `entity` into, when it stays but names them.
fn rewrite(entity: &Entity, user: &str, kind: TaskKind) -> Option<Entity> {
    match (kind, entity) {
        (TaskKind::Mentions, Entity::Comment(c)) => {
            let mut new = c.clone();
            new.to.retain(|u| u != user);
            new.tagged_user_contacts.retain(|t| t.user_id != user);
            new.text = new.text.replace(&token(user), MENTION_PLACEHOLDER);
            (new != *c).then_some(Entity::Comment(new))
        }
        (TaskKind::Comments, Entity::Annotation(a)) => {
            let mut new = a.clone();
            if new.assigned_to.as_deref() == Some(user) {
                new.assigned_to = None;
            }
            if new.resolved_by.as_deref() == Some(user) {
                new.resolved_by = None;
            }
            (new != *a).then_some(Entity::Annotation(new))
        }
        _ => None,
    }
}

/// (organization, document, annotation) of the entities that live in an annotation.
fn annotation_of(entity: &Entity) -> Option<(String, String, String)> {
    let t = |o: &str, d: &str, a: &str| Some((o.to_owned(), d.to_owned(), a.to_owned()));
    match entity {
        Entity::Annotation(a) => t(&a.organization_id, &a.document_id, &a.annotation_id),
        Entity::View(v) => t(&v.organization_id, &v.document_id, &v.annotation_id),
        Entity::Comment(c) => t(&c.organization_id, &c.document_id, &c.annotation_id),
        Entity::CommentReaction(r) => t(&r.organization_id, &r.document_id, &r.annotation_id),
        _ => None,
    }
}

/// (organization, document, annotation, comment) of a comment and of the reactions on it.
fn comment_of(entity: &Entity) -> Option<(String, String, String, String)> {
    match entity {
        Entity::Comment(c) => Some((
            c.organization_id.clone(),
            c.document_id.clone(),
            c.annotation_id.clone(),
            c.comment_id.clone(),
        )),
        Entity::CommentReaction(r) => Some((
            r.organization_id.clone(),
            r.document_id.clone(),
            r.annotation_id.clone(),
            r.comment_id.clone(),
        )),
        _ => None,
    }
}

/// An erasure to model: users, the organizations of the job (`None`: all) and the features run.
struct Erasure<'a> {
    users: &'a [&'a str],
    organizations: Option<&'a [&'a str]>,
    kinds: &'a [TaskKind],
}

impl Erasure<'_> {
    fn in_scope(&self, entity: &Entity) -> bool {
        match (self.organizations, entity.organization_id()) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(orgs), Some(org)) => orgs.contains(&org),
        }
    }
}

struct Expected {
    /// The whole data table after the erasure, tombstones aside.
    table: Table,
    /// Entities removed (with the cascades) and rewrites made.
    removed: u64,
    rewritten: u64,
}

/// The data table after `erasure` of `tenant`'s data, from the table before.
fn model(before: &Table, tenant: &Tenant, erasure: &Erasure) -> Expected {
    let prefix = tenant_prefix(tenant);
    let entities: BTreeMap<(String, String), (Entity, u64)> = before
        .iter()
        .filter(|((pk, _), _)| pk.starts_with(&prefix))
        .filter_map(|(k, item)| parse_entity(item).map(|e| (k.clone(), e)))
        .collect();
    let each = |entity: &Entity, f: &mut dyn FnMut(&str, TaskKind)| {
        if erasure.in_scope(entity) {
            for user in erasure.users {
                for kind in erasure.kinds {
                    f(user, *kind);
                }
            }
        }
    };

    // 1. What goes because it belongs to (or is about) an erased user.
    let mut removed: BTreeSet<(String, String)> = BTreeSet::new();
    for (key, (entity, _)) in &entities {
        let mut goes = false;
        each(entity, &mut |user, kind| {
            goes |= removes(entity, user, kind)
        });
        if goes {
            removed.insert(key.clone());
        }
    }
    // 2. Reactions under a removed comment go with it.
    let removed_comments: BTreeSet<_> = removed
        .iter()
        .filter_map(|k| match &entities[k].0 {
            c @ Entity::Comment(_) => comment_of(c),
            _ => None,
        })
        .collect();
    for (key, (entity, _)) in &entities {
        if matches!(entity, Entity::CommentReaction(_))
            && removed_comments.contains(&comment_of(entity).unwrap())
        {
            removed.insert(key.clone());
        }
    }
    // 3. Rewrites of what stays (an annotation rewritten is rewritten even if it empties later).
    let mut rewritten: BTreeMap<(String, String), (Entity, u64)> = BTreeMap::new();
    let mut rewrites = 0;
    for (key, (entity, version)) in &entities {
        if removed.contains(key) {
            continue;
        }
        let mut current = entity.clone();
        let mut count = 0;
        each(entity, &mut |user, kind| {
            if let Some(new) = rewrite(&current, user, kind) {
                current = new;
                count += 1;
            }
        });
        if count > 0 {
            rewrites += count;
            rewritten.insert(key.clone(), (current, version + count));
        }
    }
    // 4. An annotation whose comments were removed and that has none left goes, with its views.
    let emptied: BTreeSet<_> = removed_comments
        .iter()
        .map(|(o, d, a, _)| (o.clone(), d.clone(), a.clone()))
        .filter(|annotation| {
            !entities.iter().any(|(k, (entity, _))| {
                matches!(entity, Entity::Comment(_))
                    && !removed.contains(k)
                    && annotation_of(entity).as_ref() == Some(annotation)
            })
        })
        .collect();
    for (key, (entity, _)) in &entities {
        if annotation_of(entity).is_some_and(|a| emptied.contains(&a)) {
            removed.insert(key.clone());
            rewritten.remove(key);
        }
    }

    // The table: other tenants as they were; this tenant's entities as the rules say; and
    // exactly the reference items the remaining entities need, as they were stored.
    let mut table = Table::new();
    for (key, item) in before {
        if !key.0.starts_with(&prefix) {
            table.insert(key.clone(), item.clone());
            continue;
        }
        match entity_of(item) {
            "Reference" => {}
            "Tombstone" => {
                table.insert(key.clone(), item.clone());
            }
            _ if removed.contains(key) => {}
            _ => {
                let item = match rewritten.get(key) {
                    Some((entity, version)) => {
                        let mut item: Item = serde_dynamo::to_item(entity).unwrap();
                        item.insert("pk".into(), AttributeValue::S(key.0.clone()));
                        item.insert("sk".into(), AttributeValue::S(key.1.clone()));
                        item.insert("version".into(), AttributeValue::N(version.to_string()));
                        item
                    }
                    None => item.clone(),
                };
                table.insert(key.clone(), item);
            }
        }
    }
    for (key, (entity, _)) in &entities {
        if removed.contains(key) {
            continue;
        }
        let entity = rewritten.get(key).map_or(entity, |(e, _)| e);
        let target = Key {
            pk: key.0.clone(),
            sk: key.1.clone(),
        };
        for (user, kind) in names(entity) {
            let r = reference_key(tenant, &user, kind, entity.organization_id(), &target);
            let stored = before
                .get(&(r.pk.clone(), r.sk.clone()))
                .unwrap_or_else(|| panic!("no {kind} reference of {user:?} to {entity:?}"));
            table.insert((r.pk, r.sk), stored.clone());
        }
    }
    Expected {
        table,
        removed: removed.len() as u64,
        rewritten: rewrites,
    }
}

/// The write path stored exactly one reference item per (user, feature) an entity names.
fn assert_references_are_complete(table: &Table, tenant: &Tenant) {
    let mine = of_tenant(table, tenant);
    let mut needed = BTreeSet::new();
    for ((pk, sk), item) in &mine {
        if let Some((entity, _)) = parse_entity(item) {
            let target = Key {
                pk: pk.clone(),
                sk: sk.clone(),
            };
            for (user, kind) in names(&entity) {
                let r = reference_key(tenant, &user, kind, entity.organization_id(), &target);
                needed.insert((r.pk, r.sk));
            }
        }
    }
    let stored: BTreeSet<_> = mine
        .iter()
        .filter(|(_, item)| entity_of(item) == "Reference")
        .map(|(k, _)| k.clone())
        .collect();
    assert_eq!(
        stored, needed,
        "reference items differ from what the entities name"
    );
    for ((pk, sk), item) in &mine {
        if entity_of(item) == "Reference" {
            let target = (
                item["targetPk"].as_s().unwrap().clone(),
                item["targetSk"].as_s().unwrap().clone(),
            );
            assert!(mine.contains_key(&target), "dangling reference {pk} {sk}");
        }
    }
}

/// The users job `job` tombstoned, and in which organizations (`None`: all).
struct Tombstones<'a> {
    tenant: &'a Tenant,
    job: &'a str,
    users: &'a [&'a str],
    organizations: Option<&'a [&'a str]>,
}

/// `actual` is `expected` item for item, plus (exactly) the job's tombstones.
fn assert_table(actual: &Table, expected: &Table, tombstones: Option<Tombstones>) {
    let mut actual = actual.clone();
    if let Some(t) = tombstones {
        for user in t.users {
            let key = (t.tenant.user_partition(user), TOMBSTONE_SORT_KEY.to_owned());
            let item = actual
                .remove(&key)
                .unwrap_or_else(|| panic!("no tombstone for {user:?}"));
            assert_eq!(item["entity"], AttributeValue::S("Tombstone".into()));
            assert!(item["erasedAt"].as_n().is_ok());
            assert_eq!(item["holders"], AttributeValue::Ss(vec![t.job.to_owned()]));
            let mut names: Vec<&str> = item.keys().map(String::as_str).collect();
            names.sort();
            match t.organizations {
                None => {
                    assert_eq!(item["allOrganizations"], AttributeValue::Bool(true));
                    assert_eq!(
                        names,
                        [
                            "allOrganizations",
                            "entity",
                            "erasedAt",
                            "holders",
                            "pk",
                            "sk"
                        ]
                    );
                }
                Some(orgs) => {
                    let mut stored = item["organizations"].as_ss().unwrap().clone();
                    stored.sort();
                    let mut wanted: Vec<String> = orgs.iter().map(|o| component(o)).collect();
                    wanted.sort();
                    assert_eq!(stored, wanted);
                    assert_eq!(
                        names,
                        ["entity", "erasedAt", "holders", "organizations", "pk", "sk"]
                    );
                }
            }
        }
    }
    let mut problems = Vec::new();
    for (key, item) in expected {
        match actual.get(key) {
            None => problems.push(format!("MISSING {}", describe(item))),
            Some(got) if got != item => problems.push(format!(
                "CHANGED\n   expected {}\n   actual   {}",
                describe(item),
                describe(got)
            )),
            Some(_) => {}
        }
    }
    for (key, item) in &actual {
        if !expected.contains_key(key) {
            problems.push(format!("UNEXPECTED {}", describe(item)));
        }
    }
    assert!(
        problems.is_empty(),
        "{} difference(s) from the model:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// A user as the fixture knows them.
struct Person {
    id: String,
    name: String,
    email: String,
}

fn people(fixture: &str) -> Vec<Person> {
    let fixture: Value = serde_json::from_str(fixture).unwrap();
    fixture["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| Person {
            id: u["userId"].as_str().unwrap().to_owned(),
            name: u["name"].as_str().unwrap().to_owned(),
            email: u["email"].as_str().unwrap().to_owned(),
        })
        .collect()
}

fn person<'a>(people: &'a [Person], id: &str) -> &'a Person {
    people.iter().find(|p| p.id == id).unwrap()
}

/// CONTRACT §3: in the job's scope, no key and no attribute value holds the user's id, email,
/// display name or mention token; their tombstone is the only item left in their partition.
fn assert_no_trace(table: &Table, tenant: &Tenant, user: &Person, organizations: Option<&[&str]>) {
    let hash = component(&user.id);
    let partition = tenant.user_partition(&user.id);
    let in_scope = |pk: &str, sk: &str| match organizations {
        None => pk.starts_with(&tenant_prefix(tenant)),
        Some(orgs) => orgs.iter().any(|o| {
            pk.starts_with(&format!("{}#O#{}", tenant.as_str(), component(o)))
                || (pk == partition
                    && TaskKind::ALL
                        .iter()
                        .any(|k| sk.starts_with(&reference_prefix(*k, Some(o)))))
        }),
    };
    for ((pk, sk), item) in table {
        if !in_scope(pk, sk) {
            continue;
        }
        let tombstone = *pk == partition && sk == TOMBSTONE_SORT_KEY;
        if !tombstone {
            assert!(
                !pk.contains(&hash) && !sk.contains(&hash),
                "key of {} still holds {:?}",
                describe(item),
                user.id
            );
        }
        for (name, value) in item {
            if tombstone && (name == "pk" || name == "sk") {
                continue;
            }
            let mut found = Vec::new();
            strings(value, &mut found);
            for s in found {
                let trace = s == user.id
                    || s.contains(&token(&user.id))
                    || s.contains(&user.email)
                    || s.contains(&user.name)
                    || (name != "pk" && name != "sk" && s.contains(&hash));
                assert!(
                    !trace,
                    "{name} = {s:?} of {} is a trace of {:?}",
                    describe(item),
                    user.id
                );
            }
        }
    }
}

fn delete_body(users: &[&str], organizations: Option<&[&str]>, dry_run: bool) -> String {
    let mut data = json!({"userIds": users});
    if let Some(orgs) = organizations {
        data["organizationIds"] = json!(orgs);
    }
    if dry_run {
        data["dryRun"] = json!(true);
    }
    json!({ "data": data }).to_string()
}

async fn assert_completed(env: &TestEnv, job_id: &str, tasks: usize) -> Value {
    let status = env.status(job_id).await;
    assert_eq!(status["isDeleteCompleted"], true, "{status}");
    assert_eq!(status["jobStatus"], "completed", "{status}");
    assert_eq!(status["tasksLeft"], 0, "{status}");
    assert_eq!(status["tasksCount"], tasks, "{status}");
    assert_eq!(status["tasksFailed"], 0, "{status}");
    status
}

/// Two tenants holding the same rich world, same ids in both.
async fn rich_world(env: &TestEnv) -> (Tenant, Tenant) {
    let tenant = env.tenant();
    let other = env.add_tenant(OTHER_KEY, OTHER_TOKEN).await;
    env.seed(&tenant, RICH_WORLD).await;
    env.seed(&other, RICH_WORLD).await;
    (tenant, other)
}

// ---------------------------------------------------------------------------------------------
// The world itself
// ---------------------------------------------------------------------------------------------

#[test]
fn the_rich_world_has_unique_names_and_emails_that_appear_in_no_text() {
    let everyone = people(RICH_WORLD);
    assert!(everyone.len() >= 12);
    let ids: Vec<&str> = everyone.iter().map(|p| p.id.as_str()).collect();
    for tricky in [
        "u1", "u10", "u 3", "u#4", "u/5", "u%6", "😀u7", "u8#/%", "u1#",
    ] {
        assert!(ids.contains(&tricky), "{tricky}");
    }
    let labels: Vec<&str> = everyone
        .iter()
        .flat_map(|p| [p.name.as_str(), p.email.as_str()])
        .collect();
    for (i, a) in labels.iter().enumerate() {
        for (j, b) in labels.iter().enumerate() {
            assert!(i == j || !b.contains(a), "{a:?} is inside {b:?}");
        }
    }
    // No label appears anywhere in the fixture but in its own user record.
    let mut fixture: Value = serde_json::from_str(RICH_WORLD).unwrap();
    fixture["users"] = json!([]);
    let text = fixture.to_string();
    for label in labels {
        assert!(!text.contains(label), "{label:?} appears in the data");
    }
}

#[tokio::test]
async fn the_rich_world_loads_every_entity_with_exactly_the_references_it_needs() {
    let env = TestEnv::new().await;
    let (tenant, other) = rich_world(&env).await;
    let table = snapshot(&env).await;
    let mine = of_tenant(&table, &tenant);
    let kinds: BTreeSet<&str> = mine.values().map(entity_of).collect();
    for kind in [
        "Profile",
        "Organization",
        "Member",
        "Contact",
        "UserGroup",
        "GroupMember",
        "Folder",
        "FolderAccess",
        "Document",
        "DocumentAccess",
        "Annotation",
        "Comment",
        "CommentReaction",
        "DocumentReaction",
        "Recording",
        "Notification",
        "View",
        "Reference",
    ] {
        assert!(kinds.contains(kind), "no {kind} in the world");
    }
    assert_references_are_complete(&table, &tenant);
    assert_references_are_complete(&table, &other);
    // Same world, same ids, two tenants: not one key in common.
    let mine: BTreeSet<_> = of_tenant(&table, &tenant).into_keys().collect();
    let theirs: BTreeSet<_> = of_tenant(&table, &other).into_keys().collect();
    assert_eq!(mine.len(), theirs.len());
    assert!(mine.is_disjoint(&theirs));
    assert_eq!(mine.len() + theirs.len(), table.len());
}

// ---------------------------------------------------------------------------------------------
// Whole jobs through the API and the worker
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn erasing_users_everywhere_leaves_no_trace_of_them_and_changes_nothing_else() {
    let env = TestEnv::new().await;
    let (tenant, other) = rich_world(&env).await;
    let before = snapshot(&env).await;
    assert_references_are_complete(&before, &tenant);

    let erased = ["u1", "u#4", "😀u7"];
    let job_id = env.start_job(&delete_body(&erased, None, false)).await;
    env.drain(&env.worker).await;
    assert_completed(&env, &job_id, 27).await;

    let after = snapshot(&env).await;
    let everyone = people(RICH_WORLD);
    for user in erased {
        assert_no_trace(&after, &tenant, person(&everyone, user), None);
    }
    let expected = model(
        &before,
        &tenant,
        &Erasure {
            users: &erased,
            organizations: None,
            kinds: &TaskKind::ALL,
        },
    );
    assert!(expected.removed > 50 && expected.rewritten > 5);
    assert_table(
        &after,
        &expected.table,
        Some(Tombstones {
            tenant: &tenant,
            job: &job_id,
            users: &erased,
            organizations: None,
        }),
    );
    assert_eq!(of_tenant(&after, &other), of_tenant(&before, &other));
    assert_references_are_complete(&after, &tenant);
}

#[tokio::test]
async fn erasing_users_in_some_organizations_changes_only_those_organizations() {
    let env = TestEnv::new().await;
    let (tenant, other) = rich_world(&env).await;
    let before = snapshot(&env).await;

    let erased = ["u1", "u10"];
    let organizations = ["org1", "org #/%😀"];
    let job_id = env
        .start_job(&delete_body(&erased, Some(&organizations), false))
        .await;
    env.drain(&env.worker).await;
    assert_completed(&env, &job_id, 16).await;

    let after = snapshot(&env).await;
    let everyone = people(RICH_WORLD);
    for user in erased {
        assert_no_trace(
            &after,
            &tenant,
            person(&everyone, user),
            Some(&organizations),
        );
        // The profile stays, and so does everything of theirs in org10.
        let profile = (tenant.user_partition(user), "PROFILE".to_owned());
        assert_eq!(after.get(&profile), before.get(&profile));
        assert!(after.contains_key(&profile));
    }
    let org10 = format!("{}#O#{}", tenant.as_str(), component("org10"));
    let in_org10 = |t: &Table| -> Table {
        t.iter()
            .filter(|((pk, _), _)| pk.starts_with(&org10))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    assert!(!in_org10(&before).is_empty());
    assert_eq!(in_org10(&after), in_org10(&before));

    let expected = model(
        &before,
        &tenant,
        &Erasure {
            users: &erased,
            organizations: Some(&organizations),
            kinds: &TaskKind::ALL,
        },
    );
    assert_table(
        &after,
        &expected.table,
        Some(Tombstones {
            tenant: &tenant,
            job: &job_id,
            users: &erased,
            organizations: Some(&organizations),
        }),
    );
    assert_eq!(of_tenant(&after, &other), of_tenant(&before, &other));
    assert_references_are_complete(&after, &tenant);
}

#[tokio::test]
async fn a_dry_run_counts_what_the_real_run_then_does_and_changes_nothing() {
    let env = TestEnv::new().await;
    let (tenant, _) = rich_world(&env).await;
    let before = snapshot(&env).await;
    let jobs = |t: Vec<Item>| t.iter().filter(|i| common::is_job_item(i)).count();
    let jobs_before = jobs(env.scan(&env.tables.control).await);

    // Two users whose data never meets, so each item is counted by exactly one task.
    let users = ["u%6", "u/5"];
    let (status, answer) = env.post(DELETE, &delete_body(&users, None, true)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["status"], "success");
    assert_eq!(answer["statusCode"], 200);
    assert_eq!(answer["data"]["dryRun"], true);
    assert_eq!(answer["data"]["tasksCount"], 18);
    let preview = answer["data"]["items"].as_object().unwrap().clone();
    assert_eq!(preview.len(), 9, "{answer}");

    assert_eq!(snapshot(&env).await, before, "the dry run changed the data");
    assert_eq!(jobs(env.scan(&env.tables.control).await), jobs_before);
    for user in users {
        let tombstone = (tenant.user_partition(user), TOMBSTONE_SORT_KEY.to_owned());
        assert!(!before.contains_key(&tombstone));
    }

    let job_id = env.start_job(&delete_body(&users, None, false)).await;
    env.drain(&env.worker).await;
    let status = assert_completed(&env, &job_id, 18).await;
    let mut total = 0;
    for kind in TaskKind::ALL {
        let done = &status["items"][kind.as_str()];
        let sum = done["removed"].as_u64().unwrap_or(0) + done["rewritten"].as_u64().unwrap_or(0);
        assert_eq!(
            Some(sum),
            preview[kind.as_str()].as_u64(),
            "{kind}: the run did {done}, the dry run said {}",
            preview[kind.as_str()]
        );
        total += sum;
    }
    // And both agree with the model.
    let expected = model(
        &before,
        &tenant,
        &Erasure {
            users: &users,
            organizations: None,
            kinds: &TaskKind::ALL,
        },
    );
    assert_eq!(total, expected.removed + expected.rewritten);
    assert_table(
        &snapshot(&env).await,
        &expected.table,
        Some(Tombstones {
            tenant: &tenant,
            job: &job_id,
            users: &users,
            organizations: None,
        }),
    );
}

// ---------------------------------------------------------------------------------------------
// The write path after a job is accepted
// ---------------------------------------------------------------------------------------------

fn member(org: &str, user: &str) -> Entity {
    Entity::Member(e::Member {
        organization_id: org.into(),
        user_id: user.into(),
        access_role: "editor".into(),
    })
}

fn mention_of(org: &str, user: &str) -> Entity {
    Entity::Comment(e::Comment {
        organization_id: org.into(),
        document_id: "d1".into(),
        annotation_id: "a-new".into(),
        comment_id: "c-new".into(),
        from: "u2".into(),
        text: format!("late note for {}", token(user)),
        to: vec![],
        tagged_user_contacts: vec![],
    })
}

#[tokio::test]
async fn the_write_path_refuses_new_data_for_an_erased_user_as_soon_as_the_job_is_accepted() {
    let env = TestEnv::new().await;
    let tenant = env.tenant();
    env.seed(&tenant, SMALL_WORLD).await;
    env.start_job(&delete_body(&["u1"], None, false)).await;
    // Before any task has run.
    for refused in [
        member("org1", "u1"),
        member("org-new", "u1"),
        mention_of("org1", "u1"),
        Entity::Profile(e::Profile {
            user_id: "u1".into(),
            name: "Someone".into(),
            email: "someone@else.test".into(),
            photo_url: None,
        }),
    ] {
        let before = snapshot(&env).await;
        let result = env
            .data
            .write(&tenant, vec![member("org1", "u2"), refused.clone()])
            .await;
        assert!(
            matches!(result, Err(StoreError::UserErased { .. })),
            "{refused:?}: {result:?}"
        );
        assert_eq!(
            snapshot(&env).await,
            before,
            "a refused write wrote something"
        );
    }
    // Ids that share its prefix are other users, and another tenant's u1 is another user.
    env.data
        .write(&tenant, vec![member("org1", "u10")])
        .await
        .unwrap();
    let other = env.add_tenant(OTHER_KEY, OTHER_TOKEN).await;
    env.data
        .write(&other, vec![member("org1", "u1")])
        .await
        .unwrap();
}

#[tokio::test]
async fn after_a_scoped_job_the_write_path_refuses_data_only_inside_its_organizations() {
    let env = TestEnv::new().await;
    let tenant = env.tenant();
    env.seed(&tenant, SMALL_WORLD).await;
    env.start_job(&delete_body(&["u1"], Some(&["org1"]), false))
        .await;
    for refused in [member("org1", "u1"), mention_of("org1", "u1")] {
        let result = env.data.write(&tenant, vec![refused.clone()]).await;
        assert!(
            matches!(result, Err(StoreError::UserErased { .. })),
            "{refused:?}: {result:?}"
        );
    }
    for allowed in [
        member("org10", "u1"),
        mention_of("org10", "u1"),
        member("org1", "u10"),
    ] {
        env.data.write(&tenant, vec![allowed]).await.unwrap();
    }
}

// ---------------------------------------------------------------------------------------------
// Each feature on its own, through the store
// ---------------------------------------------------------------------------------------------

/// Erases one feature of u1 in the small world (held by two tenants), checks it against the
/// model, then checks that a second run and a run for a user with nothing change nothing.
async fn erase_one_feature(kind: TaskKind) {
    let env = TestEnv::new().await;
    let tenant = env.tenant();
    let other = env.add_tenant(OTHER_KEY, OTHER_TOKEN).await;
    env.seed(&tenant, SMALL_WORLD).await;
    env.seed(&other, SMALL_WORLD).await;
    let before = snapshot(&env).await;
    let u1 = UserId::parse("u1").unwrap();
    let feature = deleter(kind);

    let outcome = env.data.erase(&tenant, &u1, feature, &[]).await.unwrap();
    let expected = model(
        &before,
        &tenant,
        &Erasure {
            users: &["u1"],
            organizations: None,
            kinds: &[kind],
        },
    );
    assert!(
        expected.removed + expected.rewritten > 0,
        "the world has no {kind}"
    );
    assert_eq!(
        outcome,
        Outcome {
            removed: expected.removed,
            rewritten: expected.rewritten
        },
        "{kind}"
    );
    let after = snapshot(&env).await;
    assert_table(&after, &expected.table, None);
    assert_eq!(
        env.data
            .remaining_references(&tenant, &u1, feature, &[])
            .await
            .unwrap(),
        0
    );

    // Idempotent: a second run finds nothing and changes nothing.
    let again = env.data.erase(&tenant, &u1, feature, &[]).await.unwrap();
    assert_eq!(again, Outcome::default(), "{kind}: second run");
    assert_eq!(snapshot(&env).await, after);

    // A user who has nothing (an id that is a prefix of others') gets nothing done.
    for nobody in ["u", "u1 ", "nobody"] {
        let nobody = UserId::parse(nobody).unwrap();
        let outcome = env
            .data
            .erase(&tenant, &nobody, feature, &[])
            .await
            .unwrap();
        assert_eq!(outcome, Outcome::default(), "{kind}");
        let preview = env
            .data
            .preview(&tenant, &nobody, feature, &[], &mut Default::default())
            .await
            .unwrap();
        assert_eq!(preview, Outcome::default(), "{kind}");
    }
    assert_eq!(snapshot(&env).await, after);

    // Scoped to org10 only, on a fresh copy of u1 in the other tenant: only org10 changes.
    let org10 = [OrganizationId::parse("org10").unwrap()];
    let scoped = env.data.erase(&other, &u1, feature, &org10).await.unwrap();
    let expected = model(
        &after,
        &other,
        &Erasure {
            users: &["u1"],
            organizations: Some(&["org10"]),
            kinds: &[kind],
        },
    );
    assert_eq!(
        scoped,
        Outcome {
            removed: expected.removed,
            rewritten: expected.rewritten
        },
        "{kind} in org10"
    );
    assert_table(&snapshot(&env).await, &expected.table, None);
}

#[tokio::test]
async fn the_profile_feature_removes_the_user_record_alone() {
    erase_one_feature(TaskKind::Profile).await;
}

#[tokio::test]
async fn the_access_feature_removes_memberships_and_folder_and_document_access() {
    erase_one_feature(TaskKind::Access).await;
}

#[tokio::test]
async fn the_contacts_feature_removes_contact_list_entries() {
    erase_one_feature(TaskKind::Contacts).await;
}

#[tokio::test]
async fn the_mentions_feature_rewrites_others_comments_without_the_user() {
    erase_one_feature(TaskKind::Mentions).await;
}

#[tokio::test]
async fn the_comments_feature_removes_comments_with_their_reactions_and_emptied_annotations() {
    erase_one_feature(TaskKind::Comments).await;
}

#[tokio::test]
async fn the_reactions_feature_removes_reactions_on_comments_and_documents() {
    erase_one_feature(TaskKind::Reactions).await;
}

#[tokio::test]
async fn the_notifications_feature_removes_notifications_to_from_and_about_the_user() {
    erase_one_feature(TaskKind::Notifications).await;
}

#[tokio::test]
async fn the_recordings_feature_removes_the_users_recordings() {
    erase_one_feature(TaskKind::Recordings).await;
}

#[tokio::test]
async fn the_views_feature_removes_the_users_views() {
    erase_one_feature(TaskKind::Views).await;
}
