//! XOAUTH2 for real on loopback: the private Dovecot checks bearer tokens
//! with its oauth2 passdb against [`TokenEndpoint`], the project's stand-in
//! for an identity provider (it issues short-lived access tokens for a
//! refresh token and answers Dovecot's introspection requests), and Postfix
//! takes XOAUTH2 through Dovecot SASL. The tokens live seconds, so refreshes
//! happen during the tests; revoking the refresh token shows the one notice
//! to the Quality Coordinator.

use crate::support::{
    complaint, example_config, flat, header, redress, stderr, stdout, Daemon, MailStack,
};
use redress::adapters::oauth2::TokenSource;
use redress::adapters::{imap, smtp};
use redress::config::{parse_str, Config};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const CLIENT_ID: &str = "redress-test-client";
const CLIENT_SECRET: &str = "client-secret-7f3a";
const REFRESH_TOKEN: &str = "refresh-token-9c1e";
const MAILBOX: &str = "complaints@opp.example";

#[derive(Default)]
struct Endpoint {
    revoked: bool,
    lifetime: u64,
    /// Live access tokens and when they stop working.
    tokens: HashMap<String, Instant>,
    /// Every access token ever issued (to check none reaches a log).
    issued: Vec<String>,
    /// Issue tokens that introspection does not know (a provider that
    /// hands out tokens the mail server refuses).
    bogus: bool,
    token_calls: usize,
    refused_calls: usize,
    introspections: usize,
}

/// The identity provider stand-in: a tiny HTTP/1.1 server on 127.0.0.1
/// with `POST /token` (RFC 6749 refresh grant) and `POST /introspect`
/// (RFC 7662, for Dovecot).
struct TokenEndpoint {
    port: u16,
    state: Arc<Mutex<Endpoint>>,
}

impl TokenEndpoint {
    fn start(lifetime: u64) -> TokenEndpoint {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let state = Arc::new(Mutex::new(Endpoint {
            lifetime,
            ..Endpoint::default()
        }));
        let shared = state.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let state = shared.clone();
                std::thread::spawn(move || serve(conn, &state));
            }
        });
        TokenEndpoint { port, state }
    }

    fn token_url(&self) -> String {
        format!("http://127.0.0.1:{}/token", self.port)
    }

    fn introspection_url(&self) -> String {
        format!("http://127.0.0.1:{}/introspect", self.port)
    }

    fn with<T>(&self, f: impl FnOnce(&mut Endpoint) -> T) -> T {
        f(&mut self.state.lock().expect("lock"))
    }

    fn token_calls(&self) -> usize {
        self.with(|e| e.token_calls)
    }

    fn refused_calls(&self) -> usize {
        self.with(|e| e.refused_calls)
    }

    /// Every access token stops working at once (as when an admin signs
    /// the mailbox out everywhere).
    fn forget_access_tokens(&self) {
        self.with(|e| e.tokens.clear());
    }

    /// Waits until `check` holds of the endpoint.
    fn wait(&self, secs: u64, what: &str, check: impl Fn(&Endpoint) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !self.with(|e| check(e)) {
            assert!(Instant::now() < deadline, "timed out waiting for: {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn serve(conn: TcpStream, state: &Mutex<Endpoint>) {
    conn.set_read_timeout(Some(Duration::from_secs(5))).ok();
    let mut reader = BufReader::new(conn.try_clone().expect("clone"));
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
        return;
    }
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.trim().eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0u8; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let form = parse_form(&String::from_utf8_lossy(&body));
    let path = request_line.split_whitespace().nth(1).unwrap_or_default();
    let (status, json) = {
        let mut e = state.lock().expect("lock");
        match path {
            "/token" => {
                e.token_calls += 1;
                let good_client = form.get("client_id").map(String::as_str) == Some(CLIENT_ID)
                    && form.get("client_secret").map(String::as_str) == Some(CLIENT_SECRET);
                if form.get("grant_type").map(String::as_str) != Some("refresh_token") {
                    e.refused_calls += 1;
                    (400, r#"{"error":"unsupported_grant_type"}"#.to_string())
                } else if !good_client {
                    e.refused_calls += 1;
                    (401, r#"{"error":"invalid_client"}"#.to_string())
                } else if e.revoked
                    || form.get("refresh_token").map(String::as_str) != Some(REFRESH_TOKEN)
                {
                    e.refused_calls += 1;
                    (
                        400,
                        "{\"error\":\"invalid_grant\",\"error_description\":\"AADSTS50173: The provided grant has expired due to it being revoked.\\r\\nTrace ID: 4f1c\"}".to_string(),
                    )
                } else {
                    let token = format!("at-{}-{:016x}", e.issued.len(), fastrand::u64(..));
                    let lifetime = e.lifetime;
                    if !e.bogus {
                        e.tokens.insert(
                            token.clone(),
                            Instant::now() + Duration::from_secs(lifetime),
                        );
                    }
                    e.issued.push(token.clone());
                    (
                        200,
                        format!(
                            r#"{{"token_type":"Bearer","access_token":"{token}","expires_in":{lifetime},"scope":"mail"}}"#
                        ),
                    )
                }
            }
            "/introspect" => {
                e.introspections += 1;
                let token = form.get("token").cloned().unwrap_or_default();
                let live = e.tokens.get(&token).is_some_and(|t| Instant::now() < *t);
                if live {
                    (200, format!(r#"{{"active":true,"username":"{MAILBOX}"}}"#))
                } else {
                    (200, r#"{"active":false}"#.to_string())
                }
            }
            _ => (404, r#"{"error":"not_found"}"#.to_string()),
        }
    };
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        _ => "Not Found",
    };
    let mut out = conn;
    let _ = write!(
        out,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{json}",
        json.len()
    );
}

fn parse_form(body: &str) -> HashMap<String, String> {
    let decode = |s: &str| {
        let s = s.replace('+', " ");
        let bytes = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' && i + 2 < bytes.len() + 1 {
                if let Ok(b) = u8::from_str_radix(s.get(i + 1..i + 3).unwrap_or("zz"), 16) {
                    out.push(b);
                    i += 3;
                    continue;
                }
            }
            out.push(bytes[i]);
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    body.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect()
}

/// Environment overrides for XOAUTH2 against `endpoint` (IMAP always;
/// SMTP when `smtp`), with fast back-off for tests.
fn oauth_env(
    endpoint: &TokenEndpoint,
    smtp: bool,
    refresh_file: &std::path::Path,
) -> Vec<(String, String)> {
    let mut v = vec![
        ("REDRESS_IMAP_AUTH", "xoauth2".to_string()),
        ("REDRESS_OAUTH2_PROVIDER", "custom".to_string()),
        ("REDRESS_OAUTH2_TOKEN_URL", endpoint.token_url()),
        ("REDRESS_OAUTH2_CLIENT_ID", CLIENT_ID.to_string()),
        ("REDRESS_OAUTH2_CLIENT_SECRET", CLIENT_SECRET.to_string()),
        (
            "REDRESS_OAUTH2_REFRESH_TOKEN_FILE",
            refresh_file.display().to_string(),
        ),
        ("REDRESS_OAUTH2_SCOPE", "mail".to_string()),
        ("REDRESS_OAUTH2_RETRY_MAX", "1".to_string()),
        // The password the stack would take must not be what logs in.
        ("REDRESS_IMAP_PASSWORD", "not-the-password".to_string()),
    ];
    if smtp {
        v.push(("REDRESS_SMTP_AUTH", "xoauth2".to_string()));
        v.push(("REDRESS_SMTP_PASSWORD", "not-the-password".to_string()));
    }
    v.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

fn start(lifetime: u64) -> (TokenEndpoint, MailStack, std::path::PathBuf) {
    let endpoint = TokenEndpoint::start(lifetime);
    let url = endpoint.introspection_url();
    let stack = MailStack::start_with(&["--oauth2-introspection-url", &url]);
    let refresh_file = stack.path().join("oauth2-refresh-token");
    std::fs::write(&refresh_file, format!("{REFRESH_TOKEN}\n")).expect("refresh token file");
    (endpoint, stack, refresh_file)
}

fn config(stack: &MailStack, endpoint: &TokenEndpoint, refresh_file: &std::path::Path) -> Config {
    let mut env = stack.env(MAILBOX, &stack.path().join("unused.sqlite"));
    let extra = oauth_env(endpoint, true, refresh_file);
    env.retain(|(k, _)| !extra.iter().any(|(e, _)| e == k));
    env.extend(extra);
    // As `config::load` would, read the refresh token from its file.
    env.retain(|(k, _)| k != "REDRESS_OAUTH2_REFRESH_TOKEN_FILE");
    env.push(("REDRESS_OAUTH2_REFRESH_TOKEN".into(), REFRESH_TOKEN.into()));
    parse_str(&example_config(), "config.example.toml", &env).expect("xoauth2 config")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xoauth2_logins_to_dovecot_and_postfix_refresh_and_refuse_dead_tokens() {
    let (endpoint, stack, refresh_file) = start(2);
    let cfg = config(&stack, &endpoint, &refresh_file);
    let tokens =
        Arc::new(TokenSource::new(cfg.oauth2.as_ref().expect("oauth2"), None).expect("source"));

    // IMAP: a token from the endpoint logs in (and the password would not
    // have: it is set to a wrong one).
    let mut session = imap::connect_with(&cfg.imap, cfg.imap_port(), Some(&tokens))
        .await
        .expect("XOAUTH2 login");
    session.select("INBOX").await.expect("select");
    session.logout().await.ok();
    assert_eq!(endpoint.token_calls(), 1);
    assert!(
        endpoint.with(|e| e.introspections) >= 1,
        "Dovecot asked the endpoint"
    );

    // The cached token serves the next login without a refresh...
    imap::connect_with(&cfg.imap, cfg.imap_port(), Some(&tokens))
        .await
        .expect("second login");
    assert_eq!(endpoint.token_calls(), 1);
    // ...until it nears its expiry.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    imap::connect_with(&cfg.imap, cfg.imap_port(), Some(&tokens))
        .await
        .expect("login after expiry");
    assert_eq!(endpoint.token_calls(), 2, "the expired token was refreshed");

    // A token the server stopped taking: refused, refreshed, logged in.
    endpoint.forget_access_tokens();
    imap::connect_with(&cfg.imap, cfg.imap_port(), Some(&tokens))
        .await
        .expect("login after the token was refused");
    assert_eq!(endpoint.token_calls(), 3);

    // Tokens the server never takes: refused in plain words, after one
    // fresh try.
    endpoint.with(|e| e.bogus = true);
    endpoint.forget_access_tokens();
    let err = imap::connect_with(&cfg.imap, cfg.imap_port(), Some(&tokens))
        .await
        .expect_err("a dead token is refused");
    assert!(matches!(err, imap::ImapError::Auth { .. }), "{err}");
    assert!(err.to_string().contains("refused the login"), "{err}");
    assert_eq!(endpoint.token_calls(), 4);
    endpoint.with(|e| e.bogus = false);

    // SMTP through Postfix with XOAUTH2 (Dovecot SASL), following the
    // token (a new source: the old one holds a token Dovecot refused).
    let tokens =
        Arc::new(TokenSource::new(cfg.oauth2.as_ref().expect("oauth2"), None).expect("source"));
    let mut sender =
        smtp::Sender::new(&cfg.smtp, cfg.smtp_port(), Some(tokens.clone())).expect("sender");
    let raw = complaint(
        "Complaints",
        MAILBOX,
        "Sent with XOAUTH2",
        "xoauth2-1@opp.example",
        "",
        "Hello.\r\n",
    );
    let t = sender.transport().await.expect("transport");
    assert_eq!(
        smtp::send_raw(t, MAILBOX, &["alice@example.net"], &raw).await,
        smtp::SendOutcome::Sent
    );
    // The token dies: the send reports a refused login, the sender gets a
    // new token, and the next send goes.
    endpoint.forget_access_tokens();
    // (A new transport: the pooled connection is already logged in.)
    let mut fresh =
        smtp::Sender::new(&cfg.smtp, cfg.smtp_port(), Some(tokens.clone())).expect("sender");
    let t = fresh.transport().await.expect("transport");
    let outcome = smtp::send_raw(t, MAILBOX, &["alice@example.net"], &raw).await;
    let smtp::SendOutcome::Unreachable(error) = outcome else {
        panic!("a dead token should refuse the login: {outcome:?}");
    };
    assert!(smtp::is_login_refusal(&error), "{error}");
    let calls = endpoint.token_calls();
    fresh.failed(&error).await;
    let t = fresh.transport().await.expect("transport");
    assert_eq!(
        endpoint.token_calls(),
        calls + 1,
        "a new token after the refusal"
    );
    assert_eq!(
        smtp::send_raw(t, MAILBOX, &["alice@example.net"], &raw).await,
        smtp::SendOutcome::Sent
    );
    stack.wait_for("alice@example.net", 2, 15, |m| {
        m.contains("Sent with XOAUTH2")
    });
    drop(sender);

    // `redress check --connect` logs in both ways with XOAUTH2.
    let mut env = stack.env(MAILBOX, &stack.path().join("check.sqlite"));
    let extra = oauth_env(&endpoint, true, &refresh_file);
    env.retain(|(k, _)| !extra.iter().any(|(e, _)| e == k));
    env.extend(extra);
    let config_path = crate::support::repo().join("config.example.toml");
    let out = tokio::task::spawn_blocking({
        move || {
            let env: Vec<(&str, &str)> =
                env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            redress(
                &[
                    "check",
                    "--connect",
                    "--config",
                    &config_path.display().to_string(),
                ],
                &env,
            )
        }
    })
    .await
    .expect("check");
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    assert!(text.contains("OAuth2 http://127.0.0.1"), "{text}");
    assert!(
        text.contains(&format!("logged in as {MAILBOX} (XOAUTH2); folder")),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "SMTP 127.0.0.1:{}: connected and logged in as {MAILBOX} (XOAUTH2)",
            stack.smtp_port
        )),
        "{text}"
    );
    for secret in [REFRESH_TOKEN, CLIENT_SECRET] {
        assert!(!text.contains(secret) && !stderr(&out).contains(secret));
    }
}

#[test]
fn the_daemon_works_on_xoauth2_and_refreshes_short_lived_tokens() {
    let (endpoint, stack, refresh_file) = start(3);
    let store = stack.path().join("redress.sqlite");
    let env = oauth_env(&endpoint, true, &refresh_file);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let daemon = Daemon::start(&stack, &store, &env);
    let started = Instant::now();

    stack.deliver(
        "alice@example.net",
        MAILBOX,
        &complaint(
            "Alice Example",
            "alice@example.net",
            "My certificate has not arrived",
            "oa1@example.net",
            "",
            "Hello,\r\n\r\nIt has not arrived.\r\n",
        ),
    );
    let acks = stack.wait_for("alice@example.net", 1, 20, |m| {
        m.contains("We have received your complaint")
    });
    assert!(header(&acks[0], "Subject").is_some_and(|s| s.contains("[OPP-")));

    // The first token has expired by now: the next letters need a new one.
    let since = started.elapsed();
    if since < Duration::from_millis(3500) {
        std::thread::sleep(Duration::from_millis(3500) - since);
    }
    stack.deliver(
        "bob@example.net",
        MAILBOX,
        &complaint(
            "Bob Example",
            "bob@example.net",
            "The course was cancelled",
            "oa2@example.net",
            "",
            "Hello,\r\n\r\nNobody told us.\r\n",
        ),
    );
    stack.wait_for("bob@example.net", 1, 20, |m| {
        m.contains("We have received your complaint")
    });
    assert!(
        endpoint.token_calls() >= 2,
        "the token endpoint saw a refresh ({} calls)",
        endpoint.token_calls()
    );
    assert_eq!(endpoint.refused_calls(), 0);

    // No secret and no access token reaches the log.
    let log = daemon.log();
    assert!(daemon.stop(), "clean stop:\n{log}");
    for secret in endpoint
        .with(|e| e.issued.clone())
        .iter()
        .map(String::as_str)
        .chain([REFRESH_TOKEN, CLIENT_SECRET])
    {
        assert!(!log.contains(secret), "a secret in the log:\n{log}");
    }
    assert!(!log.contains("cannot get an access token"), "{log}");
}

#[test]
fn a_revoked_refresh_token_mails_the_quality_coordinator_once() {
    let (endpoint, stack, refresh_file) = start(60);
    let store = stack.path().join("redress.sqlite");
    // SMTP logs in with the password, so the notice can leave.
    let env = oauth_env(&endpoint, false, &refresh_file);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let daemon = Daemon::start(&stack, &store, &env);
    stack.deliver(
        "alice@example.net",
        MAILBOX,
        &complaint(
            "Alice Example",
            "alice@example.net",
            "First complaint",
            "rv1@example.net",
            "",
            "Hello.\r\n",
        ),
    );
    stack.wait_for("alice@example.net", 1, 20, |m| {
        m.contains("We have received your complaint")
    });

    // Consent is withdrawn while the daemon runs: the refresh token and
    // every access token stop working, and the IMAP server drops its
    // connections (as Microsoft 365 does).
    endpoint.with(|e| e.revoked = true);
    endpoint.forget_access_tokens();
    stack.service("stop-imap");
    stack.service("start-imap");
    endpoint.wait(30, "three refused refreshes", |e| e.refused_calls >= 3);
    let is_notice = |m: &str| flat(m).contains("the OAuth2 refresh failed");
    let notices = stack.wait_for("quality@opp.example", 1, 20, is_notice);
    assert!(
        flat(&notices[0]).contains("invalid_grant"),
        "{}",
        notices[0]
    );
    assert!(
        flat(&notices[0]).contains("sign in again"),
        "{}",
        notices[0]
    );
    assert!(!notices[0].contains(REFRESH_TOKEN));
    // More retries, still one notice.
    let refused = endpoint.refused_calls();
    endpoint.wait(30, "more refused refreshes", |e| {
        e.refused_calls >= refused + 2
    });
    std::thread::sleep(Duration::from_secs(1));
    let count = || {
        stack
            .mailbox("quality@opp.example")
            .iter()
            .filter(|m| is_notice(m))
            .count()
    };
    assert_eq!(count(), 1, "one notice per episode");
    let log = daemon.log();
    assert!(daemon.stop(), "clean stop:\n{log}");
    assert_eq!(
        log.matches("OAuth2: cannot get an access token").count(),
        1,
        "one warning per state change, not per retry:\n{log}"
    );

    // A restart during the outage does not mail again.
    let daemon = Daemon::start(&stack, &store, &env);
    let refused = endpoint.refused_calls();
    endpoint.wait(30, "refused refreshes after the restart", |e| {
        e.refused_calls >= refused + 2
    });
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(count(), 1, "no second notice after a restart");

    // Consent again: intake logs in again by itself and takes mail in.
    endpoint.with(|e| e.revoked = false);
    stack.deliver(
        "bob@example.net",
        MAILBOX,
        &complaint(
            "Bob Example",
            "bob@example.net",
            "Second complaint",
            "rv2@example.net",
            "",
            "Hello.\r\n",
        ),
    );
    stack.wait_for("bob@example.net", 1, 40, |m| {
        m.contains("We have received your complaint")
    });
    let log = daemon.log();
    assert!(daemon.stop(), "clean stop:\n{log}");
    assert!(log.contains("issues access tokens again"), "{log}");
    let s = redress::adapters::db::Store::open(&store).expect("store");
    assert_eq!(
        redress::adapters::db::setting(s.conn(), "oauth2-trouble").expect("setting"),
        None,
        "the episode ended"
    );
    assert!(!log.contains(REFRESH_TOKEN) && !log.contains(CLIENT_SECRET));
}
