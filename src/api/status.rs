//! `POST /v2/users/data/delete/status`: where a job stands, with the evidence of its tasks.

use http::StatusCode;
use serde_json::Value;

use super::answers::{json_body, Fetched, StatusResult, FETCHED, SUCCESS};
use super::{Api, ApiError};
use crate::domain::request::parse_status;
use crate::domain::tenant::Tenant;

impl Api {
    pub(super) async fn status(
        &self,
        tenant: &Tenant,
        body: &[u8],
    ) -> Result<(StatusCode, Value), ApiError> {
        let request = parse_status(body)?;
        // Another tenant's job answers exactly like a job that does not exist.
        let (job, items) = match self.control.job_report(&request.job_id).await? {
            Some((job, items)) if job.belongs_to(tenant) => (job, items),
            _ => return Err(ApiError::NotFound("job not found")),
        };
        let answer = Fetched {
            result: StatusResult {
                status: SUCCESS,
                message: FETCHED,
                data: job.status_data(&items),
            },
        };
        Ok((StatusCode::OK, json_body(&answer)))
    }
}
