//! The one TOML file an admin writes, typed and strict.
//!
//! - Unknown keys, bad values and missing required keys are errors that name
//!   the file and the key (`imap.port`), and every problem is reported, not
//!   just the first.
//! - Any scalar key can be overridden by an environment variable
//!   `REDRESS_<SECTION>_<KEY>` (e.g. `REDRESS_IMAP_PORT=10143`,
//!   `REDRESS_STAFF_QUALITY_COORDINATOR_ADDRESS=...`).
//! - Passwords come from the file, from `password_file` (which may point into
//!   systemd's `$CREDENTIALS_DIRECTORY`) or from the environment, and never
//!   appear in `Debug` output or logs.
//! - `tls = "none"` is refused for any host that is not loopback.
//!
//! [`parse_str`] does no I/O besides reading the environment map it is given;
//! [`load`] reads the file and the password files; [`load_for_store`] the
//! file and only the token secret (for commands that never log in to a
//! mail server).

use crate::core::calendar::{CalendarSpec, Closure};
use crate::core::holidays::Nation;
use crate::core::procedure::{Answerer, Procedure, Span, Stage, StageName};
use anyhow::Context as _;
use chrono::{NaiveDate, NaiveTime};
use serde::{Deserialize, Deserializer};
use std::collections::HashSet;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// The sections a `REDRESS_<SECTION>_<KEY>` variable may name.
const SECTIONS: &[&str] = &[
    "organisation",
    "mailbox",
    "imap",
    "smtp",
    "store",
    "calendar",
    "procedure",
    "staff",
    "templates",
    "intake",
    "oauth2",
    "log",
    "metrics",
];

/// A password or other secret: printed as `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    /// The secret itself, for the one place that sends it to a server.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Secret(Lenient::<String>::deserialize(d)?.0))
    }
}

/// A scalar that may also be written as a string (environment overrides are
/// strings): `port = 993` and `REDRESS_IMAP_PORT=993` both work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lenient<T>(pub T);

impl<'de, T> Deserialize<'de> for Lenient<T>
where
    T: FromStr,
    T::Err: fmt::Display,
{
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(i64),
            Bool(bool),
            Float(f64),
            Str(String),
        }
        let text = match Raw::deserialize(d)? {
            Raw::Int(i) => i.to_string(),
            Raw::Bool(b) => b.to_string(),
            Raw::Float(f) => f.to_string(),
            Raw::Str(s) => s,
        };
        text.parse::<T>()
            .map(Lenient)
            .map_err(|e| serde::de::Error::custom(format!("{text:?}: {e}")))
    }
}

fn de_parse<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr,
    T::Err: fmt::Display,
{
    Ok(Lenient::<T>::deserialize(d)?.0)
}

fn de_parse_opt<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr,
    T::Err: fmt::Display,
{
    Ok(Option::<Lenient<T>>::deserialize(d)?.map(|l| l.0))
}

/// The whole configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub organisation: Organisation,
    pub mailbox: Mailbox,
    pub imap: Imap,
    pub smtp: Smtp,
    pub store: Store,
    #[serde(default)]
    pub calendar: CalendarConfig,
    pub procedure: ProcedureConfig,
    pub staff: Staff,
    #[serde(default)]
    pub templates: Templates,
    #[serde(default)]
    pub intake: Intake,
    /// Routing rules: the first that matches gives a new case's department.
    #[serde(default)]
    pub routing: Vec<RoutingConfig>,
    /// OAuth2 for `auth = "xoauth2"` (Microsoft 365, Google).
    pub oauth2: Option<OAuth2>,
    #[serde(default)]
    pub log: Log,
    #[serde(default)]
    pub metrics: Metrics,
}

/// Logging: `RUST_LOG`, when set, wins over `level`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Log {
    /// A level (`info`, `debug` ...) or a filter (`redress=debug,info`).
    #[serde(default = "default_log_level")]
    pub level: String,
    /// "auto" (the journal's format under systemd, else human), "human",
    /// "json" or "journal".
    #[serde(default = "default_log_format")]
    pub format: String,
}

fn default_log_level() -> String {
    "info".into()
}

fn default_log_format() -> String {
    "auto".into()
}

impl Default for Log {
    fn default() -> Self {
        Log {
            level: default_log_level(),
            format: default_log_format(),
        }
    }
}

/// Prometheus metrics (off unless `listen` is set).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metrics {
    /// Where `GET /metrics` is served: a loopback address and port, e.g.
    /// "127.0.0.1:9187" (a scraper elsewhere goes through a proxy or an
    /// SSH tunnel: the figures are the organisation's business).
    #[serde(default, deserialize_with = "de_parse_opt")]
    pub listen: Option<std::net::SocketAddr>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingConfig {
    /// The `id` of a department in `[staff]`.
    pub department: String,
    /// Where to look: "subject", "body", "recipient" (To and Cc addresses) or "any".
    #[serde(default = "default_route_field")]
    pub field: String,
    /// A regular expression (Rust regex syntax; `(?i)` for any case).
    pub pattern: String,
}

fn default_route_field() -> String {
    "any".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Organisation {
    pub name: String,
    /// Case references are `PREFIX-YYYY-NNNN`.
    pub reference_prefix: String,
    /// The domain of the Message-IDs redress makes; defaults to the
    /// complaints address's domain.
    pub message_id_domain: Option<String>,
    /// Who to contact outside the organisation once every stage is done
    /// (seed 000 §9); goes in final letters.
    pub external_escalation: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mailbox {
    /// The complaints address complainants write to.
    pub address: String,
    /// Staff notifications get a Reply-To of the complaints address with the
    /// case and its token after a `+` (`complaints+REF.TOKEN@...`): only
    /// for servers that deliver plus-addresses to the same mailbox.
    #[serde(default)]
    pub plus_address_replies: bool,
}

/// How a connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// TLS from the first byte (IMAP 993, SMTP 465).
    Implicit,
    /// Plain, then upgraded with STARTTLS (IMAP 143, SMTP 587).
    Starttls,
    /// No TLS at all: loopback only.
    None,
}

impl FromStr for TlsMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "implicit" => Ok(TlsMode::Implicit),
            "starttls" => Ok(TlsMode::Starttls),
            "none" => Ok(TlsMode::None),
            _ => Err("expected \"implicit\", \"starttls\" or \"none\"".into()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Imap {
    pub host: String,
    #[serde(default, deserialize_with = "de_parse_opt")]
    pub port: Option<u16>,
    #[serde(deserialize_with = "de_parse")]
    pub tls: TlsMode,
    pub username: String,
    /// "password" (LOGIN) or "xoauth2" (SASL XOAUTH2 with an access token
    /// from `[oauth2]`; the password keys are then not used).
    #[serde(default, deserialize_with = "de_parse")]
    pub auth: AuthMethod,
    pub password: Option<Secret>,
    pub password_file: Option<PathBuf>,
    #[serde(default = "default_folder")]
    pub folder: String,
    /// Seconds between polls when the server has no IDLE (or `idle = false`).
    #[serde(default = "default_poll", deserialize_with = "de_parse")]
    pub poll_interval: u64,
    /// Use IDLE when the server offers it; false forces polling (for servers
    /// or middleboxes that break long-lived connections).
    #[serde(default = "default_true", deserialize_with = "de_parse")]
    pub idle: bool,
    /// Extra trusted CA certificate (PEM), for a private mail server.
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Smtp {
    pub host: String,
    #[serde(default, deserialize_with = "de_parse_opt")]
    pub port: Option<u16>,
    #[serde(deserialize_with = "de_parse")]
    pub tls: TlsMode,
    /// Omit for a relay that takes mail from this host without logging in.
    pub username: Option<String>,
    /// "password" (PLAIN/LOGIN) or "xoauth2" (needs `username` and `[oauth2]`).
    #[serde(default, deserialize_with = "de_parse")]
    pub auth: AuthMethod,
    pub password: Option<Secret>,
    pub password_file: Option<PathBuf>,
    /// The From address of every letter; defaults to the complaints address.
    pub from: Option<String>,
    pub ca_file: Option<PathBuf>,
}

/// How redress logs in to IMAP or SMTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuthMethod {
    /// A username and password (IMAP LOGIN, SMTP AUTH PLAIN/LOGIN).
    #[default]
    Password,
    /// SASL XOAUTH2 with an OAuth2 access token (Microsoft 365, Google).
    Xoauth2,
}

impl FromStr for AuthMethod {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "password" => Ok(AuthMethod::Password),
            "xoauth2" => Ok(AuthMethod::Xoauth2),
            _ => Err("expected \"password\" or \"xoauth2\"".into()),
        }
    }
}

/// Who issues the OAuth2 tokens: a preset fills in the token URL and scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OAuth2Provider {
    /// Microsoft identity platform (Microsoft 365 / Exchange Online).
    Microsoft,
    Google,
    /// Any other: `token_url` and `scope` are required.
    Custom,
}

impl FromStr for OAuth2Provider {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "microsoft" => Ok(OAuth2Provider::Microsoft),
            "google" => Ok(OAuth2Provider::Google),
            "custom" => Ok(OAuth2Provider::Custom),
            _ => Err("expected \"microsoft\", \"google\" or \"custom\"".into()),
        }
    }
}

/// The scope asked for with Microsoft: IMAP and SMTP as the signed-in
/// mailbox, and a refresh token (`offline_access`).
pub const MICROSOFT_SCOPE: &str = "https://outlook.office.com/IMAP.AccessAsUser.All https://outlook.office.com/SMTP.Send offline_access";
/// The scope asked for with Google: full mail access (the only scope that
/// covers IMAP and SMTP).
pub const GOOGLE_SCOPE: &str = "https://mail.google.com/";
/// Google's token endpoint.
pub const GOOGLE_TOKEN_URL: &str = "https://oauth2.googleapis.com/token";

/// `[oauth2]`: where access tokens for `auth = "xoauth2"` come from. A
/// refresh token (from a file or a systemd credential) is exchanged at the
/// token endpoint for short-lived access tokens.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuth2 {
    #[serde(deserialize_with = "de_parse")]
    pub provider: OAuth2Provider,
    /// Microsoft: the directory (tenant) id or domain, or "organizations".
    pub tenant_id: Option<String>,
    /// The token endpoint; required for "custom", overrides a preset's.
    /// https only, except on loopback.
    pub token_url: Option<String>,
    pub client_id: String,
    /// Optional for public clients (Microsoft); Google needs one.
    pub client_secret: Option<Secret>,
    pub client_secret_file: Option<PathBuf>,
    pub refresh_token: Option<Secret>,
    pub refresh_token_file: Option<PathBuf>,
    /// Space-separated; defaults to the preset's.
    pub scope: Option<String>,
    /// The longest wait (seconds) between refresh attempts while the token
    /// endpoint fails (back-off starts at 1 s and doubles). Default 300;
    /// tests set a few seconds.
    #[serde(default = "default_oauth2_retry_max", deserialize_with = "de_parse")]
    pub retry_max: u64,
}

fn default_oauth2_retry_max() -> u64 {
    300
}

impl OAuth2 {
    /// The token endpoint: `token_url`, or the preset's.
    pub fn token_url(&self) -> Option<String> {
        if let Some(u) = &self.token_url {
            return Some(u.clone());
        }
        match self.provider {
            OAuth2Provider::Microsoft => self
                .tenant_id
                .as_ref()
                .map(|t| format!("https://login.microsoftonline.com/{t}/oauth2/v2.0/token")),
            OAuth2Provider::Google => Some(GOOGLE_TOKEN_URL.to_string()),
            OAuth2Provider::Custom => None,
        }
    }

    /// The scope asked for: `scope`, or the preset's ("" for custom).
    pub fn scope(&self) -> &str {
        match (&self.scope, self.provider) {
            (Some(s), _) => s,
            (None, OAuth2Provider::Microsoft) => MICROSOFT_SCOPE,
            (None, OAuth2Provider::Google) => GOOGLE_SCOPE,
            (None, OAuth2Provider::Custom) => "",
        }
    }

    fn validate(&self, p: &mut Vec<String>) {
        if self.client_id.trim().is_empty() {
            p.push("key `oauth2.client_id`: must not be empty".into());
        }
        match (&self.tenant_id, self.provider) {
            (None, OAuth2Provider::Microsoft) if self.token_url.is_none() => p.push(
                "key `oauth2.tenant_id`: is missing (provider = \"microsoft\" needs the directory (tenant) id, e.g. \"contoso.onmicrosoft.com\" or a GUID)".into(),
            ),
            (Some(t), _)
                if t.is_empty()
                    || !t
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.') =>
            {
                p.push(format!(
                    "key `oauth2.tenant_id`: {t:?} is not a tenant id (a GUID or a domain name)"
                ))
            }
            _ => {}
        }
        if self.provider == OAuth2Provider::Custom && self.token_url.is_none() {
            p.push("key `oauth2.token_url`: is missing (provider = \"custom\" needs the token endpoint)".into());
        }
        if let Some(url) = &self.token_url {
            if let Err(e) = check_token_url(url) {
                p.push(format!("key `oauth2.token_url`: {e}"));
            }
        }
        if self.provider == OAuth2Provider::Custom
            && self.scope.as_deref().is_none_or(|s| s.trim().is_empty())
        {
            p.push(
                "key `oauth2.scope`: is missing (provider = \"custom\" has no default scope)"
                    .into(),
            );
        }
        if self.client_secret.is_some() && self.client_secret_file.is_some() {
            p.push("key `oauth2.client_secret`: set either client_secret or client_secret_file, not both".into());
        }
        match (&self.refresh_token, &self.refresh_token_file) {
            (Some(_), Some(_)) => p.push("key `oauth2.refresh_token`: set either refresh_token or refresh_token_file, not both".into()),
            (None, None) => p.push("key `oauth2.refresh_token_file`: is missing (a file holding the refresh token, e.g. \"$CREDENTIALS_DIRECTORY/redress.oauth2-refresh-token\")".into()),
            _ => {}
        }
        if self.retry_max == 0 {
            p.push("key `oauth2.retry_max`: must be at least 1 second".into());
        }
    }
}

/// A token endpoint must be https, or plain http to a loopback host (the
/// refresh token and client secret travel in it).
pub fn check_token_url(url: &str) -> Result<(), String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("{url:?} is not a URL (write https://...)"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        authority.split(':').next().unwrap_or_default()
    };
    if host.is_empty() {
        return Err(format!("{url:?} names no host"));
    }
    match scheme.to_ascii_lowercase().as_str() {
        "https" => Ok(()),
        "http" if is_loopback_host(host) => Ok(()),
        "http" => Err(format!(
            "{url:?}: plain http would send the refresh token in clear; only allowed to a loopback host, use https"
        )),
        other => Err(format!("{url:?}: scheme {other:?} is not http or https")),
    }
}

fn default_folder() -> String {
    "INBOX".into()
}

fn default_poll() -> u64 {
    60
}

fn default_true() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Store {
    /// The SQLite file (created if missing).
    pub path: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalendarConfig {
    #[serde(default, deserialize_with = "de_parse")]
    pub nation: Nation,
    #[serde(default = "default_tz", deserialize_with = "de_parse")]
    pub time_zone: chrono_tz::Tz,
    /// Mail received at or after this local time counts from the next
    /// working day.
    #[serde(default = "default_cutoff", deserialize_with = "de_hhmm")]
    pub working_day_end: NaiveTime,
    /// When working time starts (escalation emails wait for it).
    #[serde(default = "default_day_start", deserialize_with = "de_hhmm")]
    pub working_day_start: NaiveTime,
    #[serde(default)]
    pub closures: Vec<ClosureConfig>,
    #[serde(default)]
    pub extra_holidays: Vec<NaiveDate>,
    /// gov.uk's `bank-holidays.json`, for years beyond the built-in ones.
    pub bank_holidays_file: Option<PathBuf>,
}

impl Default for CalendarConfig {
    fn default() -> Self {
        CalendarConfig {
            nation: Nation::default(),
            time_zone: default_tz(),
            working_day_end: default_cutoff(),
            working_day_start: default_day_start(),
            closures: Vec::new(),
            extra_holidays: Vec::new(),
            bank_holidays_file: None,
        }
    }
}

fn default_tz() -> chrono_tz::Tz {
    chrono_tz::Europe::London
}

fn default_cutoff() -> NaiveTime {
    NaiveTime::from_hms_opt(17, 0, 0).unwrap_or(NaiveTime::MIN)
}

fn default_day_start() -> NaiveTime {
    NaiveTime::from_hms_opt(9, 0, 0).unwrap_or(NaiveTime::MIN)
}

fn de_hhmm<'de, D: Deserializer<'de>>(d: D) -> Result<NaiveTime, D::Error> {
    let s = String::deserialize(d)?;
    NaiveTime::parse_from_str(&s, "%H:%M").map_err(|_| {
        serde::de::Error::custom(format!("{s:?} is not a time: write HH:MM, e.g. \"17:00\""))
    })
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClosureConfig {
    pub name: String,
    pub from: NaiveDate,
    pub to: NaiveDate,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcedureConfig {
    /// Each rung of the escalation ladder has this long to respond.
    #[serde(default = "default_escalation_window", deserialize_with = "de_parse")]
    pub escalation_window: Span,
    /// Escalation emails wait for working time (no 02:00 or Sunday mail).
    #[serde(default = "default_true")]
    pub escalate_in_working_time: bool,
    #[serde(default, deserialize_with = "de_parse_opt")]
    pub feedback_after: Option<Span>,
    pub stages: Vec<StageConfig>,
}

fn default_escalation_window() -> Span {
    Span::Hours(24)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageConfig {
    pub name: String,
    #[serde(default, deserialize_with = "de_parse_opt")]
    pub raise_within: Option<Span>,
    #[serde(deserialize_with = "de_parse")]
    pub acknowledge_within: Span,
    #[serde(deserialize_with = "de_parse")]
    pub respond_within: Span,
    #[serde(default, deserialize_with = "de_parse_opt")]
    pub max_extension: Option<Span>,
    #[serde(default, deserialize_with = "de_parse_opt")]
    pub escalate_within: Option<Span>,
    #[serde(default, deserialize_with = "de_parse")]
    pub answered_by: AnswererConfig,
    /// What happens next, in the acknowledgement letter.
    #[serde(default)]
    pub next_steps: String,
}

/// Who answers a stage, as written in config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AnswererConfig(pub Answerer);

impl FromStr for AnswererConfig {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(AnswererConfig(match s {
            "department-head" => Answerer::DepartmentHead,
            "quality-coordinator" => Answerer::QualityCoordinator,
            "managing-director" => Answerer::ManagingDirector,
            _ => {
                return Err(
                    "expected department-head, quality-coordinator or managing-director".into(),
                )
            }
        }))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Person {
    pub name: String,
    pub address: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeniorManager {
    pub id: String,
    pub name: String,
    pub address: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Department {
    pub id: String,
    pub name: String,
    pub head: Person,
    /// The `id` of this department's senior manager.
    pub senior_manager: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Staff {
    pub quality_coordinator: Person,
    pub managing_director: Person,
    #[serde(default)]
    pub senior_managers: Vec<SeniorManager>,
    #[serde(default)]
    pub departments: Vec<Department>,
    /// The department a case goes to when no routing rule matches.
    pub default_department: Option<String>,
    /// The key of the tokens that authenticate staff replies (at least 32
    /// characters), from this file (may be under `$CREDENTIALS_DIRECTORY`).
    /// Without it, a random key is generated into the store.
    pub token_secret_file: Option<PathBuf>,
    /// Read from `token_secret_file` by [`load`].
    #[serde(skip)]
    pub token_secret: Option<Secret>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Templates {
    /// A directory of the organisation's own templates; any file there
    /// replaces the built-in one of the same name.
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Intake {
    /// Automatic replies to one sender at most this many per 24 hours.
    #[serde(default = "default_reply_cap", deserialize_with = "de_parse")]
    pub max_auto_replies_per_day: u32,
    /// Attachments larger than this (bytes) are kept but flagged.
    #[serde(default = "default_attachment_cap", deserialize_with = "de_parse")]
    pub attachment_size_cap: u64,
    /// What marks a processed mail on the server: "keyword" (the
    /// `$Redress-Done` keyword plus \Seen) or "move" (to `done_folder`).
    /// Mail is never deleted.
    #[serde(default = "default_mark")]
    pub mark: String,
    /// The folder processed mail moves to when `mark = "move"`.
    #[serde(default = "default_done_folder")]
    pub done_folder: String,
}

fn default_mark() -> String {
    "keyword".into()
}

fn default_done_folder() -> String {
    "Redress/Processed".into()
}

impl Default for Intake {
    fn default() -> Self {
        Intake {
            max_auto_replies_per_day: default_reply_cap(),
            attachment_size_cap: default_attachment_cap(),
            mark: default_mark(),
            done_folder: default_done_folder(),
        }
    }
}

fn default_reply_cap() -> u32 {
    3
}

fn default_attachment_cap() -> u64 {
    25 * 1024 * 1024
}

/// Everything wrong with a config, each problem naming its key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.render())]
pub struct ConfigError {
    pub origin: String,
    pub problems: Vec<String>,
}

impl ConfigError {
    fn one(origin: &str, problem: String) -> Self {
        ConfigError {
            origin: origin.to_string(),
            problems: vec![problem],
        }
    }

    fn render(&self) -> String {
        let mut out = format!(
            "{}: {} problem{}",
            self.origin,
            self.problems.len(),
            if self.problems.len() == 1 { "" } else { "s" }
        );
        for p in &self.problems {
            out.push_str("\n  - ");
            out.push_str(p);
        }
        out
    }
}

/// Parses and validates config text. `origin` names the file in errors;
/// `env` is the process environment (only `REDRESS_*` entries are used).
pub fn parse_str(
    text: &str,
    origin: &str,
    env: &[(String, String)],
) -> Result<Config, ConfigError> {
    let mut doc: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        // The position and the message, not toml's quote of the line: that
        // line may hold a password.
        let at = e
            .span()
            .map(|span| {
                let before = text.get(..span.start).unwrap_or(text);
                let line = before.matches('\n').count() + 1;
                let col = before
                    .rsplit('\n')
                    .next()
                    .map(|l| l.chars().count() + 1)
                    .unwrap_or(1);
                format!(" at line {line}, column {col}")
            })
            .unwrap_or_default();
        ConfigError::one(
            origin,
            format!("not valid TOML{at}: {}", e.message().trim()),
        )
    })?;
    let overridden = apply_env(&mut doc, env).map_err(|p| ConfigError::one(origin, p))?;
    let config: Config =
        serde_path_to_error::deserialize(toml::Value::Table(doc)).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner().to_string();
            // The toml deserializer appends "in `section`": the path says it already.
            let inner = inner.lines().next().unwrap_or_default().trim();
            let problem = if let Some(field) = inner
                .strip_prefix("missing field `")
                .and_then(|s| s.strip_suffix('`'))
            {
                format!("key `{}` is missing", join_key(&path, field))
            } else if path == "." || path.is_empty() {
                inner.to_string()
            } else {
                let var = overridden
                    .iter()
                    .find(|(key, _)| *key == path)
                    .map(|(_, var)| format!(" (set by {var})"))
                    .unwrap_or_default();
                format!("key `{path}`{var}: {inner}")
            };
            ConfigError::one(origin, problem)
        })?;
    let problems = config.validate();
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(ConfigError {
            origin: origin.to_string(),
            problems,
        })
    }
}

fn join_key(path: &str, field: &str) -> String {
    if path.is_empty() || path == "." {
        field.to_string()
    } else {
        format!("{path}.{field}")
    }
}

/// Reads the config file and the password files it names.
pub fn load(path: &Path) -> anyhow::Result<Config> {
    let mut config = load_for_store(path)?;
    let origin = path.display().to_string();
    config.imap.password = resolve_password(
        &origin,
        "imap.password_file",
        config.imap.password.take(),
        &config.imap.password_file,
    )?;
    config.smtp.password = resolve_password(
        &origin,
        "smtp.password_file",
        config.smtp.password.take(),
        &config.smtp.password_file,
    )?;
    if let Some(o) = config.oauth2.as_mut() {
        o.client_secret = resolve_password(
            &origin,
            "oauth2.client_secret_file",
            o.client_secret.take(),
            &o.client_secret_file,
        )?;
        o.refresh_token = resolve_password(
            &origin,
            "oauth2.refresh_token_file",
            o.refresh_token.take(),
            &o.refresh_token_file,
        )?;
    }
    Ok(config)
}

/// Reads the config file and, of the secrets, only the token key: what a
/// command that works on the store and queues letters (`tick`, `cases
/// open`) needs; the mail servers' passwords stay unread.
pub fn load_for_store(path: &Path) -> anyhow::Result<Config> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("Reading config {}", path.display()))?;
    let env: Vec<(String, String)> = std::env::vars().collect();
    let mut config = parse_str(&text, &path.display().to_string(), &env)?;
    let origin = path.display().to_string();
    config.staff.token_secret = resolve_password(
        &origin,
        "staff.token_secret_file",
        None,
        &config.staff.token_secret_file,
    )?;
    if let Some(t) = &config.staff.token_secret {
        if t.expose().trim().len() < 32 {
            return Err(ConfigError::one(
                &origin,
                "key `staff.token_secret_file`: the secret must be at least 32 characters".into(),
            )
            .into());
        }
    }
    Ok(config)
}

/// Expands `$CREDENTIALS_DIRECTORY` (systemd `LoadCredential=`) at the start
/// of a path.
pub fn expand_credentials(path: &Path) -> PathBuf {
    let text = path.to_string_lossy();
    for prefix in ["${CREDENTIALS_DIRECTORY}", "$CREDENTIALS_DIRECTORY"] {
        if let Some(rest) = text.strip_prefix(prefix) {
            if let Ok(dir) = std::env::var("CREDENTIALS_DIRECTORY") {
                return PathBuf::from(format!("{dir}{rest}"));
            }
        }
    }
    path.to_path_buf()
}

fn resolve_password(
    origin: &str,
    key: &str,
    password: Option<Secret>,
    file: &Option<PathBuf>,
) -> Result<Option<Secret>, ConfigError> {
    let Some(file) = file else {
        return Ok(password);
    };
    let path = expand_credentials(file);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        ConfigError::one(
            origin,
            format!("key `{key}`: cannot read {}: {e}", path.display()),
        )
    })?;
    let secret = text.trim_end_matches(['\r', '\n']).to_string();
    if secret.is_empty() {
        return Err(ConfigError::one(
            origin,
            format!("key `{key}`: {} is empty", path.display()),
        ));
    }
    Ok(Some(Secret(secret)))
}

/// Applies `REDRESS_<SECTION>_<KEY>` variables to the document. Returns the
/// dotted keys set, with the variable that set each.
fn apply_env(
    doc: &mut toml::Table,
    env: &[(String, String)],
) -> Result<Vec<(String, String)>, String> {
    let mut set = Vec::new();
    let mut vars: Vec<&(String, String)> = env
        .iter()
        .filter(|(k, _)| k.starts_with("REDRESS_"))
        .collect();
    vars.sort();
    for (var, value) in vars {
        let rest = var["REDRESS_".len()..].to_ascii_lowercase();
        let Some(section) = SECTIONS.iter().find(|s| rest.starts_with(&format!("{s}_"))) else {
            continue;
        };
        let mut key_rest = rest[section.len() + 1..].to_string();
        let mut path = vec![section.to_string()];
        // Descend into sub-tables named by the longest matching prefix
        // (REDRESS_STAFF_QUALITY_COORDINATOR_ADDRESS -> staff.quality_coordinator.address).
        doc.entry(section.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        // Find the path first (immutably), then walk it mutably.
        loop {
            let table = table_at(doc, &path).ok_or_else(|| {
                format!("{var}: `{}` is not a table in the config", path.join("."))
            })?;
            let sub = table
                .iter()
                .filter(|(k, v)| v.is_table() && key_rest.starts_with(&format!("{k}_")))
                .map(|(k, _)| k.clone())
                .max_by_key(|k| k.len());
            let Some(sub) = sub else { break };
            key_rest = key_rest[sub.len() + 1..].to_string();
            path.push(sub);
        }
        let table = table_at_mut(doc, &path)
            .ok_or_else(|| format!("{var}: `{}` is not a table", path.join(".")))?;
        let key = format!("key `{}.{key_rest}` (set by {var})", path.join("."));
        // A secret's value is never repeated in an error.
        let shown = if ["password", "secret", "token"]
            .iter()
            .any(|w| key_rest.contains(w))
        {
            "the value".to_string()
        } else {
            format!("{value:?}")
        };
        let new_value = match table.get(&key_rest) {
            Some(toml::Value::Integer(_)) => value
                .trim()
                .parse::<i64>()
                .map(toml::Value::Integer)
                .map_err(|_| format!("{key}: {shown} is not a whole number"))?,
            Some(toml::Value::Boolean(_)) => value
                .trim()
                .parse::<bool>()
                .map(toml::Value::Boolean)
                .map_err(|_| format!("{key}: {shown} is not true or false"))?,
            Some(toml::Value::Array(_)) | Some(toml::Value::Table(_)) => {
                let wrapped = format!("v = {value}");
                let mut t: toml::Table = wrapped
                    .parse()
                    .map_err(|e| format!("{key}: not a TOML value: {e}"))?;
                t.remove("v").ok_or_else(|| format!("{key}: empty value"))?
            }
            _ => toml::Value::String(value.clone()),
        };
        table.insert(key_rest.clone(), new_value);
        path.push(key_rest);
        set.push((path.join("."), var.clone()));
    }
    Ok(set)
}

fn table_at<'a>(doc: &'a toml::Table, path: &[String]) -> Option<&'a toml::Table> {
    path.iter().try_fold(doc, |t, k| t.get(k)?.as_table())
}

fn table_at_mut<'a>(doc: &'a mut toml::Table, path: &[String]) -> Option<&'a mut toml::Table> {
    path.iter()
        .try_fold(doc, |t, k| t.get_mut(k)?.as_table_mut())
}

fn is_loopback_host(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost")
        || h.parse::<IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}

/// A plain check of an email address: one `@`, something either side, no
/// spaces or angle brackets.
pub fn looks_like_address(s: &str) -> bool {
    let mut parts = s.split('@');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(local), Some(domain), None) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !s
                    .chars()
                    .any(|c| c.is_whitespace() || c == '<' || c == '>' || c == ',')
        }
        _ => false,
    }
}

impl Config {
    /// Every problem the typed parse could not catch, each naming its key.
    pub fn validate(&self) -> Vec<String> {
        let mut p = Vec::new();
        let addr = |key: &str, value: &str, p: &mut Vec<String>| {
            if !looks_like_address(value) {
                p.push(format!("key `{key}`: {value:?} is not an email address"));
            }
        };
        if self.organisation.name.trim().is_empty() {
            p.push("key `organisation.name`: must not be empty".into());
        }
        if let Err(e) = crate::logging::check_level(&self.log.level) {
            p.push(format!("key `log.level`: {e}"));
        }
        if let Err(e) = self.log.format.parse::<crate::logging::Format>() {
            p.push(format!("key `log.format`: {e}"));
        }
        let prefix = &self.organisation.reference_prefix;
        if prefix.is_empty()
            || prefix.len() > 16
            || !prefix
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-')
            || prefix.starts_with('-')
            || prefix.ends_with('-')
        {
            p.push(format!(
                "key `organisation.reference_prefix`: {prefix:?} must be 1-16 capital letters, digits or inner dashes, e.g. \"OPP\""
            ));
        }
        addr("mailbox.address", &self.mailbox.address, &mut p);
        for (section, host, tls, password, file) in [
            (
                "imap",
                &self.imap.host,
                self.imap.tls,
                &self.imap.password,
                &self.imap.password_file,
            ),
            (
                "smtp",
                &self.smtp.host,
                self.smtp.tls,
                &self.smtp.password,
                &self.smtp.password_file,
            ),
        ] {
            if host.trim().is_empty() {
                p.push(format!("key `{section}.host`: must not be empty"));
            }
            if tls == TlsMode::None && !is_loopback_host(host) {
                p.push(format!(
                    "key `{section}.tls`: \"none\" sends the password in clear and is only allowed for a loopback host (127.0.0.1, ::1, localhost), not {host:?}; use \"implicit\" or \"starttls\""
                ));
            }
            if password.is_some() && file.is_some() {
                p.push(format!(
                    "key `{section}.password`: set either password or password_file, not both"
                ));
            }
        }
        if self.imap.auth == AuthMethod::Password
            && self.imap.password.is_none()
            && self.imap.password_file.is_none()
        {
            p.push(
                "key `imap.password`: is missing (set imap.password or imap.password_file)".into(),
            );
        }
        for (section, auth) in [("imap", self.imap.auth), ("smtp", self.smtp.auth)] {
            if auth == AuthMethod::Xoauth2 && self.oauth2.is_none() {
                p.push(format!(
                    "key `{section}.auth`: \"xoauth2\" needs an [oauth2] section (provider, client_id, refresh_token_file)"
                ));
            }
        }
        if self.smtp.auth == AuthMethod::Xoauth2 && self.smtp.username.is_none() {
            p.push(
                "key `smtp.username`: is missing (smtp.auth = \"xoauth2\" logs in as this mailbox)"
                    .into(),
            );
        }
        if let Some(o) = &self.oauth2 {
            o.validate(&mut p);
        }
        if self.imap.port == Some(0) {
            p.push("key `imap.port`: must not be 0".into());
        }
        if self.smtp.port == Some(0) {
            p.push("key `smtp.port`: must not be 0".into());
        }
        if self.imap.folder.trim().is_empty() {
            p.push("key `imap.folder`: must not be empty".into());
        }
        if self.imap.poll_interval == 0 {
            p.push("key `imap.poll_interval`: must be at least 1 second".into());
        }
        if self.smtp.username.is_none()
            && self.smtp.auth == AuthMethod::Password
            && (self.smtp.password.is_some() || self.smtp.password_file.is_some())
        {
            p.push("key `smtp.username`: is missing (a password is set)".into());
        }
        if let Some(from) = &self.smtp.from {
            addr("smtp.from", from, &mut p);
        }
        if self.store.path.as_os_str().is_empty() {
            p.push("key `store.path`: must not be empty".into());
        }
        if self.calendar.working_day_start >= self.calendar.working_day_end {
            p.push(format!(
                "key `calendar.working_day_start`: {} is not before `working_day_end` {}",
                self.calendar.working_day_start.format("%H:%M"),
                self.calendar.working_day_end.format("%H:%M")
            ));
        }
        for (i, c) in self.calendar.closures.iter().enumerate() {
            if c.to < c.from {
                p.push(format!(
                    "key `calendar.closures[{i}]` ({}): `to` {} is before `from` {}",
                    c.name, c.to, c.from
                ));
            }
        }
        if self.procedure.stages.is_empty() {
            p.push("key `procedure.stages`: the procedure needs at least one stage".into());
        }
        let mut names = HashSet::new();
        for (i, s) in self.procedure.stages.iter().enumerate() {
            if s.name.trim().is_empty()
                || !s
                    .name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            {
                p.push(format!(
                    "key `procedure.stages[{i}].name`: {:?} must be lower-case letters, digits and dashes",
                    s.name
                ));
            }
            if !names.insert(s.name.as_str()) {
                p.push(format!(
                    "key `procedure.stages[{i}].name`: stage {:?} appears twice",
                    s.name
                ));
            }
        }
        let staff = &self.staff;
        addr(
            "staff.quality_coordinator.address",
            &staff.quality_coordinator.address,
            &mut p,
        );
        addr(
            "staff.managing_director.address",
            &staff.managing_director.address,
            &mut p,
        );
        let mut managers = HashSet::new();
        for (i, m) in staff.senior_managers.iter().enumerate() {
            addr(
                &format!("staff.senior_managers[{i}].address"),
                &m.address,
                &mut p,
            );
            if !managers.insert(m.id.as_str()) {
                p.push(format!(
                    "key `staff.senior_managers[{i}].id`: {:?} appears twice",
                    m.id
                ));
            }
        }
        let mut departments = HashSet::new();
        for (i, d) in staff.departments.iter().enumerate() {
            addr(
                &format!("staff.departments[{i}].head.address"),
                &d.head.address,
                &mut p,
            );
            if !departments.insert(d.id.as_str()) {
                p.push(format!(
                    "key `staff.departments[{i}].id`: {:?} appears twice",
                    d.id
                ));
            }
            if !managers.contains(d.senior_manager.as_str()) {
                p.push(format!(
                    "key `staff.departments[{i}].senior_manager`: no senior manager has id {:?}",
                    d.senior_manager
                ));
            }
        }
        if let Some(def) = &staff.default_department {
            if !departments.contains(def.as_str()) {
                p.push(format!(
                    "key `staff.default_department`: no department has id {def:?}"
                ));
            }
        }
        if let Some(addr) = self.metrics.listen {
            if !addr.ip().is_loopback() {
                p.push(format!(
                    "key `metrics.listen`: {addr} is not a loopback address; metrics are served only on 127.0.0.0/8 or [::1] (e.g. \"127.0.0.1:9187\")"
                ));
            } else if addr.port() == 0 {
                p.push("key `metrics.listen`: the port must not be 0".into());
            }
        }
        if !matches!(self.intake.mark.as_str(), "keyword" | "move") {
            p.push(format!(
                "key `intake.mark`: {:?} must be \"keyword\" or \"move\"",
                self.intake.mark
            ));
        }
        for (i, r) in self.routing.iter().enumerate() {
            if !departments.contains(r.department.as_str()) {
                p.push(format!(
                    "key `routing[{i}].department`: no department has id {:?}",
                    r.department
                ));
            }
            if !matches!(r.field.as_str(), "subject" | "body" | "recipient" | "any") {
                p.push(format!(
                    "key `routing[{i}].field`: {:?} must be \"subject\", \"body\", \"recipient\" or \"any\"",
                    r.field
                ));
            }
            if let Err(e) = regex::Regex::new(&r.pattern) {
                p.push(format!(
                    "key `routing[{i}].pattern`: not a regular expression: {e}"
                ));
            }
        }
        let staff_addresses: Vec<&str> =
            self.staff_addresses().into_iter().map(|(a, _)| a).collect();
        if staff_addresses
            .iter()
            .any(|a| a.eq_ignore_ascii_case(&self.mailbox.address))
        {
            p.push(
                "key `mailbox.address`: the complaints address must not also be a staff address"
                    .into(),
            );
        }
        p
    }

    /// The port to use for IMAP: configured, or the standard one for the TLS mode.
    pub fn imap_port(&self) -> u16 {
        self.imap.port.unwrap_or(match self.imap.tls {
            TlsMode::Implicit => 993,
            _ => 143,
        })
    }

    pub fn smtp_port(&self) -> u16 {
        self.smtp.port.unwrap_or(match self.smtp.tls {
            TlsMode::Implicit => 465,
            TlsMode::Starttls => 587,
            TlsMode::None => 25,
        })
    }

    /// The From address of letters.
    pub fn from_address(&self) -> &str {
        self.smtp.from.as_deref().unwrap_or(&self.mailbox.address)
    }

    /// The domain of the Message-IDs redress makes.
    pub fn message_id_domain(&self) -> &str {
        self.organisation
            .message_id_domain
            .as_deref()
            .or_else(|| self.mailbox.address.rsplit_once('@').map(|(_, d)| d))
            .unwrap_or("redress.invalid")
    }

    /// Every staff address with the role it has.
    pub fn staff_addresses(&self) -> Vec<(&str, String)> {
        let s = &self.staff;
        let mut out = vec![
            (
                s.quality_coordinator.address.as_str(),
                "quality-coordinator".to_string(),
            ),
            (
                s.managing_director.address.as_str(),
                "managing-director".to_string(),
            ),
        ];
        out.extend(
            s.senior_managers
                .iter()
                .map(|m| (m.address.as_str(), format!("senior-manager:{}", m.id))),
        );
        out.extend(
            s.departments
                .iter()
                .map(|d| (d.head.address.as_str(), format!("department-head:{}", d.id))),
        );
        out
    }

    /// The working-day calendar's facts (extra holidays from the gov.uk
    /// file are added by the caller that reads it).
    pub fn calendar_spec(&self) -> CalendarSpec {
        CalendarSpec {
            nation: self.calendar.nation,
            time_zone: self.calendar.time_zone,
            cutoff: self.calendar.working_day_end,
            day_start: self.calendar.working_day_start,
            closures: self
                .calendar
                .closures
                .iter()
                .map(|c| Closure {
                    name: c.name.clone(),
                    from: c.from,
                    to: c.to,
                })
                .collect(),
            extra_holidays: self.calendar.extra_holidays.clone(),
        }
    }

    /// The working-day calendar: the spec plus, when configured, gov.uk's
    /// `bank-holidays.json` for the nation (reads that file). `nation`
    /// overrides the configured nation.
    pub fn calendar(
        &self,
        nation: Option<Nation>,
    ) -> anyhow::Result<crate::core::calendar::WorkingCalendar> {
        let mut spec = self.calendar_spec();
        if let Some(n) = nation {
            spec.nation = n;
        }
        if let Some(file) = &self.calendar.bank_holidays_file {
            let all = crate::adapters::bank_holidays::read(file)
                .with_context(|| "key `calendar.bank_holidays_file`".to_string())?;
            if let Some(days) = all.get(&spec.nation) {
                spec.extra_holidays.extend(days.iter().map(|h| h.date));
            }
        }
        Ok(crate::core::calendar::WorkingCalendar::new(spec))
    }

    /// The routing rules, compiled (validate() has checked them).
    pub fn routing_rules(&self) -> Vec<crate::core::intake::RoutingRule> {
        use crate::core::intake::{RouteField, RoutingRule};
        self.routing
            .iter()
            .filter_map(|r| {
                Some(RoutingRule {
                    department: r.department.clone(),
                    field: match r.field.as_str() {
                        "subject" => RouteField::Subject,
                        "body" => RouteField::Body,
                        "recipient" => RouteField::Recipient,
                        _ => RouteField::Any,
                    },
                    pattern: regex::Regex::new(&r.pattern).ok()?,
                })
            })
            .collect()
    }

    /// The department a case goes to when no rule matches.
    pub fn default_department(&self) -> &str {
        self.staff
            .default_department
            .as_deref()
            .or_else(|| self.staff.departments.first().map(|d| d.id.as_str()))
            .unwrap_or("")
    }

    /// A department by id.
    pub fn department(&self, id: &str) -> Option<&Department> {
        self.staff.departments.iter().find(|d| d.id == id)
    }

    /// A department as staff name it in a command: by id, or by name in
    /// any case.
    pub fn find_department(&self, text: &str) -> Option<&Department> {
        self.department(text).or_else(|| {
            self.staff
                .departments
                .iter()
                .find(|d| d.name.eq_ignore_ascii_case(text))
        })
    }

    /// Who is told of a new case (or a case starting a new stage) in
    /// `department`: the Quality Coordinator and the department head
    /// (once, when they are the same person): (name, address).
    /// Why a reload from `self` to `new` cannot be applied while running
    /// (the keys that take a restart), or None.
    pub fn restart_needed_for(&self, new: &Config) -> Option<String> {
        if self.oauth2 != new.oauth2
            || self.imap.auth != new.imap.auth
            || self.smtp.auth != new.smtp.auth
        {
            return Some(
                "keys `oauth2`, `imap.auth` or `smtp.auth` changed: how redress logs in changes at the next restart"
                    .into(),
            );
        }
        if self.store.path != new.store.path {
            return Some(format!(
                "key `store.path` changed ({} -> {}): moving the store needs a restart",
                self.store.path.display(),
                new.store.path.display()
            ));
        }
        None
    }

    /// Whether an IMAP connection made with `self` can go on serving
    /// `other` (on reload): same server, login, folder and marking.
    pub fn same_mailbox_as(&self, other: &Config) -> bool {
        self.imap == other.imap
            && self.intake.mark == other.intake.mark
            && self.intake.done_folder == other.intake.done_folder
    }

    pub fn new_case_recipients(&self, department: &str) -> Vec<(&str, &str)> {
        let qc = &self.staff.quality_coordinator;
        let mut to = vec![(qc.name.as_str(), qc.address.as_str())];
        if let Some(d) = self.department(department) {
            if !d.head.address.eq_ignore_ascii_case(&qc.address) {
                to.push((d.head.name.as_str(), d.head.address.as_str()));
            }
        }
        to
    }

    /// The stage's words for the acknowledgement.
    pub fn next_steps(&self, stage: &str) -> &str {
        self.procedure
            .stages
            .iter()
            .find(|s| s.name == stage)
            .map(|s| s.next_steps.as_str())
            .unwrap_or("")
    }

    /// The procedure as the core sees it.
    pub fn procedure(&self) -> Procedure {
        Procedure {
            stages: self
                .procedure
                .stages
                .iter()
                .map(|s| Stage {
                    name: StageName(s.name.clone()),
                    raise_within: s.raise_within,
                    acknowledge_within: s.acknowledge_within,
                    respond_within: s.respond_within,
                    max_extension: s.max_extension,
                    escalate_within: s.escalate_within,
                    answered_by: s.answered_by.0,
                })
                .collect(),
            escalation_window: self.procedure.escalation_window,
            escalate_in_working_time: self.procedure.escalate_in_working_time,
            feedback_after: self.procedure.feedback_after,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../config.example.toml");
    const OPAL: &str = include_str!("../config.opal.example.toml");

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn problems(text: &str, vars: &[(&str, &str)]) -> Vec<String> {
        match parse_str(text, "test.toml", &env(vars)) {
            Ok(_) => Vec::new(),
            Err(e) => e.problems,
        }
    }

    #[test]
    fn both_example_configs_are_valid() {
        let c = parse_str(EXAMPLE, "config.example.toml", &[]).expect("example config");
        assert_eq!(c.organisation.reference_prefix, "OPP");
        assert_eq!(c.procedure.stages.len(), 3);
        assert_eq!(c.procedure.stages[0].acknowledge_within, Span::Hours(48));
        assert_eq!(c.procedure.escalation_window, Span::Hours(24));
        assert_eq!(c.procedure.stages[0].escalate_within, Some(Span::Months(1)));
        let o = parse_str(OPAL, "config.opal.example.toml", &[]).expect("opal config");
        assert_eq!(
            o.procedure.stages.last().map(|s| s.respond_within),
            Some(Span::WorkingDays(30))
        );
        assert_eq!(o.procedure.feedback_after, Some(Span::WorkingDays(15)));
        assert!(!o.calendar.closures.is_empty());
    }

    #[test]
    fn unknown_keys_are_named() {
        let text = EXAMPLE.replace("[imap]\n", "[imap]\nprot = 1\n");
        let p = problems(&text, &[]);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].contains("imap.prot") && p[0].contains("unknown field"),
            "{p:?}"
        );
    }

    #[test]
    fn a_reload_keeps_the_mailbox_only_when_its_settings_are_the_same() {
        let a = parse_str(EXAMPLE, "t", &[]).expect("example");
        let b = parse_str(
            &EXAMPLE.replace("level = \"info\"", "level = \"debug\""),
            "t",
            &[],
        )
        .expect("log level changed");
        assert!(a.same_mailbox_as(&b));
        let c = parse_str(EXAMPLE, "t", &env(&[("REDRESS_IMAP_PASSWORD", "another")])).expect("pw");
        assert!(!a.same_mailbox_as(&c), "a new password must log in again");
        let d = parse_str(EXAMPLE, "t", &env(&[("REDRESS_INTAKE_MARK", "move")])).expect("mark");
        assert!(!a.same_mailbox_as(&d));
        assert_eq!(
            a.restart_needed_for(&c),
            None,
            "a new password is applied by reconnecting"
        );
        let e = parse_str(
            EXAMPLE,
            "t",
            &env(&[("REDRESS_STORE_PATH", "/elsewhere.sqlite")]),
        )
        .expect("store");
        assert!(a
            .restart_needed_for(&e)
            .is_some_and(|w| w.contains("store.path")));
    }

    #[test]
    fn log_settings_are_checked() {
        let c = parse_str(EXAMPLE, "t", &[]).expect("example");
        assert_eq!(
            (c.log.level.as_str(), c.log.format.as_str()),
            ("info", "auto")
        );
        let text = EXAMPLE
            .replace("level = \"info\"", "level = \"redress=debug,info\"")
            .replace("format = \"auto\"", "format = \"json\"");
        let c = parse_str(&text, "t", &[]).expect("log section");
        assert_eq!(c.log.format, "json");
        let text = EXAMPLE
            .replace("level = \"info\"", "level = \"redress=loud\"")
            .replace("format = \"auto\"", "format = \"xml\"");
        let p = problems(&text, &[]);
        assert!(p.iter().any(|p| p.contains("key `log.level`")), "{p:?}");
        assert!(p.iter().any(|p| p.contains("key `log.format`")), "{p:?}");
    }

    #[test]
    fn missing_keys_are_named() {
        let text = EXAMPLE.replace("address = \"complaints@opp.example\"", "");
        let p = problems(&text, &[]);
        assert!(p[0].contains("key `mailbox.address` is missing"), "{p:?}");
    }

    #[test]
    fn bad_values_are_named() {
        let text = EXAMPLE.replace(
            "respond_within = \"20 working days\"",
            "respond_within = \"20 fortnights\"",
        );
        let p = problems(&text, &[]);
        assert!(p[0].contains("procedure.stages[0].respond_within"), "{p:?}");
        let p = problems(EXAMPLE, &[("REDRESS_IMAP_PORT", "lots")]);
        assert!(
            p[0].contains("imap.port") && p[0].contains("REDRESS_IMAP_PORT"),
            "{p:?}"
        );
        let p = problems(EXAMPLE, &[("REDRESS_CALENDAR_NATION", "wales")]);
        assert!(p[0].contains("calendar.nation"), "{p:?}");
    }

    #[test]
    fn environment_overrides_any_key() {
        let c = parse_str(
            EXAMPLE,
            "t",
            &env(&[
                ("REDRESS_IMAP_PORT", "10143"),
                ("REDRESS_IMAP_HOST", "127.0.0.1"),
                ("REDRESS_IMAP_TLS", "none"),
                ("REDRESS_IMAP_PASSWORD", "12345"),
                ("REDRESS_MAILBOX_ADDRESS", "desk@opp.example"),
                (
                    "REDRESS_STAFF_QUALITY_COORDINATOR_ADDRESS",
                    "qc2@opp.example",
                ),
                ("REDRESS_STORE_PATH", "/tmp/x.sqlite"),
                ("REDRESS_UNRELATED_THING", "ignored"),
            ]),
        )
        .expect("overridden");
        assert_eq!(c.imap.port, Some(10143));
        assert_eq!(c.imap.tls, TlsMode::None);
        assert_eq!(c.imap.password.as_ref().map(|s| s.expose()), Some("12345"));
        assert_eq!(c.mailbox.address, "desk@opp.example");
        assert_eq!(c.staff.quality_coordinator.address, "qc2@opp.example");
        assert_eq!(c.store.path, PathBuf::from("/tmp/x.sqlite"));
    }

    #[test]
    fn plain_text_is_refused_off_loopback() {
        let p = problems(EXAMPLE, &[("REDRESS_IMAP_TLS", "none")]);
        assert!(
            p.iter()
                .any(|x| x.contains("imap.tls") && x.contains("loopback")),
            "{p:?}"
        );
        for host in ["127.0.0.1", "127.8.9.1", "::1", "[::1]", "localhost"] {
            let p = problems(
                EXAMPLE,
                &[("REDRESS_SMTP_TLS", "none"), ("REDRESS_SMTP_HOST", host)],
            );
            assert!(p.is_empty(), "{host}: {p:?}");
        }
    }

    #[test]
    fn metrics_are_off_by_default_and_only_on_loopback() {
        let cfg = parse_str(EXAMPLE, "t", &[]).expect("valid");
        assert_eq!(cfg.metrics.listen, None);
        for addr in ["127.0.0.1:9187", "127.3.2.1:9187", "[::1]:9187"] {
            let cfg = parse_str(EXAMPLE, "t", &env(&[("REDRESS_METRICS_LISTEN", addr)]))
                .unwrap_or_else(|e| panic!("{addr}: {e}"));
            assert_eq!(cfg.metrics.listen, addr.parse().ok());
        }
        for addr in ["0.0.0.0:9187", "192.0.2.7:9187", "[::]:9187"] {
            let p = problems(EXAMPLE, &[("REDRESS_METRICS_LISTEN", addr)]);
            assert!(
                p.iter()
                    .any(|x| x.contains("metrics.listen") && x.contains("not a loopback")),
                "{addr}: {p:?}"
            );
        }
        let p = problems(EXAMPLE, &[("REDRESS_METRICS_LISTEN", "localhost")]);
        assert!(p.iter().any(|x| x.contains("metrics.listen")), "{p:?}");
        let p = problems(EXAMPLE, &[("REDRESS_METRICS_LISTEN", "127.0.0.1:0")]);
        assert!(p.iter().any(|x| x.contains("port must not be 0")), "{p:?}");
        let p = problems(
            &format!("{EXAMPLE}\n[metrics]\nlisten = \"127.0.0.1:9187\"\nport = 1\n"),
            &[],
        );
        assert!(p.iter().any(|x| x.contains("port")), "{p:?}");
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let p = problems(
            EXAMPLE,
            &[
                ("REDRESS_MAILBOX_ADDRESS", "not an address"),
                ("REDRESS_ORGANISATION_REFERENCE_PREFIX", "op p"),
                ("REDRESS_STAFF_DEFAULT_DEPARTMENT", "nowhere"),
            ],
        );
        assert_eq!(p.len(), 3, "{p:?}");
    }

    #[test]
    fn secrets_stay_out_of_debug() {
        let c = parse_str(
            EXAMPLE,
            "t",
            &env(&[("REDRESS_IMAP_PASSWORD", "hunter2-secret")]),
        )
        .expect("config");
        let dump = format!("{c:?}");
        assert!(!dump.contains("hunter2-secret"));
        assert!(dump.contains("<redacted>"));
    }

    #[test]
    fn not_toml_is_a_clear_error() {
        let p = problems("[imap\nhost = ", &[]);
        assert!(p[0].starts_with("not valid TOML at line 1"), "{p:?}");
        // The offending line is not quoted: it may hold a password.
        let p = problems("[imap]\npassword = \"hunter2-secret\" x\n", &[]);
        assert!(
            p[0].contains("line 2") && !p[0].contains("hunter2"),
            "{p:?}"
        );
    }

    #[test]
    fn defaults_fill_in() {
        let c = parse_str(EXAMPLE, "t", &[]).expect("config");
        assert_eq!(c.from_address(), "complaints@opp.example");
        assert_eq!(c.message_id_domain(), "opp.example");
        assert_eq!(c.intake.max_auto_replies_per_day, 3);
    }

    fn oauth_env<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        let mut v = vec![
            ("REDRESS_IMAP_AUTH", "xoauth2"),
            ("REDRESS_SMTP_AUTH", "xoauth2"),
            ("REDRESS_OAUTH2_PROVIDER", "microsoft"),
            ("REDRESS_OAUTH2_TENANT_ID", "contoso.onmicrosoft.com"),
            (
                "REDRESS_OAUTH2_CLIENT_ID",
                "00000000-1111-2222-3333-444444444444",
            ),
            ("REDRESS_OAUTH2_REFRESH_TOKEN", "rt-secret-value"),
        ];
        v.retain(|(k, _)| !extra.iter().any(|(e, _)| e == k));
        v.extend_from_slice(extra);
        v
    }

    #[test]
    fn xoauth2_presets_fill_in_url_and_scope() {
        let c = parse_str(EXAMPLE, "t", &env(&oauth_env(&[]))).expect("microsoft config");
        assert_eq!(c.imap.auth, AuthMethod::Xoauth2);
        assert_eq!(c.smtp.auth, AuthMethod::Xoauth2);
        let o = c.oauth2.as_ref().expect("oauth2");
        assert_eq!(
            o.token_url().as_deref(),
            Some("https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token")
        );
        assert!(
            o.scope().contains("IMAP.AccessAsUser.All") && o.scope().contains("offline_access")
        );
        let dump = format!("{c:?}");
        assert!(!dump.contains("rt-secret-value"), "{dump}");

        let g = parse_str(
            EXAMPLE,
            "t",
            &env(&oauth_env(&[
                ("REDRESS_OAUTH2_PROVIDER", "google"),
                ("REDRESS_OAUTH2_TENANT_ID", ""),
            ])),
        );
        // An empty tenant id is refused even where it is not needed.
        assert!(g.is_err());
        let mut vars = oauth_env(&[("REDRESS_OAUTH2_PROVIDER", "google")]);
        vars.retain(|(k, _)| *k != "REDRESS_OAUTH2_TENANT_ID");
        let g = parse_str(EXAMPLE, "t", &env(&vars)).expect("google config");
        let o = g.oauth2.as_ref().expect("oauth2");
        assert_eq!(o.token_url().as_deref(), Some(GOOGLE_TOKEN_URL));
        assert_eq!(o.scope(), "https://mail.google.com/");
        // Defaults stay "password" without the keys.
        let plain = parse_str(EXAMPLE, "t", &[]).expect("config");
        assert_eq!(plain.imap.auth, AuthMethod::Password);
        assert!(plain.oauth2.is_none());
    }

    #[test]
    fn xoauth2_mistakes_name_their_key() {
        // xoauth2 without [oauth2].
        let p = problems(EXAMPLE, &[("REDRESS_IMAP_AUTH", "xoauth2")]);
        assert!(
            p.iter()
                .any(|x| x.contains("imap.auth") && x.contains("[oauth2]")),
            "{p:?}"
        );
        let p = problems(EXAMPLE, &[("REDRESS_IMAP_AUTH", "oauth")]);
        assert!(
            p[0].contains("imap.auth") && p[0].contains("xoauth2"),
            "{p:?}"
        );
        // Microsoft without a tenant.
        let mut vars = oauth_env(&[]);
        vars.retain(|(k, _)| *k != "REDRESS_OAUTH2_TENANT_ID");
        let p = problems(EXAMPLE, &vars);
        assert!(p.iter().any(|x| x.contains("oauth2.tenant_id")), "{p:?}");
        // Plain http off loopback; other schemes.
        let p = problems(
            EXAMPLE,
            &oauth_env(&[("REDRESS_OAUTH2_TOKEN_URL", "http://login.example.com/token")]),
        );
        assert!(
            p.iter()
                .any(|x| x.contains("oauth2.token_url") && x.contains("loopback")),
            "{p:?}"
        );
        for ok in [
            "http://127.0.0.1:8080/token",
            "http://[::1]:9/t",
            "https://idp.example/t",
        ] {
            let p = problems(EXAMPLE, &oauth_env(&[("REDRESS_OAUTH2_TOKEN_URL", ok)]));
            assert!(p.is_empty(), "{ok}: {p:?}");
        }
        let p = problems(
            EXAMPLE,
            &oauth_env(&[("REDRESS_OAUTH2_TOKEN_URL", "ftp://127.0.0.1/token")]),
        );
        assert!(p.iter().any(|x| x.contains("oauth2.token_url")), "{p:?}");
        // Custom needs a URL and a scope.
        let p = problems(
            EXAMPLE,
            &oauth_env(&[("REDRESS_OAUTH2_PROVIDER", "custom")]),
        );
        assert!(p.iter().any(|x| x.contains("oauth2.token_url")), "{p:?}");
        assert!(p.iter().any(|x| x.contains("oauth2.scope")), "{p:?}");
        // No refresh token at all; both forms at once.
        let mut vars = oauth_env(&[]);
        vars.retain(|(k, _)| *k != "REDRESS_OAUTH2_REFRESH_TOKEN");
        let p = problems(EXAMPLE, &vars);
        assert!(
            p.iter().any(|x| x.contains("oauth2.refresh_token_file")),
            "{p:?}"
        );
        let p = problems(
            EXAMPLE,
            &oauth_env(&[("REDRESS_OAUTH2_REFRESH_TOKEN_FILE", "/run/rt")]),
        );
        assert!(
            p.iter().any(|x| x.contains("oauth2.refresh_token")),
            "{p:?}"
        );
        // A bad value never echoes a secret.
        let p = problems(EXAMPLE, &oauth_env(&[("REDRESS_OAUTH2_RETRY_MAX", "0")]));
        assert!(p.iter().any(|x| x.contains("oauth2.retry_max")), "{p:?}");
        assert!(p.iter().all(|x| !x.contains("rt-secret-value")), "{p:?}");
    }

    #[test]
    fn xoauth2_needs_no_password_but_smtp_needs_a_username() {
        // The example has passwords; without them xoauth2 is still fine.
        let text = EXAMPLE.replace("password = \"change-me\"", "");
        assert!(problems(&text, &oauth_env(&[])).is_empty());
        let p = problems(&text, &[]);
        assert!(p.iter().any(|x| x.contains("imap.password")), "{p:?}");
        let text = text.replace("username = \"complaints@opp.example\"\n", "");
        let p = problems(
            &text,
            &oauth_env(&[("REDRESS_IMAP_USERNAME", "complaints@opp.example")]),
        );
        assert!(p.iter().any(|x| x.contains("smtp.username")), "{p:?}");
    }
}
