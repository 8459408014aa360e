//! Prometheus metrics of the service (`GET /metrics`, admin key).

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::routes::AppState;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteStatus {
    method: String,
    route: String,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Route {
    method: String,
    route: String,
}

/// The service's metrics.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    requests: Family<RouteStatus, Counter>,
    latency: Family<Route, Histogram>,
    sessions: Gauge,
    live_sessions: Gauge,
    quota_refusals: Counter,
    rate_limited: Counter,
    evictions: Counter,
    connections_refused: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("sandbay");
        let requests = Family::<RouteStatus, Counter>::default();
        let latency = Family::<Route, Histogram>::new_with_constructor(|| {
            // 0.25 ms to ~16 s
            Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
                0.000_25, 2.0, 17,
            ))
        });
        let sessions = Gauge::default();
        let live_sessions = Gauge::default();
        let quota_refusals = Counter::default();
        let rate_limited = Counter::default();
        let evictions = Counter::default();
        let connections_refused = Counter::default();
        registry.register(
            "connections_refused",
            "Connections closed unread because the server held as many as it may",
            connections_refused.clone(),
        );
        registry.register(
            "http_requests",
            "HTTP requests by route and status",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to the response head, by route",
            latency.clone(),
        );
        registry.register("sessions", "Sessions of all users", sessions.clone());
        registry.register(
            "live_sessions",
            "Sessions with tools (and a jail) in memory",
            live_sessions.clone(),
        );
        registry.register(
            "quota_refusals",
            "Requests refused for size or quota (413)",
            quota_refusals.clone(),
        );
        registry.register(
            "rate_limited",
            "Requests refused by a per-user or global cap (429)",
            rate_limited.clone(),
        );
        registry.register(
            "evictions",
            "Sessions whose compute was ended by an eviction",
            evictions.clone(),
        );
        Metrics {
            registry,
            requests,
            latency,
            sessions,
            live_sessions,
            quota_refusals,
            rate_limited,
            evictions,
            connections_refused,
        }
    }
}

impl Metrics {
    /// Counts a connection closed for the connection cap.
    pub(crate) fn connection_refused(&self) {
        self.connections_refused.inc();
    }

    /// Counts sessions evicted.
    pub(crate) fn evicted(&self, n: usize) {
        self.evictions.inc_by(n as u64);
    }

    /// The text exposition, with the gauges read now.
    pub(crate) fn render(&self, sessions: usize, live: usize) -> String {
        self.sessions
            .set(i64::try_from(sessions).unwrap_or(i64::MAX));
        self.live_sessions
            .set(i64::try_from(live).unwrap_or(i64::MAX));
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Records every request's route, status and latency.
pub(crate) async fn record(State(app): AppState, request: Request, next: Next) -> Response {
    // Only the standard methods become labels: any other name would add
    // a series per request, and memory without bound.
    let method = match request.method().as_str() {
        m @ ("GET" | "HEAD" | "POST" | "PUT" | "DELETE" | "PATCH" | "OPTIONS") => m,
        _ => "other",
    }
    .to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let start = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let metrics = &app.metrics;
    metrics
        .requests
        .get_or_create(&RouteStatus {
            method: method.clone(),
            route: route.clone(),
            status,
        })
        .inc();
    metrics
        .latency
        .get_or_create(&Route { method, route })
        .observe(start.elapsed().as_secs_f64());
    match status {
        413 => {
            metrics.quota_refusals.inc();
        }
        429 => {
            metrics.rate_limited.inc();
        }
        _ => {}
    }
    response
}
