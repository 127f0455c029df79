//! Faults injected through the SDK: an interceptor that makes chosen calls fail the way AWS
//! fails them — throttling, a 5xx, or an attempt that never gets an answer (a timeout) — so
//! tests see the real SDK retries and the real error classification. Test clients only.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::config::interceptors::{
    BeforeDeserializationInterceptorContextMut, BeforeTransmitInterceptorContextMut,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use aws_smithy_runtime_api::client::orchestrator::{HttpResponse, Metadata};
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::{Storable, StoreReplace};

/// How an injected call fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// 400 with the service's throttling code; the request is not applied.
    Throttling,
    /// 500 from the service; the request is not applied.
    ServerError,
    /// The request is applied, and its answer replaced by a 500: a write whose answer is lost.
    LostAnswer,
    /// The attempt goes to an endpoint that accepts and never answers: the client's attempt
    /// timeout ends it (the client must have timeouts).
    Timeout,
}

/// Which attempts fail: those of `operation` (e.g. `UpdateItem`) whose request body contains
/// `needle` (and every one of `also`), from the `skip`-th matching attempt on, `count` of them.
/// Every attempt counts, so `count` of the SDK's attempts per call (3) makes a call fail past
/// its retries. Needles match parts of the JSON body; the order of a map's entries in it (an
/// item's key, expression values) changes from one process to the next, so a needle must not
/// span two of them.
#[derive(Debug)]
pub struct Rule {
    pub operation: &'static str,
    pub needle: &'static str,
    pub also: Vec<&'static str>,
    pub skip: usize,
    pub count: usize,
    pub kind: Kind,
    seen: AtomicUsize,
}

impl Rule {
    pub fn new(operation: &'static str, needle: &'static str, kind: Kind) -> Self {
        Self {
            operation,
            needle,
            also: Vec::new(),
            skip: 0,
            count: usize::MAX,
            kind,
            seen: AtomicUsize::new(0),
        }
    }

    /// Matches only bodies that also contain `needle`.
    pub fn and(mut self, needle: &'static str) -> Self {
        self.also.push(needle);
        self
    }

    /// Lets the first `skip` matching attempts through.
    pub fn after(mut self, skip: usize) -> Self {
        self.skip = skip;
        self
    }

    /// Fails `count` matching attempts, then none.
    pub fn times(mut self, count: usize) -> Self {
        self.count = count;
        self
    }
}

/// The decision for one attempt, carried from before transmit to before deserialization.
#[derive(Debug, Clone, Copy)]
struct Decision(Option<Kind>);

impl Storable for Decision {
    type Storer = StoreReplace<Self>;
}

/// The interceptor: register it with [`Faults::dynamodb`] / [`Faults::sqs`].
#[derive(Debug, Clone, Default)]
pub struct Faults {
    rules: Arc<Mutex<Vec<Rule>>>,
    injected: Arc<AtomicUsize>,
    /// An endpoint that accepts connections and never answers.
    black_hole: Arc<Mutex<Option<String>>>,
    /// An endpoint that answers every request with the error its `x-fault` header names.
    refuser: Arc<Mutex<Option<String>>>,
}

/// Answers each request on `listener` with the error its `x-fault` header asks for, in the
/// service's JSON protocol, without applying anything.
async fn refuse_all(listener: tokio::net::TcpListener) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    while let Ok((mut socket, _)) = listener.accept().await {
        tokio::spawn(async move {
            loop {
                let mut request = Vec::new();
                let mut buffer = [0u8; 8192];
                // Headers, then as many body bytes as content-length says.
                let (head_end, length) = loop {
                    let Ok(n) = socket.read(&mut buffer).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    request.extend_from_slice(&buffer[..n]);
                    if let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&request[..end]).to_ascii_lowercase();
                        let length = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        break (end + 4, length);
                    }
                };
                while request.len() < head_end + length {
                    let Ok(n) = socket.read(&mut buffer).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    request.extend_from_slice(&buffer[..n]);
                }
                let head = String::from_utf8_lossy(&request[..head_end]).to_ascii_lowercase();
                let fault = head
                    .lines()
                    .find_map(|l| l.strip_prefix("x-fault:"))
                    .unwrap_or("")
                    .trim()
                    .to_owned();
                let (status, code) = error_of(&fault);
                let body = format!(r#"{{"__type":"{code}","message":"injected fault"}}"#);
                let response = format!(
                    "HTTP/1.1 {status} Injected\r\ncontent-type: application/x-amz-json-1.0\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                );
                if socket.write_all(response.as_bytes()).await.is_err() {
                    return;
                }
            }
        });
    }
}

/// The HTTP status and error code of a fault named `service/kind`.
fn error_of(fault: &str) -> (u16, &'static str) {
    match fault {
        "sqs/throttling" => (400, "com.amazonaws.sqs#RequestThrottled"),
        "sqs/server" => (500, "com.amazonaws.sqs#InternalFailure"),
        "dynamodb/throttling" => (
            400,
            "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
        ),
        _ => (500, "com.amazonaws.dynamodb.v20120810#InternalServerError"),
    }
}

impl Faults {
    pub fn add(&self, rule: Rule) {
        self.rules.lock().unwrap().push(rule);
    }

    pub fn clear(&self) {
        self.rules.lock().unwrap().clear();
    }

    /// Attempts failed so far.
    pub fn injected(&self) -> usize {
        self.injected.load(Ordering::SeqCst)
    }

    /// Starts the endpoint refused requests go to. Every `Faults` needs it.
    pub async fn start() -> Self {
        let faults = Self::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        *faults.refuser.lock().unwrap() =
            Some(format!("http://{}", listener.local_addr().unwrap()));
        tokio::spawn(refuse_all(listener));
        faults.with_black_hole().await
    }

    /// Starts the endpoint timeouts go to.
    async fn with_black_hole(self) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        *self.black_hole.lock().unwrap() =
            Some(format!("http://{}", listener.local_addr().unwrap()));
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        self
    }

    pub fn dynamodb(&self, client: &aws_sdk_dynamodb::Client) -> aws_sdk_dynamodb::Client {
        aws_sdk_dynamodb::Client::from_conf(
            client
                .config()
                .to_builder()
                .interceptor(self.clone())
                .timeout_config(erasure::aws::api_timeouts())
                .build(),
        )
    }

    pub fn sqs(&self, client: &aws_sdk_sqs::Client) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::from_conf(
            client
                .config()
                .to_builder()
                .interceptor(self.clone())
                .timeout_config(erasure::aws::api_timeouts())
                .build(),
        )
    }

    fn decide(&self, operation: &str, body: &str) -> Option<Kind> {
        let rules = self.rules.lock().unwrap();
        let rule = rules.iter().find(|r| {
            r.operation == operation
                && body.contains(r.needle)
                && r.also.iter().all(|needle| body.contains(needle))
        })?;
        let n = rule.seen.fetch_add(1, Ordering::SeqCst);
        (n >= rule.skip && n - rule.skip < rule.count).then_some(rule.kind)
    }
}

impl Intercept for Faults {
    fn name(&self) -> &'static str {
        "FaultInjector"
    }

    fn modify_before_transmit(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let operation = cfg
            .load::<Metadata>()
            .map(|m| m.name().to_owned())
            .unwrap_or_default();
        let body = context
            .request()
            .body()
            .bytes()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default();
        let decision = self.decide(&operation, &body);
        if decision.is_some() {
            self.injected.fetch_add(1, Ordering::SeqCst);
        }
        let service = cfg
            .load::<Metadata>()
            .map(|m| m.service().to_ascii_lowercase())
            .unwrap_or_default();
        let refuse = |kind: &str| -> Result<String, BoxError> { context_header(kind, &service) };
        match decision {
            Some(Kind::Timeout) => {
                let black_hole = self
                    .black_hole
                    .lock()
                    .unwrap()
                    .clone()
                    .ok_or("Faults::start first")?;
                context.request_mut().set_uri(black_hole)?;
            }
            Some(kind @ (Kind::Throttling | Kind::ServerError)) => {
                let refuser = self
                    .refuser
                    .lock()
                    .unwrap()
                    .clone()
                    .ok_or("Faults::start first")?;
                let name = if kind == Kind::Throttling {
                    "throttling"
                } else {
                    "server"
                };
                context
                    .request_mut()
                    .headers_mut()
                    .insert("x-fault", refuse(name)?);
                context.request_mut().set_uri(refuser)?;
            }
            _ => {}
        }
        cfg.interceptor_state().store_put(Decision(decision));
        Ok(())
    }

    fn modify_before_deserialization(
        &self,
        context: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let service = cfg
            .load::<Metadata>()
            .map(|m| m.service().to_owned())
            .unwrap_or_default();
        if !matches!(
            cfg.load::<Decision>(),
            Some(Decision(Some(Kind::LostAnswer)))
        ) {
            return Ok(());
        }
        let (status, code) = error_of(&format!("{}/server", service.to_ascii_lowercase()));
        let body = format!(r#"{{"__type":"{code}","message":"injected fault"}}"#);
        let mut response = HttpResponse::new(StatusCode::try_from(status)?, SdkBody::from(body));
        response
            .headers_mut()
            .insert("content-type", "application/x-amz-json-1.0");
        *context.response_mut() = response;
        Ok(())
    }
}

fn context_header(kind: &str, service: &str) -> Result<String, BoxError> {
    Ok(format!("{service}/{kind}"))
}
