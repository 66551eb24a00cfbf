//! Complaints that came another way (post, phone, in person), recorded by
//! the Quality Coordinator with `redress cases open`: on a real store, and
//! end to end with the daemon over a real Postfix and Dovecot.

use crate::support::{
    count, flat, header, redress, repo, stderr, stdout, wait_store, Daemon, MailStack,
};
use redress::adapters::db::Store;
use std::path::Path;

/// `redress cases open ARGS --config example --format json` against `store`.
fn open(store: &Path, args: &[&str]) -> std::process::Output {
    let config = repo().join("config.example.toml");
    let mut all = vec!["cases", "open", "--config", config.to_str().expect("path")];
    all.extend_from_slice(args);
    redress(
        &all,
        &[("REDRESS_STORE_PATH", store.to_str().expect("path"))],
    )
}

fn json(out: &std::process::Output) -> serde_json::Value {
    assert!(out.status.success(), "cases open failed: {}", stderr(out));
    serde_json::from_slice(&out.stdout).expect("json")
}

const LETTER: &str = "Dear Sir or Madam,\n\nThe assessor did not come to the session on 12 November, and nobody told us.\n\nYours faithfully,\nFiona Grey\n";

#[test]
fn qc_records_a_posted_complaint_once_with_every_detail_and_lateness_flagged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store.sqlite");
    let text_file = dir.path().join("letter.txt");
    std::fs::write(&text_file, LETTER).expect("letter");
    let args = [
        "--name",
        "Fiona Grey",
        "--email",
        "Fiona.Grey@Example.net",
        "--phone",
        "01254 765432",
        "--subject",
        "Assessor did not turn up",
        "--text-file",
        text_file.to_str().expect("path"),
        "--via",
        "post",
        "--received",
        "2026-11-20T10:30",
        "--issue-date",
        "12 November 2026",
        "--stage",
        "formal",
        "--department",
        "Assessment",
        "--format",
        "json",
    ];
    let done = json(&open(&store, &args));
    let reference = done["reference"].as_str().expect("reference").to_string();
    assert_eq!(done["stage"], "formal");
    assert_eq!(done["department"], "assessment");
    // Formal: 20 working days from Friday 20 November 2026.
    assert_eq!(done["target_date"], "2026-12-18");
    assert_eq!(done["acknowledgement"], "queued");
    // Formal complaints within 10 working days of the issue (12 November):
    // due by Thursday 26th, so the 20th is in time.
    assert_eq!(done["raised_late_due"], serde_json::Value::Null);

    let db = Store::open(&store).expect("store");
    let detail = db.case_detail(&reference).expect("query").expect("case");
    let c = &detail.case;
    assert_eq!(
        (
            c.complainant_name.as_str(),
            c.complainant_email.as_str(),
            c.complainant_phone.as_str(),
            c.reply_address.as_str(),
        ),
        (
            "Fiona Grey",
            "fiona.grey@example.net",
            "01254 765432",
            "fiona.grey@example.net"
        )
    );
    assert_eq!(c.received_at, "2026-11-20T10:30:00Z");
    // The record is the case's first message, with the whole text.
    let first = &detail.messages[0];
    assert_eq!(first.direction, "in");
    assert_eq!(first.classification, "recorded");
    assert!(first.body_text.contains("nobody told us"), "{first:?}");
    let opened = detail
        .events
        .iter()
        .find(|e| e.kind == "opened")
        .expect("opened");
    assert_eq!(opened.actor, "quality@opp.example");
    assert_eq!(opened.detail["received_via"], "post");
    assert_eq!(opened.detail["issue_date"], "2026-11-12");
    // The acknowledgement to the complainant (not threaded under an id
    // they never saw), the new-case email to QC and the head.
    let letters = |kind: &str| {
        count(
            &db,
            &format!("SELECT count(*) FROM outbox WHERE kind = '{kind}'"),
        )
    };
    assert_eq!(letters("acknowledgement"), 1);
    assert_eq!(letters("new-case"), 2);
    let ack: String = db
        .conn()
        .query_row(
            "SELECT CAST(raw AS TEXT) FROM outbox WHERE kind = 'acknowledgement'",
            [],
            |r| r.get(0),
        )
        .expect("ack");
    assert!(header(&ack, "In-Reply-To").is_none(), "{ack}");
    assert!(flat(&ack).contains("Friday 18 December 2026"), "{ack}");
    let notice: String = db
        .conn()
        .query_row(
            "SELECT CAST(raw AS TEXT) FROM outbox WHERE kind = 'new-case' AND recipient = 'assessment.head@opp.example'",
            [],
            |r| r.get(0),
        )
        .expect("notice");
    assert!(flat(&notice).contains("Received by post; recorded by quality@opp.example"));
    assert!(flat(&notice).contains("nobody told us"));

    // Received days ago, recorded now: the 48 hours to acknowledge run
    // from now, so QC is not told at once that it is overdue.
    let ack_due: String = db
        .conn()
        .query_row(
            "SELECT due_at FROM deadlines WHERE kind = 'acknowledge' AND cancelled_at IS NULL",
            [],
            |r| r.get(0),
        )
        .expect("acknowledgement deadline");
    let ack_due: chrono::DateTime<chrono::Utc> = ack_due.parse().expect("instant");
    assert!(ack_due > redress::clock::now(), "{ack_due}");

    // The same complaint entered again, with another phone number and
    // channel: refused, nothing added.
    let mut args = args.to_vec();
    args[5] = "07700 900999";
    args[11] = "phone";
    let again = open(&store, &args);
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains(&format!("already recorded as {reference}")),
        "{}",
        stderr(&again)
    );
    assert_eq!(count(&db, "SELECT count(*) FROM cases"), 1);
    assert_eq!(count(&db, "SELECT count(*) FROM outbox"), 3);

    // Raised after the informal stage's 5 working days: recorded and
    // flagged, never refused.
    let late = json(&open(
        &store,
        &[
            "--name",
            "Gary Hill",
            "--email",
            "gary@example.net",
            "--subject",
            "Course materials",
            "--text",
            "The course materials were missing pages.",
            "--via",
            "in-person",
            "--received",
            "2026-11-20",
            "--issue-date",
            "2026-11-02",
            "--format",
            "json",
        ],
    ));
    assert_eq!(late["stage"], "informal");
    assert_eq!(late["raised_late_due"], "2026-11-09");
    let late_ref = late["reference"].as_str().expect("reference");
    let detail = db.case_detail(late_ref).expect("query").expect("case");
    assert!(detail.events.iter().any(|e| e.kind == "raised-late"));
    let notice: String = db
        .conn()
        .query_row(
            "SELECT CAST(raw AS TEXT) FROM outbox WHERE kind = 'new-case' AND case_id = (SELECT id FROM cases WHERE reference = ?1) LIMIT 1",
            [late_ref],
            |r| r.get(0),
        )
        .expect("notice");
    assert!(
        flat(&notice).contains("Raised late: the issue arose on Monday 2 November 2026"),
        "{notice}"
    );
}

/// An appeal in writing to the Managing Director (seed 000 §6), recorded:
/// the MD, who answers that stage, hears of it with QC and the head.
#[test]
fn a_recorded_appeal_reaches_the_managing_director() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store.sqlite");
    let done = json(&open(
        &store,
        &[
            "--name",
            "Kate Lowe",
            "--email",
            "kate@example.net",
            "--subject",
            "Appeal against the outcome",
            "--text",
            "I appeal against your response to my complaint.",
            "--via",
            "post",
            "--stage",
            "appeal",
            "--received",
            "20/11/2026",
            "--format",
            "json",
        ],
    ));
    assert_eq!(done["stage"], "appeal");
    // One calendar month from Friday 20 November 2026.
    assert_eq!(done["target_date"], "2026-12-20");
    let db = Store::open(&store).expect("store");
    let mut to: Vec<String> = db
        .conn()
        .prepare("SELECT recipient FROM outbox WHERE kind = 'new-case'")
        .expect("query")
        .query_map([], |r| r.get(0))
        .expect("rows")
        .map(|r| r.expect("row"))
        .collect();
    to.sort();
    assert_eq!(
        to,
        [
            "md@opp.example",
            "quality@opp.example",
            "training.head@opp.example"
        ]
    );
}

#[test]
fn without_an_address_letters_go_to_qc_to_post_and_an_acknowledged_one_gets_none() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store.sqlite");
    // By phone, no email: the acknowledgement cannot be emailed; it goes
    // to QC to post, and counts as given (no "overdue" notice later).
    let phoned = json(&open(
        &store,
        &[
            "--name",
            "Harriet Jones",
            "--phone",
            "07700 900456",
            "--subject",
            "Rude on the phone",
            "--text",
            "The trainer was rude to me on the phone.",
            "--via",
            "phone",
            "--format",
            "json",
        ],
    ));
    assert_eq!(phoned["acknowledgement"], "no-address");
    let db = Store::open(&store).expect("store");
    let reference = phoned["reference"].as_str().expect("reference");
    let detail = db.case_detail(reference).expect("query").expect("case");
    assert!(detail
        .events
        .iter()
        .any(|e| e.kind == "acknowledgement-held"
            && e.detail
                .to_string()
                .contains("to the Quality Coordinator to post")));
    assert!(detail.case.acknowledged_at.is_some());
    let (to, posted): (String, String) = db
        .conn()
        .query_row(
            "SELECT recipient, CAST(raw AS TEXT) FROM outbox WHERE kind = 'letter-to-post'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("the acknowledgement to post");
    assert_eq!(to, "quality@opp.example");
    let posted = flat(&posted);
    assert!(posted.contains("(acknowledgement)"), "{posted}");
    assert!(
        posted.contains(&format!("We have received your complaint [{reference}]")),
        "{posted}"
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM outbox WHERE kind = 'acknowledgement'"
        ),
        0
    );
    assert_eq!(
        count(&db, "SELECT count(*) FROM outbox WHERE kind = 'new-case'"),
        2
    );
    assert_eq!(
        count(&db, "SELECT count(*) FROM participants WHERE address = ''"),
        0,
        "no empty address to match mail by"
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM deadlines WHERE kind = 'acknowledge' AND fired_at IS NULL AND cancelled_at IS NULL"
        ),
        0
    );

    // The head resolves it by reply: the written response cannot be
    // emailed, so it goes to QC to post, whole.
    let cfg = redress::config::parse_str(
        &crate::support::example_config(),
        "t",
        &[(
            "REDRESS_STORE_PATH".to_string(),
            store.display().to_string(),
        )],
    )
    .expect("config");
    let mut writer = Store::open(&store).expect("store");
    let desk = redress::service::Desk::new(cfg, &mut writer).expect("desk");
    let head = "training.head@opp.example";
    let token = redress::core::token::token(&desk.secret, reference, head);
    let notice = redress::core::token::message_id(9, reference, &token, "opp.example");
    let resolve = format!(
        "From: Head of Training <{head}>\r\nTo: complaints@opp.example\r\nSubject: Re: New complaint\r\nMessage-ID: <rec-resolve@opp.example>\r\nIn-Reply-To: <{notice}>\r\nDate: Tue, 24 Nov 2026 11:00:00 +0000\r\nContent-Type: text/plain\r\n\r\n#resolve upheld\r\nThe trainer has apologised and will call you this week.\r\n"
    );
    let done = redress::service::intake::process(
        &mut writer,
        &desk,
        resolve.as_bytes(),
        &redress::service::intake::Arrival::default(),
        redress::clock::now(),
    )
    .expect("process");
    assert!(
        matches!(&done, redress::service::intake::Processed::Staff { authenticated: true, commands, .. } if !commands.is_empty()),
        "{done:?}"
    );
    let (to, raw): (String, String) = db
        .conn()
        .query_row(
            "SELECT recipient, CAST(raw AS TEXT) FROM outbox WHERE kind = 'letter-to-post' ORDER BY id DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("a letter to post");
    assert_eq!(to, "quality@opp.example");
    let text = flat(&raw);
    assert!(text.contains("Harriet Jones, 07700 900456"), "{text}");
    assert!(
        text.contains("The trainer has apologised and will call you this week."),
        "{text}"
    );
    assert!(text.contains("(resolution)"), "names the letter: {text}");

    // Acknowledged in person when it was made: no letter, no timer.
    let table = open(
        &store,
        &[
            "--name",
            "Ian King",
            "--email",
            "ian@example.net",
            "--subject",
            "Certificate spelling",
            "--text",
            "My name is misspelt on the certificate.",
            "--via",
            "in-person",
            "--acknowledged",
        ],
    );
    assert!(table.status.success(), "{}", stderr(&table));
    let out = stdout(&table);
    assert!(out.contains("opened: informal stage"), "{out}");
    assert!(out.contains("acknowledgement: already given"), "{out}");
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM outbox WHERE kind = 'acknowledgement'"
        ),
        0
    );
    let ian = db
        .list_cases(None)
        .expect("cases")
        .into_iter()
        .find(|c| c.complainant_email == "ian@example.net")
        .expect("Ian's case");
    assert!(ian.acknowledged_at.is_some());
    assert_eq!(
        count(
            &db,
            &format!("SELECT count(*) FROM deadlines d JOIN cases c ON c.id = d.case_id WHERE c.reference = '{}' AND d.kind = 'acknowledge' AND d.cancelled_at IS NULL", ian.reference)
        ),
        0
    );
}

#[test]
fn bad_values_are_refused_by_their_option_and_change_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store.sqlite");
    let base = [
        "--name",
        "Jo",
        "--subject",
        "Late",
        "--text",
        "It was late.",
        "--via",
        "post",
    ];
    let table: &[(&[&str], &str)] = &[
        (
            &["--stage", "appeals"],
            "--stage \"appeals\" is not a stage",
        ),
        (&["--department", "kitchen"], "--department \"kitchen\""),
        (&["--email", "not an address"], "--email"),
        (
            &["--email", "quality@opp.example"],
            "staff or complaints-desk address",
        ),
        (
            &["--email", "Complaints+x@opp.example"],
            "staff or complaints-desk address",
        ),
        (&["--issue-date", "31/02/2026"], "--issue-date"),
        (&["--received", "2099-01-01"], "--received is in the future"),
        (&["--received", "yesterday"], "--received \"yesterday\""),
        (
            &["--received", "2026-11-10", "--issue-date", "2026-11-12"],
            "is after the complaint was received",
        ),
    ];
    for (extra, says) in table {
        let mut args = base.to_vec();
        args.extend_from_slice(extra);
        let out = open(&store, &args);
        assert!(!out.status.success(), "{extra:?} accepted");
        assert!(stderr(&out).contains(says), "{extra:?}: {}", stderr(&out));
    }
    let out = open(
        &store,
        &[
            "--name",
            "Jo",
            "--subject",
            "Late",
            "--text",
            " \n",
            "--via",
            "post",
        ],
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("text is empty"), "{}", stderr(&out));
    let out = open(
        &store,
        &["--subject", "Late", "--text", "x", "--via", "post"],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("say who complained"),
        "{}",
        stderr(&out)
    );
    if store.exists() {
        let db = Store::open(&store).expect("store");
        assert_eq!(count(&db, "SELECT count(*) FROM cases"), 0);
        assert_eq!(count(&db, "SELECT count(*) FROM messages"), 0);
    }
}

/// While the daemon runs: the complainant gets the acknowledgement, the
/// department head acts by replying to the new-case email, and the
/// complainant's reply to the acknowledgement joins the case.
#[test]
fn a_recorded_complaint_is_acknowledged_and_handled_by_mail_like_any_other() {
    let stack = MailStack::start();
    let store = stack.path().join("redress.sqlite");
    let daemon = Daemon::start(&stack, &store, &[]);
    daemon.wait_log("redress started", 30);
    let done = json(&open(
        &store,
        &[
            "--name",
            "Fiona Grey",
            "--email",
            "fiona@example.net",
            "--subject",
            "Assessor did not turn up",
            "--text",
            LETTER,
            "--via",
            "post",
            "--stage",
            "formal",
            "--format",
            "json",
        ],
    ));
    let reference = done["reference"].as_str().expect("reference").to_string();
    let ack = stack
        .wait_for("fiona@example.net", 1, 30, |m| m.contains(&reference))
        .remove(0);
    assert!(
        header(&ack, "Subject").is_some_and(|s| s.contains(&reference)),
        "{ack}"
    );
    let target: chrono::NaiveDate = done["target_date"]
        .as_str()
        .expect("target")
        .parse()
        .expect("date");
    assert!(
        flat(&ack).contains(&target.format("%A %-d %B %Y").to_string()),
        "{ack}"
    );
    wait_store(&store, 30, "the acknowledgement is marked sent", |s| {
        s.case(&reference)
            .ok()
            .flatten()
            .is_some_and(|c| c.acknowledged_at.is_some())
    });

    // The routing rules send it to the head of assessment, who acts by reply.
    let notice = stack
        .wait_for("assessment.head@opp.example", 1, 30, |m| {
            m.contains(&reference)
        })
        .remove(0);
    assert!(flat(&notice).contains("Received by post"), "{notice}");
    let mid = header(&notice, "Message-ID").expect("Message-ID");
    stack.deliver(
        "assessment.head@opp.example",
        "complaints@opp.example",
        format!(
            "From: Head of Assessment <assessment.head@opp.example>\r\nTo: complaints@opp.example\r\nSubject: Re: {reference}\r\nMessage-ID: <rec-head-1@opp.example>\r\nIn-Reply-To: {mid}\r\nReferences: {mid}\r\nDate: Tue, 24 Nov 2026 11:00:00 +0000\r\nContent-Type: text/plain\r\n\r\n#extend 5 the assessor is on leave\r\n"
        )
        .as_bytes(),
    );
    stack.wait_for("fiona@example.net", 1, 30, |m| {
        flat(m).contains("the assessor is on leave")
    });

    // Fiona answers the acknowledgement: her case, no second case or ack.
    let ack_id = header(&ack, "Message-ID").expect("Message-ID");
    stack.deliver(
        "fiona@example.net",
        "complaints@opp.example",
        format!(
            "From: Fiona Grey <fiona@example.net>\r\nTo: complaints@opp.example\r\nSubject: Re: acknowledgement\r\nMessage-ID: <fiona-2@example.net>\r\nIn-Reply-To: {ack_id}\r\nReferences: {ack_id}\r\nDate: Tue, 24 Nov 2026 12:00:00 +0000\r\nContent-Type: text/plain\r\n\r\nThank you. I can send the session booking if it helps.\r\n"
        )
        .as_bytes(),
    );
    wait_store(&store, 30, "Fiona's reply joins her case", |s| {
        s.case_detail(&reference).ok().flatten().is_some_and(|d| {
            d.messages
                .iter()
                .any(|m| m.message_id == "fiona-2@example.net")
        })
    });
    let db = Store::open(&store).expect("store");
    assert_eq!(count(&db, "SELECT count(*) FROM cases"), 1);
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM outbox WHERE kind = 'acknowledgement'"
        ),
        1
    );
    assert!(daemon.stop(), "clean stop");
}

/// `redress cases update REF ARGS --config example` against `store`.
fn update(store: &Path, args: &[&str]) -> std::process::Output {
    let config = repo().join("config.example.toml");
    let mut all = vec!["cases", "update"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--config", config.to_str().expect("path")]);
    redress(
        &all,
        &[("REDRESS_STORE_PATH", store.to_str().expect("path"))],
    )
}

/// A complainant gives an email address after the case was opened without
/// one: by phone (recorded; its acknowledgement was posted) or by a mail
/// with no address to reply to (its acknowledgement held). From then on
/// letters go by email, the held acknowledgement goes at once, and mail
/// from the new address joins the case; bad values change nothing.
#[test]
fn a_new_email_address_takes_the_letters_and_acknowledges_a_held_case() {
    use redress::service::intake::{process, Arrival, Processed};
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store.sqlite");
    let phoned = json(&open(
        &store,
        &[
            "--name",
            "Jules Moss",
            "--subject",
            "Course cancelled",
            "--text",
            "My course was cancelled the day before it started.",
            "--via",
            "phone",
            "--format",
            "json",
        ],
    ));
    let phoned = phoned["reference"].as_str().expect("reference").to_string();
    let cfg = redress::config::parse_str(
        &crate::support::example_config(),
        "t",
        &[(
            "REDRESS_STORE_PATH".to_string(),
            store.display().to_string(),
        )],
    )
    .expect("config");
    let mut writer = Store::open(&store).expect("store");
    let desk = redress::service::Desk::new(cfg, &mut writer).expect("desk");
    let now = redress::clock::now();
    // A mail with no From: the case opens, its acknowledgement is held.
    let raw = "To: complaints@opp.example\r\nSubject: Refund still missing\r\nMessage-ID: <no-from-1@example.net>\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\nContent-Type: text/plain\r\n\r\nMy refund has not come. Ring me on 07700 900789.\r\n";
    // It arrived three days ago (the server's INTERNALDATE).
    let arrived = now - chrono::Duration::days(3);
    let arrival = Arrival {
        received: Some(arrived),
        ..Arrival::default()
    };
    process(&mut writer, &desk, raw.as_bytes(), &arrival, now).expect("process");
    let held = writer
        .list_cases(None)
        .expect("cases")
        .into_iter()
        .find(|c| c.subject == "Refund still missing")
        .expect("the held case")
        .reference;
    let db = Store::open(&store).expect("store");
    let letters = |kind: &str, to: &str| {
        count(
            &db,
            &format!("SELECT count(*) FROM outbox WHERE kind = '{kind}' AND recipient = '{to}'"),
        )
    };
    assert_eq!(letters("acknowledgement", "jules@example.net"), 0);

    // Bad values: refused by their option, nothing written.
    let events = || count(&db, "SELECT count(*) FROM events");
    let before = events();
    for (args, says) in [
        (
            vec![phoned.as_str(), "--email", "not an address"],
            "--email",
        ),
        (
            vec![phoned.as_str(), "--email", "Training.Head@opp.example"],
            "staff or complaints-desk address",
        ),
        (
            vec![
                phoned.as_str(),
                "--email",
                "complaints+OPP-2026-0001@opp.example",
            ],
            "staff or complaints-desk address",
        ),
        (vec![phoned.as_str()], "nothing to change"),
        (
            vec!["OPP-1999-0001", "--phone", "01632 960000"],
            "no case OPP-1999-0001",
        ),
    ] {
        let out = update(&store, &args);
        assert!(!out.status.success(), "{args:?} was taken");
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
    }
    assert_eq!(events(), before);

    // The phoned case: already acknowledged (posted), so no second
    // acknowledgement; the details change, with who changed them.
    let out = update(
        &store,
        &[
            &phoned,
            "--email",
            " Jules@Example.NET ",
            "--phone",
            "07700 900111",
            "--by",
            "Quinn at reception",
            "--format",
            "json",
        ],
    );
    let done = json(&out);
    assert_eq!(done["changed"], serde_json::json!(["email", "phone"]));
    assert_eq!(done["email"], "jules@example.net");
    assert_eq!(done["acknowledgement"], serde_json::Value::Null);
    let c = db.case(&phoned).expect("q").expect("case");
    assert_eq!(
        (
            c.reply_address.as_str(),
            c.complainant_phone.as_str(),
            c.complainant_name.as_str()
        ),
        ("jules@example.net", "07700 900111", "Jules Moss")
    );
    let detail = db.case_detail(&phoned).expect("q").expect("case");
    let changed = detail
        .events
        .iter()
        .find(|e| e.kind == "contact-changed")
        .expect("the change is in the history");
    assert_eq!(changed.actor, "Quinn at reception");
    assert_eq!(changed.detail["email"]["from"], "");
    assert_eq!(changed.detail["email"]["to"], "jules@example.net");
    assert_eq!(letters("acknowledgement", "jules@example.net"), 0);
    // The same again changes nothing, and says so.
    let again = update(&store, &[&phoned, "--email", "jules@example.net"]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(
        stdout(&again).contains("nothing changed"),
        "{}",
        stdout(&again)
    );

    // The head's #reply now goes to Jules by email, not to QC to post.
    let head = "training.head@opp.example";
    let token = redress::core::token::token(&desk.secret, &phoned, head);
    let notice = redress::core::token::message_id(9, &phoned, &token, "opp.example");
    let posted = count(
        &db,
        "SELECT count(*) FROM outbox WHERE kind = 'letter-to-post'",
    );
    let reply = format!(
        "From: Head of Training <{head}>\r\nTo: complaints@opp.example\r\nSubject: Re: New complaint\r\nMessage-ID: <upd-reply@opp.example>\r\nIn-Reply-To: <{notice}>\r\nDate: Tue, 24 Nov 2026 11:00:00 +0000\r\nContent-Type: text/plain\r\n\r\n#reply\r\nWe are sorry: the course runs again in January, and your place is kept.\r\n"
    );
    let p = process(
        &mut writer,
        &desk,
        reply.as_bytes(),
        &Arrival::default(),
        now,
    )
    .expect("reply");
    assert!(
        matches!(&p, Processed::Staff { authenticated: true, commands, .. } if !commands.is_empty()),
        "{p:?}"
    );
    assert_eq!(letters("response", "jules@example.net"), 1);
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM outbox WHERE kind = 'letter-to-post'"
        ),
        posted
    );
    // The response has not gone yet when Jules gives another address: it
    // goes there instead, as written.
    let out = update(&store, &[&phoned, "--email", "jules.moss@example.org"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(letters("response", "jules@example.net"), 0);
    let response: String = db
        .conn()
        .query_row(
            "SELECT CAST(raw AS TEXT) FROM outbox WHERE kind = 'response' AND recipient = 'jules.moss@example.org'",
            [],
            |r| r.get(0),
        )
        .expect("the response, re-addressed");
    assert!(header(&response, "To").is_some_and(|to| to.contains("jules.moss@example.org")));
    assert!(flat(&response).contains("your place is kept"), "{response}");
    // Mail from the first new address quoting the reference still joins.
    let cases = db.list_cases(None).expect("cases").len();
    let from_jules = format!(
        "From: Jules Moss <jules@example.net>\r\nTo: complaints@opp.example\r\nSubject: [{phoned}] my course\r\nMessage-ID: <jules-1@example.net>\r\nDate: Tue, 24 Nov 2026 12:00:00 +0000\r\nContent-Type: text/plain\r\n\r\nThank you, January suits me.\r\n"
    );
    process(
        &mut writer,
        &desk,
        from_jules.as_bytes(),
        &Arrival::default(),
        now,
    )
    .expect("mail");
    assert_eq!(db.list_cases(None).expect("cases").len(), cases);
    let joined = db.case_detail(&phoned).expect("q").expect("case");
    assert!(joined
        .messages
        .iter()
        .any(|m| m.message_id == "jules-1@example.net"));

    // The held case gets its acknowledgement at the new address: first a
    // mistyped one, then the right one before the daemon sent it. One
    // acknowledgement, re-addressed, never two.
    let out = update(&store, &[&held, "--email", "kim@exmaple.net"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(letters("acknowledgement", "kim@exmaple.net"), 1);
    // The sender has read it to send to the mistyped address...
    let stale = writer
        .due_outbox(now + chrono::Duration::hours(1), 100)
        .expect("outbox")
        .into_iter()
        .find(|r| r.kind == "acknowledgement" && r.recipient == "kim@exmaple.net")
        .expect("the acknowledgement, waiting");
    let out = update(
        &store,
        &[&held, "--email", "kim@example.net", "--name", "Kim Lee"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("changed name, email"), "{text}");
    assert!(
        text.contains("acknowledgement: queued to kim@example.net"),
        "{text}"
    );
    let held_letters = |kind: &str| {
        count(
            &db,
            &format!("SELECT count(*) FROM outbox o JOIN cases c ON c.id = o.case_id WHERE c.reference = '{held}' AND o.kind = '{kind}'"),
        )
    };
    assert_eq!(held_letters("acknowledgement"), 1);
    assert_eq!(letters("acknowledgement", "kim@exmaple.net"), 0);
    // ... and its answer for the old address, whatever it is, leaves the
    // re-addressed row waiting for Kim.
    {
        let tx = writer.transaction().expect("tx");
        assert!(
            !redress::adapters::db::outbox_failed(&tx, &stale, now, "550 no such user")
                .expect("fail")
        );
        tx.commit().expect("commit");
    }
    redress::service::letters::mark_sent(&mut writer, &desk, &stale, now).expect("sent");
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM outbox WHERE kind = 'acknowledgement' AND recipient = 'kim@example.net' AND sent_at IS NULL AND failed_at IS NULL"
        ),
        1
    );
    assert!(db
        .case(&held)
        .expect("q")
        .expect("case")
        .acknowledged_at
        .is_none());
    let (ack, message_id): (String, String) = db
        .conn()
        .query_row(
            "SELECT CAST(raw AS TEXT), message_id FROM outbox WHERE kind = 'acknowledgement' AND recipient = 'kim@example.net'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("the acknowledgement");
    // Its Message-ID is Kim's now: Kim's reply to it is known as theirs.
    let (r, t) =
        redress::core::token::parse_message_id(&message_id, "opp.example").expect("our id");
    assert!(redress::core::token::verify(
        &desk.secret,
        r,
        "kim@example.net",
        t
    ));
    assert!(
        header(&ack, "To").is_some_and(|to| to.contains("kim@example.net")),
        "{ack}"
    );
    let history = db.case_detail(&held).expect("q").expect("case");
    assert!(history.events.iter().any(|e| e.kind == "contact-changed"
        && e.detail["letters_readdressed"] == serde_json::json!(["acknowledgement"])));
    let ack = flat(&ack);
    assert!(ack.contains(&held), "{ack}");
    assert!(ack.contains("Dear Kim Lee"), "{ack}");
    // Changing only the phone leaves the addresses alone, even when the
    // complaint's Reply-To differs from its From.
    let raw = "From: Lou <lou@work.example>\r\nReply-To: lou@home.example\r\nTo: complaints@opp.example\r\nSubject: Parking\r\nMessage-ID: <lou-1@work.example>\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\nContent-Type: text/plain\r\n\r\nThe car park was closed.\r\n";
    process(&mut writer, &desk, raw.as_bytes(), &Arrival::default(), now).expect("process");
    let lou = writer
        .list_cases(None)
        .expect("cases")
        .into_iter()
        .find(|c| c.subject == "Parking")
        .expect("Lou's case");
    let out = update(&store, &[&lou.reference, "--phone", "01632 960555"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let after = db.case(&lou.reference).expect("q").expect("case");
    assert_eq!(
        (
            after.complainant_email.as_str(),
            after.reply_address.as_str(),
            after.complainant_phone.as_str()
        ),
        ("lou@work.example", "lou@home.example", "01632 960555")
    );
    // Received when the mail arrived, not when it is acknowledged.
    let received = redress::core::text::uk_long_date(desk.calendar.local_date(arrived));
    assert!(ack.contains(&received), "{received}: {ack}");
}
