//! Operations end to end: `redress status`, the metrics endpoint, `redress
//! backup` while mail pours in, and `redress restore`, against the daemon
//! as admins run it on a real Dovecot + Postfix.

use crate::support::{
    complaint, count, deliver_to, header, redress, reference_in, repo, stderr, stdout, wait_store,
    Daemon, MailStack,
};
use redress::adapters::db::Store;
use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

fn config_path() -> String {
    repo()
        .join("config.example.toml")
        .to_str()
        .expect("path")
        .to_string()
}

fn env_of(stack: &MailStack, store: &Path) -> Vec<(String, String)> {
    stack.env("complaints@opp.example", store)
}

fn run(args: &[&str], env: &[(String, String)]) -> std::process::Output {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    redress(args, &env)
}

/// `redress status --format json`: (exit code, JSON).
fn status(env: &[(String, String)]) -> (i32, serde_json::Value) {
    let out = run(
        &["status", "--config", &config_path(), "--format", "json"],
        env,
    );
    let json = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("status JSON: {e}\n{}\n{}", stdout(&out), stderr(&out)));
    (out.status.code().expect("exit code"), json)
}

/// Polls `redress status` until `check` holds.
fn wait_status(
    env: &[(String, String)],
    secs: u64,
    what: &str,
    check: impl Fn(i32, &serde_json::Value) -> bool,
) -> (i32, serde_json::Value) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let (code, json) = status(env);
        if check(code, &json) {
            return (code, json);
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; last status (exit {code}):\n{json:#}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// One HTTP GET on loopback: (status line, body).
fn get(port: u16, path: &str) -> std::io::Result<(String, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/plain\r\n\r\n"
    )?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    Ok((
        head.lines().next().unwrap_or_default().to_string(),
        body.to_string(),
    ))
}

/// A sample's value in exposition text.
fn sample(text: &str, name: &str) -> Option<i64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

fn scrape(port: u16, secs: u64) -> String {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        match get(port, "/metrics") {
            Ok((status, body)) => {
                assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
                return body;
            }
            Err(e) => assert!(Instant::now() < deadline, "metrics endpoint: {e}"),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn references(store: &Store) -> BTreeSet<String> {
    let mut stmt = store
        .conn()
        .prepare("SELECT reference FROM cases")
        .expect("prepare");
    let refs = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    refs
}

/// The backup opens cleanly on its own (no -wal beside it), and holds
/// every case in `before` (committed before it began), each whole.
fn check_backup(backup: &Path, before: &BTreeSet<String>) {
    let mut wal = backup.as_os_str().to_owned();
    wal.push("-wal");
    assert!(!Path::new(&wal).exists());
    let copy =
        rusqlite::Connection::open_with_flags(backup, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("open the backup");
    let integrity: String = copy
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity");
    assert_eq!(integrity, "ok");
    let mut stmt = copy.prepare("SELECT reference FROM cases").expect("q");
    let in_copy: BTreeSet<String> = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("refs");
    eprintln!(
        "backup under load: {} cases committed before it, {} in the copy",
        before.len(),
        in_copy.len()
    );
    let missing: Vec<&String> = before.difference(&in_copy).collect();
    assert!(
        missing.is_empty(),
        "{} of {} cases committed before the backup are missing from it: {missing:?}",
        missing.len(),
        before.len()
    );
    // Every case in the copy is whole: its first mail is stored with it.
    let orphans: i64 = copy
        .query_row(
            "SELECT count(*) FROM cases c WHERE NOT EXISTS (SELECT 1 FROM messages m WHERE m.case_id = c.id)",
            [],
            |r| r.get(0),
        )
        .expect("orphans");
    assert_eq!(orphans, 0);
}

#[test]
fn a_backup_taken_while_200_mails_arrive_opens_cleanly_and_holds_every_case_committed_before_it() {
    let stack = MailStack::start();
    let store = stack.path().join("redress.sqlite");
    let daemon = Daemon::start(&stack, &store, &[]);
    let env = env_of(&stack, &store);

    // 200 complaints from 200 people, paced so that they are still arriving
    // when the backup runs (each new case also queues three letters).
    let port = stack.smtp_port;
    let sender = std::thread::spawn(move || {
        for i in 0..200 {
            let from = format!("person{i}@example.net");
            deliver_to(
                port,
                &from,
                "complaints@opp.example",
                &complaint(
                    &format!("Person {i}"),
                    &from,
                    &format!("Complaint number {i}"),
                    &format!("load{i}@example.net"),
                    "",
                    "The course was cancelled without notice.\r\n",
                ),
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    // Three backups while the cases pour in, each checked on its own.
    let mut backup = std::path::PathBuf::new();
    for (i, at_least) in [10, 50, 100].into_iter().enumerate() {
        wait_store(&store, 60, "cases committed", |s| {
            count(s, "SELECT count(*) FROM cases") >= at_least
        });
        let before = references(&Store::open(&store).expect("store"));
        let arriving = !sender.is_finished();
        backup = stack
            .path()
            .join("backups")
            .join(format!("redress-{i}.sqlite"));
        std::fs::create_dir_all(backup.parent().expect("dir")).expect("mkdir");
        let out = run(
            &[
                "backup",
                backup.to_str().expect("path"),
                "--config",
                &config_path(),
            ],
            &env,
        );
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(
            stdout(&out).contains("integrity checked"),
            "{}",
            stdout(&out)
        );
        if i == 0 {
            assert!(
                arriving,
                "the mail should still be arriving when the backup starts"
            );
        }
        check_backup(&backup, &before);
    }
    // A second backup to the same file is refused without --force.
    let out = run(
        &[
            "backup",
            backup.to_str().expect("path"),
            "--config",
            &config_path(),
        ],
        &env,
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--force"), "{}", stderr(&out));

    // The daemon was not disturbed: all 200 complaints become cases.
    sender.join().expect("sender");
    wait_store(&store, 90, "all 200 cases", |s| {
        count(s, "SELECT count(*) FROM cases") == 200
    });
    assert!(daemon.stop(), "the daemon stops cleanly");
}

#[test]
fn status_and_metrics_follow_the_daemon_and_restore_waits_for_it_to_stop() {
    let stack = MailStack::start();
    let store = stack.path().join("redress.sqlite");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let daemon = Daemon::start(&stack, &store, &[("REDRESS_METRICS_LISTEN", &listen)]);
    let env = env_of(&stack, &store);

    // Metrics before any mail: every series there, at zero.
    let m = scrape(port, 30);
    for name in [
        "redress_messages_processed_total",
        "redress_acknowledgements_sent_total",
        "redress_escalations_sent_total",
        "redress_send_failures_total",
        "redress_outbox_depth",
        "redress_intake_lag_seconds",
    ] {
        assert_eq!(sample(&m, name), Some(0), "{name}:\n{m}");
    }
    assert!(
        m.contains("# TYPE redress_messages_processed_total counter"),
        "{m}"
    );
    assert_eq!(
        sample(&m, "redress_open_cases{stage=\"informal\"}"),
        Some(0)
    );
    let (status_line, _) = get(port, "/").expect("GET /");
    assert_eq!(status_line, "HTTP/1.1 404 Not Found");

    // Running, in touch with IMAP.
    let (code, s) = wait_status(&env, 30, "running with IMAP contact", |_, s| {
        s["daemon"]["state"] == "running" && !s["last_imap_contact_at"].is_null()
    });
    assert_eq!(code, 0, "{s:#}");
    assert_eq!(s["healthy"], true);
    assert_eq!(s["daemon"]["pid"], daemon.child.id());
    assert_eq!(s["mailbox"], "complaints@opp.example");
    assert_eq!(s["open_cases"]["total"], 0);
    let contact: chrono::DateTime<chrono::Utc> = s["last_imap_contact_at"]
        .as_str()
        .expect("contact")
        .parse()
        .expect("RFC 3339");
    assert!(
        (redress::clock::now() - contact).num_seconds() < 60,
        "{s:#}"
    );

    // A complaint: acknowledged, counted.
    stack.deliver(
        "alice@example.net",
        "complaints@opp.example",
        &complaint(
            "Alice Example",
            "alice@example.net",
            "My certificate has not arrived",
            "ops1@example.net",
            "",
            "Hello,\r\n\r\nMy certificate has not arrived.\r\n",
        ),
    );
    let acks = stack.wait_for("alice@example.net", 1, 30, |m| {
        m.contains("We have received your complaint")
    });
    let reference = reference_in(header(&acks[0], "Subject").expect("subject"));
    let deadline = Instant::now() + Duration::from_secs(30);
    let m = loop {
        let m = scrape(port, 5);
        if sample(&m, "redress_acknowledgements_sent_total") == Some(1)
            && sample(&m, "redress_outbox_depth") == Some(0)
        {
            break m;
        }
        assert!(Instant::now() < deadline, "metrics did not move:\n{m}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(
        sample(&m, "redress_messages_processed_total"),
        Some(1),
        "{m}"
    );
    assert_eq!(
        sample(&m, "redress_open_cases{stage=\"informal\"}"),
        Some(1)
    );
    assert_eq!(sample(&m, "redress_send_failures_total"), Some(0));
    let lag = sample(&m, "redress_intake_lag_seconds").expect("lag");
    assert!((0..60).contains(&lag), "intake lag {lag}");

    let (code, s) = status(&env);
    assert_eq!(code, 0, "{s:#}");
    assert_eq!(s["open_cases"]["total"], 1, "{s:#}");
    assert_eq!(s["open_cases"]["by_stage"]["informal"], 1, "{s:#}");
    assert_eq!(s["outbox"]["depth"], 0, "{s:#}");
    assert!(s["outbox"]["oldest_queued_at"].is_null(), "{s:#}");
    assert_eq!(s["outbox"]["failed"], 0);
    assert_eq!(s["quarantined"], 0);
    assert!(s["last_mail_received_at"].is_string(), "{s:#}");
    assert_eq!(s["next_deadline"]["reference"], reference.as_str(), "{s:#}");
    assert_eq!(
        s["schema_version"],
        redress::adapters::db::SCHEMA_VERSION,
        "{s:#}"
    );
    let table = run(&["status", "--config", &config_path()], &env);
    assert!(
        stdout(&table).contains("daemon:             running"),
        "{}",
        stdout(&table)
    );

    // A backup while it runs; a restore is refused while it runs.
    let backup = stack.path().join("before.sqlite");
    let out = run(
        &[
            "backup",
            backup.to_str().expect("path"),
            "--config",
            &config_path(),
        ],
        &env,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(
        &[
            "restore",
            backup.to_str().expect("path"),
            "--config",
            &config_path(),
        ],
        &env,
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("running") && stderr(&out).contains("stop it first"),
        "{}",
        stderr(&out)
    );
    assert!(
        Store::open(&store)
            .expect("store")
            .case(&reference)
            .expect("q")
            .is_some(),
        "the refused restore left the store alone"
    );

    // A clean stop: "stopped", exit 3.
    assert!(daemon.stop(), "the daemon stops cleanly");
    let (code, s) = status(&env);
    assert_eq!(code, 3, "{s:#}");
    assert_eq!(s["daemon"]["state"], "stopped", "{s:#}");
    assert_eq!(s["daemon"]["running"], false);
    assert!(s["daemon"]["stopped_at"].is_string(), "{s:#}");
    assert!(
        get(port, "/metrics").is_err(),
        "metrics stop with the daemon"
    );

    // Killed: "not-running" at once (its pid is gone), exit 3.
    let daemon = Daemon::start(&stack, &store, &[]);
    wait_status(&env, 30, "running again", |code, s| {
        code == 0 && s["daemon"]["pid"] == daemon.child.id()
    });
    daemon.kill();
    let (code, s) = status(&env);
    assert_eq!(code, 3, "{s:#}");
    assert_eq!(s["daemon"]["state"], "not-running", "{s:#}");
    assert!(s["daemon"]["stopped_at"].is_null(), "{s:#}");

    // Now the restore goes through: the case added after the backup is
    // gone from the store and kept in the store moved aside.
    {
        let mut live = Store::open(&store).expect("store");
        let tx = live.transaction().expect("tx");
        redress::adapters::db::insert_case(
            &tx,
            &redress::adapters::db::NewCase {
                prefix: "OPP",
                stage: "informal",
                complainant_name: "Late",
                complainant_email: "late@example.net",
                complainant_phone: "",
                reply_address: "late@example.net",
                subject: "after the backup",
                department: "",
                received_at: redress::clock::now(),
                target_date: None,
            },
            redress::clock::now(),
        )
        .expect("case");
        tx.commit().expect("commit");
    }
    let out = run(
        &[
            "restore",
            backup.to_str().expect("path"),
            "--config",
            &config_path(),
        ],
        &env,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let aside = text
        .lines()
        .find_map(|l| l.strip_prefix("moved aside (kept): "))
        .unwrap_or_else(|| panic!("no aside file named:\n{text}"))
        .to_string();
    let restored = Store::open(&store).expect("restored");
    assert!(restored.case(&reference).expect("q").is_some());
    assert_eq!(count(&restored, "SELECT count(*) FROM cases"), 1);
    drop(restored);
    let old = Store::open(Path::new(&aside)).expect("aside");
    assert_eq!(count(&old, "SELECT count(*) FROM cases"), 2);
    let (code, s) = status(&env);
    assert_eq!(code, 3, "{s:#}");
    assert_eq!(s["daemon"]["state"], "stopped", "{s:#}");
    assert!(
        s["daemon"]["stop_note"]
            .as_str()
            .is_some_and(|n| n.contains("restored from")),
        "{s:#}"
    );
}

#[test]
fn status_without_a_store_and_metrics_off_loopback_are_errors_naming_the_cause() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("none.sqlite");
    let env = vec![(
        "REDRESS_STORE_PATH".to_string(),
        store.display().to_string(),
    )];
    let out = run(&["status", "--config", &config_path()], &env);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no store"), "{}", stderr(&out));
    assert!(!store.exists(), "status creates no store");

    let out = run(
        &["check", "--config", &config_path()],
        &[(
            "REDRESS_METRICS_LISTEN".to_string(),
            "0.0.0.0:9187".to_string(),
        )],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("metrics.listen") && stderr(&out).contains("loopback"),
        "{}",
        stderr(&out)
    );
}
