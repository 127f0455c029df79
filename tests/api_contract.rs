//! Every row of CONTRACT §1.3 that applies, and the success shapes of §1.1–1.2, through the real
//! handler against dynalite and moto.

mod common;

use common::{TestEnv, API_KEY, AUTH_TOKEN};
use serde_json::json;

const DELETE: &str = "/v2/users/data/delete";
const STATUS: &str = "/v2/users/data/delete/status";

fn error(status: &str, message: &str) -> serde_json::Value {
    json!({"error": {"message": message, "status": status}})
}

#[tokio::test]
async fn a_valid_request_gets_exactly_the_compatible_202() {
    let env = TestEnv::new().await;
    let (status, answer) = env
        .post(DELETE, r#"{"data":{"userIds":["u1","u2","u1"]}}"#)
        .await;
    assert_eq!(status, 202);
    let job_id = answer["data"]["jobId"].as_str().unwrap();
    assert_eq!(job_id.len(), 20);
    assert!(job_id.bytes().all(|b| b.is_ascii_alphanumeric()));
    assert_eq!(
        answer,
        json!({"status": "success", "message": "Data deletion process has been initiated.",
               "data": {"jobId": job_id, "tasksCount": 18}, "statusCode": 202})
    );
    assert_eq!(
        env.queue_depth(&env.queue_url).await,
        2,
        "one message per user"
    );
}

#[tokio::test]
async fn a_job_scoped_to_organizations_has_no_profile_task() {
    let env = TestEnv::new().await;
    let (status, answer) = env
        .post(
            DELETE,
            r#"{"data":{"userIds":["u1"],"organizationIds":["org1"]}}"#,
        )
        .await;
    assert_eq!(status, 202);
    assert_eq!(answer["data"]["tasksCount"], 8);
}

#[tokio::test]
async fn the_status_of_a_new_job_is_queued_with_every_task_left() {
    let env = TestEnv::new().await;
    let job_id = env.start_job(r#"{"data":{"userIds":["u1"]}}"#).await;
    let (status, answer) = env
        .post(STATUS, &format!(r#"{{"data":{{"jobId":"{job_id}"}}}}"#))
        .await;
    assert_eq!(status, 200);
    let result = &answer["result"];
    assert_eq!(result["status"], "success");
    assert_eq!(result["message"], "Data fetched successfully.");
    let data = &result["data"];
    assert_eq!(data["isDeleteCompleted"], false);
    assert_eq!(data["tasksLeft"], 9);
    assert_eq!(data["lastTaskCompletedTime"], serde_json::Value::Null);
    assert_eq!(data["jobStatus"], "queued");
    assert_eq!(data["tasksCount"], 9);
}

#[tokio::test]
async fn malformed_bodies_are_400_naming_the_field_and_leave_nothing_behind() {
    let env = TestEnv::new().await;
    let cases = [
        ("not json", "body must be valid JSON"),
        (r#"{"data":{}}"#, "userIds is required"),
        (
            r#"{"data":{"userIds":[]}}"#,
            "userIds must contain between 1 and 100 ids",
        ),
        (r#"{"data":{"userIds":[7]}}"#, "userIds[0] must be a string"),
        (
            r#"{"data":{"userIds":["a\u0001"]}}"#,
            "userIds[0] must not contain control characters",
        ),
        (
            r#"{"data":{"userIds":["u"],"organizationIds":"o"}}"#,
            "organizationIds must be an array of strings",
        ),
        (
            r#"{"data":{"userIds":["u"],"extra":1}}"#,
            "unknown field data.extra",
        ),
    ];
    for (body, message) in cases {
        let (status, answer) = env.post(DELETE, body).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(answer, error("INVALID_ARGUMENT", message), "{body}");
    }
    let ids: Vec<String> = (0..101).map(|i| format!("u{i}")).collect();
    let (status, _) = env
        .post(DELETE, &json!({"data": {"userIds": ids}}).to_string())
        .await;
    assert_eq!(status, 400);
    let long = "x".repeat(257);
    let (status, answer) = env
        .post(DELETE, &json!({"data": {"userIds": [long]}}).to_string())
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        answer["error"]["message"],
        "userIds[0] must be at most 256 bytes"
    );
    assert_eq!(env.queue_depth(&env.queue_url).await, 0);
    let jobs = env.scan(&env.tables.control).await;
    assert!(jobs
        .iter()
        .all(|i| !common::key_of(i).0.starts_with("JOB#")));
    assert!(
        env.scan(&env.tables.data).await.is_empty(),
        "no tombstone either"
    );
}

#[tokio::test]
async fn missing_headers_unknown_keys_and_wrong_tokens_get_one_401() {
    let env = TestEnv::new().await;
    let body = r#"{"data":{"userIds":["u1"]}}"#;
    let expected = error(
        "UNAUTHENTICATED",
        "missing or invalid x-velt-api-key / x-velt-auth-token",
    );
    let attempts: [&[(&str, &str)]; 4] = [
        &[],
        &[("x-velt-api-key", API_KEY)],
        &[
            ("x-velt-api-key", "unknown"),
            ("x-velt-auth-token", AUTH_TOKEN),
        ],
        &[("x-velt-api-key", API_KEY), ("x-velt-auth-token", "wrong")],
    ];
    for headers in attempts {
        let (status, answer) = env.request("POST", DELETE, headers, body).await;
        assert_eq!((status, answer), (401, expected.clone()));
    }
    assert_eq!(env.queue_depth(&env.queue_url).await, 0);
}

#[tokio::test]
async fn headers_match_case_insensitively() {
    let env = TestEnv::new().await;
    let (status, _) = env
        .request(
            "POST",
            DELETE,
            &[
                ("X-Velt-Api-Key", API_KEY),
                ("X-VELT-AUTH-TOKEN", AUTH_TOKEN),
            ],
            r#"{"data":{"userIds":["u1"]}}"#,
        )
        .await;
    assert_eq!(status, 202);
}

#[tokio::test]
async fn unknown_routes_are_404_and_wrong_methods_405() {
    let env = TestEnv::new().await;
    let headers = [
        ("x-velt-api-key", API_KEY),
        ("x-velt-auth-token", AUTH_TOKEN),
    ];
    let (status, answer) = env
        .request("POST", "/v2/users/nothing", &headers, "{}")
        .await;
    assert_eq!((status, answer), (404, error("NOT_FOUND", "no such route")));
    let (status, answer) = env.request("GET", DELETE, &headers, "").await;
    assert_eq!(
        (status, answer),
        (
            405,
            error("INVALID_ARGUMENT", "method not allowed: use POST")
        )
    );
}

#[tokio::test]
async fn a_wrong_method_is_told_the_one_method_allowed() {
    let env = TestEnv::new().await;
    for path in [DELETE, STATUS] {
        let request = http::Request::builder()
            .method("TRACE")
            .uri(path)
            .body(Vec::new())
            .unwrap();
        let response = env.api.handle(request).await;
        assert_eq!(response.status(), 405);
        assert_eq!(response.headers()["allow"], "POST", "RFC 9110 asks for it");
    }
}

#[tokio::test]
async fn unknown_jobs_and_other_tenants_jobs_get_the_same_404() {
    let env = TestEnv::new().await;
    let job_id = env.start_job(r#"{"data":{"userIds":["u1"]}}"#).await;
    env.add_tenant("other-key", "other-token").await;
    let body = format!(r#"{{"data":{{"jobId":"{job_id}"}}}}"#);
    let other = [
        ("x-velt-api-key", "other-key"),
        ("x-velt-auth-token", "other-token"),
    ];
    let (status, theirs) = env.request("POST", STATUS, &other, &body).await;
    let (status_unknown, unknown) = env
        .post(STATUS, r#"{"data":{"jobId":"AAAAAAAAAAAAAAAAAAAA"}}"#)
        .await;
    assert_eq!((status, status_unknown), (404, 404));
    assert_eq!(theirs, unknown);
    assert_eq!(theirs, error("NOT_FOUND", "job not found"));
}

#[tokio::test]
async fn bodies_over_64_kib_are_413() {
    let env = TestEnv::new().await;
    let padding = " ".repeat(64 * 1024);
    let body = format!(r#"{{"data":{{"userIds":["u1"]}}}}{padding}"#);
    let (status, answer) = env.post(DELETE, &body).await;
    assert_eq!(
        (status, answer),
        (
            413,
            error("INVALID_ARGUMENT", "body must be at most 64 KiB")
        )
    );
    assert_eq!(env.queue_depth(&env.queue_url).await, 0);
}

#[tokio::test]
async fn an_idempotent_retry_returns_the_same_job_and_sends_nothing_more() {
    let env = TestEnv::new().await;
    let headers = [
        ("x-velt-api-key", API_KEY),
        ("x-velt-auth-token", AUTH_TOKEN),
        ("idempotency-key", "retry-1"),
    ];
    let (first_status, first) = env
        .request(
            "POST",
            DELETE,
            &headers,
            r#"{"data":{"userIds":["u1","u2"]}}"#,
        )
        .await;
    let (second_status, second) = env
        .request(
            "POST",
            DELETE,
            &headers,
            r#"{"data": {"userIds": ["u1", "u2", "u1"]}}"#,
        )
        .await;
    assert_eq!((first_status, second_status), (202, 202));
    assert_eq!(first, second);
    assert_eq!(env.queue_depth(&env.queue_url).await, 2);
    let (status, answer) = env
        .request("POST", DELETE, &headers, r#"{"data":{"userIds":["u3"]}}"#)
        .await;
    assert_eq!(
        (status, answer),
        (
            422,
            error(
                "INVALID_ARGUMENT",
                "Idempotency-Key was used with a different body"
            )
        )
    );
    assert_eq!(env.queue_depth(&env.queue_url).await, 2);
}

#[tokio::test]
async fn a_malformed_idempotency_key_is_400() {
    let env = TestEnv::new().await;
    let long = "k".repeat(256);
    for key in [long.as_str(), "tab\tkey"] {
        let headers = [
            ("x-velt-api-key", API_KEY),
            ("x-velt-auth-token", AUTH_TOKEN),
            ("idempotency-key", key),
        ];
        let (status, answer) = env
            .request("POST", DELETE, &headers, r#"{"data":{"userIds":["u1"]}}"#)
            .await;
        assert_eq!(
            (status, answer),
            (
                400,
                error(
                    "INVALID_ARGUMENT",
                    "Idempotency-Key must be 1 to 255 printable ASCII characters"
                )
            )
        );
    }
    assert_eq!(env.queue_depth(&env.queue_url).await, 0);
}

#[tokio::test]
async fn without_an_idempotency_key_every_call_makes_a_new_job() {
    let env = TestEnv::new().await;
    let a = env.start_job(r#"{"data":{"userIds":["u1"]}}"#).await;
    let b = env.start_job(r#"{"data":{"userIds":["u1"]}}"#).await;
    assert_ne!(a, b);
}

#[tokio::test]
async fn a_tenant_over_its_rate_limit_gets_429() {
    let env = TestEnv::with_rate_limit(2).await;
    let body = r#"{"data":{"jobId":"AAAAAAAAAAAAAAAAAAAA"}}"#;
    within_one_minute().await;
    assert_eq!(env.post(STATUS, body).await.0, 404);
    assert_eq!(env.post(STATUS, body).await.0, 404);
    let (status, answer) = env.post(STATUS, body).await;
    assert_eq!(
        (status, answer),
        (
            429,
            error(
                "RESOURCE_EXHAUSTED",
                "rate limit exceeded: retry in a minute"
            )
        )
    );
}

/// Waits, when the minute is about to turn, for the next one: the rate limit's window is the
/// clock's minute, and a test's few requests must fall in one.
async fn within_one_minute() {
    let into_minute = erasure::clock::now_ms().rem_euclid(60_000);
    if into_minute > 55_000 {
        tokio::time::sleep(std::time::Duration::from_millis(
            (60_100 - into_minute) as u64,
        ))
        .await;
    }
}

#[tokio::test]
async fn the_rate_limit_counts_users_not_requests() {
    let env = TestEnv::with_rate_limit(5).await;
    let three_users = r#"{"data":{"userIds":["a","b","c"],"dryRun":true}}"#;
    let status = r#"{"data":{"jobId":"AAAAAAAAAAAAAAAAAAAA"}}"#;
    within_one_minute().await;
    assert_eq!(env.post(DELETE, three_users).await.0, 200);
    // 3 + 3 > 5: refused, and the refusal costs nothing.
    let (code, answer) = env.post(DELETE, three_users).await;
    assert_eq!(
        (code, answer["error"]["status"].as_str()),
        (429, Some("RESOURCE_EXHAUSTED"))
    );
    // 3 + 1 + 1 = 5: both admitted; then the sixth unit is refused.
    assert_eq!(env.post(STATUS, status).await.0, 404);
    assert_eq!(env.post(STATUS, status).await.0, 404);
    assert_eq!(env.post(STATUS, status).await.0, 429);
}

#[tokio::test]
async fn wrong_tokens_never_use_up_the_tenants_rate_limit() {
    let env = TestEnv::with_rate_limit(2).await;
    let body = r#"{"data":{"jobId":"AAAAAAAAAAAAAAAAAAAA"}}"#;
    let wrong = [("x-velt-api-key", API_KEY), ("x-velt-auth-token", "wrong")];
    within_one_minute().await;
    // Past their own bucket's limit, wrong tokens are still told 401, never 429.
    for _ in 0..5 {
        assert_eq!(env.request("POST", STATUS, &wrong, body).await.0, 401);
    }
    assert_eq!(env.post(STATUS, body).await.0, 404);
    assert_eq!(env.post(STATUS, body).await.0, 404);
    assert_eq!(env.post(STATUS, body).await.0, 429);
}

#[tokio::test]
async fn a_queue_outage_is_503_and_a_retry_with_the_same_key_finishes_the_job() {
    let env = TestEnv::new().await;
    // SQS down: its endpoint refuses connections. (A queue that does not exist would be a
    // misconfiguration, answered 500.)
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sqs_down = aws_sdk_sqs::Client::from_conf(
        env.sqs
            .config()
            .to_builder()
            .endpoint_url(format!("http://{}", closed.local_addr().unwrap()))
            .build(),
    );
    drop(closed);
    let broken = erasure::api::Api::new(
        env.control.clone(),
        env.data.clone(),
        erasure::queue::TaskQueue::new(sqs_down, &env.queue_url),
        erasure::config::ApiConfig {
            tables: env.tables.clone(),
            task_queue_url: String::new(),
            rate_limit_per_minute: 100,
            job_retention_days: 30,
            export_token_key: erasure::config::ExportTokenKey::parse(
                "export-token-key-for-tests-only-0123456789",
            )
            .unwrap(),
            webhook_queue_url: None,
        },
    );
    let request = |api: &erasure::api::Api| {
        let api = api.clone();
        async move {
            let response = api
                .handle(
                    http::Request::builder()
                        .method("POST")
                        .uri(DELETE)
                        .header("x-velt-api-key", API_KEY)
                        .header("x-velt-auth-token", AUTH_TOKEN)
                        .header("idempotency-key", "outage")
                        .body(br#"{"data":{"userIds":["u1"]}}"#.to_vec())
                        .unwrap(),
                )
                .await;
            let status = response.status().as_u16();
            (
                status,
                serde_json::from_str::<serde_json::Value>(response.body()).unwrap(),
            )
        }
    };
    let (status, answer) = request(&broken).await;
    assert_eq!(
        (status, answer),
        (
            503,
            error("UNAVAILABLE", "a dependency is unavailable: retry later")
        )
    );
    let jobs: Vec<_> = env
        .scan(&env.tables.control)
        .await
        .into_iter()
        .filter(common::is_job_item)
        .collect();
    assert_eq!(
        jobs.len(),
        1,
        "the job exists, marked as not fully enqueued"
    );
    let job_id = jobs[0]["jobId"].as_s().unwrap().clone();
    let status = env.status(&job_id).await;
    assert_eq!(status["fullyEnqueued"], false);
    assert_eq!(status["isDeleteCompleted"], false);

    let (status, answer) = request(&env.api).await;
    assert_eq!(status, 202);
    assert_eq!(answer["data"]["jobId"], job_id.as_str());
    assert_eq!(env.queue_depth(&env.queue_url).await, 1);
    assert_eq!(env.status(&job_id).await["fullyEnqueued"], true);
}

#[tokio::test]
async fn the_users_are_tombstoned_before_the_202_by_hash_only() {
    let env = TestEnv::new().await;
    env.start_job(r#"{"data":{"userIds":["alice@example.com"]}}"#)
        .await;
    let items = env.scan(&env.tables.data).await;
    assert_eq!(items.len(), 1);
    assert_eq!(common::entity_of(&items[0]), "Tombstone");
    let text = format!("{:?}", items[0]);
    assert!(!text.contains("alice"), "{text}");
    let jobs = format!("{:?}", env.scan(&env.tables.control).await);
    assert!(!jobs.contains("alice"), "the job record holds hashes only");
}
