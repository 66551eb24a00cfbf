//! OAuth2 for mail logins, the pure part: the SASL XOAUTH2 string, reading a
//! token endpoint's answer (RFC 6749 §5.1, §5.2), when to refresh, how long
//! to wait after a failed refresh, and the health states whose changes are
//! logged and (for a refused refresh) mailed once.
//!
//! No I/O and no clock: callers pass `now` and the HTTP status and body.

use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;

/// The most a token is refreshed ahead of its expiry.
pub const REFRESH_AHEAD_MAX: Duration = Duration::seconds(60);
/// The lifetime assumed when the endpoint gives no `expires_in` (RFC 6749
/// makes it optional; the providers we know give one).
pub const DEFAULT_LIFETIME: Duration = Duration::seconds(3600);

/// The client's first (and only) SASL XOAUTH2 message, before base64:
/// `user=<user>^Aauth=Bearer <token>^A^A` (Google's and Microsoft's
/// published XOAUTH2 format).
pub fn xoauth2_sasl(user: &str, access_token: &str) -> String {
    format!("user={user}\x01auth=Bearer {access_token}\x01\x01")
}

/// A new access token from the endpoint.
#[derive(Clone, PartialEq, Eq)]
pub struct Grant {
    pub access_token: String,
    /// How long it lives from when it was issued.
    pub lifetime: Duration,
    /// A new refresh token, when the endpoint rotates them (Microsoft may).
    pub refresh_token: Option<String>,
}

impl std::fmt::Debug for Grant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Grant")
            .field("access_token", &"<redacted>")
            .field("lifetime", &self.lifetime)
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Why a refresh failed, in the two kinds that matter to an admin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefreshError {
    /// The endpoint refused the request: revoked consent, expired or wrong
    /// client secret, wrong client id or scope. Retrying will not help
    /// until an admin acts (it is retried anyway, slowly).
    #[error("the token endpoint refused the refresh (HTTP {status}, {error}){}", describe(.description))]
    Refused {
        status: u16,
        /// The OAuth2 error code (`invalid_grant`, `invalid_client` ...).
        error: String,
        description: String,
    },
    /// The endpoint could not be reached or failed (network, 5xx, a reply
    /// that is not a token): likely to pass by itself.
    #[error("the token endpoint is unavailable: {0}")]
    Unavailable(String),
}

fn describe(description: &str) -> String {
    if description.is_empty() {
        String::new()
    } else {
        format!(": {description}")
    }
}

impl RefreshError {
    /// What a human must do about it, for logs and the notice to QC.
    pub fn advice(&self) -> &'static str {
        match self {
            RefreshError::Refused { error, .. } => match error.as_str() {
                "invalid_grant" => "the refresh token was revoked or has expired (consent withdrawn, password changed, or unused too long): sign in again to get a new refresh token and put it in oauth2.refresh_token_file",
                "invalid_client" | "unauthorized_client" => "the client id or client secret is wrong or the secret has expired: check oauth2.client_id and oauth2.client_secret_file in the app registration",
                "invalid_scope" => "the scope is not granted to this app: check oauth2.scope and the app's API permissions",
                _ => "check the [oauth2] settings and the app registration at the provider",
            },
            RefreshError::Unavailable(_) => "redress keeps trying; check the network if it lasts",
        }
    }

    /// The health this failure puts the token source in.
    pub fn trouble(&self) -> Trouble {
        match self {
            RefreshError::Refused { error, .. } => Trouble::Refused(error.clone()),
            RefreshError::Unavailable(_) => Trouble::Unavailable,
        }
    }
}

#[derive(Deserialize)]
struct TokenBody {
    access_token: Option<String>,
    token_type: Option<String>,
    expires_in: Option<serde_json::Value>,
    refresh_token: Option<String>,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: Option<String>,
    error_description: Option<String>,
}

/// Reads the endpoint's answer to a `grant_type=refresh_token` request.
pub fn parse_token_response(status: u16, body: &str) -> Result<Grant, RefreshError> {
    if status == 200 {
        let t: TokenBody = serde_json::from_str(body).map_err(|e| {
            RefreshError::Unavailable(format!("HTTP 200 but the body is not a token: {e}"))
        })?;
        let access_token = t
            .access_token
            .filter(|a| !a.is_empty())
            .ok_or_else(|| RefreshError::Unavailable("HTTP 200 without an access_token".into()))?;
        if let Some(kind) = &t.token_type {
            if !kind.eq_ignore_ascii_case("bearer") {
                return Err(RefreshError::Unavailable(format!(
                    "token_type {kind:?} is not Bearer"
                )));
            }
        }
        let seconds = match &t.expires_in {
            None => None,
            Some(serde_json::Value::Number(n)) => n.as_i64(),
            // Some endpoints send it as a string.
            Some(serde_json::Value::String(s)) => s.trim().parse::<i64>().ok(),
            Some(_) => None,
        };
        let lifetime = match seconds {
            Some(s) if s > 0 => Duration::seconds(s.min(366 * 86400)),
            Some(_) => {
                return Err(RefreshError::Unavailable(
                    "expires_in is not a positive number".into(),
                ))
            }
            None if t.expires_in.is_some() => {
                return Err(RefreshError::Unavailable(
                    "expires_in is not a number".into(),
                ))
            }
            None => DEFAULT_LIFETIME,
        };
        return Ok(Grant {
            access_token,
            lifetime,
            refresh_token: t.refresh_token.filter(|r| !r.is_empty()),
        });
    }
    // RFC 6749 §5.2: errors are 400 (401 for client authentication) with
    // a JSON body naming the error. Rate limits and timeouts pass.
    let parsed: Option<ErrorBody> = serde_json::from_str(body).ok();
    let (error, description) = parsed
        .map(|e| {
            (
                e.error.unwrap_or_default(),
                e.error_description.unwrap_or_default(),
            )
        })
        .unwrap_or_default();
    // Microsoft's descriptions run to several lines with trace ids: keep
    // the first line, and not too much of it.
    let description: String = description
        .lines()
        .next()
        .unwrap_or_default()
        .chars()
        .take(300)
        .collect();
    match status {
        400..=499 if status != 408 && status != 429 => Err(RefreshError::Refused {
            status,
            error: if error.is_empty() {
                format!("HTTP {status}")
            } else {
                error
            },
            description,
        }),
        _ => Err(RefreshError::Unavailable(if error.is_empty() {
            format!("HTTP {status}")
        } else {
            format!("HTTP {status}, {error}{}", describe(&description))
        })),
    }
}

/// Whether a token issued at `issued` that expires at `expires` should be
/// replaced at `now`: in the last tenth of its life, and at most
/// [`REFRESH_AHEAD_MAX`] before it expires (so an hour-long token is
/// refreshed a minute early, a short test token a little early).
pub fn refresh_due(issued: DateTime<Utc>, expires: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    let lifetime = expires - issued;
    let ahead = (lifetime / 10).min(REFRESH_AHEAD_MAX);
    now >= expires - ahead
}

/// The wait after `failures` failed refreshes in a row: 1 s doubling, at
/// most `max`, scaled by `jitter` (0.5 ..= 1.5 spreads clients apart).
pub fn retry_delay(failures: u32, max: Duration, jitter: f64) -> Duration {
    let base = Duration::seconds(1i64 << failures.saturating_sub(1).min(20)).min(max);
    let ms = (base.num_milliseconds() as f64 * jitter.clamp(0.5, 1.5)) as i64;
    Duration::milliseconds(ms.max(100))
}

/// What is wrong with getting tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trouble {
    /// The endpoint refused, with this OAuth2 error code: an admin must act.
    Refused(String),
    /// The endpoint is unreachable or failing.
    Unavailable,
}

/// The state of the token source, as watchers see it. Logs and the notice
/// to QC follow its changes, never the individual retries.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Health {
    /// No refresh tried yet.
    #[default]
    Unknown,
    /// The last refresh worked.
    Working,
    /// The last refresh failed.
    Failing(Trouble),
}

/// What a change of health calls for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthChange {
    /// Nothing new: no log line, no mail.
    Same,
    /// Tokens come again after a failure: an info line; the episode ends.
    Recovered,
    /// Refreshing started failing, or fails in a new way: a warning.
    Failing(Trouble),
}

/// Compares the health before and after a refresh.
pub fn health_change(before: &Health, after: &Health) -> HealthChange {
    match (before, after) {
        (a, b) if a == b => HealthChange::Same,
        (Health::Failing(_), Health::Working) => HealthChange::Recovered,
        (_, Health::Failing(t)) => HealthChange::Failing(t.clone()),
        _ => HealthChange::Same,
    }
}

/// Whether a failure episode calls for the notice to QC: only a refused
/// refresh (an admin must act); an unreachable endpoint is only logged.
pub fn needs_notice(health: &Health) -> bool {
    matches!(health, Health::Failing(Trouble::Refused(_)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + s, 0)
            .single()
            .expect("time")
    }

    #[test]
    fn sasl_string_is_the_published_format() {
        assert_eq!(
            xoauth2_sasl("someone@example.com", "ya29.vF9dft4q"),
            "user=someone@example.com\u{1}auth=Bearer ya29.vF9dft4q\u{1}\u{1}"
        );
    }

    #[test]
    fn a_good_answer_is_a_grant() {
        let g = parse_token_response(
            200,
            r#"{"token_type":"Bearer","scope":"x","expires_in":3599,"ext_expires_in":3599,"access_token":"eyJ0","refresh_token":"0.AXk"}"#,
        )
        .expect("grant");
        assert_eq!(g.access_token, "eyJ0");
        assert_eq!(g.lifetime, Duration::seconds(3599));
        assert_eq!(g.refresh_token.as_deref(), Some("0.AXk"));
        assert!(!format!("{g:?}").contains("eyJ0"));
        // expires_in as a string; no refresh token; none at all.
        let g = parse_token_response(
            200,
            r#"{"access_token":"a","token_type":"bearer","expires_in":"5"}"#,
        )
        .expect("grant");
        assert_eq!((g.lifetime, g.refresh_token), (Duration::seconds(5), None));
        let g = parse_token_response(200, r#"{"access_token":"a"}"#).expect("grant");
        assert_eq!(g.lifetime, DEFAULT_LIFETIME);
    }

    #[test]
    fn bad_answers_are_sorted_into_refused_and_unavailable() {
        let e = parse_token_response(
            400,
            "{\"error\":\"invalid_grant\",\"error_description\":\"AADSTS70000: The grant was revoked.\\r\\nTrace ID: 1\"}",
        )
        .expect_err("refused");
        assert_eq!(
            e,
            RefreshError::Refused {
                status: 400,
                error: "invalid_grant".into(),
                description: "AADSTS70000: The grant was revoked.".into(),
            }
        );
        assert_eq!(e.trouble(), Trouble::Refused("invalid_grant".into()));
        assert!(e.advice().contains("revoked"));
        let e = parse_token_response(401, r#"{"error":"invalid_client"}"#).expect_err("refused");
        assert!(e.advice().contains("client secret"), "{e}");
        assert_eq!(
            e.to_string(),
            "the token endpoint refused the refresh (HTTP 401, invalid_client)"
        );
        for (status, body) in [
            (503, "<html>down</html>"),
            (429, r#"{"error":"slow_down"}"#),
            (500, ""),
            (200, "not json"),
            (200, r#"{"token_type":"Bearer"}"#),
            (200, r#"{"access_token":"a","token_type":"mac"}"#),
            (200, r#"{"access_token":"a","expires_in":-3}"#),
        ] {
            let e = parse_token_response(status, body).expect_err(body);
            assert_eq!(e.trouble(), Trouble::Unavailable, "{status} {body}: {e}");
        }
        let e = parse_token_response(404, "Not Found").expect_err("404");
        assert_eq!(e.trouble(), Trouble::Refused("HTTP 404".into()));
    }

    #[test]
    fn tokens_are_refreshed_in_their_last_tenth_at_most_a_minute_early() {
        // An hour-long token: a minute early.
        assert!(!refresh_due(at(0), at(3600), at(3539)));
        assert!(refresh_due(at(0), at(3600), at(3540)));
        // A five-second token: half a second early.
        assert!(!refresh_due(at(0), at(5), at(4)));
        assert!(refresh_due(at(0), at(5), at(5)));
        assert!(refresh_due(at(0), at(5), at(7)));
    }

    #[test]
    fn retry_delays_double_up_to_the_cap() {
        let max = Duration::seconds(300);
        let d: Vec<i64> = (1..=12)
            .map(|n| retry_delay(n, max, 1.0).num_seconds())
            .collect();
        assert_eq!(d, vec![1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
        assert_eq!(retry_delay(3, max, 0.5), Duration::seconds(2));
        assert_eq!(retry_delay(3, max, 9.0), Duration::seconds(6));
        assert_eq!(
            retry_delay(40, Duration::seconds(2), 1.0),
            Duration::seconds(2)
        );
    }

    #[test]
    fn only_changes_of_health_are_reported() {
        let refused = Health::Failing(Trouble::Refused("invalid_grant".into()));
        let down = Health::Failing(Trouble::Unavailable);
        assert_eq!(
            health_change(&Health::Unknown, &Health::Working),
            HealthChange::Same
        );
        assert_eq!(
            health_change(&Health::Working, &Health::Working),
            HealthChange::Same
        );
        assert_eq!(
            health_change(&Health::Working, &refused),
            HealthChange::Failing(Trouble::Refused("invalid_grant".into()))
        );
        assert_eq!(health_change(&refused, &refused), HealthChange::Same);
        assert_eq!(
            health_change(&refused, &down),
            HealthChange::Failing(Trouble::Unavailable)
        );
        assert_eq!(
            health_change(&down, &Health::Working),
            HealthChange::Recovered
        );
        assert!(needs_notice(&refused));
        assert!(!needs_notice(&down));
        assert!(!needs_notice(&Health::Working));
    }
}
