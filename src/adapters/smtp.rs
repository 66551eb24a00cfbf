//! SMTP sending with lettre (pooled, rustls): transport set-up, a probe for
//! `redress check --connect`, and sending a message whose bytes were fixed
//! when it was queued.
//!
//! Errors are classified the way the outbox needs them: transient (4xx,
//! network) is retried, permanent (5xx) is not.

use crate::config::{Smtp, TlsMode};
use anyhow::Context as _;
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
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

/// Builds the transport for `cfg`.
pub fn transport(cfg: &Smtp, port: u16) -> anyhow::Result<Transport> {
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
    if let Some(user) = &cfg.username {
        let password = cfg.password.as_ref().context(
            "smtp.username is set but no password (smtp.password or smtp.password_file)",
        )?;
        builder = builder.credentials(Credentials::new(
            user.clone(),
            password.expose().to_string(),
        ));
    }
    Ok(builder.build())
}

/// Connects (and logs in, when configured) and says NOOP.
pub async fn probe(cfg: &Smtp, port: u16) -> anyhow::Result<()> {
    let t = transport(cfg, port)?;
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

/// The server's words for an error, with what it means.
pub fn plain_smtp_error(e: &lettre::transport::smtp::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    if e.is_permanent() && text.contains("535") {
        text.push_str(" (the username or password was refused)");
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
