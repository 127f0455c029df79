//! The HTTP surface: routing, authentication, limits, and the two endpoints. Plain `http` types
//! in and out; `lambda` adapts them to API Gateway's events.

mod answers;
mod delete;
mod error;
mod export;
pub mod lambda;
pub mod page_token;
mod status;

pub use error::ApiError;

use http::{HeaderMap, Method, Request, Response, StatusCode};
use serde_json::Value;

use crate::clock::now_ms;
use crate::config::ApiConfig;
use crate::control::ControlStore;
use crate::domain::ids::{ApiKey, IdempotencyKey};
use crate::domain::request::parse_delete;
use crate::domain::tenant::Tenant;
use crate::keys::fingerprint;
use crate::metrics::{Function, Metrics};
use crate::queue::TaskQueue;
use crate::store::DataStore;
use crate::webhook::announce::Announcer;
use crate::webhook::queue::NotificationQueue;

/// The largest body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

const DELETE_PATH: &str = "/v2/users/data/delete";
const STATUS_PATH: &str = "/v2/users/data/delete/status";
const EXPORT_PATH: &str = "/v2/users/data/get";

/// The API's capabilities, built once per cold start.
#[derive(Clone)]
pub struct Api {
    pub(crate) control: ControlStore,
    pub(crate) data: DataStore,
    pub(crate) queue: TaskQueue,
    pub(crate) config: ApiConfig,
    /// How long a dry run may count before it is refused (it reads what the users own).
    pub(crate) dry_run_budget: std::time::Duration,
    /// Where a job the enqueued mark settles is announced; none, the sweep announces it.
    pub(crate) announcer: Option<Announcer>,
    pub(crate) metrics: Metrics,
}

/// A dry run's time: the api's Lambda timeout is 10 s, and the answer must leave before it.
pub const DRY_RUN_BUDGET: std::time::Duration = std::time::Duration::from_secs(7);

enum Route {
    Delete,
    Status,
    Export,
}

impl Api {
    pub fn new(
        control: ControlStore,
        data: DataStore,
        queue: TaskQueue,
        config: ApiConfig,
    ) -> Self {
        Self {
            control,
            data,
            queue,
            config,
            dry_run_budget: DRY_RUN_BUDGET,
            announcer: None,
            metrics: Metrics::stdout(Function::Api),
        }
    }

    /// The same api, with dry runs refused after `budget` instead of [`DRY_RUN_BUDGET`].
    pub fn with_dry_run_budget(mut self, budget: std::time::Duration) -> Self {
        self.dry_run_budget = budget;
        self
    }

    /// Announces every job this api settles (at its enqueued mark) on `queue`.
    pub fn with_notifications(mut self, queue: NotificationQueue) -> Self {
        self.announcer = Some(Announcer::new(self.control.clone(), queue));
        self
    }

    /// Sends the api's metrics to `metrics` instead of standard output.
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Answers one request. Never fails: every failure is an envelope with its status.
    pub async fn handle(&self, request: Request<Vec<u8>>) -> Response<String> {
        match self.route(&request).await {
            Ok((status, body)) => json_response(status, &body),
            Err(error) => self.refuse(&error),
        }
    }

    /// The envelope of a failure, counted by status class and word.
    pub(crate) fn refuse(&self, error: &ApiError) -> Response<String> {
        self.metrics
            .response(error.status().as_u16(), error.status_word());
        refuse(error)
    }

    async fn route(&self, request: &Request<Vec<u8>>) -> Result<(StatusCode, Value), ApiError> {
        let route = match request.uri().path().trim_end_matches('/') {
            DELETE_PATH => Route::Delete,
            STATUS_PATH => Route::Status,
            EXPORT_PATH => Route::Export,
            _ => return Err(ApiError::NotFound("no such route")),
        };
        if request.method() != Method::POST {
            return Err(ApiError::MethodNotAllowed);
        }
        let (api_key, token) = credentials(request.headers())?;
        let body = request.body();
        let too_large = body.len() > MAX_BODY_BYTES;
        // Parsed before the calls so that the rate limit can count what the request costs: a
        // delete (or dry run) counts its users, anything else 1. Errors are answered in the
        // contract's order all the same: 401, 413, 429, then 400.
        let parsed = match route {
            Route::Delete if !too_large => Some(parse_delete(body)),
            _ => None,
        };
        let cost = match &parsed {
            Some(Ok(request)) => u32::try_from(request.user_ids.len()).unwrap_or(u32::MAX),
            _ => 1,
        };
        let now = now_ms();
        // Authentication and the rate limit's count at once: one round trip, not two. The
        // count is kept per credential pair, so requests with a wrong token (an API key is no
        // secret) never use up the tenant's budget.
        let limit = self.config.rate_limit_per_minute;
        let (tenant, admitted) = futures::join!(self.authenticate(&api_key, token), async {
            if too_large {
                return Ok(true);
            }
            let bucket = Tenant::from_api_key(api_key.as_str());
            self.control.admit(&bucket, token, cost, limit, now).await
        });
        let tenant = tenant?;
        if too_large {
            return Err(ApiError::PayloadTooLarge);
        }
        if !admitted? {
            return Err(ApiError::RateLimited);
        }
        match route {
            Route::Delete => {
                let idempotency_key = idempotency_key(request.headers())?;
                let request = parsed.expect("a delete's body is parsed")?;
                self.delete(&tenant, idempotency_key, request, now).await
            }
            Route::Status => self.status(&tenant, body).await,
            Route::Export => self.export(&tenant, body).await,
        }
    }

    async fn authenticate(&self, api_key: &ApiKey, token: &str) -> Result<Tenant, ApiError> {
        match self.control.authenticate(api_key, token).await? {
            Some(tenant) => Ok(tenant),
            None => {
                tracing::info!(api_key = %fingerprint(api_key.as_str()), "authentication refused");
                Err(ApiError::Unauthenticated)
            }
        }
    }
}

/// The API key and token a request presents; 401 when either is missing or malformed.
fn credentials(headers: &HeaderMap) -> Result<(ApiKey, &str), ApiError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (Some(api_key), Some(token)) = (header("x-velt-api-key"), header("x-velt-auth-token"))
    else {
        return Err(ApiError::Unauthenticated);
    };
    let api_key = ApiKey::parse(api_key).ok_or(ApiError::Unauthenticated)?;
    Ok((api_key, token))
}

/// The envelope of a failure, logged by class: causes of 5xx in full, refusals by status only.
fn refuse(error: &ApiError) -> Response<String> {
    error.log();
    let mut response = json_response(error.status(), &error.body());
    if matches!(error, ApiError::MethodNotAllowed) {
        // RFC 9110: a 405 names the methods the resource supports.
        response
            .headers_mut()
            .insert(http::header::ALLOW, http::HeaderValue::from_static("POST"));
    }
    response
}

fn json_response(status: StatusCode, body: &Value) -> Response<String> {
    let mut response = Response::new(body.to_string());
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<IdempotencyKey>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(IdempotencyKey::parse)
        .map(Some)
        .ok_or_else(|| {
            ApiError::InvalidArgument(crate::domain::request::InvalidRequest(
                "Idempotency-Key must be 1 to 255 printable ASCII characters".into(),
            ))
        })
}
