//! Running as a systemd service: sd_notify (READY, STATUS, WATCHDOG,
//! STOPPING) on a socket the test listens on, the watchdog going quiet
//! when a loop stalls, journald-style log lines, SIGHUP reloads of the
//! config and templates (good and bad), and no secret in the log.

use crate::support::{complaint, header, wait_store, Daemon, MailStack};
use std::os::unix::net::UnixDatagram;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Every datagram the daemon sent to the notify socket, in order.
struct Notifications {
    got: Arc<Mutex<Vec<String>>>,
}

impl Notifications {
    fn listen(path: &std::path::Path) -> Notifications {
        let sock = UnixDatagram::bind(path).expect("binding the notify socket");
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        let got: Arc<Mutex<Vec<String>>> = Arc::default();
        let sink = got.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 4096];
            // Ends when the test (and so the socket's only other user) ends.
            for _ in 0..100_000 {
                if let Ok(n) = sock.recv(&mut buf) {
                    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                    sink.lock()
                        .unwrap()
                        .extend(text.lines().map(str::to_string));
                }
            }
        });
        Notifications { got }
    }

    fn all(&self) -> Vec<String> {
        self.got.lock().unwrap().clone()
    }

    fn count(&self, line: &str) -> usize {
        self.all().iter().filter(|l| *l == line).count()
    }

    fn wait(&self, what: &str, secs: u64, pred: impl Fn(&[String]) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !pred(&self.all()) {
            assert!(
                Instant::now() < deadline,
                "no {what} within {secs} s; got {:?}",
                self.all()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn file_complaint(stack: &MailStack, who: &str) {
    let from = format!("{who}@example.net");
    stack.deliver(
        &from,
        "complaints@opp.example",
        &complaint(
            who,
            &from,
            "My certificate never arrived",
            &format!("{who}@example.net"),
            "",
            "I passed in June and still have no certificate.\r\n",
        ),
    );
}

fn acknowledgement(stack: &MailStack, who: &str) -> String {
    let got = stack.wait_for(&format!("{who}@example.net"), 1, 30, |_| true);
    got.into_iter().next().expect("an acknowledgement")
}

#[test]
fn systemd_hears_ready_status_watchdog_and_stopping_and_a_stall_silences_the_watchdog() {
    let stack = MailStack::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("redress.sqlite");
    let socket = dir.path().join("notify.sock");
    let stall = dir.path().join("stall");
    let notes = Notifications::listen(&socket);
    let daemon = Daemon::start(
        &stack,
        &store,
        &[
            ("NOTIFY_SOCKET", socket.to_str().unwrap()),
            ("WATCHDOG_USEC", "1000000"),
            ("REDRESS_TEST_STALL_FILE", stall.to_str().unwrap()),
            ("JOURNAL_STREAM", "stderr"),
        ],
    );
    notes.wait("READY=1 and three WATCHDOG=1", 60, |n| {
        n.contains(&"READY=1".to_string()) && n.iter().filter(|l| *l == "WATCHDOG=1").count() >= 3
    });
    let all = notes.all();
    assert_eq!(all[0], "READY=1", "READY=1 comes first: {all:?}");
    let status = all
        .iter()
        .find(|l| l.starts_with("STATUS="))
        .expect("a STATUS= line");
    assert!(
        status.contains("watching complaints@opp.example") && status.contains("0 open cases"),
        "{status}"
    );

    // Work goes on: a complaint is acknowledged and STATUS= follows.
    file_complaint(&stack, "ada");
    acknowledgement(&stack, "ada");
    notes.wait("a STATUS= with the open case", 30, |n| {
        n.iter().any(|l| {
            l.starts_with("STATUS=") && l.contains("1 open case;") && l.contains("last mail")
        })
    });

    // A second daemon on the same store (an admin's `redress run` beside
    // the service) refuses to start: two would send every letter twice.
    let mut second = Daemon::start(&stack, &store, &[]);
    let exit = (0..300)
        .find_map(|_| {
            std::thread::sleep(Duration::from_millis(100));
            second.child.try_wait().expect("try_wait")
        })
        .expect("the second daemon exits by itself");
    assert!(!exit.success());
    assert!(
        second
            .log()
            .contains("another redress daemon is already running on the store"),
        "{}",
        second.log()
    );

    // The outbox loop stalls (the test hook) at its next wake-up, which the
    // next complaint brings: WATCHDOG=1 stops.
    std::fs::write(&stall, "outbox").expect("stall file");
    file_complaint(&stack, "bob");
    daemon.wait_log("a loop has stopped making progress", 60);
    let before = notes.count("WATCHDOG=1");
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(
        notes.count("WATCHDOG=1"),
        before,
        "WATCHDOG=1 went on while the outbox loop was stalled"
    );
    assert!(
        stack.mailbox("bob@example.net").is_empty(),
        "the stalled outbox sent a letter"
    );
    // `redress status` follows: the heartbeat stops with the wedged loop,
    // and once it is stale (45 s) the daemon is "unresponsive", exit 4.
    let config = crate::support::repo().join("config.example.toml");
    let store_env = store.display().to_string();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let out = crate::support::redress(
            &[
                "status",
                "--config",
                config.to_str().unwrap(),
                "--format",
                "json",
            ],
            &[("REDRESS_STORE_PATH", store_env.as_str())],
        );
        let json: serde_json::Value =
            serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
        if json["daemon"]["state"] == "unresponsive" {
            assert_eq!(out.status.code(), Some(4), "{json}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "status never said unresponsive: {json} {}",
            crate::support::stderr(&out)
        );
        std::thread::sleep(Duration::from_secs(1));
    }

    // SIGTERM: STOPPING=1, then a clean exit.
    let log_path = daemon.log.clone();
    assert!(daemon.stop(), "the daemon did not stop cleanly");
    let all = notes.all();
    let stopping = all
        .iter()
        .position(|l| l == "STOPPING=1")
        .unwrap_or_else(|| panic!("no STOPPING=1: {all:?}"));
    let last_watchdog = all.iter().rposition(|l| l == "WATCHDOG=1").unwrap();
    assert!(last_watchdog < stopping, "{all:?}");

    // Under the journal: a priority on every line, no timestamps.
    let log = std::fs::read_to_string(log_path).expect("log");
    for line in log.lines().filter(|l| !l.is_empty()) {
        assert!(
            line.len() > 3 && line.starts_with('<') && line.as_bytes()[2] == b'>',
            "a log line without a priority: {line:?}"
        );
        assert!(
            !line.contains("2026-") || line.contains("OPP-2026-"),
            "a timestamp: {line:?}"
        );
    }
    assert!(
        log.lines()
            .any(|l| l.starts_with("<6>") && l.contains("redress started")),
        "{log}"
    );
    assert!(
        log.lines()
            .any(|l| l.starts_with("<3>") && l.contains("stopped making progress")),
        "{log}"
    );
}

/// Dovecot's count of logins as the complaints mailbox.
fn logins(stack: &MailStack) -> usize {
    std::fs::read_to_string(stack.path().join("log/dovecot.log"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("Login: user=<complaints@opp.example>"))
        .count()
}

#[test]
fn sighup_reloads_templates_refuses_bad_configs_and_keeps_the_connection() {
    let stack = MailStack::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("redress.sqlite");
    let config = dir.path().join("config.toml");
    let example = crate::support::example_config();
    std::fs::write(&config, &example).expect("config");
    let templates = dir.path().join("templates");
    std::fs::create_dir(&templates).expect("templates dir");
    let secret_file = dir.path().join("token-secret");
    let token_secret = "reload-test-token-secret-0123456789abcdefXYZ";
    std::fs::write(&secret_file, token_secret).expect("secret");
    let daemon = Daemon::start_with(
        &stack,
        &config,
        &store,
        &[
            ("REDRESS_TEMPLATES_DIR", templates.to_str().unwrap()),
            (
                "REDRESS_STAFF_TOKEN_SECRET_FILE",
                secret_file.to_str().unwrap(),
            ),
            // Everything the daemon and its crates would say.
            ("RUST_LOG", "trace"),
        ],
    );
    file_complaint(&stack, "cy");
    let first = acknowledgement(&stack, "cy");
    assert!(!first.contains("RELOADED-MARKER"));
    let logins_before = logins(&stack);
    assert!(logins_before >= 1, "dovecot logged no login");

    // A new template, SIGHUP: the next letter uses it; the IMAP connection stays.
    std::fs::write(
        templates.join("acknowledgement.txt.hbs"),
        "Subject: Your complaint {{reference}}\n\nRELOADED-MARKER {{reference}}\n",
    )
    .expect("template");
    daemon.signal("HUP");
    daemon.wait_log("reloaded the config and templates (IMAP unchanged", 30);
    file_complaint(&stack, "dee");
    let second = acknowledgement(&stack, "dee");
    assert!(second.contains("RELOADED-MARKER OPP-"), "{second}");
    assert_eq!(logins(&stack), logins_before, "the reload logged in again");

    // A broken config: refused in one line, the old one runs on.
    std::fs::write(&config, "[imap\nhost = ").expect("broken config");
    daemon.signal("HUP");
    daemon.wait_log("reload refused", 30);
    let refusal = daemon
        .log()
        .lines()
        .filter(|l| l.contains("reload refused"))
        .count();
    assert_eq!(refusal, 1);
    // A broken template: refused too.
    std::fs::write(&config, &example).expect("config back");
    std::fs::write(templates.join("acknowledgement.txt.hbs"), "{{#if}}broken\n").expect("t");
    daemon.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(30);
    while daemon.log().matches("reload refused").count() < 2 {
        assert!(
            Instant::now() < deadline,
            "the broken template was not refused"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    file_complaint(&stack, "eve");
    let third = acknowledgement(&stack, "eve");
    assert!(
        third.contains("RELOADED-MARKER OPP-"),
        "the last good templates should still be in use: {third}"
    );

    // New IMAP settings: the daemon logs in again with them.
    std::fs::write(
        templates.join("acknowledgement.txt.hbs"),
        "Subject: Your complaint {{reference}}\n\nRELOADED-MARKER {{reference}}\n",
    )
    .expect("template");
    std::fs::write(
        &config,
        example.replace("poll_interval = 60", "poll_interval = 7"),
    )
    .expect("config");
    daemon.signal("HUP");
    daemon.wait_log("IMAP settings changed, reconnecting", 30);
    let deadline = Instant::now() + Duration::from_secs(30);
    while logins(&stack) <= logins_before {
        assert!(
            Instant::now() < deadline,
            "no new login after new IMAP settings"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    file_complaint(&stack, "fay");
    acknowledgement(&stack, "fay");

    // A staff reply, authenticated by its token, goes through too.
    let notice = stack
        .wait_for("quality@opp.example", 1, 30, |m| {
            m.contains("fay@example.net")
        })
        .remove(0);
    let subject = header(&notice, "Subject").unwrap_or("").to_string();
    let mid = header(&notice, "Message-ID")
        .expect("Message-ID")
        .to_string();
    stack.deliver(
        "quality@opp.example",
        "complaints@opp.example",
        format!(
            "From: Quality Coordinator <quality@opp.example>\r\nTo: complaints@opp.example\r\nSubject: Re: {subject}\r\nMessage-ID: <qc-note-1@opp.example>\r\nIn-Reply-To: {mid}\r\nDate: Mon, 23 Nov 2026 11:00:00 +0000\r\nContent-Type: text/plain\r\n\r\n#note\r\nCalled the complainant; she is happy to wait.\r\n"
        )
        .as_bytes(),
    );
    wait_store(&store, 30, "the staff note", |s| {
        crate::support::count(s, "SELECT count(*) FROM events WHERE kind = 'note'") >= 1
    });
    let log_path = daemon.log.clone();
    assert!(daemon.stop(), "the daemon did not stop cleanly");

    // No secret in the log, at trace level: the mailbox password, the
    // token key, or any token of a Message-ID we sent.
    let log = std::fs::read_to_string(log_path).expect("log");
    assert!(
        log.contains("TRACE") || log.contains("DEBUG"),
        "not a trace log"
    );
    assert!(
        !log.contains(&stack.password),
        "the IMAP/SMTP password is in the log"
    );
    assert!(!log.contains(token_secret), "the token key is in the log");
    let s = redress::adapters::db::Store::open(&store).expect("store");
    let ids: Vec<String> = s
        .conn()
        .prepare("SELECT message_id FROM outbox")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(ids.len() >= 8, "{ids:?}");
    for id in ids {
        let (_, token) = redress::core::token::parse_message_id(&id, "opp.example")
            .unwrap_or_else(|| panic!("not one of ours: {id}"));
        assert!(
            !log.contains(token),
            "a staff/complainant token is in the log: {token}"
        );
    }
}
