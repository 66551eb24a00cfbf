//! The mail adapters against a real Dovecot and Postfix on 127.0.0.1, using
//! the project's own config code: log in over IMAP (plain on loopback,
//! STARTTLS, implicit TLS with a private CA), send through the MTA, read the
//! message back, and report refused logins in plain words.

use crate::support::{example_config, redress, repo, stderr, stdout, MailStack};
use redress::adapters::{imap, smtp};
use redress::config::{parse_str, Config};
use std::time::{Duration, Instant};

fn config_for(stack: &MailStack, user: &str, extra: &[(&str, String)]) -> Config {
    let store = stack.path().join("store.sqlite");
    let mut env = stack.env(user, &store);
    env.retain(|(k, _)| !extra.iter().any(|(e, _)| e == k));
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
    parse_str(&example_config(), "config.example.toml", &env).expect("config for the mail stack")
}

fn message(from: &str, to: &str, subject: &str) -> Vec<u8> {
    format!(
        "From: Alice Example <{from}>\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{}@example.net>\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n\r\nMy certificate has not arrived.\r\n\r\nAlice\r\n01254 123456\r\n",
        subject.replace(' ', ".")
    )
    .into_bytes()
}

/// Polls the mailbox until a message containing `needle` shows up.
async fn wait_for(cfg: &Config, needle: &str) -> Vec<u8> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let mut session = imap::connect(&cfg.imap, cfg.imap_port())
            .await
            .expect("IMAP login");
        let all = imap::fetch_all(&mut session, &cfg.imap.folder)
            .await
            .expect("fetch");
        session.logout().await.ok();
        if let Some(m) = all
            .into_iter()
            .find(|m| String::from_utf8_lossy(m).contains(needle))
        {
            return m;
        }
        assert!(
            Instant::now() < deadline,
            "{needle:?} never arrived in {}",
            cfg.imap.username
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imap_login_and_delivery_through_the_mta() {
    let stack = MailStack::start();
    let cfg = config_for(&stack, "complaints@opp.example", &[]);
    // Sending as the complaints desk (AUTH over loopback) to a complainant.
    let transport = smtp::transport(&cfg.smtp, cfg.smtp_port()).expect("transport");
    let raw = message(
        "complaints@opp.example",
        "alice@example.net",
        "Delivery check one",
    );
    assert_eq!(
        smtp::send_raw(&transport, cfg.from_address(), &["alice@example.net"], &raw).await,
        smtp::SendOutcome::Sent
    );
    // ...and a complaint into the complaints box.
    let raw = message(
        "bob@example.net",
        "complaints@opp.example",
        "Delivery check two",
    );
    assert_eq!(
        smtp::send_raw(
            &transport,
            "bob@example.net",
            &["complaints@opp.example"],
            &raw
        )
        .await,
        smtp::SendOutcome::Sent
    );
    let got = wait_for(&cfg, "Delivery check two").await;
    assert!(String::from_utf8_lossy(&got).contains("My certificate has not arrived."));
    let alice = config_for(&stack, "alice@example.net", &[]);
    wait_for(&alice, "Delivery check one").await;
    let probe = imap::probe(&cfg.imap, cfg.imap_port())
        .await
        .expect("probe");
    assert!(probe.idle, "Dovecot offers IDLE");
    assert!(probe.exists >= 1);
    assert!(probe.uid_validity.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_modes_verify_the_servers_certificate() {
    let stack = MailStack::start();
    let ca = stack.ca_file.display().to_string();
    let starttls = config_for(
        &stack,
        "complaints@opp.example",
        &[
            ("REDRESS_IMAP_TLS", "starttls".into()),
            ("REDRESS_IMAP_CA_FILE", ca.clone()),
        ],
    );
    imap::probe(&starttls.imap, starttls.imap_port())
        .await
        .expect("STARTTLS login");
    let implicit = config_for(
        &stack,
        "complaints@opp.example",
        &[
            ("REDRESS_IMAP_TLS", "implicit".into()),
            ("REDRESS_IMAP_PORT", stack.imaps_port.to_string()),
            ("REDRESS_IMAP_CA_FILE", ca),
        ],
    );
    imap::probe(&implicit.imap, implicit.imap_port())
        .await
        .expect("implicit TLS login");
    // Without the private CA the certificate is not trusted: refused, not ignored.
    let untrusted = config_for(
        &stack,
        "complaints@opp.example",
        &[
            ("REDRESS_IMAP_TLS", "implicit".into()),
            ("REDRESS_IMAP_PORT", stack.imaps_port.to_string()),
        ],
    );
    let err = imap::probe(&untrusted.imap, untrusted.imap_port())
        .await
        .expect_err("untrusted");
    assert!(matches!(err, imap::ImapError::Tls { .. }), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_login_is_reported_in_plain_words() {
    let stack = MailStack::start();
    let cfg = config_for(
        &stack,
        "complaints@opp.example",
        &[("REDRESS_IMAP_PASSWORD", "wrong".into())],
    );
    let err = imap::connect(&cfg.imap, cfg.imap_port())
        .await
        .expect_err("refused");
    assert!(matches!(err, imap::ImapError::Auth { .. }), "{err}");
    assert!(!err.is_transient());
    assert!(
        err.to_string()
            .contains("refused the login for complaints@opp.example"),
        "{err}"
    );
    // Nothing listens on port 1: a network error, worth retrying.
    let closed = config_for(
        &stack,
        "complaints@opp.example",
        &[("REDRESS_IMAP_PORT", "1".into())],
    );
    let err = imap::connect(&closed.imap, closed.imap_port())
        .await
        .expect_err("refused");
    assert!(err.is_transient(), "{err}");
}

#[test]
fn check_connect_logs_in_to_both_servers() {
    let stack = MailStack::start();
    let store = stack.path().join("store.sqlite");
    let env = stack.env("complaints@opp.example", &store);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let cfg = repo().join("config.example.toml");
    let cfg = cfg.to_str().expect("path");
    let out = redress(&["check", "--config", cfg, "--connect"], &env);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));
    assert!(
        text.contains("logged in as complaints@opp.example"),
        "{text}"
    );
    assert!(text.contains("IDLE supported"), "{text}");
    assert!(text.contains("SMTP 127.0.0.1"), "{text}");

    let mut bad = env.clone();
    bad.push(("REDRESS_SMTP_PASSWORD", "wrong"));
    bad.push(("REDRESS_IMAP_PASSWORD", "wrong"));
    let out = redress(&["check", "--config", cfg, "--connect"], &bad);
    let text = stdout(&out);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("IMAP 127.0.0.1")
            && text.contains("FAILED")
            && text.contains("refused the login"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("SMTP") && l.contains("FAILED")),
        "{text}"
    );
    assert!(!text.contains("wrong\n") && !stderr(&out).contains("wrong\n"));
}
