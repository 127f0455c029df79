//! Request bodies turned into domain types; every refusal names the field at fault.

use serde_json::{Map, Value};

use super::ids::{IdError, JobId, OrganizationId, UserId};

/// The most `userIds` (and `organizationIds`) one request may carry.
pub const MAX_IDS_PER_REQUEST: usize = 100;

/// A request the contract refuses with 400, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidRequest(pub String);

/// A validated `POST /v2/users/data/delete` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteRequest {
    /// Distinct users, in the order first given.
    pub user_ids: Vec<UserId>,
    /// Distinct organizations; empty means every organization of the tenant.
    pub organization_ids: Vec<OrganizationId>,
    pub dry_run: bool,
}

impl DeleteRequest {
    pub fn is_scoped(&self) -> bool {
        !self.organization_ids.is_empty()
    }
}

/// A validated `POST /v2/users/data/delete/status` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusRequest {
    pub job_id: JobId,
}

fn invalid(message: impl Into<String>) -> InvalidRequest {
    InvalidRequest(message.into())
}

/// The `data` object of a body, refusing anything else at the top level.
pub(crate) fn data_object(body: &[u8]) -> Result<Map<String, Value>, InvalidRequest> {
    let value: Value =
        serde_json::from_slice(body).map_err(|_| invalid("body must be valid JSON"))?;
    let Value::Object(mut top) = value else {
        return Err(invalid("body must be a JSON object"));
    };
    if let Some(unknown) = top.keys().find(|k| *k != "data") {
        return Err(invalid(format!("unknown field {unknown}")));
    }
    match top.remove("data") {
        Some(Value::Object(data)) => Ok(data),
        Some(_) => Err(invalid("data must be an object")),
        None => Err(invalid("data is required")),
    }
}

pub(crate) fn refuse_unknown(
    data: &Map<String, Value>,
    known: &[&str],
) -> Result<(), InvalidRequest> {
    match data.keys().find(|k| !known.contains(&k.as_str())) {
        Some(unknown) => Err(invalid(format!("unknown field data.{unknown}"))),
        None => Ok(()),
    }
}

/// Parses a list of ids, folding duplicates, within `min..=MAX_IDS_PER_REQUEST` entries.
fn id_list<T: PartialEq>(
    field: &str,
    value: &Value,
    min: usize,
    parse: impl Fn(String) -> Result<T, IdError>,
) -> Result<Vec<T>, InvalidRequest> {
    let Value::Array(items) = value else {
        return Err(invalid(format!("{field} must be an array of strings")));
    };
    if items.len() < min || items.len() > MAX_IDS_PER_REQUEST {
        return Err(invalid(format!(
            "{field} must contain between {min} and {MAX_IDS_PER_REQUEST} ids"
        )));
    }
    let mut ids: Vec<T> = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let Value::String(raw) = item else {
            return Err(invalid(format!("{field}[{index}] must be a string")));
        };
        let id = parse(raw.clone()).map_err(|e| invalid(format!("{field}[{index}] {e}")))?;
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    Ok(ids)
}

/// Parses a delete body: `userIds` 1–100, `organizationIds` 0–100, `dryRun` optional.
pub fn parse_delete(body: &[u8]) -> Result<DeleteRequest, InvalidRequest> {
    let data = data_object(body)?;
    refuse_unknown(&data, &["userIds", "organizationIds", "dryRun"])?;
    let user_ids = match data.get("userIds") {
        Some(value) => id_list("userIds", value, 1, UserId::parse)?,
        None => return Err(invalid("userIds is required")),
    };
    let organization_ids = match data.get("organizationIds") {
        None | Some(Value::Null) => Vec::new(),
        Some(value) => id_list("organizationIds", value, 0, OrganizationId::parse)?,
    };
    let dry_run = match data.get("dryRun") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(invalid("dryRun must be a boolean")),
    };
    Ok(DeleteRequest {
        user_ids,
        organization_ids,
        dry_run,
    })
}

/// Parses a status body: `jobId` of 20 alphanumerics.
pub fn parse_status(body: &[u8]) -> Result<StatusRequest, InvalidRequest> {
    let data = data_object(body)?;
    refuse_unknown(&data, &["jobId"])?;
    match data.get("jobId") {
        Some(Value::String(raw)) => JobId::parse(raw)
            .map(|job_id| StatusRequest { job_id })
            .map_err(|e| invalid(format!("jobId {e}"))),
        Some(_) => Err(invalid("jobId must be a string")),
        None => Err(invalid("jobId is required")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(body: &str) -> String {
        parse_delete(body.as_bytes()).unwrap_err().0
    }

    #[test]
    fn duplicates_are_folded_in_first_seen_order() {
        let r = parse_delete(br#"{"data":{"userIds":["b","a","b"],"organizationIds":["o","o"]}}"#)
            .unwrap();
        let users: Vec<_> = r.user_ids.iter().map(|u| u.as_str()).collect();
        assert_eq!(users, ["b", "a"]);
        assert_eq!(r.organization_ids.len(), 1);
        assert!(!r.dry_run);
    }

    #[test]
    fn every_refusal_names_its_field() {
        assert_eq!(message("{"), "body must be valid JSON");
        assert_eq!(message("[]"), "body must be a JSON object");
        assert_eq!(message("{}"), "data is required");
        assert_eq!(message(r#"{"data":{}}"#), "userIds is required");
        assert_eq!(
            message(r#"{"data":{"userIds":[]}}"#),
            "userIds must contain between 1 and 100 ids"
        );
        assert_eq!(
            message(r#"{"data":{"userIds":"u"}}"#),
            "userIds must be an array of strings"
        );
        assert_eq!(
            message(r#"{"data":{"userIds":[1]}}"#),
            "userIds[0] must be a string"
        );
        assert_eq!(
            message(r#"{"data":{"userIds":[""]}}"#),
            "userIds[0] must not be empty"
        );
        assert_eq!(
            message(r#"{"data":{"userIds":["u"],"organisationIds":["o"]}}"#),
            "unknown field data.organisationIds"
        );
        assert_eq!(
            message(r#"{"data":{"userIds":["u"],"dryRun":"yes"}}"#),
            "dryRun must be a boolean"
        );
        assert_eq!(
            message(r#"{"data":{"userIds":["u"],"organizationIds":[null]}}"#),
            "organizationIds[0] must be a string"
        );
    }

    #[test]
    fn limits_are_counted_before_folding() {
        let ids: Vec<String> = (0..101).map(|i| format!("\"u{i}\"")).collect();
        let body = format!(r#"{{"data":{{"userIds":[{}]}}}}"#, ids.join(","));
        assert_eq!(message(&body), "userIds must contain between 1 and 100 ids");
        let ids: Vec<String> = (0..100).map(|i| format!("\"u{i}\"")).collect();
        let body = format!(r#"{{"data":{{"userIds":[{}]}}}}"#, ids.join(","));
        assert_eq!(parse_delete(body.as_bytes()).unwrap().user_ids.len(), 100);
    }

    #[test]
    fn status_requests_need_a_well_formed_job_id() {
        assert!(parse_status(br#"{"data":{"jobId":"AAAAAAAAAAAAAAAAAAAA"}}"#).is_ok());
        assert_eq!(
            parse_status(br#"{"data":{"jobId":"nope"}}"#).unwrap_err().0,
            "jobId must be 20 characters from A-Z, a-z and 0-9"
        );
        assert_eq!(
            parse_status(br#"{"data":{}}"#).unwrap_err().0,
            "jobId is required"
        );
    }
}
