//! Access tokens for SASL XOAUTH2: a refresh token exchanged at the token
//! endpoint (RFC 6749 §6), cached, and refreshed ahead of expiry or when a
//! server refused the current one.
//!
//! - One [`TokenSource`] is shared (an `Arc`) by IMAP intake, the outbox and
//!   the health watcher; one refresh runs at a time, and callers waiting
//!   for it get its result.
//! - A failed refresh is not retried at every caller's pace: after one,
//!   callers get the same error until a jittered exponential back-off
//!   (1 s doubling, up to `oauth2.retry_max`) has passed. A still-valid
//!   token keeps being handed out meanwhile.
//! - Log lines follow changes of [`Health`] only (a warning when refreshing
//!   starts failing or fails in a new way, an info line when it works
//!   again), never each retry; watchers see the same changes through
//!   [`TokenSource::subscribe`].
//! - A refresh token the endpoint rotates (Microsoft may) replaces the
//!   configured one in memory and in the store's `settings` table, tied to
//!   a hash of the configured one: after a restart the rotated token is
//!   used, unless the admin has put a new one in the file since.
//! - Tokens and secrets never reach a log line or `Debug` output.
//! - HTTP is ureq (blocking, on a tokio blocking thread) over rustls with
//!   ring and Mozilla's roots; plain http only to loopback (config checks).

use crate::config::{OAuth2, Secret};
use crate::core::oauth2::{
    health_change, parse_token_response, refresh_due, retry_delay, Grant, Health, HealthChange,
    RefreshError,
};
use chrono::{DateTime, Duration, Utc};
use sha2::Digest as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::{watch, Mutex};

/// How long one request to the token endpoint may take.
const HTTP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);
/// The store setting that holds a rotated refresh token.
const ROTATED_SETTING: &str = "oauth2-refresh-token";

/// The token endpoint and what redress sends it.
#[derive(Clone)]
struct Endpoint {
    url: String,
    client_id: String,
    client_secret: Option<Secret>,
    scope: String,
}

/// The current access token.
#[derive(Clone)]
struct Access {
    token: Secret,
    issued: DateTime<Utc>,
    expires: DateTime<Utc>,
}

struct State {
    refresh_token: Secret,
    access: Option<Access>,
    failures: u32,
    /// No refresh before this (back-off after a failure).
    not_before: Option<DateTime<Utc>>,
    last_error: Option<RefreshError>,
    health: Health,
    refreshes: u64,
}

/// Hands out access tokens; see the module docs.
pub struct TokenSource {
    endpoint: Endpoint,
    retry_max: Duration,
    /// A hash of the configured refresh token (never the token itself).
    origin: String,
    store: Option<PathBuf>,
    state: Mutex<State>,
    health: watch::Sender<Health>,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSource")
            .field("token_url", &self.endpoint.url)
            .field("client_id", &self.endpoint.client_id)
            .finish_non_exhaustive()
    }
}

impl TokenSource {
    /// A source for `cfg` (which `config::load` has filled with the secrets
    /// from their files). With `store`, a refresh token rotated by the
    /// endpoint is kept there (and read back here).
    pub fn new(cfg: &OAuth2, store: Option<&Path>) -> anyhow::Result<TokenSource> {
        let url = cfg
            .token_url()
            .ok_or_else(|| anyhow::anyhow!("key `oauth2.token_url`: no token endpoint"))?;
        let configured = cfg.refresh_token.clone().ok_or_else(|| {
            anyhow::anyhow!("key `oauth2.refresh_token_file`: no refresh token was read")
        })?;
        let origin = hex::encode(sha2::Sha256::digest(configured.expose().as_bytes()));
        let refresh_token = match store {
            Some(path) => rotated(path, &origin)?.unwrap_or(configured),
            None => configured,
        };
        Ok(TokenSource {
            endpoint: Endpoint {
                url,
                client_id: cfg.client_id.clone(),
                client_secret: cfg.client_secret.clone(),
                scope: cfg.scope().to_string(),
            },
            retry_max: Duration::seconds(cfg.retry_max.max(1) as i64),
            origin,
            store: store.map(Path::to_path_buf),
            state: Mutex::new(State {
                refresh_token,
                access: None,
                failures: 0,
                not_before: None,
                last_error: None,
                health: Health::Unknown,
                refreshes: 0,
            }),
            health: watch::channel(Health::Unknown).0,
        })
    }

    /// The token endpoint's URL (for messages).
    pub fn token_url(&self) -> &str {
        &self.endpoint.url
    }

    /// Follows the health of the source: changes only.
    pub fn subscribe(&self) -> watch::Receiver<Health> {
        self.health.subscribe()
    }

    /// A valid access token: the cached one, or a fresh one when it is
    /// missing, near its expiry or was refused. Errs with the last refresh
    /// failure while backing off.
    pub async fn access_token(&self) -> Result<Secret, RefreshError> {
        let mut state = self.state.lock().await;
        let now = crate::clock::now();
        if let Some(a) = &state.access {
            if !refresh_due(a.issued, a.expires, now) {
                return Ok(a.token.clone());
            }
        }
        if let (Some(not_before), Some(error)) = (state.not_before, &state.last_error) {
            if now < not_before {
                // Backing off: a token that has not quite expired still serves.
                return match &state.access {
                    Some(a) if now < a.expires => Ok(a.token.clone()),
                    _ => Err(error.clone()),
                };
            }
        }
        let refresh_token = state.refresh_token.clone();
        let endpoint = self.endpoint.clone();
        let result = tokio::task::spawn_blocking(move || exchange(&endpoint, &refresh_token))
            .await
            .unwrap_or_else(|e| Err(RefreshError::Unavailable(format!("refresh task: {e}"))));
        let now = crate::clock::now();
        state.refreshes += 1;
        let before = state.health.clone();
        let outcome = match result {
            Ok(grant) => {
                let lifetime = grant.lifetime;
                let token = Secret::new(grant.access_token);
                if let Some(new) = grant.refresh_token {
                    if new != state.refresh_token.expose() {
                        state.refresh_token = Secret::new(new);
                        self.keep_rotated(&state.refresh_token);
                    }
                }
                state.access = Some(Access {
                    token: token.clone(),
                    issued: now,
                    expires: now + lifetime,
                });
                state.failures = 0;
                state.not_before = None;
                state.last_error = None;
                state.health = Health::Working;
                tracing::debug!(
                    token_url = %self.endpoint.url,
                    valid_for = lifetime.num_seconds(),
                    "new OAuth2 access token"
                );
                Ok(token)
            }
            Err(e) => {
                state.failures = state.failures.saturating_add(1);
                let delay = retry_delay(state.failures, self.retry_max, 0.5 + fastrand::f64());
                state.not_before = Some(now + delay);
                state.last_error = Some(e.clone());
                state.health = crate::core::oauth2::Health::Failing(e.trouble());
                Err(e)
            }
        };
        match health_change(&before, &state.health) {
            HealthChange::Same => {}
            HealthChange::Recovered => tracing::info!(
                token_url = %self.endpoint.url,
                "OAuth2: the token endpoint issues access tokens again"
            ),
            HealthChange::Failing(_) => {
                if let Err(e) = &outcome {
                    tracing::warn!(
                        token_url = %self.endpoint.url,
                        "OAuth2: cannot get an access token: {e}; {}; retrying with back-off (no further log line until this changes)",
                        e.advice()
                    );
                }
            }
        }
        if before != state.health {
            self.health.send_replace(state.health.clone());
        }
        outcome
    }

    /// A server refused `token`: the next [`Self::access_token`] refreshes
    /// (at once, unless refreshing is backing off). A token other than the
    /// current one (already replaced) changes nothing.
    pub async fn invalidate(&self, token: &Secret) {
        let mut state = self.state.lock().await;
        if state.access.as_ref().is_some_and(|a| &a.token == token) {
            tracing::info!(token_url = %self.endpoint.url, "OAuth2: the server refused the access token; getting a new one");
            state.access = None;
        }
    }

    /// While refreshing fails: how long until the back-off allows the next
    /// try. None when the last refresh worked.
    pub async fn retry_in(&self) -> Option<std::time::Duration> {
        let state = self.state.lock().await;
        state.last_error.as_ref()?;
        let wait = state.not_before? - crate::clock::now();
        Some(wait.to_std().unwrap_or(std::time::Duration::ZERO))
    }

    /// How many refreshes were tried (for tests and `check`).
    pub async fn refreshes(&self) -> u64 {
        self.state.lock().await.refreshes
    }

    /// The last refresh failure, if the last refresh failed.
    pub async fn last_error(&self) -> Option<RefreshError> {
        self.state.lock().await.last_error.clone()
    }

    fn keep_rotated(&self, token: &Secret) {
        let Some(path) = &self.store else {
            return;
        };
        let value = serde_json::json!({"origin": self.origin, "token": token.expose()}).to_string();
        let saved = crate::adapters::db::Store::open(path)
            .and_then(|s| crate::adapters::db::set_setting(s.conn(), ROTATED_SETTING, &value));
        match saved {
            Ok(()) => tracing::info!("OAuth2: the endpoint issued a new refresh token; kept in the store"),
            Err(e) => tracing::warn!(
                "OAuth2: the endpoint issued a new refresh token but it could not be stored ({e:#}); it is used until redress stops"
            ),
        }
    }
}

/// The token source the config asks for (IMAP or SMTP with XOAUTH2), or
/// None; a rotated refresh token is kept in the store at `store`.
pub fn for_config(
    config: &crate::config::Config,
    store: Option<&std::path::Path>,
) -> anyhow::Result<Option<Arc<TokenSource>>> {
    use crate::config::AuthMethod::Xoauth2;
    if config.imap.auth != Xoauth2 && config.smtp.auth != Xoauth2 {
        return Ok(None);
    }
    let Some(o) = &config.oauth2 else {
        anyhow::bail!("key `imap.auth`/`smtp.auth`: \"xoauth2\" needs an [oauth2] section");
    };
    Ok(Some(Arc::new(TokenSource::new(o, store)?)))
}

/// The rotated refresh token kept in the store, if it descends from the
/// configured one (`origin` is its hash).
fn rotated(store: &Path, origin: &str) -> anyhow::Result<Option<Secret>> {
    let s = crate::adapters::db::Store::open(store)?;
    let Some(value) = crate::adapters::db::setting(s.conn(), ROTATED_SETTING)? else {
        return Ok(None);
    };
    let v: serde_json::Value = serde_json::from_str(&value).unwrap_or_default();
    if v["origin"].as_str() == Some(origin) {
        if let Some(t) = v["token"].as_str().filter(|t| !t.is_empty()) {
            return Ok(Some(Secret::new(t)));
        }
    }
    // The admin configured a new refresh token since: the old chain is done.
    crate::adapters::db::delete_setting(s.conn(), ROTATED_SETTING)?;
    Ok(None)
}

/// One `grant_type=refresh_token` request (blocking).
fn exchange(endpoint: &Endpoint, refresh_token: &Secret) -> Result<Grant, RefreshError> {
    // Config allows plain http only to a loopback host.
    let loopback = endpoint
        .url
        .get(..7)
        .is_some_and(|s| s.eq_ignore_ascii_case("http://"));
    let mut config = ureq::Agent::config_builder()
        .timeout_global(Some(HTTP_TIMEOUT))
        .http_status_as_error(false)
        // The request carries secrets: never follow it elsewhere.
        .max_redirects(0)
        .user_agent(concat!("redress/", env!("CARGO_PKG_VERSION")));
    if loopback {
        // A loopback endpoint is never behind a proxy.
        config = config.proxy(None);
    }
    let agent: ureq::Agent = config.build().into();
    let mut form: Vec<(&str, &str)> = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token.expose()),
        ("client_id", &endpoint.client_id),
    ];
    if let Some(secret) = &endpoint.client_secret {
        form.push(("client_secret", secret.expose()));
    }
    if !endpoint.scope.is_empty() {
        form.push(("scope", &endpoint.scope));
    }
    let mut response = agent
        .post(&endpoint.url)
        .header("Accept", "application/json")
        .send_form(form)
        .map_err(|e| RefreshError::Unavailable(format!("{}: {e}", endpoint.url)))?;
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .with_config()
        .limit(256 * 1024)
        .read_to_string()
        .map_err(|e| RefreshError::Unavailable(format!("reading the answer: {e}")))?;
    parse_token_response(status, &body)
}
