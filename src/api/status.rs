//! `POST /v2/users/data/delete/status`: where a job stands, with the evidence of its tasks.

use http::StatusCode;
use serde_json::{json, Value};

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
        let job = match self.control.get_job(&request.job_id).await? {
            Some(job) if job.belongs_to(tenant) => job,
            _ => return Err(ApiError::NotFound("job not found")),
        };
        Ok((
            StatusCode::OK,
            json!({"result": {
                "status": "success",
                "message": "Data fetched successfully.",
                "data": job.status_data(),
            }}),
        ))
    }
}
