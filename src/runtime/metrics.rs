//! Prometheus metrics on a loopback address (`[metrics] listen`, off by
//! default): `GET /metrics` in the text exposition format 0.0.4.
//!
//! - Every value is read from the store at scrape time, in one read
//!   transaction on a connection of this task's own (`query_only`), on a
//!   blocking thread: a scrape never waits for, or holds up, intake. The
//!   counters are counted from rows never deleted (the audit log is
//!   append-only), so they survive restarts and only go up.
//! - The HTTP side is deliberately small: one request per connection, its
//!   head parsed by `httparse` (hyper's parser) and limited to
//!   [`MAX_REQUEST`] bytes and [`REQUEST_TIME`], at most [`MAX_CLIENTS`]
//!   connections at once, `Connection: close`. Other paths get 404, other
//!   methods 405.

use super::intake::IntakeShared;
use crate::adapters::db::Store;
use crate::adapters::health::{Counters, Health};
use crate::config::Config;
use anyhow::Context as _;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// The largest request head read.
pub const MAX_REQUEST: usize = 8 * 1024;
/// The time a client gets to send its request and read the answer.
pub const REQUEST_TIME: Duration = Duration::from_secs(10);
/// Connections served at once; more are closed at once.
pub const MAX_CLIENTS: usize = 8;

/// What a scrape needs besides the store.
struct Scrape {
    store: Mutex<Store>,
    shared: Arc<IntakeShared>,
    stages: Vec<String>,
}

/// Binds `[metrics] listen` (a start-up error when it cannot) and serves
/// until `token` is cancelled; `None` when metrics are off.
pub async fn start(
    config: &Config,
    path: &Path,
    shared: Arc<IntakeShared>,
    token: CancellationToken,
) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
    let Some(addr) = config.metrics.listen else {
        return Ok(None);
    };
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("Listening for metrics on {addr} (key `metrics.listen`)"))?;
    let store = Store::open(path)?;
    store.conn().pragma_update(None, "query_only", true)?;
    let scrape = Arc::new(Scrape {
        store: Mutex::new(store),
        shared,
        stages: config
            .procedure()
            .stages
            .iter()
            .map(|s| s.name.to_string())
            .collect(),
    });
    tracing::info!(%addr, "metrics: serving GET /metrics");
    Ok(Some(tokio::spawn(serve(listener, scrape, token))))
}

async fn serve(listener: TcpListener, scrape: Arc<Scrape>, token: CancellationToken) {
    let clients = Arc::new(tokio::sync::Semaphore::new(MAX_CLIENTS));
    loop {
        let (stream, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::debug!("metrics: accept: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = token.cancelled() => break,
        };
        let Ok(permit) = clients.clone().try_acquire_owned() else {
            continue;
        };
        let scrape = scrape.clone();
        tokio::spawn(async move {
            if tokio::time::timeout(REQUEST_TIME, answer(stream, &scrape))
                .await
                .is_err()
            {
                tracing::debug!("metrics: a client took too long");
            }
            drop(permit);
        });
    }
    tracing::info!("metrics stopped");
}

/// Reads one request head and answers it.
async fn answer(mut stream: TcpStream, scrape: &Arc<Scrape>) {
    let mut buf = Vec::with_capacity(1024);
    let (status, body) = loop {
        let mut chunk = [0u8; 1024];
        let n = match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        match route(&buf) {
            Route::Incomplete if buf.len() < MAX_REQUEST => continue,
            Route::Incomplete => break ("431 Request Header Fields Too Large", String::new()),
            Route::Metrics => break ("200 OK", metrics_body(scrape).await),
            Route::Status(s) => break (s, String::new()),
        }
    };
    let (content_type, body) = if status.starts_with("200") {
        ("text/plain; version=0.0.4; charset=utf-8", body)
    } else {
        ("text/plain; charset=utf-8", format!("{status}\n"))
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(body.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// What a request asks for.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    /// The head is not complete yet.
    Incomplete,
    Metrics,
    /// An answer without a body.
    Status(&'static str),
}

fn route(buf: &[u8]) -> Route {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Partial) => Route::Incomplete,
        Err(httparse::Error::TooManyHeaders) => {
            Route::Status("431 Request Header Fields Too Large")
        }
        Err(_) => Route::Status("400 Bad Request"),
        Ok(httparse::Status::Complete(_)) => {
            let path = req.path.unwrap_or_default();
            let path = path.split('?').next().unwrap_or_default();
            match (req.method.unwrap_or_default(), path) {
                ("GET", "/metrics") => Route::Metrics,
                ("GET", _) => Route::Status("404 Not Found"),
                _ => Route::Status("405 Method Not Allowed"),
            }
        }
    }
}

async fn metrics_body(scrape: &Arc<Scrape>) -> String {
    let s = scrape.clone();
    let read = tokio::task::spawn_blocking(move || {
        let store = s.store.lock().unwrap_or_else(|p| p.into_inner());
        store.metrics_at(crate::clock::now())
    })
    .await;
    let imap = scrape.shared.last_imap_contact();
    match read {
        Ok(Ok((health, counters))) => render(&health, &counters, imap, &scrape.stages),
        Ok(Err(e)) => {
            tracing::warn!("metrics: reading the store: {e:#}");
            "# the store could not be read; see the daemon's log\nredress_store_readable 0\n".into()
        }
        Err(e) => {
            tracing::warn!("metrics: {e}");
            "redress_store_readable 0\n".into()
        }
    }
}

/// A label value, escaped as the exposition format wants.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The exposition text. `stages` are the configured stages, shown with 0
/// open cases when they have none.
pub fn render(
    health: &Health,
    counters: &Counters,
    imap_contact: Option<chrono::DateTime<chrono::Utc>>,
    stages: &[String],
) -> String {
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, samples: &[(String, i64)]| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    let one = |v: i64| [(String::new(), v)];
    metric(
        "redress_messages_processed_total",
        "counter",
        "Incoming mails intake has stored and decided (robots and quarantined mail included).",
        &one(counters.messages_processed),
    );
    metric(
        "redress_acknowledgements_sent_total",
        "counter",
        "Acknowledgements sent to complainants.",
        &one(counters.acknowledgements_sent),
    );
    metric(
        "redress_escalations_sent_total",
        "counter",
        "Escalation emails sent to staff (every rung).",
        &one(counters.escalations_sent),
    );
    metric(
        "redress_send_failures_total",
        "counter",
        "Letters given up for good (a permanent SMTP failure, or retries exhausted).",
        &one(counters.send_failures),
    );
    metric(
        "redress_outbox_depth",
        "gauge",
        "Letters waiting to be sent (queued or retrying).",
        &one(health.outbox.depth),
    );
    metric(
        "redress_outbox_oldest_age_seconds",
        "gauge",
        "How long the oldest waiting letter has waited (0 when none waits).",
        &one(health.outbox.oldest_age_seconds.unwrap_or(0)),
    );
    metric(
        "redress_intake_lag_seconds",
        "gauge",
        "Seconds from the mail server receiving the newest processed mail to intake deciding it; while a stored mail waits to be decided, its wait so far if longer.",
        &one(counters.intake_lag_seconds),
    );
    metric(
        "redress_imap_last_contact_timestamp_seconds",
        "gauge",
        "Unix time of the last successful IMAP round trip (0 before the first).",
        &one(imap_contact.map(|t| t.timestamp()).unwrap_or(0)),
    );
    let mut by_stage: Vec<(String, i64)> = stages
        .iter()
        .map(|s| {
            (
                s.clone(),
                health.open_cases.by_stage.get(s).copied().unwrap_or(0),
            )
        })
        .collect();
    for (stage, n) in &health.open_cases.by_stage {
        if !stages.contains(stage) {
            by_stage.push((stage.clone(), *n));
        }
    }
    let samples: Vec<(String, i64)> = by_stage
        .into_iter()
        .map(|(s, n)| (format!("{{stage=\"{}\"}}", label(&s)), n))
        .collect();
    metric(
        "redress_open_cases",
        "gauge",
        "Cases not resolved or closed (open or on hold), per procedure stage.",
        &samples,
    );
    metric(
        "redress_cases_on_hold",
        "gauge",
        "Cases on hold.",
        &one(health.open_cases.on_hold),
    );
    metric(
        "redress_quarantined_messages",
        "gauge",
        "Mails kept but not handled (quarantined).",
        &one(health.quarantined),
    );
    metric(
        "redress_store_readable",
        "gauge",
        "1 when the store could be read for this scrape.",
        &one(1),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_routed_by_method_and_path() {
        assert_eq!(
            route(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Route::Metrics
        );
        assert_eq!(route(b"GET /metrics?x=1 HTTP/1.0\r\n\r\n"), Route::Metrics);
        assert_eq!(route(b"GET /metrics HTTP/1.1\r\nHost"), Route::Incomplete);
        assert_eq!(
            route(b"GET / HTTP/1.1\r\n\r\n"),
            Route::Status("404 Not Found")
        );
        assert_eq!(
            route(b"POST /metrics HTTP/1.1\r\n\r\n"),
            Route::Status("405 Method Not Allowed")
        );
        assert_eq!(
            route(b"\x16\x03\x01 not http\r\n\r\n"),
            Route::Status("400 Bad Request")
        );
        let many: String = (0..40).map(|i| format!("X-{i}: y\r\n")).collect();
        assert_eq!(
            route(format!("GET /metrics HTTP/1.1\r\n{many}\r\n").as_bytes()),
            Route::Status("431 Request Header Fields Too Large")
        );
    }

    #[test]
    fn the_text_has_help_type_and_every_stage() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("s.sqlite")).expect("open");
        let now: chrono::DateTime<chrono::Utc> = "2026-11-23T10:00:00Z".parse().expect("now");
        let (mut health, mut counters) = store.metrics_at(now).expect("metrics");
        health.open_cases.by_stage.insert("odd \"stage\"".into(), 2);
        counters.acknowledgements_sent = 5;
        let text = render(
            &health,
            &counters,
            Some(now),
            &["informal".into(), "formal".into()],
        );
        for line in [
            "# TYPE redress_messages_processed_total counter",
            "redress_acknowledgements_sent_total 5",
            "redress_escalations_sent_total 0",
            "redress_send_failures_total 0",
            "redress_outbox_depth 0",
            "redress_intake_lag_seconds 0",
            "# TYPE redress_outbox_depth gauge",
            "redress_open_cases{stage=\"informal\"} 0",
            "redress_open_cases{stage=\"formal\"} 0",
            "redress_open_cases{stage=\"odd \\\"stage\\\"\"} 2",
            "redress_imap_last_contact_timestamp_seconds 1795428000",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }
        // Every sample has its HELP and TYPE lines.
        let names: std::collections::BTreeSet<&str> = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| l.split(['{', ' ']).next().unwrap_or_default())
            .collect();
        for name in names {
            assert!(text.contains(&format!("# HELP {name} ")), "{name}");
            assert!(text.contains(&format!("# TYPE {name} ")), "{name}");
        }
    }
}
