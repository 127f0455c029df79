//! The API's success answers as types, each shape of the contract written once: the delete
//! family's `{status, message, data, statusCode}` and the fetch family's `{result: {…}}`.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::domain::ids::JobId;

/// An answer of `POST /v2/users/data/delete`: a job started, or a dry run.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Started<T> {
    pub status: &'static str,
    pub message: &'static str,
    pub data: T,
    pub status_code: u16,
}

/// The `data` of a 202.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobStarted<'a> {
    pub job_id: &'a JobId,
    pub tasks_count: usize,
}

/// The `data` of a dry run: per feature, the items a real run would remove or rewrite.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DryRun {
    pub dry_run: bool,
    pub tasks_count: usize,
    pub items: BTreeMap<&'static str, u64>,
}

/// An answer of the status and export endpoints: `{"result": {…}}`.
#[derive(Debug, Serialize)]
pub struct Fetched<T> {
    pub result: T,
}

/// The `result` of the status endpoint.
#[derive(Debug, Serialize)]
pub struct StatusResult<T> {
    pub status: &'static str,
    pub message: &'static str,
    pub data: T,
}

/// The `result` of an export page: `nextPageToken` is `null` on the last page.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportResult<T> {
    pub status: &'static str,
    pub message: &'static str,
    pub data: T,
    pub next_page_token: Option<String>,
}

/// What every success says in `status`.
pub const SUCCESS: &str = "success";
/// What the fetch family says in `message` (Velt's words).
pub const FETCHED: &str = "Data fetched successfully.";

/// `answer` as the JSON body it is.
pub fn json_body(answer: &impl Serialize) -> serde_json::Value {
    serde_json::to_value(answer).expect("answers serialize")
}
