//! Intake and acknowledgement end to end: complaints delivered through a
//! real Postfix into a real Dovecot, the daemon as admins run it, letters
//! read back from the recipients' mailboxes.

use crate::support::{
    complaint, count, example_config, header, reference_in, wait_store, Daemon, MailStack,
};
use redress::adapters::db::Store;
use redress::config::parse_str;
use std::time::Duration;

#[test]
fn a_complaint_is_acknowledged_once_and_replies_join_its_case() {
    let stack = MailStack::start();
    let store = stack.path().join("redress.sqlite");
    let daemon = Daemon::start(&stack, &store, &[]);

    stack.deliver(
        "alice@example.net",
        "complaints@opp.example",
        &complaint("Alice Example", "alice@example.net", "My certificate has not arrived", "c1@example.net", "", "Hello,\r\n\r\nMy certificate has not arrived.\r\n\r\nAlice Example\r\n07700 900123\r\n"),
    );
    let acks = stack.wait_for("alice@example.net", 1, 20, |m| {
        m.contains("We have received your complaint")
    });
    let ack = &acks[0];
    let subject = header(ack, "Subject").expect("subject");
    let reference = reference_in(subject);
    assert!(reference.starts_with("OPP-2026-"), "{reference}");
    assert_eq!(header(ack, "Auto-Submitted"), Some("auto-replied"));
    assert_eq!(header(ack, "X-Auto-Response-Suppress"), Some("All"));
    assert_eq!(header(ack, "In-Reply-To"), Some("<c1@example.net>"));
    let ack_id = header(ack, "Message-ID")
        .expect("message id")
        .trim_matches(['<', '>'])
        .to_string();
    assert!(ack_id.ends_with("@opp.example"), "{ack_id}");

    // The target date is 20 working days from the counting date, shown UK style.
    let s = Store::open(&store).expect("store");
    let case = s.case(&reference).expect("query").expect("case");
    let cfg = parse_str(&example_config(), "t", &[]).expect("config");
    let cal = cfg.calendar(None).expect("calendar");
    let received: chrono::DateTime<chrono::Utc> = case.received_at.parse().expect("received");
    let expected = cal
        .add_working_days(cal.counting_date(received).expect("date"), 20)
        .expect("target");
    assert_eq!(
        case.target_date.as_deref(),
        Some(expected.to_string().as_str())
    );
    let shown = expected.format("%A %-d %B %Y").to_string();
    let body = ack
        .replace("=\r\n", "")
        .replace("=\n", "")
        .replace("\r\n", "\n")
        .replace('\n', " ");
    assert!(body.contains(&shown), "the ack should show {shown}:\n{ack}");
    assert_eq!(case.complainant_name, "Alice Example");
    assert_eq!(case.complainant_email, "alice@example.net");
    assert_eq!(
        case.complainant_phone, "07700 900123",
        "the phone comes from the signature"
    );
    assert!(case.acknowledged_at.is_some());
    drop(s);

    // QC and the department head are told, and can reply.
    let notes = stack.wait_for("quality@opp.example", 1, 20, |m| m.contains(&reference));
    assert_eq!(
        header(&notes[0], "Reply-To"),
        Some("complaints@opp.example")
    );
    stack.wait_for("training.head@opp.example", 1, 20, |m| {
        m.contains(&reference)
    });

    // Alice replies to the acknowledgement: same case, no second ack.
    let reply = complaint(
        "Alice Example",
        "alice@example.net",
        &format!("Re: {subject}"),
        "c2@example.net",
        &format!("In-Reply-To: <{ack_id}>\r\nReferences: <c1@example.net> <{ack_id}>\r\n"),
        "I forgot to say: it was the level 2 course.\r\n\r\nOn Mon, 23 Nov 2026, OP Performance wrote:\r\n> Dear Alice Example,\r\n",
    );
    stack.deliver("alice@example.net", "complaints@opp.example", &reply);
    wait_store(&store, 20, "the reply on the case", |s| {
        s.case_detail(&reference)
            .ok()
            .flatten()
            .is_some_and(|d| d.messages.iter().filter(|m| m.direction == "in").count() == 2)
    });
    let s = Store::open(&store).expect("store");
    let detail = s.case_detail(&reference).expect("q").expect("case");
    let shown_reply = detail
        .messages
        .iter()
        .find(|m| m.message_id == "c2@example.net")
        .expect("reply");
    assert!(shown_reply.body_text.contains("level 2 course"));
    assert!(
        !shown_reply.body_text.contains("> Dear"),
        "quoted history is stripped for display"
    );
    drop(s);

    // A new mail from Alice on another subject opens a second case.
    stack.deliver(
        "alice@example.net",
        "complaints@opp.example",
        &complaint(
            "Alice Example",
            "alice@example.net",
            "The car park is always full",
            "c3@example.net",
            "",
            "Please add more spaces.\r\n",
        ),
    );
    let acks = stack.wait_for("alice@example.net", 2, 20, |m| {
        m.contains("We have received your complaint")
    });
    let second = reference_in(header(&acks[1], "Subject").expect("subject"));
    assert_ne!(second, reference);

    // Reply-To is where letters go.
    stack.deliver(
        "carol@example.net",
        "complaints@opp.example",
        &complaint(
            "Carol",
            "carol@example.net",
            "Rude assessor",
            "c4@example.net",
            "Reply-To: Carol at home <carol.home@example.net>\r\n",
            "The assessor was rude.\r\n",
        ),
    );
    stack.wait_for("carol.home@example.net", 1, 20, |m| {
        m.contains("We have received your complaint")
    });
    // Routing: "assessor" sends it to the assessment department's head.
    stack.wait_for("assessment.head@opp.example", 1, 20, |m| {
        m.contains("Rude assessor")
    });

    // A stranger quoting Alice's reference gets a case of their own.
    stack.deliver(
        "mallory@example.net",
        "complaints@opp.example",
        &complaint(
            "Mallory",
            "mallory@example.net",
            &format!("About [{reference}]"),
            "c5@example.net",
            "",
            "Let me in.\r\n",
        ),
    );
    let mallory = stack.wait_for("mallory@example.net", 1, 20, |m| {
        m.contains("We have received your complaint")
    });
    assert_ne!(
        reference_in(header(&mallory[0], "Subject").expect("subject")),
        reference
    );

    // Still exactly one acknowledgement for Alice's first case.
    std::thread::sleep(Duration::from_millis(1500));
    let acks = stack.mailbox("alice@example.net");
    assert_eq!(
        acks.iter()
            .filter(|m| m.contains(&format!("[{reference}]")))
            .count(),
        1
    );
    let s = Store::open(&store).expect("store");
    assert_eq!(count(&s, "SELECT COUNT(*) FROM cases"), 4);
    assert_eq!(
        count(
            &s,
            "SELECT COUNT(*) FROM outbox WHERE kind = 'acknowledgement'"
        ),
        4
    );
    assert!(daemon.stop(), "the daemon stops cleanly on SIGTERM");
}

#[test]
fn robots_are_recorded_and_never_answered() {
    let stack = MailStack::start();
    let store = stack.path().join("redress.sqlite");
    let _daemon = Daemon::start(&stack, &store, &[]);
    let robots: Vec<(&str, Vec<u8>)> = vec![
        (
            "ooo@example.net",
            complaint("Out Of Office", "ooo@example.net", "Automatic reply: your message", "r1@example.net", "Auto-Submitted: auto-replied\r\n", "I am away until Monday.\r\n"),
        ),
        (
            "news@lists.example.net",
            complaint("A List", "news@lists.example.net", "Weekly news", "r2@example.net", "List-Id: <news.lists.example.net>\r\nList-Unsubscribe: <mailto:leave@lists.example.net>\r\nPrecedence: list\r\n", "News.\r\n"),
        ),
        (
            "MAILER-DAEMON@mx.example.net",
            "From: Mail Delivery System <MAILER-DAEMON@mx.example.net>\r\nTo: complaints@opp.example\r\nSubject: Undelivered Mail Returned to Sender\r\nMessage-ID: <r3@mx.example.net>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nCould not deliver.\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.net\r\n\r\nFinal-Recipient: rfc822; nobody@example.net\r\nAction: failed\r\nStatus: 5.1.1\r\n--b--\r\n".as_bytes()
            .to_vec(),
        ),
    ];
    for (from, raw) in &robots {
        stack.deliver(from, "complaints@opp.example", raw);
    }
    // Real ones from the shared corpus, put into the inbox as they were
    // received (with their original Return-Path).
    let corpus = crate::support::repo().join("../shared/corpus/mail");
    let real = [
        ("bounceparser/autoreply.msg", "john@a.b.c", "auto-reply"),
        (
            "sisimai/maildir/bsd/lhost-postfix-01.eml",
            "mailer-daemon@p351355.pool.example.ne.jp",
            "bounce",
        ),
        (
            "notmuch/lkml/cur/1354585346.000260:2,",
            "stefan@datenfreihafen.org",
            "list",
        ),
    ];
    let corpus_present = corpus.is_dir();
    assert!(
        corpus_present || std::env::var("CI").as_deref() != Ok("true"),
        "corpus missing at {}",
        corpus.display()
    );
    if corpus_present {
        for (file, _, _) in &real {
            let raw = std::fs::read(corpus.join(file)).expect("corpus file");
            crate::support::append(&stack, "complaints@opp.example", &raw);
        }
    }
    // A human last: when its ack arrives, the robots before it were handled.
    stack.deliver(
        "dave@example.net",
        "complaints@opp.example",
        &complaint(
            "Dave",
            "dave@example.net",
            "Course cancelled",
            "h1@example.net",
            "",
            "My course was cancelled.\r\n",
        ),
    );
    stack.wait_for("dave@example.net", 1, 20, |m| {
        m.contains("We have received your complaint")
    });
    // Dave's out-of-office answers the acknowledgement without quoting it:
    // recorded on his case, not answered, the case unchanged.
    stack.deliver(
        "dave@example.net",
        "complaints@opp.example",
        &complaint(
            "Dave",
            "dave@example.net",
            "Out of Office",
            "ooo-dave@example.net",
            "Auto-Submitted: auto-replied\r\n",
            "I am on holiday.\r\n",
        ),
    );
    wait_store(&store, 20, "Dave's out-of-office on his case", |s| {
        count(s, "SELECT COUNT(*) FROM messages WHERE message_id = 'ooo-dave@example.net' AND case_id IS NOT NULL AND classification = 'auto-reply'") == 1
    });
    let s = Store::open(&store).expect("store");
    assert_eq!(
        count(
            &s,
            "SELECT COUNT(*) FROM outbox WHERE recipient = 'dave@example.net'"
        ),
        1,
        "one letter to Dave: the acknowledgement"
    );
    assert_eq!(
        count(&s, "SELECT COUNT(*) FROM cases"),
        1,
        "robots open no case"
    );
    for (from, _) in &robots {
        let to = from.to_ascii_lowercase();
        let n: i64 = s
            .conn()
            .query_row(
                "SELECT COUNT(*) FROM outbox WHERE recipient = ?1",
                [&to],
                |r| r.get(0),
            )
            .expect("count");
        assert_eq!(n, 0, "{from} must get no reply");
    }
    let classes: Vec<String> = {
        let mut stmt = s
            .conn()
            .prepare("SELECT classification FROM messages WHERE message_id LIKE 'r%' ORDER BY message_id")
            .expect("prepare");
        stmt.query_map([], |r| r.get(0))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows")
    };
    assert_eq!(classes, ["auto-reply", "list", "bounce"]);
    if corpus_present {
        for (file, from, class) in &real {
            let n: i64 = s
                .conn()
                .query_row(
                    "SELECT COUNT(*) FROM outbox WHERE recipient = ?1",
                    [from],
                    |r| r.get(0),
                )
                .expect("count");
            assert_eq!(n, 0, "{file} must get no reply");
            let got: String = s
                .conn()
                .query_row(
                    "SELECT classification FROM messages WHERE from_address = ?1",
                    [from],
                    |r| r.get(0),
                )
                .expect("stored");
            assert_eq!(&got, class, "{file}");
        }
    }
}

#[test]
fn killed_repeatedly_while_200_mails_arrive_every_mail_is_in_one_case_with_one_ack() {
    let stack = MailStack::start();
    let store = stack.path().join("redress.sqlite");
    const N: usize = 200;
    let sender = {
        let stack_dir = stack.path().to_path_buf();
        let port = stack.smtp_port;
        std::thread::spawn(move || {
            let _ = stack_dir;
            for i in 0..N {
                let raw = complaint(
                    "Complainant",
                    &format!("c{i}@example.net"),
                    &format!("Complaint number {i}"),
                    &format!("crash-{i}@example.net"),
                    "",
                    "Something went wrong.\r\n",
                );
                crate::support::deliver_to(
                    port,
                    &format!("c{i}@example.net"),
                    "complaints@opp.example",
                    &raw,
                );
                if i % 20 == 0 {
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        })
    };
    // Kill the daemon with SIGKILL over and over while the mail arrives.
    let mut kills = 0;
    while !sender.is_finished() || kills < 5 {
        let daemon = Daemon::start(&stack, &store, &[]);
        std::thread::sleep(Duration::from_millis(200 + fastrand::u64(0..400)));
        daemon.kill();
        kills += 1;
    }
    sender.join().expect("sender");
    // Then let it run to the end.
    let daemon = Daemon::start(&stack, &store, &[]);
    wait_store(
        &store,
        120,
        "every mail processed and every letter sent",
        |s| {
            count(
                s,
                "SELECT COUNT(*) FROM messages WHERE direction = 'in' AND processed_at IS NOT NULL",
            ) == N as i64
                && count(s, "SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL") == 0
        },
    );
    let s = Store::open(&store).expect("store");
    assert_eq!(
        count(&s, "SELECT COUNT(*) FROM cases"),
        N as i64,
        "one case per mail"
    );
    assert_eq!(
        count(&s, "SELECT COUNT(*) FROM (SELECT case_id FROM messages WHERE direction = 'in' GROUP BY case_id HAVING COUNT(*) = 1)"),
        N as i64,
        "every mail in exactly one case"
    );
    assert_eq!(
        count(&s, "SELECT COUNT(*) FROM (SELECT case_id FROM outbox WHERE kind = 'acknowledgement' GROUP BY case_id HAVING COUNT(*) = 1)"),
        N as i64,
        "one acknowledgement per case"
    );
    // And in the complainants' mailboxes: one acknowledgement each. SMTP
    // cannot be exactly-once: a kill between the server's 250 and the commit
    // of "sent" sends the row again, with the same Message-ID (clients show
    // it once). So: exactly one distinct acknowledgement per complainant.
    let mut resent = 0;
    for i in 0..N {
        let acks: Vec<String> = stack
            .mailbox(&format!("c{i}@example.net"))
            .into_iter()
            .filter(|m| m.contains("We have received your complaint"))
            .collect();
        assert!(!acks.is_empty(), "c{i}@example.net got no acknowledgement");
        let mut ids: Vec<&str> = acks
            .iter()
            .filter_map(|m| header(m, "Message-ID"))
            .collect();
        ids.dedup();
        assert_eq!(
            ids.len(),
            1,
            "c{i}@example.net got different acknowledgements: {ids:?}"
        );
        resent += acks.len() - 1;
    }
    eprintln!("{kills} kills; {resent} acknowledgement(s) re-sent with the same Message-ID");
    assert!(daemon.stop());
}

#[test]
fn the_daemon_rides_out_imap_restarts_and_smtp_outages() {
    let stack = MailStack::start();
    let store = stack.path().join("redress.sqlite");
    let daemon = Daemon::start(&stack, &store, &[]);
    stack.deliver(
        "erin@example.net",
        "complaints@opp.example",
        &complaint(
            "Erin",
            "erin@example.net",
            "First",
            "f1@example.net",
            "",
            "One.\r\n",
        ),
    );
    stack.wait_for("erin@example.net", 1, 20, |m| {
        m.contains("We have received your complaint")
    });

    // The IMAP server restarts while the daemon idles; mail that arrives
    // meanwhile is processed after the reconnect.
    stack.service("stop-imap");
    std::thread::sleep(Duration::from_millis(500));
    stack.service("start-imap");
    stack.deliver(
        "erin@example.net",
        "complaints@opp.example",
        &complaint(
            "Erin",
            "erin@example.net",
            "Second",
            "f2@example.net",
            "",
            "Two.\r\n",
        ),
    );
    stack.wait_for("erin@example.net", 2, 60, |m| {
        m.contains("We have received your complaint")
    });

    // SMTP is down: the acknowledgement waits in the outbox...
    stack.service("stop-smtp");
    let raw = complaint(
        "Frank",
        "frank@example.net",
        "Third",
        "f3@example.net",
        "",
        "Three.\r\n",
    );
    crate::support::append(&stack, "complaints@opp.example", &raw);
    wait_store(&store, 30, "the third case opened", |s| {
        count(s, "SELECT COUNT(*) FROM cases") == 3
    });
    std::thread::sleep(Duration::from_secs(2));
    let s = Store::open(&store).expect("store");
    assert!(
        count(
            &s,
            "SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL AND kind = 'acknowledgement'"
        ) == 1
    );
    assert!(
        count(
            &s,
            "SELECT COUNT(*) FROM outbox WHERE failed_at IS NOT NULL"
        ) == 0
    );
    // The case counts as acknowledged only once the letter has gone.
    assert_eq!(
        count(&s, "SELECT COUNT(*) FROM cases WHERE complainant_email = 'frank@example.net' AND acknowledged_at IS NULL"),
        1
    );
    drop(s);
    // ...and goes out when SMTP is back.
    stack.service("start-smtp");
    stack.wait_for("frank@example.net", 1, 90, |m| {
        m.contains("We have received your complaint")
    });
    wait_store(
        &store,
        20,
        "Frank's case acknowledged once the letter went",
        |s| {
            count(s, "SELECT COUNT(*) FROM cases WHERE complainant_email = 'frank@example.net' AND acknowledged_at IS NOT NULL") == 1
        },
    );
    let log = daemon.log();
    assert!(
        log.contains("retrying"),
        "the IMAP outage is logged:\n{log}"
    );
    assert!(
        log.contains("letters wait in the outbox"),
        "the SMTP outage is logged:\n{log}"
    );
    assert!(
        log.matches("letters wait in the outbox").count() == 1,
        "one line per state change:\n{log}"
    );
    assert!(daemon.stop());
}

#[test]
fn the_reply_cap_our_own_mail_and_unparseable_mail() {
    let stack = MailStack::start();
    let store = stack.path().join("redress.sqlite");
    let _daemon = Daemon::start(&stack, &store, &[]);
    // Four new complaints from one sender in a day: three acknowledgements
    // (the default cap), the fourth is recorded as a case and QC is told.
    for i in 0..4 {
        stack.deliver(
            "gina@example.net",
            "complaints@opp.example",
            &complaint(
                "Gina",
                "gina@example.net",
                &format!("Topic {i}"),
                &format!("cap-{i}@example.net"),
                "",
                "Again.\r\n",
            ),
        );
    }
    wait_store(&store, 30, "four cases", |s| {
        count(s, "SELECT COUNT(*) FROM cases") == 4
    });
    let held = stack.wait_for("quality@opp.example", 1, 20, |m| {
        m.replace("=\r\n", "")
            .replace("=\n", "")
            .contains("daily limit")
    });
    assert_eq!(held.len(), 1);
    std::thread::sleep(Duration::from_millis(1500));
    let acks = stack.mailbox("gina@example.net");
    assert_eq!(acks.len(), 3, "three acknowledgements, then silence");

    // Mail from our own address is never a complaint.
    stack.deliver(
        "complaints@opp.example",
        "complaints@opp.example",
        &complaint(
            "OP Performance Limited",
            "complaints@opp.example",
            "We have received your complaint",
            "own@opp.example",
            "",
            "Loop?\r\n",
        ),
    );
    // Mail that is not a mail at all is kept, quarantined, and QC is told once;
    // the next complaint still flows.
    crate::support::append(
        &stack,
        "complaints@opp.example",
        b"\x00\x01\x02 this is not an email\r\n",
    );
    stack.deliver(
        "hank@example.net",
        "complaints@opp.example",
        &complaint(
            "Hank",
            "hank@example.net",
            "After the junk",
            "after-junk@example.net",
            "",
            "Still works?\r\n",
        ),
    );
    stack.wait_for("hank@example.net", 1, 30, |m| {
        m.contains("We have received your complaint")
    });
    let s = Store::open(&store).expect("store");
    assert_eq!(
        count(&s, "SELECT COUNT(*) FROM cases"),
        5,
        "our own mail opened no case"
    );
    assert_eq!(
        count(
            &s,
            "SELECT COUNT(*) FROM messages WHERE classification = 'loop'"
        ),
        1
    );
    assert_eq!(
        count(
            &s,
            "SELECT COUNT(*) FROM messages WHERE quarantine_reason IS NOT NULL"
        ),
        1
    );
    drop(s);
    let notices = stack.wait_for("quality@opp.example", 1, 20, |m| {
        m.contains("could not be handled")
    });
    assert_eq!(notices.len(), 1);
}

#[test]
fn polling_works_without_idle_and_a_uidvalidity_change_processes_nothing_twice() {
    let stack = MailStack::start();
    let store = stack.path().join("redress.sqlite");
    let polling = [
        ("REDRESS_IMAP_IDLE", "false"),
        ("REDRESS_IMAP_POLL_INTERVAL", "1"),
    ];
    let daemon = Daemon::start(&stack, &store, &polling);
    for i in 0..2 {
        stack.deliver(
            "ivy@example.net",
            "complaints@opp.example",
            &complaint(
                "Ivy",
                "ivy@example.net",
                &format!("Poll {i}"),
                &format!("poll-{i}@example.net"),
                "",
                "Polled.\r\n",
            ),
        );
    }
    stack.wait_for("ivy@example.net", 2, 30, |m| {
        m.contains("We have received your complaint")
    });
    assert!(daemon.log().contains("polling"), "{}", daemon.log());
    assert!(daemon.stop());

    // The server forgets its UIDs (a restored or migrated mailbox gets a new
    // UIDVALIDITY): everything is read again and nothing is done twice.
    let maildir = stack.path().join("mail/opp.example/complaints/Maildir");
    let uidlist = maildir.join("dovecot-uidlist");
    assert!(uidlist.exists(), "{} missing", uidlist.display());
    stack.service("stop-imap");
    std::fs::remove_file(&uidlist).expect("remove uidlist");
    for f in ["dovecot.index", "dovecot.index.cache", "dovecot.index.log"] {
        let _ = std::fs::remove_file(maildir.join(f));
    }
    stack.service("start-imap");
    let daemon = Daemon::start(&stack, &store, &polling);
    stack.deliver(
        "ivy@example.net",
        "complaints@opp.example",
        &complaint(
            "Ivy",
            "ivy@example.net",
            "After the change",
            "poll-2@example.net",
            "",
            "New.\r\n",
        ),
    );
    stack.wait_for("ivy@example.net", 3, 30, |m| {
        m.contains("We have received your complaint")
    });
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        daemon.log().contains("UIDVALIDITY changed"),
        "{}",
        daemon.log()
    );
    let s = Store::open(&store).expect("store");
    assert_eq!(count(&s, "SELECT COUNT(*) FROM cases"), 3);
    assert_eq!(
        count(
            &s,
            "SELECT COUNT(*) FROM outbox WHERE kind = 'acknowledgement'"
        ),
        3
    );
    assert_eq!(stack.mailbox("ivy@example.net").len(), 3);
    assert!(daemon.stop());

    // The admin moves the store from this mailbox to another one whose
    // INBOX shows the same UIDVALIDITY (servers number new folders by the
    // clock): its first mails, at UIDs the old checkpoint covers, are new.
    let other = "complaints-live@opp.example";
    for i in 0..4 {
        crate::support::append(
            &stack,
            other,
            &complaint(
                "Joe",
                &format!("joe{i}@example.net"),
                &format!("Live {i}"),
                &format!("live-{i}@example.net"),
                "",
                "New mailbox.\r\n",
            ),
        );
    }
    let live = stack
        .path()
        .join("mail/opp.example/complaints-live/Maildir");
    let validity = |dir: &std::path::Path| -> String {
        let list = std::fs::read_to_string(dir.join("dovecot-uidlist")).expect("uidlist");
        let first = list.lines().next().expect("header").to_string();
        first
            .split(' ')
            .find(|w| w.starts_with('V'))
            .expect("V field")
            .to_string()
    };
    stack.service("stop-imap");
    let ours = validity(&maildir);
    let list = std::fs::read_to_string(live.join("dovecot-uidlist")).expect("uidlist");
    let theirs = validity(&live);
    std::fs::write(
        live.join("dovecot-uidlist"),
        list.replacen(&theirs, &ours, 1),
    )
    .expect("same UIDVALIDITY");
    for f in ["dovecot.index", "dovecot.index.cache", "dovecot.index.log"] {
        let _ = std::fs::remove_file(live.join(f));
    }
    stack.service("start-imap");
    let daemon = Daemon::start(
        &stack,
        &store,
        &[polling[0], polling[1], ("REDRESS_IMAP_USERNAME", other)],
    );
    wait_store(&store, 30, "the new mailbox's four complaints", |s| {
        count(s, "SELECT COUNT(*) FROM cases") == 7
    });
    let s = Store::open(&store).expect("store");
    assert_eq!(
        count(
            &s,
            "SELECT COUNT(*) FROM messages WHERE from_address LIKE 'joe%'"
        ),
        4
    );
    assert!(
        daemon.log().contains("the IMAP account changed"),
        "{}",
        daemon.log()
    );
    assert!(daemon.stop());
}

#[test]
fn refused_letters_are_retried_or_reported_and_never_block_the_others() {
    let stack = MailStack::start();
    let store = stack.path().join("redress.sqlite");
    let _daemon = Daemon::start(&stack, &store, &[]);
    // The MTA refuses mail to "reject-..." for good and to "tempfail-..."
    // for now (scripts/mailstack's test hooks).
    for (who, id) in [
        ("reject-kim@example.net", "rf-1@example.net"),
        ("tempfail-lee@example.net", "rf-2@example.net"),
        ("mo@example.net", "rf-3@example.net"),
    ] {
        stack.deliver(
            who,
            "complaints@opp.example",
            &complaint("X", who, "Refusals", id, "", "Hello.\r\n"),
        );
    }
    // A refusal for one address delays nobody else.
    stack.wait_for("mo@example.net", 1, 30, |m| {
        m.contains("We have received your complaint")
    });
    // A permanent refusal is given up at once, and QC is told (once).
    let told = stack.wait_for("quality@opp.example", 1, 30, |m| {
        m.contains("could not be delivered")
    });
    assert!(told[0].contains("reject-kim@example.net"), "{}", told[0]);
    wait_store(&store, 20, "the refused rows recorded", |s| {
        count(s, "SELECT COUNT(*) FROM outbox WHERE recipient = 'reject-kim@example.net' AND failed_at IS NOT NULL") == 1
            && count(s, "SELECT COUNT(*) FROM outbox WHERE recipient = 'tempfail-lee@example.net' AND attempts >= 1") == 1
    });
    let s = Store::open(&store).expect("store");
    // A temporary refusal waits for another attempt; it is not failed.
    assert_eq!(
        count(&s, "SELECT COUNT(*) FROM outbox WHERE recipient = 'tempfail-lee@example.net' AND failed_at IS NULL AND sent_at IS NULL AND last_error LIKE '%450%'"),
        1
    );
    // The 48 hours before it is given up count from this first refusal.
    assert_eq!(
        count(&s, "SELECT COUNT(*) FROM outbox WHERE recipient = 'tempfail-lee@example.net' AND refused_since IS NOT NULL"),
        1
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        stack
            .mailbox("quality@opp.example")
            .iter()
            .filter(|m| m.contains("could not be delivered"))
            .count(),
        1
    );
}
