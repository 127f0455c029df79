//! The export request (`POST /v2/users/data/get`, CONTRACT §1.4) turned into domain types.

use serde_json::Value;

use super::ids::{OrganizationId, UserId};
use super::request::{data_object, refuse_unknown, InvalidRequest};

/// The longest page token accepted; the tokens this service issues are far shorter.
pub const MAX_PAGE_TOKEN_BYTES: usize = 8 * 1024;

/// A validated export body. The page token is still sealed: the API opens it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportRequest {
    pub organization_id: OrganizationId,
    pub user_id: UserId,
    pub page_token: Option<String>,
}

fn id<T>(
    field: &str,
    value: Option<&Value>,
    parse: impl Fn(String) -> Result<T, super::ids::IdError>,
) -> Result<T, InvalidRequest> {
    match value {
        None | Some(Value::Null) => Err(InvalidRequest(format!("{field} is required"))),
        Some(Value::String(raw)) => {
            parse(raw.clone()).map_err(|e| InvalidRequest(format!("{field} {e}")))
        }
        Some(_) => Err(InvalidRequest(format!("{field} must be a string"))),
    }
}

/// Parses an export body: `organizationId` and `userId` required, `pageToken` optional.
pub fn parse_export(body: &[u8]) -> Result<ExportRequest, InvalidRequest> {
    let data = data_object(body)?;
    refuse_unknown(&data, &["organizationId", "userId", "pageToken"])?;
    let organization_id = id(
        "organizationId",
        data.get("organizationId"),
        OrganizationId::parse,
    )?;
    let user_id = id("userId", data.get("userId"), UserId::parse)?;
    let page_token = match data.get("pageToken") {
        None | Some(Value::Null) => None,
        Some(Value::String(token)) if !token.is_empty() && token.len() <= MAX_PAGE_TOKEN_BYTES => {
            Some(token.clone())
        }
        Some(_) => return Err(InvalidRequest("pageToken is not valid".into())),
    };
    Ok(ExportRequest {
        organization_id,
        user_id,
        page_token,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(body: &str) -> String {
        parse_export(body.as_bytes()).unwrap_err().0
    }

    #[test]
    fn both_ids_are_required_and_the_token_is_optional() {
        let r = parse_export(br#"{"data":{"organizationId":"o#1","userId":"u/1"}}"#).unwrap();
        assert_eq!(r.organization_id.as_str(), "o#1");
        assert_eq!(r.user_id.as_str(), "u/1");
        assert_eq!(r.page_token, None);
        let r = parse_export(br#"{"data":{"organizationId":"o","userId":"u","pageToken":null}}"#)
            .unwrap();
        assert_eq!(r.page_token, None);
    }

    #[test]
    fn every_refusal_names_its_field() {
        assert_eq!(
            message(r#"{"data":{"userId":"u"}}"#),
            "organizationId is required"
        );
        assert_eq!(
            message(r#"{"data":{"organizationId":"o"}}"#),
            "userId is required"
        );
        assert_eq!(
            message(r#"{"data":{"organizationId":"o","userId":1}}"#),
            "userId must be a string"
        );
        assert_eq!(
            message(r#"{"data":{"organizationId":"","userId":"u"}}"#),
            "organizationId must not be empty"
        );
        assert_eq!(
            message(r#"{"data":{"organizationId":"o","userId":"u","pageToken":7}}"#),
            "pageToken is not valid"
        );
        assert_eq!(
            message(r#"{"data":{"organizationId":"o","userId":"u","userIds":["u"]}}"#),
            "unknown field data.userIds"
        );
    }
}
