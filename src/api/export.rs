//! `POST /v2/users/data/get`: one page of a user's data in one organization (right of access,
//! CONTRACT §1.4). The store reads it through the user's reference items; this layer parses the
//! request, opens and seals the page token, and shapes Velt's answer.

use http::StatusCode;
use serde_json::Value;

use super::answers::{json_body, ExportResult, Fetched, FETCHED, SUCCESS};
use super::page_token::{self, Scope};
use super::{Api, ApiError};
use crate::domain::export::parse_export;
use crate::domain::request::InvalidRequest;
use crate::domain::tenant::Tenant;
use crate::store::export::{Cursors, ExportError};

impl From<ExportError> for ApiError {
    fn from(error: ExportError) -> Self {
        match error {
            ExportError::Dynamo(inner) => inner.into(),
            ExportError::BadCursors => invalid_token(),
        }
    }
}

fn invalid_token() -> ApiError {
    ApiError::InvalidArgument(InvalidRequest(page_token::InvalidToken.to_string()))
}

impl Api {
    pub(super) async fn export(
        &self,
        tenant: &Tenant,
        body: &[u8],
    ) -> Result<(StatusCode, Value), ApiError> {
        let request = parse_export(body)?;
        let scope = Scope {
            tenant,
            organization: &request.organization_id,
            user: &request.user_id,
        };
        let key = &self.config.export_token_key;
        let cursors = match &request.page_token {
            Some(token) => page_token::open(key, &scope, token).map_err(|_| invalid_token())?,
            None => Cursors::start(),
        };
        let page = self
            .data
            .export_page(tenant, &request.user_id, &request.organization_id, &cursors)
            .await?;
        let next_page_token = page.next.map(|next| page_token::seal(key, &scope, &next));
        let answer = Fetched {
            result: ExportResult {
                status: SUCCESS,
                message: FETCHED,
                data: page.data,
                next_page_token,
            },
        };
        Ok((StatusCode::OK, json_body(&answer)))
    }
}
