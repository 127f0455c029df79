//! The isolation matrix (issue 7) as one table-driven test, through the real handler against
//! dynalite and moto: three tenants seeded with the same colliding ids (prefixes of each other,
//! key separators, key-shaped ids, unicode, ids at the 256-byte limit), one of them revoked;
//! every credential mix-up on every endpoint, other tenants' job ids and key-shaped job ids on
//! the status endpoint, the request limits and one past each, idempotency keys shared across
//! tenants; and an erasure in one tenant checked item by item against the other tenants and the
//! users whose ids collide with the erased ones (CONTRACT §1.3, §2 rules 2 and 3).

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{entity_of, key_of, request_to, Item, TestEnv};
use erasure::domain::entity::{tombstone_key, Entity};
use erasure::domain::tenant::Tenant;
use erasure::keys::component;
use serde_json::{json, Value};

const DELETE: &str = "/v2/users/data/delete";
const STATUS: &str = "/v2/users/data/delete/status";
const EXPORT: &str = "/v2/users/data/get";

/// Tenant A: it erases users and is compared against its own model.
const A_KEY: &str = "iso-key-1";
const A_TOKEN: &str = "iso-token-1";
/// Tenant B: A's key and token are prefixes of its own; its data must not move.
const B_KEY: &str = "iso-key-10";
const B_TOKEN: &str = "iso-token-10";
/// Tenant C: revoked after it started a job; its key is A's with a separator appended.
const C_KEY: &str = "iso-key-1#";
const C_TOKEN: &str = "iso-token-1#";

/// Text every tenant writes into its own data, so that an answer shows whose data it holds.
const A_MARK: &str = "ALPHA";
const B_MARK: &str = "BRAVO";
const C_MARK: &str = "CHARLIE";

const UNAUTHENTICATED: &str = "missing or invalid x-velt-api-key / x-velt-auth-token";
const BAD_JOB_ID: &str = "jobId must be 20 characters from A-Z, a-z and 0-9";

type Key = (String, String);
type Items = BTreeMap<Key, Item>;

/// An id of exactly `bytes` bytes of UTF-8: `prefix`, then two-byte `é`s, then `x`s.
fn id_of_bytes(prefix: &str, bytes: usize) -> String {
    let mut id = prefix.to_owned();
    while id.len() + 2 <= bytes {
        id.push('é');
    }
    while id.len() < bytes {
        id.push('x');
    }
    assert_eq!(id.len(), bytes);
    id
}

/// The users every tenant holds, under the same ids.
fn users() -> Vec<String> {
    let mut users: Vec<String> = [
        "u",
        "u1",
        "u10",
        "u1#",
        "#u1",
        "u1 ",
        "U1",
        "u1/../u10",
        "T#x#U#u1",
        "REF#comments#_#",
        "_",
        "TOMBSTONE",
        "ü1",
        "👩‍💻u1",
    ]
    .map(String::from)
    .to_vec();
    users.push(format!("{}a", "x".repeat(255)));
    users.push(format!("{}b", "x".repeat(255)));
    users.push("é".repeat(128));
    users
}

/// The organizations every tenant holds, under the same ids (one is named like a user).
fn organizations() -> Vec<String> {
    let mut orgs: Vec<String> = ["org1", "org10", "org1#", "u1", "_"]
        .map(String::from)
        .to_vec();
    orgs.push("o".repeat(256));
    orgs
}

/// What A erases everywhere: a prefix of others, a key-shaped id, a 256-byte id that shares
/// 255 bytes with a kept one.
fn erased_everywhere() -> Vec<String> {
    vec![
        "u1".into(),
        "REF#comments#_#".into(),
        format!("{}a", "x".repeat(255)),
    ]
}

/// What A erases in one organization only: `u10` in `org1`, a prefix of `org10` and `org1#`.
const SCOPED_USER: &str = "u10";
const SCOPED_ORG: &str = "org1";

/// Users no job of A touches: they may name each other, never an erased user, so that every
/// item naming them must come out of A's erasure exactly as it went in.
fn kept() -> Vec<String> {
    let erased = erased_everywhere();
    users()
        .into_iter()
        .filter(|u| !erased.contains(u) && u != SCOPED_USER)
        .collect()
}

/// A tenant's world in the fixture format (CONTRACT §4): every user in every organization with
/// membership, group membership, folder and document access, contacts, an annotation they are
/// assigned with a comment, a view and a reaction, a document reaction, a recording and a
/// notification, all under ids equal to the user's id. Kept users' comments and notifications
/// mention the next two kept users (`{{u1#}}`, `{{u1 }}` and the like beside an erased `u1`).
fn world(mark: &str, emoji: &str) -> String {
    let users = users();
    let kept = kept();
    let mentions = |user: &str| -> Vec<String> {
        match kept.iter().position(|k| k == user) {
            Some(i) => (1..=2)
                .map(|d| kept[(i + d) % kept.len()].clone())
                .collect(),
            None => vec![],
        }
    };
    let text = |user: &str| -> String {
        let tokens: Vec<String> = mentions(user)
            .iter()
            .map(|m| format!("{{{{{m}}}}}"))
            .collect();
        format!("{mark} note {}", tokens.join(" "))
    };
    let organizations: Vec<Value> = organizations()
        .iter()
        .map(|org| {
            json!({
                "organizationId": org,
                "members": users.iter().map(|u| json!({"userId": u, "accessRole": "editor"})).collect::<Vec<_>>(),
                "contacts": users,
                "userGroups": [{"groupId": "u1", "users": users}],
                "folders": [{
                    "folderId": "f",
                    "users": users.iter().map(|u| json!({"userId": u, "accessRole": "viewer"})).collect::<Vec<_>>(),
                    "contacts": users,
                }],
                "documents": [{
                    "documentId": "d", "folderId": "f",
                    "users": users.iter().map(|u| json!({"userId": u, "accessRole": "editor", "expiresAt": 1_893_456_000_000_i64})).collect::<Vec<_>>(),
                    "contacts": users,
                    "commentAnnotations": users.iter().map(|u| json!({
                        "annotationId": u, "assignedTo": u, "viewedBy": [u],
                        "comments": [{
                            "commentId": u, "from": u, "text": text(u), "to": mentions(u),
                            "reactions": [{"emoji": emoji, "userId": u}],
                        }],
                    })).collect::<Vec<_>>(),
                    "reactions": users.iter().map(|u| json!({"reactionId": u, "emoji": emoji, "userId": u})).collect::<Vec<_>>(),
                    "recordings": users.iter().enumerate().map(|(i, u)| json!({
                        "recordingId": u, "from": u, "url": format!("https://rec.test/{mark}/{i}.webm"),
                    })).collect::<Vec<_>>(),
                    "notifications": users.iter().map(|u| {
                        let to = mentions(u).first().cloned().unwrap_or_else(|| u.clone());
                        json!({"notificationId": u, "to": to, "from": u, "text": text(u)})
                    }).collect::<Vec<_>>(),
                }],
            })
        })
        .collect();
    let profiles: Vec<Value> = users
        .iter()
        .enumerate()
        .map(|(i, u)| {
            json!({"userId": u, "name": format!("{mark} person {i}"),
                   "email": format!("p{i}@{mark}.test")})
        })
        .collect();
    json!({"users": profiles, "organizations": organizations}).to_string()
}

fn headers(key: &str, token: &str) -> Vec<(String, String)> {
    vec![
        ("x-velt-api-key".into(), key.into()),
        ("x-velt-auth-token".into(), token.into()),
    ]
}

fn error(status: &str, message: &str) -> Value {
    json!({"error": {"message": message, "status": status}})
}

fn status_body(job_id: &str) -> String {
    json!({"data": {"jobId": job_id}}).to_string()
}

fn export_body(org: &str, user: &str) -> String {
    json!({"data": {"organizationId": org, "userId": user}}).to_string()
}

/// Every item of `tenant` in the data table, by key.
async fn tenant_items(env: &TestEnv, tenant: &Tenant) -> Items {
    let prefix = format!("{}#", tenant.as_str());
    env.scan(&env.tables.data)
        .await
        .into_iter()
        .filter(|item| key_of(item).0.starts_with(&prefix))
        .map(|item| (key_of(&item), item))
        .collect()
}

async fn all_items(env: &TestEnv, table: &str) -> Items {
    env.scan(table)
        .await
        .into_iter()
        .map(|item| (key_of(&item), item))
        .collect()
}

/// The control table but its rate-limit windows, which every request counts in (DESIGN §4).
async fn control_items(env: &TestEnv) -> Items {
    let mut items = all_items(env, &env.tables.control).await;
    items.retain(|(pk, _), _| !pk.starts_with("RATE#"));
    items
}

/// Keys added, removed and changed from `before` to `after`.
fn diff(before: &Items, after: &Items) -> (Vec<Key>, Vec<Key>, Vec<Key>) {
    let added = after
        .keys()
        .filter(|k| !before.contains_key(*k))
        .cloned()
        .collect();
    let removed = before
        .keys()
        .filter(|k| !after.contains_key(*k))
        .cloned()
        .collect();
    let changed = before
        .iter()
        .filter(|(k, v)| after.get(*k).is_some_and(|a| a != *v))
        .map(|(k, _)| k.clone())
        .collect();
    (added, removed, changed)
}

/// The entity an item stores, when it stores one (not a reference or a tombstone).
fn entity(item: &Item) -> Option<Entity> {
    if matches!(entity_of(item), "Reference" | "Sweep" | "Tombstone") {
        return None;
    }
    let mut item = item.clone();
    for key in ["pk", "sk", "version"] {
        item.remove(key);
    }
    Some(serde_dynamo::from_item(item).expect("an entity item parses"))
}

/// What tenant A's data table must hold once its two jobs completed (CONTRACT §3): everything
/// it held, but the items naming an erased user (in the job's scope) and those users' own
/// partition items (references in scope, and the profile of an unscoped one). Returns the
/// model and, per erased user, how many items it drops (the erasure had something to do).
fn model_after_erasure(tenant: &Tenant, before: &Items) -> (Items, BTreeMap<String, usize>) {
    let everywhere = erased_everywhere();
    let partition_of = |pk: &str| -> Option<String> {
        users().into_iter().find(|u| tenant.user_partition(u) == pk)
    };
    let scoped_org = component(SCOPED_ORG);
    let mut dropped: BTreeMap<String, usize> = BTreeMap::new();
    let mut model = Items::new();
    for (key, item) in before {
        assert_ne!(entity_of(item), "Tombstone", "no tombstone before the jobs");
        let gone_for: Option<String> = match entity(item) {
            None => partition_of(&key.0).filter(|owner| {
                everywhere.contains(owner)
                    || (owner == SCOPED_USER && key.1.split('#').nth(2) == Some(&scoped_org))
            }),
            Some(Entity::Profile(p)) => everywhere.contains(&p.user_id).then_some(p.user_id),
            Some(e) => {
                let named = e.users();
                everywhere
                    .iter()
                    .find(|u| named.contains(&u.as_str()))
                    .cloned()
                    .or_else(|| {
                        (named.contains(&SCOPED_USER) && e.organization_id() == Some(SCOPED_ORG))
                            .then(|| SCOPED_USER.to_owned())
                    })
            }
        };
        match gone_for {
            Some(user) => *dropped.entry(user).or_default() += 1,
            None => {
                model.insert(key.clone(), item.clone());
            }
        }
    }
    (model, dropped)
}

/// A short description of an item for failure messages: its entity and key, never its ids.
fn describe(items: &Items, key: &Key) -> String {
    let entity = items.get(key).map_or("?", |i| entity_of(i));
    format!("{entity} {} {}", key.0, key.1)
}

/// A check of a 200 answer: why it is wrong, if it is.
type AnswerCheck = Box<dyn Fn(&Value) -> Result<(), String>>;

/// What a case must get, and leave behind.
enum Expect {
    /// Exactly this status and body; nothing stored, nothing sent.
    Refused(u16, Value),
    /// 200 passing the check; nothing stored, nothing sent.
    Read(AnswerCheck),
    /// 202 for a new job of `tenant` with `tasks` tasks over `users` users: a job and its
    /// open-jobs entry (and idempotency record) in the control table, one tombstone per user in
    /// that tenant's partitions and nowhere else, one message per user.
    Accepted {
        tenant: Tenant,
        users: usize,
        tasks: u64,
    },
    /// 202 naming this existing job; nothing stored, nothing sent.
    Replayed(String),
}

struct Case {
    name: String,
    endpoint: &'static str,
    headers: Vec<(String, String)>,
    body: String,
    expect: Expect,
}

fn case(
    name: impl Into<String>,
    endpoint: &'static str,
    headers: Vec<(String, String)>,
    body: impl Into<String>,
    expect: Expect,
) -> Case {
    Case {
        name: name.into(),
        endpoint,
        headers,
        body: body.into(),
        expect,
    }
}

/// Runs cases one after another, each against a fresh picture of what is stored and queued.
struct Matrix<'a> {
    env: &'a TestEnv,
    control: Items,
    data: Items,
    depth: usize,
    /// Cases tried, and those that got anything wrong.
    tried: usize,
    failed: usize,
    failures: Vec<String>,
    /// Every job id handed out so far: none may be handed out twice.
    jobs: BTreeSet<String>,
}

impl<'a> Matrix<'a> {
    async fn new(env: &'a TestEnv) -> Self {
        let mut matrix = Self {
            env,
            control: Items::new(),
            data: Items::new(),
            depth: 0,
            tried: 0,
            failed: 0,
            failures: vec![],
            jobs: BTreeSet::new(),
        };
        matrix.refresh().await;
        matrix
    }

    /// Takes a new picture, after something outside the cases (a revocation, the worker).
    async fn refresh(&mut self) {
        self.control = control_items(self.env).await;
        self.data = all_items(self.env, &self.env.tables.data).await;
        self.depth = self.env.queue_depth(&self.env.queue_url).await;
    }

    /// Records a check made outside a request.
    fn check(&mut self, name: &str, wrong: Vec<String>) {
        self.tried += 1;
        self.record(name, wrong);
    }

    fn record(&mut self, name: &str, wrong: Vec<String>) {
        if !wrong.is_empty() {
            self.failed += 1;
        }
        for why in wrong {
            self.failures.push(format!("{name}: {why}"));
        }
    }

    /// Runs one case, records what it got wrong, and returns its answer.
    async fn run(&mut self, case: Case) -> Value {
        self.tried += 1;
        let headers: Vec<(&str, &str)> = case
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let (status, answer) =
            request_to(&self.env.api, "POST", case.endpoint, &headers, &case.body).await;
        let control = control_items(self.env).await;
        let data = all_items(self.env, &self.env.tables.data).await;
        let depth = self.env.queue_depth(&self.env.queue_url).await;
        let mut wrong = vec![];
        let (control_added, control_removed, control_changed) = diff(&self.control, &control);
        let (data_added, data_removed, data_changed) = diff(&self.data, &data);
        let nothing_left = |wrong: &mut Vec<String>| {
            for (what, keys, items) in [
                ("control item added", &control_added, &control),
                ("control item removed", &control_removed, &self.control),
                ("control item changed", &control_changed, &control),
                ("data item added", &data_added, &data),
                ("data item removed", &data_removed, &self.data),
                ("data item changed", &data_changed, &data),
            ] {
                for key in keys {
                    wrong.push(format!("{what}: {}", describe(items, key)));
                }
            }
            if depth != self.depth {
                wrong.push(format!("queue went from {} to {depth}", self.depth));
            }
        };
        match &case.expect {
            Expect::Refused(code, body) => {
                if (status, &answer) != (*code, body) {
                    wrong.push(format!("expected {code} {body}, got {status} {answer}"));
                }
                nothing_left(&mut wrong);
            }
            Expect::Read(check) => {
                if status != 200 {
                    wrong.push(format!("expected 200, got {status} {answer}"));
                } else if let Err(why) = check(&answer) {
                    wrong.push(why);
                }
                nothing_left(&mut wrong);
            }
            Expect::Replayed(job_id) => {
                if status != 202 || answer["data"]["jobId"] != json!(job_id) {
                    wrong.push(format!(
                        "expected 202 for job {job_id}, got {status} {answer}"
                    ));
                }
                nothing_left(&mut wrong);
            }
            Expect::Accepted {
                tenant,
                users,
                tasks,
            } => {
                let job_id = answer["data"]["jobId"].as_str().unwrap_or("").to_owned();
                let well_formed = job_id.len() == 20
                    && job_id.bytes().all(|b| b.is_ascii_alphanumeric())
                    && answer
                        == json!({"status": "success",
                                  "message": "Data deletion process has been initiated.",
                                  "data": {"jobId": job_id, "tasksCount": tasks},
                                  "statusCode": 202});
                if status != 202 || !well_formed {
                    wrong.push(format!(
                        "expected 202 with {tasks} tasks, got {status} {answer}"
                    ));
                }
                if !self.jobs.insert(job_id.clone()) {
                    wrong.push(format!("job id {job_id} was handed out before"));
                }
                let job = control.get(&(format!("JOB#{job_id}"), "JOB".to_owned()));
                let job_tenant = job
                    .and_then(|j| j.get("tenant"))
                    .and_then(|t| t.as_s().ok());
                if job_tenant.map(String::as_str) != Some(tenant.as_str()) {
                    wrong.push(format!("job {job_id} is not stored as the caller's"));
                }
                for key in &control_added {
                    let ours = key.0 == format!("JOB#{job_id}")
                        || key.1 == format!("JOB#{job_id}")
                        || key.0.starts_with(&format!("IDEM#{}#", tenant.as_str()));
                    if !ours {
                        wrong.push(format!("control item added: {}", describe(&control, key)));
                    }
                }
                for key in control_removed.iter().chain(&control_changed) {
                    wrong.push(format!(
                        "control item touched: {}",
                        describe(&self.control, key)
                    ));
                }
                let prefix = format!("{}#U#", tenant.as_str());
                for key in &data_added {
                    if !key.0.starts_with(&prefix) || entity_of(&data[key]) != "Tombstone" {
                        wrong.push(format!("data item added: {}", describe(&data, key)));
                    }
                }
                if data_added.len() != *users {
                    wrong.push(format!(
                        "{} items added for {users} users",
                        data_added.len()
                    ));
                }
                for key in data_removed.iter().chain(&data_changed) {
                    wrong.push(format!("data item touched: {}", describe(&self.data, key)));
                }
                if depth != self.depth + users {
                    wrong.push(format!(
                        "queue went from {} to {depth} for {users} users",
                        self.depth
                    ));
                }
            }
        }
        self.record(&case.name, wrong);
        self.control = control;
        self.data = data;
        self.depth = depth;
        answer
    }
}

/// A status answer's data must say the job completed.
fn completed(answer: &Value) -> Result<(), String> {
    let data = &answer["result"]["data"];
    if data["isDeleteCompleted"] == true
        && data["jobStatus"] == "completed"
        && data["tasksLeft"] == 0
    {
        Ok(())
    } else {
        Err(format!("expected a completed job, got {answer}"))
    }
}

/// An export page must hold some of `mark`'s data in every core array and nothing of another
/// tenant's marks.
fn exports_only(mark: &'static str) -> AnswerCheck {
    Box::new(move |answer| {
        let data = &answer["result"]["data"];
        let text = answer.to_string();
        let foreign = [A_MARK, B_MARK, C_MARK]
            .into_iter()
            .filter(|m| *m != mark)
            .find(|m| text.contains(m));
        let empty = ["comments", "reactions", "recordings", "notifications"]
            .into_iter()
            .find(|s| data[s].as_array().is_none_or(Vec::is_empty));
        match (foreign, empty) {
            (Some(m), _) => Err(format!("export shows {m}'s data: {answer}")),
            (None, Some(s)) => Err(format!("export has no {s}: {answer}")),
            (None, None) if !text.contains(mark) => Err(format!("export lacks {mark}: {answer}")),
            _ => Ok(()),
        }
    })
}

/// An export page must be empty, with no next page.
fn exports_nothing(answer: &Value) -> Result<(), String> {
    let result = &answer["result"];
    let data = result["data"].as_object();
    let empty = data.is_some_and(|d| !d.is_empty() && d.values().all(|v| v == &json!([])));
    if empty && result["nextPageToken"].is_null() {
        Ok(())
    } else {
        Err(format!("expected an empty export, got {answer}"))
    }
}

/// A job id with the case of every letter swapped: well formed, and not the job.
fn swapped_case(job_id: &str) -> String {
    job_id
        .chars()
        .map(|c| {
            if c.is_ascii_uppercase() {
                c.to_ascii_lowercase()
            } else {
                c.to_ascii_uppercase()
            }
        })
        .collect()
}

#[tokio::test]
async fn no_caller_reaches_another_tenants_jobs_or_data() {
    let env = TestEnv::new().await;
    let a = env.add_tenant(A_KEY, A_TOKEN).await;
    let b = env.add_tenant(B_KEY, B_TOKEN).await;
    let c = env.add_tenant(C_KEY, C_TOKEN).await;
    env.seed(&a, &world(A_MARK, "👍")).await;
    env.seed(&b, &world(B_MARK, "🎉")).await;
    env.seed(&c, &world(C_MARK, "👀")).await;

    let mut matrix = Matrix::new(&env).await;
    let a_creds = || headers(A_KEY, A_TOKEN);
    let b_creds = || headers(B_KEY, B_TOKEN);
    let job_id = |answer: &Value| answer["data"]["jobId"].as_str().unwrap_or("").to_owned();

    // C starts a job over ids A erases too, then its key is revoked: the job runs on.
    let answer = matrix
        .run(case(
            "C starts a job before its key is revoked",
            DELETE,
            headers(C_KEY, C_TOKEN),
            json!({"data": {"userIds": ["u1", "u10"]}}).to_string(),
            Expect::Accepted {
                tenant: c.clone(),
                users: 2,
                tasks: 18,
            },
        ))
        .await;
    let job_c = job_id(&answer);
    assert!(env
        .control
        .revoke_tenant(&erasure::domain::ids::ApiKey::parse(C_KEY).unwrap())
        .await
        .unwrap());
    matrix.refresh().await;

    // -----------------------------------------------------------------------------------------
    // A erases colliding users; B (same ids) and A's other users must not move.
    // -----------------------------------------------------------------------------------------
    let a_before = tenant_items(&env, &a).await;
    let b_before = tenant_items(&env, &b).await;
    let answer = matrix
        .run(case(
            "A erases u1, a key-shaped id and a 256-byte id",
            DELETE,
            a_creds(),
            json!({"data": {"userIds": erased_everywhere()}}).to_string(),
            Expect::Accepted {
                tenant: a.clone(),
                users: 3,
                tasks: 27,
            },
        ))
        .await;
    let job_a = job_id(&answer);
    let answer = matrix
        .run(case(
            "A erases u10 in org1 only",
            DELETE,
            a_creds(),
            json!({"data": {"userIds": [SCOPED_USER], "organizationIds": [SCOPED_ORG]}})
                .to_string(),
            Expect::Accepted {
                tenant: a.clone(),
                users: 1,
                tasks: 8,
            },
        ))
        .await;
    let job_a_scoped = job_id(&answer);
    env.drain(&env.worker).await;
    matrix.refresh().await;

    let b_after = tenant_items(&env, &b).await;
    let (added, removed, changed) = diff(&b_before, &b_after);
    let mut wrong: Vec<String> = vec![];
    wrong.extend(
        added
            .iter()
            .map(|k| format!("added {}", describe(&b_after, k))),
    );
    wrong.extend(
        removed
            .iter()
            .map(|k| format!("removed {}", describe(&b_before, k))),
    );
    wrong.extend(
        changed
            .iter()
            .map(|k| format!("changed {}", describe(&b_after, k))),
    );
    matrix.check(
        "B's data, under the same ids, after A's and C's erasures",
        wrong,
    );

    let (model, dropped) = model_after_erasure(&a, &a_before);
    let mut wrong: Vec<String> = vec![];
    for user in erased_everywhere()
        .into_iter()
        .chain([SCOPED_USER.to_owned()])
    {
        // The model must have something to remove, or the comparison proves nothing.
        if dropped.get(&user).copied().unwrap_or(0) < 20 {
            wrong.push(format!(
                "the world gives an erased user too little: {dropped:?}"
            ));
        }
    }
    let mut a_after = tenant_items(&env, &a).await;
    let tombstones: BTreeSet<Key> = a_after
        .iter()
        .filter(|(_, item)| entity_of(item) == "Tombstone")
        .map(|(k, _)| k.clone())
        .collect();
    let expected_tombstones: BTreeSet<Key> = erased_everywhere()
        .iter()
        .map(String::as_str)
        .chain([SCOPED_USER])
        .map(|u| {
            let key = tombstone_key(&a, u);
            (key.pk, key.sk)
        })
        .collect();
    if tombstones != expected_tombstones {
        wrong.push(format!(
            "tombstones {tombstones:?}, expected {expected_tombstones:?}"
        ));
    }
    a_after.retain(|k, _| !tombstones.contains(k));
    let (added, removed, changed) = diff(&model, &a_after);
    wrong.extend(
        added
            .iter()
            .map(|k| format!("left over {}", describe(&a_after, k))),
    );
    wrong.extend(
        removed
            .iter()
            .map(|k| format!("lost {}", describe(&model, k))),
    );
    wrong.extend(
        changed
            .iter()
            .map(|k| format!("changed {}", describe(&a_after, k))),
    );
    matrix.check(
        "A's data after erasing exactly its erased users, colliding ids kept",
        wrong,
    );

    // -----------------------------------------------------------------------------------------
    // The request matrix.
    // -----------------------------------------------------------------------------------------
    // B's own job, over the case variant of an id A erased: the other tenant's job below.
    let answer = matrix
        .run(case(
            "B starts its own job",
            DELETE,
            b_creds(),
            json!({"data": {"userIds": ["U1"]}}).to_string(),
            Expect::Accepted {
                tenant: b.clone(),
                users: 1,
                tasks: 9,
            },
        ))
        .await;
    let job_b = job_id(&answer);

    // Credentials: every mix-up gets the one 401, on every endpoint, whatever the body names.
    let credentials: Vec<(&str, Vec<(String, String)>)> = vec![
        ("no headers", vec![]),
        (
            "A's key alone",
            vec![("x-velt-api-key".into(), A_KEY.into())],
        ),
        (
            "A's token alone",
            vec![("x-velt-auth-token".into(), A_TOKEN.into())],
        ),
        ("an unknown key", headers("iso-key-2", A_TOKEN)),
        ("A's key in capitals", headers("ISO-KEY-1", A_TOKEN)),
        ("an empty key", headers("", A_TOKEN)),
        ("the revoked key", headers(C_KEY, C_TOKEN)),
        ("A's key with B's token", headers(A_KEY, B_TOKEN)),
        ("B's key with A's token", headers(B_KEY, A_TOKEN)),
        (
            "A's key with the revoked key's token",
            headers(A_KEY, C_TOKEN),
        ),
        ("A's key with an empty token", headers(A_KEY, "")),
        (
            "A's key with a prefix of its token",
            headers(A_KEY, "iso-token-"),
        ),
    ];
    for (who, creds) in &credentials {
        for (endpoint, body) in [
            (DELETE, json!({"data": {"userIds": ["u1"]}}).to_string()),
            (STATUS, status_body(&job_b)),
            (EXPORT, export_body("org1", "u10")),
        ] {
            matrix
                .run(case(
                    format!("{who} on {endpoint}"),
                    endpoint,
                    creds.clone(),
                    body,
                    Expect::Refused(401, error("UNAUTHENTICATED", UNAUTHENTICATED)),
                ))
                .await;
        }
    }

    // Job ids: another tenant's job looks exactly like no job; key-shaped ids are refused.
    let not_found = || Expect::Refused(404, error("NOT_FOUND", "job not found"));
    let bad_job_id = || Expect::Refused(400, error("INVALID_ARGUMENT", BAD_JOB_ID));
    assert_ne!(swapped_case(&job_a), job_a, "a job id with letters");
    let job_ids = [
        (
            "A asks for a job no one has",
            a_creds(),
            "AAAAAAAAAAAAAAAAAAAA".to_owned(),
        ),
        ("A asks for B's job", a_creds(), job_b.clone()),
        (
            "A asks for the revoked tenant's job",
            a_creds(),
            job_c.clone(),
        ),
        ("B asks for A's job", b_creds(), job_a.clone()),
        ("B asks for A's scoped job", b_creds(), job_a_scoped.clone()),
        (
            "B asks for the revoked tenant's job",
            b_creds(),
            job_c.clone(),
        ),
        (
            "A asks for its job in swapped case",
            a_creds(),
            swapped_case(&job_a),
        ),
    ];
    for (name, creds, job_id) in job_ids {
        matrix
            .run(case(name, STATUS, creds, status_body(&job_id), not_found()))
            .await;
    }
    let shaped = [
        format!("JOB#{job_b}"),
        format!("../{}", &job_b[3..]),
        format!("../../{job_b}"),
        format!("{job_b}#"),
        format!("OPEN#0#JOB#{job_b}"),
        format!("T#{}", &job_b[2..]),
        format!(" {}", &job_b[1..]),
        job_b[..19].to_owned(),
        format!("{job_b}A"),
        "é".repeat(20),
        "A".repeat(10_000),
        String::new(),
    ];
    for job_id in &shaped {
        matrix
            .run(case(
                format!(
                    "A asks for job id {:?}",
                    job_id.chars().take(24).collect::<String>()
                ),
                STATUS,
                a_creds(),
                status_body(job_id),
                bad_job_id(),
            ))
            .await;
    }
    matrix
        .run(case(
            "A names B's key in the status body",
            STATUS,
            a_creds(),
            json!({"data": {"jobId": job_b, "apiKey": B_KEY}}).to_string(),
            Expect::Refused(400, error("INVALID_ARGUMENT", "unknown field data.apiKey")),
        ))
        .await;
    matrix
        .run(case(
            "A names B's key beside the data",
            STATUS,
            a_creds(),
            json!({"data": {"jobId": job_b}, "tenant": B_KEY}).to_string(),
            Expect::Refused(400, error("INVALID_ARGUMENT", "unknown field tenant")),
        ))
        .await;
    matrix
        .run(case(
            "A asks for a numeric job id",
            STATUS,
            a_creds(),
            r#"{"data":{"jobId":12345678901234567890}}"#,
            Expect::Refused(400, error("INVALID_ARGUMENT", "jobId must be a string")),
        ))
        .await;
    matrix
        .run(case(
            "A asks for its own job",
            STATUS,
            a_creds(),
            status_body(&job_a),
            Expect::Read(Box::new(completed)),
        ))
        .await;
    matrix
        .run(case(
            "A asks for its own scoped job",
            STATUS,
            a_creds(),
            status_body(&job_a_scoped),
            Expect::Read(Box::new(completed)),
        ))
        .await;
    matrix
        .run(case(
            "B asks for its own job",
            STATUS,
            b_creds(),
            status_body(&job_b),
            Expect::Read(Box::new(|answer| {
                let data = &answer["result"]["data"];
                (data["jobStatus"] == "queued" && data["tasksLeft"] == 9)
                    .then_some(())
                    .ok_or_else(|| format!("expected B's queued job, got {answer}"))
            })),
        ))
        .await;

    // Exports: each tenant sees its own data under the shared ids; A's erasure emptied only A's.
    let long_erased = erased_everywhere()[2].clone();
    let exports = [
        (
            "A exports its erased u1",
            a_creds(),
            "org1",
            "u1",
            Expect::Read(Box::new(exports_nothing)),
        ),
        (
            "B exports its u1",
            b_creds(),
            "org1",
            "u1",
            Expect::Read(exports_only(B_MARK)),
        ),
        (
            "A exports u10 where it was erased",
            a_creds(),
            SCOPED_ORG,
            SCOPED_USER,
            Expect::Read(Box::new(exports_nothing)),
        ),
        (
            "A exports u10 in org10",
            a_creds(),
            "org10",
            SCOPED_USER,
            Expect::Read(exports_only(A_MARK)),
        ),
        (
            "A exports u1# in org1#",
            a_creds(),
            "org1#",
            "u1#",
            Expect::Read(exports_only(A_MARK)),
        ),
        (
            "B exports the 256-byte id A erased",
            b_creds(),
            "_",
            long_erased.as_str(),
            Expect::Read(exports_only(B_MARK)),
        ),
    ];
    for (name, creds, org, user, expect) in exports {
        matrix
            .run(case(name, EXPORT, creds, export_body(org, user), expect))
            .await;
    }
    matrix
        .run(case(
            "A names B's key in the export body",
            EXPORT,
            a_creds(),
            json!({"data": {"organizationId": "org1", "userId": "u1", "apiKey": B_KEY}})
                .to_string(),
            Expect::Refused(400, error("INVALID_ARGUMENT", "unknown field data.apiKey")),
        ))
        .await;

    // Limits: 100 users × 100 organizations, every id 256 bytes, in a body of exactly 64 KiB.
    let limit_users: Vec<String> = (0..100)
        .map(|i| id_of_bytes(&format!("lim-u{i:03}#/"), 256))
        .collect();
    let limit_orgs: Vec<String> = (0..100)
        .map(|i| id_of_bytes(&format!("lim-o{i:03}#/"), 256))
        .collect();
    let padded = |users: &[String], orgs: &[String], bytes: usize| -> String {
        let body = json!({"data": {"userIds": users, "organizationIds": orgs}}).to_string();
        assert!(body.len() <= bytes, "{} bytes", body.len());
        format!("{body}{}", " ".repeat(bytes - body.len()))
    };
    let at_limit = padded(&limit_users, &limit_orgs, 64 * 1024);
    let bad = |message: &str| Expect::Refused(400, error("INVALID_ARGUMENT", message));
    let mut one_user_more = limit_users.clone();
    one_user_more.push(id_of_bytes("lim-u100#/", 200));
    let mut one_org_more = limit_orgs.clone();
    one_org_more.push(id_of_bytes("lim-o100#/", 200));
    let mut user_too_long = limit_users.clone();
    user_too_long[99] = id_of_bytes("lim-u099#/", 257);
    let mut org_too_long = limit_orgs.clone();
    org_too_long[99] = id_of_bytes("lim-o099#/", 257);
    let limits = [
        (
            "100 users × 100 organizations of 256 bytes in 64 KiB",
            at_limit.clone(),
            Expect::Accepted {
                tenant: a.clone(),
                users: 100,
                tasks: 800,
            },
        ),
        (
            "one byte over 64 KiB",
            format!("{at_limit} "),
            Expect::Refused(
                413,
                error("INVALID_ARGUMENT", "body must be at most 64 KiB"),
            ),
        ),
        (
            "101 users",
            json!({"data": {"userIds": one_user_more, "organizationIds": limit_orgs}}).to_string(),
            bad("userIds must contain between 1 and 100 ids"),
        ),
        (
            "101 organizations",
            json!({"data": {"userIds": limit_users, "organizationIds": one_org_more}}).to_string(),
            bad("organizationIds must contain between 0 and 100 ids"),
        ),
        (
            "a user id of 257 bytes",
            json!({"data": {"userIds": user_too_long, "organizationIds": limit_orgs}}).to_string(),
            bad("userIds[99] must be at most 256 bytes"),
        ),
        (
            "an organization id of 257 bytes",
            json!({"data": {"userIds": limit_users, "organizationIds": org_too_long}}).to_string(),
            bad("organizationIds[99] must be at most 256 bytes"),
        ),
        (
            "101 copies of one user",
            json!({"data": {"userIds": vec!["u1"; 101]}}).to_string(),
            bad("userIds must contain between 1 and 100 ids"),
        ),
        (
            "a user id with the reference key's NUL separator",
            json!({"data": {"userIds": ["u1\u{0}u10"]}}).to_string(),
            bad("userIds[0] must not contain control characters"),
        ),
        (
            "an empty user id",
            json!({"data": {"userIds": [""]}}).to_string(),
            bad("userIds[0] must not be empty"),
        ),
        (
            "B's key named in the delete body",
            json!({"data": {"userIds": ["u1"], "apiKey": B_KEY}}).to_string(),
            bad("unknown field data.apiKey"),
        ),
    ];
    for (name, body, expect) in limits {
        matrix
            .run(case(
                format!("A sends {name}"),
                DELETE,
                a_creds(),
                body,
                expect,
            ))
            .await;
    }

    // Idempotency keys are the tenant's own: B reusing A's key gets a job of its own.
    let with_key = |mut creds: Vec<(String, String)>| {
        creds.push(("idempotency-key".into(), "shared-idempotency-key".into()));
        creds
    };
    let same_body = json!({"data": {"userIds": ["nobody-yet"]}}).to_string();
    let first = matrix
        .run(case(
            "A binds an idempotency key",
            DELETE,
            with_key(a_creds()),
            same_body.clone(),
            Expect::Accepted {
                tenant: a.clone(),
                users: 1,
                tasks: 9,
            },
        ))
        .await;
    let job_idem_a = job_id(&first);
    matrix
        .run(case(
            "B sends A's idempotency key and body",
            DELETE,
            with_key(b_creds()),
            same_body.clone(),
            Expect::Accepted {
                tenant: b.clone(),
                users: 1,
                tasks: 9,
            },
        ))
        .await;
    matrix
        .run(case(
            "A retries its idempotency key",
            DELETE,
            with_key(a_creds()),
            same_body,
            Expect::Replayed(job_idem_a),
        ))
        .await;

    println!(
        "isolation: {} cases, {} leaks (B's {} items compared before and after, A's {} against \
         its model; {} users × {} organizations per tenant)",
        matrix.tried,
        matrix.failed,
        b_before.len(),
        a_before.len(),
        users().len(),
        organizations().len()
    );
    assert!(matrix.failures.is_empty(), "{}", matrix.failures.join("\n"));
}
