//! SMTP sending with lettre (pooled, rustls): transport set-up, a probe for
//! `redress check --connect`, and sending a message whose bytes were fixed
//! when it was queued.
//!
//! Errors are classified the way the outbox needs them: transient (4xx,
//! network) is retried, permanent (5xx) is not.

use crate::adapters::oauth2::TokenSource;
use crate::config::{AuthMethod, Secret, Smtp, TlsMode};
use anyhow::Context as _;
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use std::sync::Arc;
use std::time::Duration;

pub type Transport = AsyncSmtpTransport<Tokio1Executor>;

/// The result of one attempt to hand a message to the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// The server said 250: the message is its responsibility now.
    Sent,
    /// The server refused this message for now (4xx): try it again later.
    Retry(String),
    /// The server could not be reached or the connection failed: every
    /// message would fail the same way, so wait before trying any.
    Unreachable(String),
    /// The server refused it for good (5xx).
    Failed(String),
}

/// Builds the transport for `cfg`, logging in with the password (or not
/// at all without a username). For `auth = "xoauth2"` see [`Sender`].
pub fn transport(cfg: &Smtp, port: u16) -> anyhow::Result<Transport> {
    transport_with(cfg, port, None)
}

/// Builds the transport; `access_token` is the XOAUTH2 credential when
/// `smtp.auth = "xoauth2"`.
fn transport_with(
    cfg: &Smtp,
    port: u16,
    access_token: Option<&Secret>,
) -> anyhow::Result<Transport> {
    let tls_params = || -> anyhow::Result<TlsParameters> {
        let mut b = TlsParameters::builder(cfg.host.clone());
        if let Some(ca) = &cfg.ca_file {
            let pem =
                std::fs::read(ca).with_context(|| format!("Reading CA file {}", ca.display()))?;
            b = b.add_root_certificate(
                Certificate::from_pem(&pem).with_context(|| format!("Parsing {}", ca.display()))?,
            );
        }
        Ok(b.build_rustls()?)
    };
    let tls = match cfg.tls {
        TlsMode::Implicit => Tls::Wrapper(tls_params()?),
        TlsMode::Starttls => Tls::Required(tls_params()?),
        TlsMode::None => Tls::None,
    };
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(cfg.host.clone())
        .port(port)
        .tls(tls)
        .timeout(Some(Duration::from_secs(30)));
    match (cfg.auth, &cfg.username) {
        (AuthMethod::Xoauth2, user) => {
            let user = user
                .as_ref()
                .context("smtp.auth = \"xoauth2\" needs smtp.username")?;
            let token = access_token.context("smtp.auth = \"xoauth2\" but no access token")?;
            builder = builder
                .credentials(Credentials::new(user.clone(), token.expose().to_string()))
                .authentication(vec![Mechanism::Xoauth2]);
        }
        (AuthMethod::Password, Some(user)) => {
            let password = cfg.password.as_ref().context(
                "smtp.username is set but no password (smtp.password or smtp.password_file)",
            )?;
            builder = builder.credentials(Credentials::new(
                user.clone(),
                password.expose().to_string(),
            ));
        }
        (AuthMethod::Password, None) => {}
    }
    Ok(builder.build())
}

/// The transport the outbox sends with, following the access token when
/// `smtp.auth = "xoauth2"`: lettre's pooled transport holds its
/// credentials, so a new token needs a new transport (the old pool and
/// its connections are dropped with it). With a password it is built once.
pub struct Sender {
    cfg: Smtp,
    port: u16,
    tokens: Option<Arc<TokenSource>>,
    /// The transport and the token it logs in with.
    built: Option<(Option<Secret>, Transport)>,
}

impl Sender {
    /// A sender for `cfg`. A password transport is built at once, so bad
    /// TLS settings are a start-up error.
    pub fn new(cfg: &Smtp, port: u16, tokens: Option<Arc<TokenSource>>) -> anyhow::Result<Sender> {
        let built = match cfg.auth {
            AuthMethod::Password => Some((None, transport(cfg, port)?)),
            AuthMethod::Xoauth2 => {
                anyhow::ensure!(
                    tokens.is_some(),
                    "smtp.auth = \"xoauth2\" but no [oauth2] token source"
                );
                // Checks the TLS settings now, as for a password.
                transport_with(cfg, port, Some(&Secret::new("")))?;
                None
            }
        };
        Ok(Sender {
            cfg: cfg.clone(),
            port,
            tokens,
            built,
        })
    }

    /// The token source it logs in with, if any.
    pub fn tokens(&self) -> Option<Arc<TokenSource>> {
        self.tokens.clone()
    }

    /// The transport to send with now; for XOAUTH2 one logging in with a
    /// valid access token. Errs (in plain words) when no token can be had.
    pub async fn transport(&mut self) -> Result<&Transport, String> {
        if let (AuthMethod::Xoauth2, Some(tokens)) = (self.cfg.auth, &self.tokens) {
            let token = tokens
                .access_token()
                .await
                .map_err(|e| format!("no OAuth2 access token for SMTP: {e}"))?;
            let current = self.built.as_ref().and_then(|(t, _)| t.as_ref());
            if current != Some(&token) {
                let t = transport_with(&self.cfg, self.port, Some(&token))
                    .map_err(|e| format!("{e:#}"))?;
                self.built = Some((Some(token), t));
            }
        }
        match &self.built {
            Some((_, t)) => Ok(t),
            None => Err("no SMTP transport".into()),
        }
    }

    /// Tells the sender how the last attempt failed: a refused XOAUTH2
    /// login gets the token replaced before the next attempt.
    pub async fn failed(&mut self, error: &str) {
        if !is_login_refusal(error) {
            return;
        }
        if let (Some(tokens), Some((Some(token), _))) = (&self.tokens, &self.built) {
            tokens.invalidate(token).await;
        }
    }
}

/// Connects (and logs in, when configured) and says NOOP.
pub async fn probe(cfg: &Smtp, port: u16) -> anyhow::Result<()> {
    probe_with(cfg, port, None).await
}

/// [`probe`], logging in as `smtp.auth` says (XOAUTH2 with `tokens`).
pub async fn probe_with(
    cfg: &Smtp,
    port: u16,
    tokens: Option<Arc<TokenSource>>,
) -> anyhow::Result<()> {
    let mut sender = Sender::new(cfg, port, tokens)?;
    let t = sender.transport().await.map_err(|e| anyhow::anyhow!(e))?;
    match t.test_connection().await {
        Ok(true) => Ok(()),
        Ok(false) => anyhow::bail!("the SMTP server {}:{port} did not answer NOOP", cfg.host),
        Err(e) => Err(anyhow::anyhow!(
            "the SMTP server {}:{port}: {}",
            cfg.host,
            plain_smtp_error(&e)
        )),
    }
}

/// The words [`plain_smtp_error`] adds when the server refused the login.
const LOGIN_REFUSED: &str = "(the server refused the login:";

/// Whether an error (from [`plain_smtp_error`]) says the server refused
/// the login, rather than the message or the network failing.
pub fn is_login_refusal(error: &str) -> bool {
    error.contains(LOGIN_REFUSED)
}

/// The server's words for an error, with what it means.
pub fn plain_smtp_error(e: &lettre::transport::smtp::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    let code = e.status().map(|c| c.to_string()).unwrap_or_default();
    if matches!(code.as_str(), "530" | "534" | "535" | "538")
        || (e.is_permanent() && text.contains("535"))
    {
        text.push_str(&format!(
            " {LOGIN_REFUSED} username, password or access token)"
        ));
    } else if text.contains("does not expect a challenge") {
        // lettre's words when an XOAUTH2 server answers the token with an
        // error challenge (RFC 7628 style) instead of 235.
        text.push_str(&format!(
            " {LOGIN_REFUSED} the XOAUTH2 access token was not accepted)"
        ));
    } else if text.contains("No compatible authentication mechanism") {
        text.push_str(" (the server does not offer the login method smtp.auth asks for)");
    }
    text
}

/// Sends `raw` (a complete RFC 5322 message) from `from` to `to`.
pub async fn send_raw(t: &Transport, from: &str, to: &[&str], raw: &[u8]) -> SendOutcome {
    let envelope = match build_envelope(from, to) {
        Ok(e) => e,
        Err(e) => return SendOutcome::Failed(format!("bad envelope: {e:#}")),
    };
    match t.send_raw(&envelope, raw).await {
        Ok(_) => SendOutcome::Sent,
        // 530/534/535/538: the server refuses *us* (login), not this
        // message: every row would fail the same way, so wait and retry.
        Err(e)
            if e.status().is_some_and(|c| {
                matches!(c.to_string().as_str(), "530" | "534" | "535" | "538")
            }) =>
        {
            SendOutcome::Unreachable(plain_smtp_error(&e))
        }
        Err(e) if e.is_permanent() => SendOutcome::Failed(plain_smtp_error(&e)),
        Err(e) if e.is_transient() => SendOutcome::Retry(plain_smtp_error(&e)),
        Err(e) => SendOutcome::Unreachable(plain_smtp_error(&e)),
    }
}

fn build_envelope(from: &str, to: &[&str]) -> anyhow::Result<Envelope> {
    let from: Address = from.parse().with_context(|| format!("sender {from:?}"))?;
    let to = to
        .iter()
        .map(|a| {
            a.parse::<Address>()
                .with_context(|| format!("recipient {a:?}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Envelope::new(Some(from), to)?)
}
