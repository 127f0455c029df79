//! Logs never carry a user's id, email or name, nor a tenant's token: a whole job, its refusals
//! and its failures are logged at trace level, through the subscriber the binaries install (the
//! SDK's payload lines held back), into a buffer that is then searched.

mod common;

use common::{Buffer, TestEnv, API_KEY, AUTH_TOKEN};
use erasure::telemetry::LogSettings;

const WORLD: &str = include_str!("fixtures/contract-example.json");
// Ids no random job id, request id or hash in a log line could contain by chance.
const ADA: &str = "ada-lovelace-0001";
const GRACE: &str = "grace-hopper-0002";

#[tokio::test]
async fn a_whole_job_logs_no_user_id_email_name_or_token() {
    let env = TestEnv::new().await;
    let world = WORLD.replace("u1", ADA).replace("u2", GRACE);
    env.seed(&env.tenant(), &world).await;
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let settings = LogSettings {
        format: Some("JSON".into()),
        level: Some("TRACE".into()),
        rust_log: None,
    };
    let subscriber = erasure::telemetry::subscriber(&settings, move || writer.clone());
    let _guard = tracing::subscriber::set_default(subscriber);

    let job_id = env
        .start_job(&format!(r#"{{"data":{{"userIds":["{ADA}","{GRACE}"]}}}}"#))
        .await;
    // A refused login, a malformed body and a failing task are logged too.
    env.request(
        "POST",
        "/v2/users/data/delete",
        &[
            ("x-velt-api-key", API_KEY),
            ("x-velt-auth-token", "wrong-token"),
        ],
        &format!(r#"{{"data":{{"userIds":["{ADA}"]}}}}"#),
    )
    .await;
    env.post(
        "/v2/users/data/delete",
        &format!(r#"{{"data":{{"userIds":["{ADA}",""]}}}}"#),
    )
    .await;
    env.deliver_once(&env.broken_worker()).await;
    env.drain(&env.worker).await;
    assert_eq!(env.status(&job_id).await["jobStatus"], "completed");

    let logs = buffer.text();
    assert!(
        logs.contains("task done and verified"),
        "the job was logged"
    );
    assert!(logs.contains("task failed"), "the failure was logged");
    assert!(
        logs.contains("authentication refused"),
        "the refusal was logged"
    );
    for secret in [
        ADA,
        GRACE,
        "Ada Lovelace",
        "ada@example.com",
        "Grace Hopper",
        "grace@example.com",
        AUTH_TOKEN,
        "wrong-token",
    ] {
        assert!(!logs.contains(secret), "logs contain {secret}");
    }
}
