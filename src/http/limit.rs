//! Abuse protection in front of the handlers: per-client rate limits on every
//! endpoint that needs no API key (approval pages, status pages, target
//! confirmations, the Facebook callback, OpenDSR, the receipts key, the
//! support login), a stricter budget of failed token look-ups (an unknown
//! approval link or status code), and a deadline on the whole request so a
//! client trickling its body cannot hold a worker.
//!
//! A refused request gets 429 with `Retry-After`: JSON
//! `{"error":{"code":"rate_limited",...}}` on the API, a short HTML page on the
//! HTML pages (approval, status, support login).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, StatusCode};
use actix_web::middleware::Next;
use actix_web::{web, HttpResponse, ResponseError};

use super::error::ApiError;

/// Rate-limit and timeout settings (`LETHE_RATE_LIMIT_*`, `LETHE_HTTP_*`).
#[derive(Debug, Clone, PartialEq)]
pub struct HttpPolicy {
    /// Requests per minute per client address on unauthenticated endpoints;
    /// 0 turns the limit off.
    pub public_per_minute: u32,
    /// Requests a client may make at once before the rate applies.
    pub public_burst: u32,
    /// Support login attempts (POST) per minute per client address.
    pub login_per_minute: u32,
    /// Failed token look-ups (unknown approval link or status code) per hour
    /// per client address; past it, that client's token look-ups get 429.
    pub unknown_tokens_per_hour: u32,
    /// Take the client address from the last `X-Forwarded-For` entry (set
    /// this behind a reverse proxy, never when clients connect directly).
    pub trust_forwarded_for: bool,
    /// Time a client has to send a request's head.
    pub client_request_timeout: Duration,
    /// Time an idle keep-alive connection is held open.
    pub keep_alive: Duration,
    /// Time a whole request (head, body, handler) may take.
    pub request_timeout: Duration,
}

impl Default for HttpPolicy {
    fn default() -> Self {
        Self {
            public_per_minute: 120,
            public_burst: 60,
            login_per_minute: 30,
            unknown_tokens_per_hour: 60,
            trust_forwarded_for: false,
            client_request_timeout: Duration::from_secs(5),
            keep_alive: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// A token bucket per client address.
pub struct Limiter {
    per_sec: f64,
    capacity: f64,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Buckets kept before idle (full) ones are dropped.
const MAX_TRACKED: usize = 50_000;

impl Limiter {
    /// `per_period` tokens per `period`, at most `capacity` saved up. A rate
    /// of 0 means no limit.
    pub fn new(per_period: u32, period: Duration, capacity: u32) -> Option<Self> {
        if per_period == 0 {
            return None;
        }
        Some(Self {
            per_sec: per_period as f64 / period.as_secs_f64(),
            capacity: capacity.max(1) as f64,
            buckets: Mutex::new(HashMap::new()),
        })
    }

    fn with_bucket<T>(&self, ip: IpAddr, now: Instant, f: impl FnOnce(&mut Bucket) -> T) -> T {
        let mut map = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_TRACKED && !map.contains_key(&ip) {
            let (per_sec, capacity) = (self.per_sec, self.capacity);
            map.retain(|_, b| {
                b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * per_sec < capacity
            });
            if map.len() >= MAX_TRACKED {
                // A flood of distinct addresses: forget the oldest state
                // rather than grow without bound.
                map.clear();
            }
        }
        let b = map.entry(ip).or_insert(Bucket {
            tokens: self.capacity,
            at: now,
        });
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.per_sec).min(self.capacity);
        b.at = now;
        f(b)
    }

    fn wait_for_one(&self, tokens: f64) -> Duration {
        Duration::from_secs_f64(((1.0 - tokens) / self.per_sec).max(0.0))
    }

    /// Take one token, or say how long until one is available.
    pub fn take(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        self.with_bucket(ip, now, |b| {
            if b.tokens >= 1.0 {
                b.tokens -= 1.0;
                Ok(())
            } else {
                Err(self.wait_for_one(b.tokens))
            }
        })
    }

    /// Whether a token is available, without taking it.
    pub fn check(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        self.with_bucket(ip, now, |b| {
            if b.tokens >= 1.0 {
                Ok(())
            } else {
                Err(self.wait_for_one(b.tokens))
            }
        })
    }

    /// Take a token if there is one (a failure already happened; it counts).
    pub fn charge(&self, ip: IpAddr, now: Instant) {
        self.with_bucket(ip, now, |b| b.tokens = (b.tokens - 1.0).max(0.0));
    }
}

/// The limiters of one process (shared by the HTTP workers).
pub struct RateLimits {
    policy: HttpPolicy,
    public: Option<Limiter>,
    login: Option<Limiter>,
    unknown_tokens: Option<Limiter>,
}

impl RateLimits {
    pub fn new(policy: &HttpPolicy) -> Self {
        let minute = Duration::from_secs(60);
        Self {
            policy: policy.clone(),
            public: Limiter::new(policy.public_per_minute, minute, policy.public_burst),
            login: Limiter::new(policy.login_per_minute, minute, policy.login_per_minute),
            unknown_tokens: Limiter::new(
                policy.unknown_tokens_per_hour,
                Duration::from_secs(3600),
                policy.unknown_tokens_per_hour,
            ),
        }
    }
}

/// What a path is, for limiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Needs an API key, a session or the admin token, or is an operations
    /// endpoint (health, readiness, metrics, stylesheet): not limited here.
    Exempt,
    /// An unauthenticated JSON endpoint.
    PublicApi,
    /// An unauthenticated HTML page.
    PublicPage,
    /// A page found by a secret in its URL (approval link, status code).
    TokenPage,
    /// The support login form's POST.
    Login,
}

/// Classify a request by method and path.
pub fn classify(method: &actix_web::http::Method, path: &str) -> Class {
    let seg: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match seg.as_slice() {
        ["approvals", _] | ["erasure-confirmations", _] | ["status", _] => Class::TokenPage,
        ["support", "login"] if method == actix_web::http::Method::POST => Class::Login,
        ["support", "login"] => Class::PublicPage,
        ["opendsr" | "opengdpr", "v1", "discovery" | "certificate"] => Class::PublicApi,
        ["v1", "receipts", "public-key"] | ["openapi.json"] => Class::PublicApi,
        ["docs", ..] => Class::PublicPage,
        ["v1", "integrations", "facebook", ..] => Class::PublicApi,
        ["v1", "erasure-requests", _, "targets", _, "confirm"] => Class::PublicApi,
        _ => Class::Exempt,
    }
}

fn client_ip(req: &ServiceRequest, trust_forwarded_for: bool) -> Option<IpAddr> {
    if trust_forwarded_for {
        let forwarded = req
            .headers()
            .get_all("x-forwarded-for")
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|a| a.trim().parse::<IpAddr>().ok())
            .last();
        if forwarded.is_some() {
            return forwarded;
        }
    }
    req.peer_addr().map(|a| a.ip())
}

fn retry_secs(wait: Duration) -> u64 {
    wait.as_secs_f64().ceil().max(1.0) as u64
}

/// The 429 answer: JSON on the API, a short page on HTML pages.
pub fn too_many(class: Class, wait: Duration) -> HttpResponse {
    let secs = retry_secs(wait);
    match class {
        Class::PublicPage | Class::TokenPage | Class::Login => {
            let html = format!(
                "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Too many requests</title></head>\
                 <body><h1>Too many requests</h1><p>Please wait {secs} seconds and try again.</p></body></html>"
            );
            let mut resp = super::pages::page(StatusCode::TOO_MANY_REQUESTS, html);
            resp.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
            resp
        }
        _ => {
            let mut resp = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("too many requests from this address; retry in {secs} s"),
            )
            .error_response();
            resp.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
            resp
        }
    }
}

fn class_label(class: Class) -> &'static str {
    match class {
        Class::Exempt => "exempt",
        Class::PublicApi => "public_api",
        Class::PublicPage => "public_page",
        Class::TokenPage => "token_page",
        Class::Login => "login",
    }
}

/// Middleware: apply the limits of the request's class, and count failed
/// token look-ups (never logging the token).
pub async fn rate_limit(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let class = classify(req.method(), req.path());
    let limits = req.app_data::<web::Data<RateLimits>>().cloned();
    let (Some(limits), false) = (limits, class == Class::Exempt) else {
        return next.call(req).await.map(|r| r.map_into_left_body());
    };
    let Some(ip) = client_ip(&req, limits.policy.trust_forwarded_for) else {
        return next.call(req).await.map(|r| r.map_into_left_body());
    };
    let now = Instant::now();
    let mut verdict = Ok(());
    if class == Class::TokenPage {
        if let Some(l) = &limits.unknown_tokens {
            verdict = l.check(ip, now);
        }
    }
    if verdict.is_ok() {
        if let Some(l) = &limits.public {
            verdict = l.take(ip, now);
        }
    }
    if verdict.is_ok() && class == Class::Login {
        if let Some(l) = &limits.login {
            verdict = l.take(ip, now);
        }
    }
    if let Err(wait) = verdict {
        crate::metrics::rate_limited(class_label(class));
        // The client address is personal data: it is not logged.
        tracing::warn!(class = class_label(class), "rate limited");
        let resp = too_many(class, wait);
        return Ok(req.into_response(resp).map_into_right_body());
    }
    let res = next.call(req).await?;
    if class == Class::TokenPage && res.status() == StatusCode::NOT_FOUND {
        let path = res.request().path();
        let kind = if path.starts_with("/approvals/") {
            "approval_link"
        } else if path.starts_with("/erasure-confirmations/") {
            "owner_link"
        } else {
            "status_code"
        };
        crate::metrics::unknown_token(kind);
        tracing::warn!(kind, "unknown token presented");
        if let Some(l) = &limits.unknown_tokens {
            l.charge(ip, Instant::now());
        }
    }
    Ok(res.map_into_left_body())
}

/// Middleware: a whole request (head, body and handler) gets
/// `request_timeout`; past it the client gets 408 and the connection closes
/// (its body is left unread).
pub async fn deadline(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let timeout = req
        .app_data::<web::Data<RateLimits>>()
        .map(|l| l.policy.request_timeout);
    let Some(timeout) = timeout else {
        return next.call(req).await;
    };
    match tokio::time::timeout(timeout, next.call(req)).await {
        Ok(res) => res,
        Err(_) => {
            crate::metrics::request_timeout();
            tracing::warn!("request timed out");
            Err(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                format!(
                    "the request took longer than {} s to arrive and be handled",
                    timeout.as_secs()
                ),
            )
            .into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::Method;

    #[test]
    fn buckets_refill_at_the_rate_and_cap_at_the_burst() {
        let l = Limiter::new(60, Duration::from_secs(60), 3).unwrap();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(l.take(ip, t0).is_ok());
        }
        let wait = l.take(ip, t0).unwrap_err();
        assert!(wait <= Duration::from_secs(1) && wait > Duration::ZERO);
        assert!(l.take(other, t0).is_ok(), "addresses are independent");
        assert!(l.take(ip, t0 + Duration::from_millis(1000)).is_ok());
        assert!(l.take(ip, t0 + Duration::from_millis(1000)).is_err());
        // A long pause refills only up to the burst.
        let later = t0 + Duration::from_secs(3600);
        for _ in 0..3 {
            assert!(l.take(ip, later).is_ok());
        }
        assert!(l.take(ip, later).is_err());
        assert!(Limiter::new(0, Duration::from_secs(60), 3).is_none());
    }

    #[test]
    fn check_does_not_spend_and_charge_does() {
        let l = Limiter::new(2, Duration::from_secs(3600), 2).unwrap();
        let ip: IpAddr = "2001:db8::1".parse().unwrap();
        let t0 = Instant::now();
        assert!(l.check(ip, t0).is_ok());
        assert!(l.check(ip, t0).is_ok());
        l.charge(ip, t0);
        l.charge(ip, t0);
        l.charge(ip, t0);
        let wait = l.check(ip, t0).unwrap_err();
        assert!(wait > Duration::from_secs(1700), "{wait:?}");
    }

    #[test]
    fn every_unauthenticated_endpoint_is_limited() {
        let get = Method::GET;
        let post = Method::POST;
        for (m, p, class) in [
            (&get, "/approvals/abc", Class::TokenPage),
            (&post, "/approvals/abc", Class::TokenPage),
            (&get, "/status/abc", Class::TokenPage),
            (&post, "/erasure-confirmations/abc", Class::TokenPage),
            (&get, "/support/login", Class::PublicPage),
            (&post, "/support/login", Class::Login),
            (&get, "/opendsr/v1/discovery", Class::PublicApi),
            (&get, "/opendsr/v1/certificate", Class::PublicApi),
            (&get, "/opengdpr/v1/discovery", Class::PublicApi),
            (&post, "/opengdpr/v1/requests", Class::Exempt),
            (&get, "/v1/receipts/public-key", Class::PublicApi),
            (
                &post,
                "/v1/integrations/facebook/data-deletion",
                Class::PublicApi,
            ),
            (
                &post,
                "/v1/integrations/facebook/t/data-deletion",
                Class::PublicApi,
            ),
            (
                &post,
                "/v1/erasure-requests/r/targets/t/confirm",
                Class::PublicApi,
            ),
            (&post, "/v1/erasure-requests", Class::Exempt),
            (&get, "/v1/erasure-requests/r/targets", Class::Exempt),
            (&get, "/healthz", Class::Exempt),
            (&get, "/support/requests", Class::Exempt),
        ] {
            assert_eq!(classify(m, p), class, "{m} {p}");
        }
    }

    /// Generated from the route table: every route a caller reaches without
    /// an API key, admin token or support credential is rate limited, but
    /// for the probes, the scrape and the pages' stylesheet. A new
    /// unauthenticated route cannot escape the limits unnoticed.
    #[test]
    fn the_route_table_has_no_unlimited_unauthenticated_route() {
        use crate::http::routes::{inventory, Access};
        const EXEMPT: [&str; 4] = ["/healthz", "/readyz", "/metrics", "/assets/lethe.css"];
        for route in inventory() {
            let keyed = matches!(
                route.access,
                Access::TenantKey | Access::Admin | Access::SupportToken | Access::SupportSession
            );
            if keyed || EXEMPT.contains(&route.path) {
                continue;
            }
            let concrete = route
                .path
                .split('/')
                .map(|seg| if seg.starts_with('{') { "x" } else { seg })
                .collect::<Vec<_>>()
                .join("/");
            assert_ne!(
                classify(&route.method, &concrete),
                Class::Exempt,
                "{} {} ({:?}) is not rate limited",
                route.method,
                route.path,
                route.access
            );
        }
    }
}
