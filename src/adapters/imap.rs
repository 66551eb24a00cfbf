//! IMAP connection set-up: TCP, TLS (implicit or STARTTLS, or none on
//! loopback), greeting and login, with errors in plain words.
//!
//! Intake itself (IDLE, checkpoints) builds on [`connect`].

use crate::adapters::oauth2::TokenSource;
use crate::adapters::tls;
use crate::config::{AuthMethod, Imap, TlsMode};
use futures::TryStreamExt as _;
use std::fmt::Debug;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::TlsConnector;

/// How long one connection step (TCP, TLS, greeting, login) may take.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(30);

/// Any stream IMAP can run over.
pub trait ImapStream: AsyncRead + AsyncWrite + Unpin + Send + Debug {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Debug> ImapStream for T {}

pub type Session = async_imap::Session<Box<dyn ImapStream>>;
pub type Client = async_imap::Client<Box<dyn ImapStream>>;

/// Why a connection failed, in the kinds a caller branches on: network
/// trouble is retried; a refused login needs an admin.
#[derive(Debug, thiserror::Error)]
pub enum ImapError {
    #[error("could not reach the IMAP server {host}:{port}: {reason}")]
    Network {
        host: String,
        port: u16,
        reason: String,
    },
    #[error("TLS with the IMAP server {host} failed: {reason}")]
    Tls { host: String, reason: String },
    #[error("the IMAP server {host} refused the login for {username}: {reason}")]
    Auth {
        host: String,
        username: String,
        reason: String,
    },
    #[error("no OAuth2 access token for the IMAP server {host}: {reason}")]
    Token { host: String, reason: String },
    #[error("the IMAP server {host} answered unexpectedly: {reason}")]
    Protocol { host: String, reason: String },
    #[error("config: {0}")]
    Config(String),
}

impl ImapError {
    /// Whether trying again later may help (network and server trouble) or
    /// an admin must act (bad password, bad config).
    pub fn is_transient(&self) -> bool {
        matches!(self, ImapError::Network { .. } | ImapError::Protocol { .. })
    }
}

async fn step<T, E: std::fmt::Display>(
    fut: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match tokio::time::timeout(STEP_TIMEOUT, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!(
            "no answer within {} seconds",
            STEP_TIMEOUT.as_secs()
        )),
    }
}

/// Opens a connection and reads the greeting, without logging in.
pub async fn open(cfg: &Imap, port: u16) -> Result<Client, ImapError> {
    let host = cfg.host.clone();
    let net = |reason: String| ImapError::Network {
        host: host.clone(),
        port,
        reason,
    };
    let tls_err = |reason: String| ImapError::Tls {
        host: host.clone(),
        reason,
    };
    let proto = |reason: String| ImapError::Protocol {
        host: host.clone(),
        reason,
    };
    let tcp = step(TcpStream::connect((cfg.host.as_str(), port)))
        .await
        .map_err(net)?;
    tcp.set_nodelay(true).ok();
    let connector = || -> Result<(TlsConnector, ServerName<'static>), ImapError> {
        let config = tls::client_config(cfg.ca_file.as_deref())
            .map_err(|e| ImapError::Config(format!("{e:#}")))?;
        let name = ServerName::try_from(cfg.host.clone()).map_err(|e| tls_err(e.to_string()))?;
        Ok((TlsConnector::from(config), name))
    };
    let mut client = match cfg.tls {
        TlsMode::Implicit => {
            let (connector, name) = connector()?;
            let stream = step(connector.connect(name, tcp)).await.map_err(tls_err)?;
            async_imap::Client::new(Box::new(stream) as Box<dyn ImapStream>)
        }
        TlsMode::None | TlsMode::Starttls => {
            async_imap::Client::new(Box::new(tcp) as Box<dyn ImapStream>)
        }
    };
    step(async {
        client
            .read_response()
            .await?
            .ok_or_else(|| std::io::Error::other("connection closed before the greeting"))
    })
    .await
    .map_err(proto)?;
    if cfg.tls == TlsMode::Starttls {
        step(client.run_command_and_check_ok("STARTTLS", None))
            .await
            .map_err(|e| tls_err(format!("STARTTLS refused: {e}")))?;
        let inner = client.into_inner();
        let (connector, name) = connector()?;
        let stream = step(connector.connect(name, inner))
            .await
            .map_err(tls_err)?;
        client = async_imap::Client::new(Box::new(stream) as Box<dyn ImapStream>);
    }
    Ok(client)
}

/// Connects and logs in with the configured username and password.
pub async fn connect(cfg: &Imap, port: u16) -> Result<Session, ImapError> {
    connect_with(cfg, port, None).await
}

/// Connects and logs in as `imap.auth` says: with the password, or with
/// SASL XOAUTH2 and an access token from `tokens`. A refused token is
/// reported to `tokens` and the login tried once more with a fresh one
/// (a token can be revoked or expire early).
pub async fn connect_with(
    cfg: &Imap,
    port: u16,
    tokens: Option<&TokenSource>,
) -> Result<Session, ImapError> {
    if cfg.auth == AuthMethod::Password {
        let password = cfg.password.as_ref().ok_or_else(|| {
            ImapError::Config("no IMAP password (set imap.password or imap.password_file)".into())
        })?;
        let client = open(cfg, port).await?;
        return finish_login(
            cfg,
            port,
            "LOGIN",
            tokio::time::timeout(STEP_TIMEOUT, client.login(&cfg.username, password.expose()))
                .await,
        );
    }
    let tokens = tokens.ok_or_else(|| {
        ImapError::Config("imap.auth = \"xoauth2\" but no [oauth2] token source".into())
    })?;
    let mut retried = false;
    loop {
        let token = tokens.access_token().await.map_err(|e| ImapError::Token {
            host: cfg.host.clone(),
            reason: format!("{e}; {}", e.advice()),
        })?;
        let client = open(cfg, port).await?;
        let sasl = Xoauth2 {
            response: Some(crate::core::oauth2::xoauth2_sasl(
                &cfg.username,
                token.expose(),
            )),
        };
        let result = finish_login(
            cfg,
            port,
            "AUTHENTICATE XOAUTH2",
            tokio::time::timeout(STEP_TIMEOUT, client.authenticate("XOAUTH2", sasl)).await,
        );
        match result {
            Err(ImapError::Auth { .. }) if !retried => {
                tokens.invalidate(&token).await;
                retried = true;
            }
            Err(ImapError::Auth {
                host,
                username,
                reason,
            }) => {
                return Err(ImapError::Auth {
                    host,
                    username,
                    reason: format!("{reason} (XOAUTH2: the server refused a fresh access token; check that the app may use IMAP for this mailbox)"),
                })
            }
            other => return other,
        }
    }
}

fn finish_login(
    cfg: &Imap,
    port: u16,
    command: &str,
    result: Result<
        Result<Session, (async_imap::error::Error, Client)>,
        tokio::time::error::Elapsed,
    >,
) -> Result<Session, ImapError> {
    match result {
        Ok(Ok(session)) => Ok(session),
        Ok(Err((e, _))) => Err(ImapError::Auth {
            host: cfg.host.clone(),
            username: cfg.username.clone(),
            reason: plain_imap_error(&e),
        }),
        Err(_) => Err(ImapError::Network {
            host: cfg.host.clone(),
            port,
            reason: format!("no answer to {command}"),
        }),
    }
}

/// SASL XOAUTH2 for async-imap: the client speaks first with the token;
/// if the server answers with an error challenge (a JSON status, RFC 7628
/// style), the client must send an empty response, and the server then
/// says NO.
struct Xoauth2 {
    response: Option<String>,
}

impl async_imap::Authenticator for Xoauth2 {
    type Response = String;

    fn process(&mut self, _challenge: &[u8]) -> String {
        self.response.take().unwrap_or_default()
    }
}

/// The server's own words for an error, without the crate's wrapping.
fn plain_imap_error(e: &async_imap::error::Error) -> String {
    match e {
        async_imap::error::Error::No(text) | async_imap::error::Error::Bad(text) => {
            text.trim().to_string()
        }
        other => other.to_string(),
    }
}

/// What `redress check --connect` reports about the mailbox.
#[derive(Debug, Clone)]
pub struct Probe {
    pub folder: String,
    pub exists: u32,
    pub uid_validity: Option<u32>,
    pub idle: bool,
    pub keywords: bool,
}

/// Logs in, selects the folder and reads its facts; logs out.
pub async fn probe(cfg: &Imap, port: u16) -> Result<Probe, ImapError> {
    probe_with(cfg, port, None).await
}

/// [`probe`], logging in as `imap.auth` says (see [`connect_with`]).
pub async fn probe_with(
    cfg: &Imap,
    port: u16,
    tokens: Option<&TokenSource>,
) -> Result<Probe, ImapError> {
    let mut session = connect_with(cfg, port, tokens).await?;
    let proto = |reason: String| ImapError::Protocol {
        host: cfg.host.clone(),
        reason,
    };
    let caps = step(session.capabilities()).await.map_err(proto)?;
    let mailbox = step(session.select(&cfg.folder))
        .await
        .map_err(|e| proto(format!("cannot open folder {:?}: {e}", cfg.folder)))?;
    let keywords = mailbox
        .permanent_flags
        .iter()
        .any(|f| matches!(f, async_imap::types::Flag::MayCreate));
    let probe = Probe {
        folder: cfg.folder.clone(),
        exists: mailbox.exists,
        uid_validity: mailbox.uid_validity,
        idle: caps.has_str("IDLE"),
        keywords,
    };
    step(session.logout()).await.ok();
    Ok(probe)
}

/// Fetches the full raw bytes of every message in `folder` (a test and
/// benchmark helper; intake fetches by UID range).
pub async fn fetch_all(session: &mut Session, folder: &str) -> anyhow::Result<Vec<Vec<u8>>> {
    let mailbox = session.select(folder).await?;
    if mailbox.exists == 0 {
        return Ok(Vec::new());
    }
    let fetches: Vec<_> = session
        .fetch("1:*", "BODY.PEEK[]")
        .await?
        .try_collect()
        .await?;
    Ok(fetches
        .iter()
        .filter_map(|f| f.body().map(|b| b.to_vec()))
        .collect())
}
