//! The escalation ladder and staff acting by reply, end to end: complaints
//! through a real Postfix into a real Dovecot, the daemon as admins run it,
//! `redress tick --at` to move time on (no real waiting), staff replies
//! built from the mail they received, letters read back from mailboxes.

use crate::support::{
    complaint, example_config, flat, header, redress, reference_in, stdout, wait_store, Daemon,
    MailStack,
};
use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use redress::adapters::db::Store;
use redress::config::parse_str;
use redress::core::calendar::WorkingCalendar;
use std::path::Path;

fn calendar() -> WorkingCalendar {
    parse_str(&example_config(), "t", &[])
        .expect("config")
        .calendar(None)
        .expect("calendar")
}

/// `hh:mm` local time on the first working day after `date`.
fn working_morning_after(
    cal: &WorkingCalendar,
    date: NaiveDate,
    hh: u32,
    mm: u32,
) -> DateTime<Utc> {
    let day = cal.next_working_day(date).expect("working day");
    cal.resolve_local(day.and_time(NaiveTime::from_hms_opt(hh, mm, 0).expect("time")))
        .expect("instant")
}

/// Runs `redress tick` against the daemon's store and config.
fn tick(stack: &MailStack, store: &Path, at: DateTime<Utc>, more: &[&str]) -> String {
    let env = stack.env("complaints@opp.example", store);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let at = at.to_rfc3339();
    let config = crate::support::repo().join("config.example.toml");
    let mut args = vec![
        "tick",
        "--config",
        config.to_str().expect("path"),
        "--at",
        &at,
    ];
    args.extend_from_slice(more);
    let out = redress(&args, &env);
    assert!(
        out.status.success(),
        "tick failed: {}",
        crate::support::stderr(&out)
    );
    stdout(&out)
}

fn case(store: &Path, reference: &str) -> redress::adapters::db::CaseRecord {
    Store::open(store)
        .expect("store")
        .case(reference)
        .expect("query")
        .expect("case")
}

fn events(store: &Path, reference: &str) -> Vec<String> {
    Store::open(store)
        .expect("store")
        .case_detail(reference)
        .expect("query")
        .expect("case")
        .events
        .into_iter()
        .map(|e| e.kind)
        .collect()
}

/// A reply to `received` as a mail client writes it: the new text on top,
/// the original quoted below, threading headers from the received mail.
fn reply(received: &str, from: &str, id: &str, top: &str) -> Vec<u8> {
    let mid = header(received, "Message-ID").expect("Message-ID");
    let refs = header(received, "References").unwrap_or("");
    let to = header(received, "Reply-To").expect("Reply-To");
    let subject = header(received, "Subject").unwrap_or("");
    let quoted: String = received
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or("")
        .lines()
        .take(40)
        .map(|l| format!("> {l}\r\n"))
        .collect();
    format!(
        "From: Staff <{from}>\r\nTo: {to}\r\nSubject: Re: {subject}\r\nMessage-ID: <{id}>\r\nIn-Reply-To: {mid}\r\nReferences: {refs} {mid}\r\nDate: Mon, 23 Nov 2026 11:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{top}\r\n\r\nOn Mon, 23 Nov 2026 at 10:00, OP Performance Limited <complaints@opp.example> wrote:\r\n{quoted}"
    )
    .into_bytes()
}

/// Delivers a complaint and returns its reference (from the ack).
fn file_complaint(stack: &MailStack, who: &str, subject: &str) -> String {
    let address = format!("{who}@example.net");
    stack.deliver(
        &address,
        "complaints@opp.example",
        &complaint(
            who,
            &address,
            subject,
            &format!("{who}-1@example.net"),
            "",
            "Hello,\r\n\r\nMy certificate has not arrived.\r\n",
        ),
    );
    let acks = stack.wait_for(&address, 1, 20, |m| {
        m.contains("We have received your complaint")
    });
    reference_in(header(&acks[0], "Subject").expect("subject"))
}

#[test]
fn the_ladder_climbs_to_the_md_and_a_department_head_reply_stops_it() {
    let stack = MailStack::start();
    let store = stack.path().join("redress.sqlite");
    let daemon = Daemon::start(&stack, &store, &[]);
    let cal = calendar();

    let late = file_complaint(&stack, "alice", "My certificate has not arrived");
    let answered = file_complaint(&stack, "bob", "My certificate is wrong");
    let target: NaiveDate = case(&store, &late)
        .target_date
        .expect("target")
        .parse()
        .expect("date");

    // The day after the target date, mid-morning: rung 1 for both.
    let t1 = working_morning_after(&cal, target, 10, 0);
    // A dry run first: says what would go, changes nothing.
    let dry = tick(&stack, &store, t1, &["--dry-run", "--format", "json"]);
    let planned: serde_json::Value = serde_json::from_str(&dry).expect("json");
    let sends: Vec<&serde_json::Value> = planned
        .as_array()
        .expect("array")
        .iter()
        .filter(|a| a["action"] == "send")
        .collect();
    assert_eq!(sends.len(), 2, "{dry}");
    assert!(sends
        .iter()
        .all(|a| a["kind"] == "escalation-1" && a["to"] == "training.head@opp.example"));
    assert_eq!(
        case(&store, &late).escalation_rung,
        0,
        "a dry run changes nothing"
    );
    let out = tick(&stack, &store, t1, &[]);
    assert!(out.contains("escalation-1"), "{out}");
    // The same instant again does nothing: ticks are idempotent.
    let again = tick(&stack, &store, t1, &[]);
    assert!(again.contains("0 action(s)"), "{again}");

    let rung1 = stack.wait_for("training.head@opp.example", 2, 30, |m| {
        m.contains("escalation 1") || m.contains("Escalation 1") || m.contains("escalation-1")
    });
    for m in &rung1 {
        assert_eq!(header(m, "Auto-Submitted"), Some("auto-generated"));
    }
    let to_bob = rung1
        .iter()
        .find(|m| m.contains(&answered))
        .expect("rung 1 for bob's case");
    // The head of training answers bob's case (a note): the climb stops.
    stack.deliver(
        "training.head@opp.example",
        "complaints@opp.example",
        &reply(
            to_bob,
            "training.head@opp.example",
            "head-1@opp.example",
            "I have called Bob; the certificate is being reprinted.",
        ),
    );
    wait_store(&store, 30, "bob's case records the response", |s| {
        s.case(&answered)
            .ok()
            .flatten()
            .is_some_and(|c| c.escalation_rung == 0)
    });
    assert!(events(&store, &answered).contains(&"climb-stopped".to_string()));

    // 24 hours on: rung 2 for alice's case only, to the senior manager.
    let t2 = t1 + chrono::Duration::hours(25);
    let t2 = cal.next_working_time(t2).expect("working time");
    let out = tick(&stack, &store, t2, &[]);
    assert!(out.contains("escalation-2"), "{out}");
    let rung2 = stack.wait_for("operations.manager@opp.example", 1, 30, |m| {
        m.contains(&late)
    });
    assert!(
        flat(&rung2[0]).contains("Head of Training"),
        "says who was asked before:\n{}",
        rung2[0]
    );
    assert!(!stack
        .mailbox("operations.manager@opp.example")
        .iter()
        .any(|m| m.contains(&answered)));

    // And the Managing Director after another 24 hours with no response.
    let t3 = cal
        .next_working_time(t2 + chrono::Duration::hours(25))
        .expect("working time");
    tick(&stack, &store, t3, &[]);
    let rung3 = stack.wait_for("md@opp.example", 1, 30, |m| m.contains(&late));
    let text = flat(&rung3[0]);
    assert!(
        text.contains("Head of Training") && text.contains("Operations Manager"),
        "{text}"
    );
    assert_eq!(case(&store, &late).escalation_rung, 3);
    // Rung 3 is the top: nothing more, however long it waits.
    let later = tick(&stack, &store, t3 + chrono::Duration::days(10), &[]);
    assert!(!later.contains("escalation-"), "{later}");
    assert!(daemon.stop(), "clean stop");
}

#[test]
fn staff_extend_note_and_resolve_by_reply_and_forgeries_change_nothing() {
    let stack = MailStack::start();
    let store = stack.path().join("redress.sqlite");
    let daemon = Daemon::start(&stack, &store, &[]);
    let cal = calendar();

    let reference = file_complaint(&stack, "carol", "Assessment feedback never came");
    let other = file_complaint(&stack, "dave", "Rude trainer");
    // The routing rule sends "assessment" to the head of assessment.
    let notice = stack
        .wait_for("assessment.head@opp.example", 1, 30, |m| {
            m.contains(&reference)
        })
        .remove(0);
    assert_eq!(header(&notice, "Reply-To"), Some("complaints@opp.example"));
    let before: NaiveDate = case(&store, &reference)
        .target_date
        .expect("target")
        .parse()
        .expect("date");

    // #extend 5 with a reason: the complainant gets the new date.
    stack.deliver(
        "assessment.head@opp.example",
        "complaints@opp.example",
        &reply(
            &notice,
            "assessment.head@opp.example",
            "ext-1@opp.example",
            "#extend 5 waiting for witness statement",
        ),
    );
    let today = cal.local_date(redress::clock::now());
    let expected = cal.add_working_days(before.max(today), 5).expect("date");
    let shown = expected.format("%A %-d %B %Y").to_string();
    let letters = stack.wait_for("carol@example.net", 1, 30, |m| {
        flat(m).contains("waiting for witness statement")
    });
    assert!(
        flat(&letters[0]).contains(&shown),
        "extension letter shows {shown}:\n{}",
        letters[0]
    );
    assert_eq!(
        case(&store, &reference).target_date.as_deref(),
        Some(expected.to_string().as_str())
    );

    // An internal note: recorded, never sent to the complainant.
    let secret = "The assessor admits the feedback form was lost in the office move";
    stack.deliver(
        "assessment.head@opp.example",
        "complaints@opp.example",
        &reply(
            &notice,
            "assessment.head@opp.example",
            "note-1@opp.example",
            secret,
        ),
    );
    wait_store(&store, 30, "the note is recorded", |s| {
        s.case_detail(&reference).ok().flatten().is_some_and(|d| {
            d.events
                .iter()
                .any(|e| e.kind == "note" && e.detail.to_string().contains("office move"))
        })
    });

    // A forged staff mail: right From, right subject, no valid token.
    let forged = format!(
        "From: Head of Assessment <assessment.head@opp.example>\r\nTo: complaints@opp.example\r\nSubject: Re: [{reference}]\r\nMessage-ID: <forged-1@evil.example>\r\nIn-Reply-To: <r1.{reference}.00000000000000000000@opp.example>\r\nDate: Mon, 23 Nov 2026 12:00:00 +0000\r\nContent-Type: text/plain\r\n\r\n#resolve upheld\r\nWe agree entirely and will refund everything.\r\n"
    );
    stack.deliver(
        "assessment.head@opp.example",
        "complaints@opp.example",
        forged.as_bytes(),
    );
    stack.wait_for("quality@opp.example", 1, 30, |m| {
        header(m, "Subject").is_some_and(|s| s.contains("not accepted as a staff action"))
            && m.contains(&reference)
    });
    // A complainant quoting the token of someone else's case: dave answers
    // the head of assessment's notification about carol's case.
    let mut from_dave = String::from_utf8(reply(
        &notice,
        "dave@example.net",
        "dave-2@example.net",
        "#resolve upheld\r\nI resolve this in my favour.",
    ))
    .expect("utf8");
    from_dave = from_dave.replacen(
        "From: Staff <dave@example.net>",
        "From: Dave <dave@example.net>",
        1,
    );
    stack.deliver(
        "dave@example.net",
        "complaints@opp.example",
        from_dave.as_bytes(),
    );
    wait_store(&store, 30, "both mails processed", |s| {
        crate::support::count(s, "SELECT count(*) FROM messages WHERE message_id IN ('forged-1@evil.example', 'dave-2@example.net') AND processed_at IS NOT NULL") == 2
    });
    let c = case(&store, &reference);
    assert_eq!(c.status, "open", "forgeries change nothing");
    assert_eq!(c.outcome, None);
    assert!(events(&store, &reference).contains(&"staff-message-unauthenticated".to_string()));
    assert_eq!(case(&store, &other).status, "open");

    // #resolve partly-upheld: the resolution letter with the appeal deadline.
    stack.deliver(
        "assessment.head@opp.example",
        "complaints@opp.example",
        &reply(&notice, "assessment.head@opp.example", "res-1@opp.example", "#resolve partly-upheld\r\nWe are sorry that your assessment feedback was late. It is attached to this letter.\r\n\r\nKind regards,\r\nHead of Assessment"),
    );
    let resolution = stack
        .wait_for("carol@example.net", 1, 30, |m| {
            flat(m).contains("We are sorry that your assessment feedback was late")
        })
        .remove(0);
    let appeal = redress::core::calendar::add_months(today, 1).expect("date");
    let text = flat(&resolution);
    assert!(
        text.contains(&appeal.format("%A %-d %B %Y").to_string()),
        "appeal deadline {appeal}:\n{text}"
    );
    let c = case(&store, &reference);
    assert_eq!(c.status, "resolved");
    assert_eq!(c.outcome.as_deref(), Some("partly-upheld"));

    // Internal stays internal: nothing carol received carries the note or
    // a staff address.
    for m in stack.mailbox("carol@example.net") {
        let text = flat(&m);
        assert!(
            !text.contains("office move"),
            "a note reached the complainant:\n{m}"
        );
        assert!(
            !text.contains("assessment.head@"),
            "a staff address reached the complainant:\n{m}"
        );
    }
    // A command that is not understood changes nothing and comes back.
    stack.deliver(
        "assessment.head@opp.example",
        "complaints@opp.example",
        &reply(
            &notice,
            "assessment.head@opp.example",
            "bad-1@opp.example",
            "#frobnicate now",
        ),
    );
    stack.wait_for("assessment.head@opp.example", 1, 30, |m| {
        flat(m).contains("#frobnicate")
    });
    assert_eq!(case(&store, &reference).status, "resolved");

    // Carol answers the resolution letter from her mail client, within
    // the month it gives: the case goes to the formal stage, she gets its
    // acknowledgement, and QC gets the case with her reply.
    let mid = header(&resolution, "Message-ID").expect("Message-ID");
    let refs = header(&resolution, "References").unwrap_or("");
    let subject = header(&resolution, "Subject").unwrap_or("");
    let answer = format!(
        "From: Carol <carol@example.net>\r\nTo: complaints@opp.example\r\nSubject: Re: {subject}\r\nMessage-ID: <carol-2@example.net>\r\nIn-Reply-To: {mid}\r\nReferences: {refs} {mid}\r\nDate: Mon, 23 Nov 2026 12:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nI am still unhappy: the feedback came after my resit.\r\n\r\nOn Mon, 23 Nov 2026, OP Performance Limited wrote:\r\n> Thank you for your patience\r\n"
    );
    stack.deliver(
        "carol@example.net",
        "complaints@opp.example",
        answer.as_bytes(),
    );
    stack.wait_for("carol@example.net", 2, 30, |m| {
        m.contains("We have received your complaint")
    });
    stack.wait_for("quality@opp.example", 1, 30, |m| {
        let text = flat(m);
        text.contains(&reference) && text.contains("I am still unhappy")
    });
    let c = case(&store, &reference);
    assert_eq!((c.stage.as_str(), c.status.as_str()), ("formal", "open"));
    assert!(daemon.stop(), "clean stop");
}

/// The example config's desk on a fresh store (no mail servers).
fn desk_on_a_store() -> (tempfile::TempDir, Store, redress::service::Desk) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("s.sqlite");
    let env = vec![("REDRESS_STORE_PATH".to_string(), path.display().to_string())];
    let cfg = parse_str(&example_config(), "t", &env).expect("config");
    let mut store = Store::open(&path).expect("store");
    let desk = redress::service::Desk::new(cfg, &mut store).expect("desk");
    (dir, store, desk)
}

/// The timers on a real SQLite store, without mail servers: a case whose
/// target date is Thursday 25 March 2027 passes it into Good Friday; then
/// a weekend with the clocks going forward and Easter Monday. Rung 1 goes
/// on Tuesday 30 March at 09:00 BST, not before; dry runs change nothing;
/// ticks are idempotent.
#[test]
fn escalation_waits_across_easter_a_weekend_and_the_clock_change() {
    use redress::service::intake::{process, Arrival};
    use redress::service::ladder::tick;
    let (_dir, mut store, desk) = desk_on_a_store();
    let utc = |s: &str| -> DateTime<Utc> { s.parse().expect("instant") };
    // Received Thursday 25 February 2027, 10:00: 20 working days later is
    // Thursday 25 March.
    let received = utc("2027-02-25T10:00:00Z");
    let raw = complaint(
        "Erin",
        "erin@example.net",
        "Late certificate",
        "erin-1@example.net",
        "",
        "Hello\r\n",
    );
    let arrival = Arrival {
        received: Some(received),
        ..Arrival::default()
    };
    process(&mut store, &desk, &raw, &arrival, received).expect("process");
    let reference = store.list_cases(None).expect("cases")[0].reference.clone();
    assert_eq!(
        store
            .case(&reference)
            .expect("q")
            .expect("case")
            .target_date
            .as_deref(),
        Some("2027-03-25")
    );
    let outbox = |s: &Store| {
        crate::support::count(
            s,
            "SELECT count(*) FROM outbox WHERE kind LIKE 'escalation-%'",
        )
    };
    let sends = |actions: &[redress::service::ladder::TickAction]| {
        actions
            .iter()
            .filter(|a| a.action == "send" && a.kind.starts_with("escalation-"))
            .count()
    };
    // Good Friday, Saturday, Easter Sunday (clocks forward), Easter Monday,
    // and Tuesday 08:59 BST: the timer waits, nothing goes.
    for at in [
        "2027-03-26T10:00:00Z",
        "2027-03-27T10:00:00Z",
        "2027-03-28T10:00:00Z",
        "2027-03-29T10:00:00Z",
        "2027-03-30T07:59:00Z",
    ] {
        let actions = tick(&mut store, &desk, utc(at), received, false).expect("tick");
        assert_eq!(sends(&actions), 0, "{at}: {actions:?}");
        assert!(
            actions
                .iter()
                .all(|a| a.action == "wait" && a.at == "2027-03-30T08:00:00Z"),
            "{at}: {actions:?}"
        );
    }
    assert_eq!(outbox(&store), 0);
    // A dry run at 09:00 BST shows rung 1 and changes nothing.
    let at = utc("2027-03-30T08:00:00Z");
    let dry = tick(&mut store, &desk, at, received, true).expect("dry run");
    assert_eq!(sends(&dry), 1, "{dry:?}");
    assert!(dry
        .iter()
        .any(|a| a.kind == "escalation-1" && a.to == "training.head@opp.example"));
    assert_eq!(outbox(&store), 0, "a dry run queues nothing");
    // The real tick at 09:00 BST sends rung 1; again at the same instant
    // sends nothing.
    assert_eq!(
        sends(&tick(&mut store, &desk, at, received, false).expect("tick")),
        1
    );
    assert_eq!(
        sends(&tick(&mut store, &desk, at, received, false).expect("tick")),
        0
    );
    assert_eq!(outbox(&store), 1);
    assert_eq!(
        store
            .case(&reference)
            .expect("q")
            .expect("case")
            .escalation_rung,
        1
    );
    // Rung 2 after 24 clock hours: Wednesday 09:00 BST.
    assert_eq!(
        sends(
            &tick(
                &mut store,
                &desk,
                utc("2027-03-31T07:59:00Z"),
                received,
                false
            )
            .expect("tick")
        ),
        0
    );
    let two = tick(
        &mut store,
        &desk,
        utc("2027-03-31T08:00:00Z"),
        received,
        false,
    )
    .expect("tick");
    assert!(
        two.iter()
            .any(|a| a.kind == "escalation-2" && a.to == "operations.manager@opp.example"),
        "{two:?}"
    );
}

/// The other commands on a real store, with replies that carry a valid
/// token as a mail client's would: #hold with an end date (resumed by the
/// timer), #resume, #assign, #external, #formal, and a #reply that quotes
/// an internal note (refused, nothing sent).
#[test]
fn hold_resume_assign_external_formal_and_a_leaking_reply() {
    use redress::service::intake::{process, Arrival, Processed};
    use redress::service::ladder::tick;
    let (_dir, mut store, desk) = desk_on_a_store();
    let utc = |s: &str| -> DateTime<Utc> { s.parse().expect("instant") };
    let now = utc("2026-11-23T10:00:00Z");
    let raw = complaint(
        "Fay",
        "fay@example.net",
        "Late certificate",
        "fay-1@example.net",
        "",
        "Hello\r\n",
    );
    process(&mut store, &desk, &raw, &Arrival::default(), now).expect("process");
    let reference = store.list_cases(None).expect("cases")[0].reference.clone();
    let head = "training.head@opp.example";
    let token = redress::core::token::token(&desk.secret, &reference, head);
    let notice_id = redress::core::token::message_id(3, &reference, &token, "opp.example");
    let mut n = 0;
    let mut staff = |store: &mut Store, body: &str, at: &str| -> Processed {
        n += 1;
        let raw = format!(
            "From: Head of Training <{head}>\r\nTo: complaints@opp.example\r\nSubject: Re: New complaint {reference}\r\nMessage-ID: <staff-{n}@opp.example>\r\nIn-Reply-To: <{notice_id}>\r\nReferences: <{notice_id}>\r\nDate: Mon, 23 Nov 2026 11:00:00 +0000\r\nContent-Type: text/plain\r\n\r\n{body}\r\n\r\nOn 23/11/2026 10:00, OP Performance Limited wrote:\r\n> A new complaint has been received\r\n"
        );
        process(store, &desk, raw.as_bytes(), &Arrival::default(), utc(at)).expect("staff mail")
    };
    let case = |store: &Store| store.case(&reference).expect("q").expect("case");
    let letters = |store: &Store, kind: &str| {
        crate::support::count(store, &format!("SELECT count(*) FROM outbox WHERE kind = '{kind}' AND recipient = 'fay@example.net'"))
    };
    let target = case(&store).target_date.expect("target");

    // #hold until a date: on hold, the hold letter; the timer resumes it.
    let p = staff(
        &mut store,
        "#hold the tutor is on leave until 30 November 2026",
        "2026-11-24T10:00:00Z",
    );
    assert!(
        matches!(
            p,
            Processed::Staff {
                authenticated: true,
                ..
            }
        ),
        "{p:?}"
    );
    assert_eq!(case(&store).status, "on-hold");
    assert_eq!(case(&store).hold_until.as_deref(), Some("2026-11-30"));
    assert_eq!(letters(&store, "hold"), 1);
    // The hold ends at the end of 30 November: the resume letter goes the
    // next working morning, and the target moves by the working days held
    // (25 November to 1 December, the day it resumed: 5).
    tick(&mut store, &desk, utc("2026-12-01T09:30:00Z"), now, false).expect("tick");
    let c = case(&store);
    assert_eq!(c.status, "open");
    assert_eq!(letters(&store, "resume"), 1);
    let cal = desk.calendar.clone();
    let moved = cal
        .add_working_days(target.parse().expect("date"), 5)
        .expect("date");
    assert_eq!(c.target_date.as_deref(), Some(moved.to_string().as_str()));

    // #resume on an open case is refused: nothing changes, the sender hears.
    staff(&mut store, "#resume", "2026-12-01T10:00:00Z");
    assert_eq!(letters(&store, "resume"), 1);
    assert_eq!(
        crate::support::count(&store, &format!("SELECT count(*) FROM outbox WHERE kind = 'command-not-understood' AND recipient = '{head}'")),
        1
    );

    // #assign and #external: recorded; the new department's head is told.
    staff(
        &mut store,
        "#assign assessment\r\n#external Ofqual",
        "2026-12-01T10:05:00Z",
    );
    assert_eq!(case(&store).department, "assessment");
    let detail = store.case_detail(&reference).expect("q").expect("case");
    assert!(detail
        .events
        .iter()
        .any(|e| e.kind == "staff-external" && e.detail["body"] == "Ofqual"));
    assert_eq!(
        crate::support::count(&store, "SELECT count(*) FROM outbox WHERE kind = 'assigned' AND recipient = 'assessment.head@opp.example'"),
        1
    );

    // An internal note, then a #reply that pastes it: refused, not sent.
    let note = "Between us: the certificate was printed with the wrong name twice";
    staff(&mut store, note, "2026-12-01T10:10:00Z");
    staff(
        &mut store,
        &format!("#reply\r\nDear Fay, an update.\r\n{note}."),
        "2026-12-01T10:15:00Z",
    );
    assert_eq!(
        letters(&store, "response"),
        0,
        "a response quoting a note is refused"
    );
    // A clean #reply goes.
    staff(
        &mut store,
        "#reply\r\nDear Fay, your certificate has been reprinted and posted today.",
        "2026-12-01T10:20:00Z",
    );
    assert_eq!(letters(&store, "response"), 1);
    let raws: Vec<Vec<u8>> = {
        let mut stmt = store
            .conn()
            .prepare("SELECT raw FROM outbox WHERE recipient = 'fay@example.net'")
            .expect("prepare");
        stmt.query_map([], |r| r.get(0))
            .expect("query")
            .map(|r| r.expect("row"))
            .collect()
    };
    for raw in raws {
        let text = flat(&String::from_utf8_lossy(&raw));
        assert!(
            !text.contains("wrong name twice"),
            "a note reached the complainant: {text}"
        );
        assert!(
            !text.contains("training.head@") && !text.contains("assessment.head@"),
            "{text}"
        );
    }

    // #formal: the formal stage, with a new acknowledgement; a second
    // #formal is refused.
    staff(&mut store, "#formal", "2026-12-01T10:30:00Z");
    assert_eq!(case(&store).stage, "formal");
    assert_eq!(letters(&store, "acknowledgement"), 2);
    staff(&mut store, "#formal", "2026-12-01T10:35:00Z");
    assert_eq!(case(&store).stage, "formal");
}

/// Some mail clients put X-Auto-Response-Suppress on a person's mail: a
/// staff reply carrying it and a command is still acted on. An
/// out-of-office reply judged on the same weak signs, with no command,
/// changes nothing and is not taken for a response.
#[test]
fn a_staff_reply_with_a_weak_robot_sign_acts_only_by_its_commands() {
    use redress::service::intake::{process, Arrival, Processed};
    let (_dir, mut store, desk) = desk_on_a_store();
    let utc = |s: &str| -> DateTime<Utc> { s.parse().expect("instant") };
    let now = utc("2026-11-23T10:00:00Z");
    let raw = complaint(
        "Gil",
        "gil@example.net",
        "Wrong invoice",
        "gil-1@example.net",
        "",
        "Hello\r\n",
    );
    process(&mut store, &desk, &raw, &Arrival::default(), now).expect("process");
    let reference = store.list_cases(None).expect("cases")[0].reference.clone();
    let head = "training.head@opp.example";
    let token = redress::core::token::token(&desk.secret, &reference, head);
    let notice_id = redress::core::token::message_id(3, &reference, &token, "opp.example");
    let staff = |store: &mut Store, n: u32, subject: &str, body: &str| -> Processed {
        let raw = format!(
            "From: Head of Training <{head}>\r\nTo: complaints@opp.example\r\nSubject: {subject}\r\nMessage-ID: <weak-{n}@opp.example>\r\nIn-Reply-To: <{notice_id}>\r\nReferences: <{notice_id}>\r\nX-Auto-Response-Suppress: All\r\nDate: Mon, 23 Nov 2026 11:00:00 +0000\r\nContent-Type: text/plain\r\n\r\n{body}\r\n"
        );
        process(
            store,
            &desk,
            raw.as_bytes(),
            &Arrival::default(),
            utc("2026-11-24T10:00:00Z"),
        )
        .expect("staff mail")
    };
    let events = |store: &Store| -> Vec<String> {
        let detail = store.case_detail(&reference).expect("q").expect("case");
        detail.events.iter().map(|e| e.kind.clone()).collect()
    };
    let target = store
        .case(&reference)
        .expect("q")
        .expect("case")
        .target_date
        .expect("target");

    let p = staff(
        &mut store,
        1,
        "Automatic reply: New complaint",
        "I am out of the office until Monday.",
    );
    assert!(matches!(p, Processed::Robot { .. }), "{p:?}");
    assert!(!events(&store)
        .iter()
        .any(|k| k == "note" || k == "climb-stopped"));

    let p = staff(
        &mut store,
        2,
        &format!("Re: New complaint {reference}"),
        "#extend 3 waiting for the finance team",
    );
    assert!(
        matches!(
            p,
            Processed::Staff {
                authenticated: true,
                ..
            }
        ),
        "{p:?}"
    );
    assert!(events(&store).iter().any(|k| k == "staff-extend"));
    let moved = store
        .case(&reference)
        .expect("q")
        .expect("case")
        .target_date
        .expect("target");
    assert!(moved > target, "{moved} after {target}");
}

/// QC's reply to a notice is QC's: to one about a case it is an
/// authenticated note on that case; to one about no case (a quarantined
/// mail) it is recorded. Neither is taken for a forgery, so QC is not told
/// about their own reply.
#[test]
fn qc_replies_to_notices_are_authenticated_not_reported_as_forgeries() {
    use redress::service::intake::{process, Arrival, Processed};
    let (_dir, mut store, desk) = desk_on_a_store();
    let utc = |s: &str| -> DateTime<Utc> { s.parse().expect("instant") };
    let now = utc("2026-11-23T10:00:00Z");
    let raw = complaint(
        "Hal",
        "hal@example.net",
        "Missing refund",
        "hal-1@example.net",
        "",
        "Hello\r\n",
    );
    process(&mut store, &desk, &raw, &Arrival::default(), now).expect("process");
    let reference = store.list_cases(None).expect("cases")[0].reference.clone();
    let qc = "quality@opp.example";
    let unauthenticated = |store: &Store| {
        crate::support::count(
            store,
            "SELECT count(*) FROM outbox WHERE kind = 'staff-unauthenticated'",
        )
    };
    let notice_id = |store: &Store, kind: &str| -> String {
        store
            .conn()
            .query_row(
                "SELECT message_id FROM outbox WHERE kind = ?1 ORDER BY id DESC LIMIT 1",
                [kind],
                |r| r.get(0),
            )
            .expect("notice")
    };
    let mail = |store: &mut Store, from: &str, id: &str, in_reply_to: &str, body: &str| {
        let raw = format!(
            "From: <{from}>\r\nTo: complaints@opp.example\r\nSubject: Re: {reference}\r\nMessage-ID: <{id}@mail.example>\r\nIn-Reply-To: <{in_reply_to}>\r\nDate: Mon, 23 Nov 2026 11:00:00 +0000\r\nContent-Type: text/plain\r\n\r\n{body}\r\n"
        );
        process(store, &desk, raw.as_bytes(), &Arrival::default(), now).expect("mail")
    };

    // A forgery from QC's address about the case: QC is told, once.
    let p = mail(
        &mut store,
        qc,
        "forged",
        &format!("r1.{reference}.00000000000000000000@opp.example"),
        "#resolve upheld",
    );
    assert!(
        matches!(
            p,
            Processed::Staff {
                authenticated: false,
                ..
            }
        ),
        "{p:?}"
    );
    assert_eq!(unauthenticated(&store), 1);

    // The case passes its target date: the climb starts.
    let target: NaiveDate = store
        .case(&reference)
        .expect("q")
        .expect("case")
        .target_date
        .expect("target")
        .parse()
        .expect("date");
    let after = working_morning_after(&desk.calendar, target, 10, 0);
    redress::service::ladder::tick(&mut store, &desk, after, now, false).expect("tick");
    let kinds = |store: &Store| -> Vec<String> {
        let d = store.case_detail(&reference).expect("q").expect("case");
        d.events.iter().map(|e| e.kind.clone()).collect()
    };
    assert!(
        kinds(&store).iter().any(|k| k == "escalated"),
        "{:?}",
        kinds(&store)
    );

    // QC answers that notice: a note on the case, no second notice, and
    // no response to the case (the climb goes on).
    let id = notice_id(&store, "staff-unauthenticated");
    assert!(id.contains(&reference), "{id}");
    let p = mail(
        &mut store,
        qc,
        "qc-1",
        &id,
        "Checked with the head: not from me.",
    );
    assert!(
        matches!(
            p,
            Processed::Staff {
                authenticated: true,
                ..
            }
        ),
        "{p:?}"
    );
    assert_eq!(unauthenticated(&store), 1);
    let detail = store.case_detail(&reference).expect("q").expect("case");
    assert!(detail
        .events
        .iter()
        .any(|e| e.kind == "note" && e.actor == qc));
    assert!(!kinds(&store).iter().any(|k| k == "climb-stopped"));
    // A command in a reply to the notice does act, and is a response.
    let p = mail(&mut store, qc, "qc-1b", &id, "#assign assessment");
    assert!(
        matches!(p, Processed::Staff { authenticated: true, ref commands, .. } if !commands.is_empty()),
        "{p:?}"
    );
    assert!(kinds(&store).iter().any(|k| k == "climb-stopped"));

    // The same notice answered from another staff address proves nothing.
    let p = mail(
        &mut store,
        "training.head@opp.example",
        "head-1",
        &id,
        "#resolve upheld",
    );
    assert!(
        matches!(
            p,
            Processed::Staff {
                authenticated: false,
                ..
            }
        ),
        "{p:?}"
    );
    assert_eq!(unauthenticated(&store), 2);

    // A mail that cannot be read is quarantined; QC answers its notice.
    let p = process(
        &mut store,
        &desk,
        b"Lorem ipsum dolor sit amet\r\n",
        &Arrival::default(),
        now,
    )
    .expect("garbage");
    assert!(matches!(p, Processed::Quarantined { .. }), "{p:?}");
    let id = notice_id(&store, "quarantine");
    // A reply from a mail client that marks everything it sends with
    // X-Auto-Response-Suppress opens no case about QC.
    let cases = store.list_cases(None).expect("cases").len();
    let raw = format!(
        "From: <{qc}>\r\nTo: complaints@opp.example\r\nSubject: Re: A mail could not be handled\r\nMessage-ID: <qc-3@mail.example>\r\nIn-Reply-To: <{id}>\r\nX-Auto-Response-Suppress: All\r\nDate: Mon, 23 Nov 2026 11:00:00 +0000\r\nContent-Type: text/plain\r\n\r\nSeen, thanks.\r\n"
    );
    let p = process(&mut store, &desk, raw.as_bytes(), &Arrival::default(), now).expect("qc");
    assert!(matches!(p, Processed::Robot { .. }), "{p:?}");
    assert_eq!(store.list_cases(None).expect("cases").len(), cases);
    assert_eq!(unauthenticated(&store), 2);
    let p = mail(&mut store, qc, "qc-2", &id, "Deleted, it was spam.");
    assert!(
        matches!(
            p,
            Processed::Staff {
                authenticated: true,
                reference: None,
                ..
            }
        ),
        "{p:?}"
    );
    assert_eq!(unauthenticated(&store), 2);
}

/// With `mailbox.plus_address_replies = true`, over the real servers: staff
/// mail has a Reply-To of `complaints+REF.TOKEN@...`, the mail server
/// delivers that address to the complaints inbox, and a reply to it acts
/// on the case by the plus-address alone (a mail client that drops the
/// threading headers). A complainant writing to `complaints+REF@...` under
/// a new subject joins their case without a second acknowledgement.
#[test]
fn plus_addresses_deliver_to_the_inbox_and_authenticate_staff_replies() {
    let stack = MailStack::start();
    let store = stack.path().join("redress.sqlite");
    let daemon = Daemon::start(
        &stack,
        &store,
        &[("REDRESS_MAILBOX_PLUS_ADDRESS_REPLIES", "true")],
    );
    let reference = file_complaint(&stack, "erin", "Certificate lost in the post");
    let notice = stack
        .wait_for("training.head@opp.example", 1, 30, |m| {
            m.contains(&reference)
        })
        .remove(0);
    let reply_to = header(&notice, "Reply-To").expect("Reply-To").to_string();
    assert!(
        reply_to.starts_with(&format!("complaints+{reference}."))
            && reply_to.ends_with("@opp.example"),
        "{reply_to}"
    );

    // The head writes to that address with no In-Reply-To or References.
    stack.deliver(
        "training.head@opp.example",
        &reply_to,
        format!(
            "From: Head of Training <training.head@opp.example>\r\nTo: <{reply_to}>\r\nSubject: Erin's certificate\r\nMessage-ID: <plus-1@opp.example>\r\nDate: Mon, 23 Nov 2026 11:00:00 +0000\r\nContent-Type: text/plain\r\n\r\n#extend 3 reprinting the certificate\r\n"
        )
        .as_bytes(),
    );
    wait_store(&store, 30, "the extension is carried out", |s| {
        s.case_detail(&reference)
            .ok()
            .flatten()
            .is_some_and(|d| d.events.iter().any(|e| e.kind == "staff-extend"))
    });
    stack.wait_for("erin@example.net", 1, 30, |m| {
        flat(m).contains("reprinting the certificate")
    });

    // Erin writes to complaints+REF@ under a new subject.
    let plus = format!("complaints+{reference}@opp.example");
    stack.deliver(
        "erin@example.net",
        &plus,
        format!(
            "From: Erin <erin@example.net>\r\nTo: <{plus}>\r\nSubject: One more thing\r\nMessage-ID: <erin-2@example.net>\r\nDate: Mon, 23 Nov 2026 12:00:00 +0000\r\nContent-Type: text/plain\r\n\r\nThe envelope should go to my work address.\r\n"
        )
        .as_bytes(),
    );
    wait_store(&store, 30, "Erin's mail joins her case", |s| {
        s.case_detail(&reference).ok().flatten().is_some_and(|d| {
            d.messages
                .iter()
                .any(|m| m.message_id == "erin-2@example.net")
        })
    });
    assert_eq!(
        store_cases(&store),
        1,
        "no second case for a mail to the plus-address"
    );
    let acks = crate::support::count(
        &Store::open(&store).expect("store"),
        "SELECT count(*) FROM outbox WHERE kind = 'acknowledgement' AND recipient = 'erin@example.net'",
    );
    assert_eq!(acks, 1, "no second acknowledgement");
    assert!(daemon.stop(), "clean stop");
}

fn store_cases(store: &Path) -> usize {
    Store::open(store)
        .expect("store")
        .list_cases(None)
        .expect("cases")
        .len()
}

/// A flood of unreadable mail: each is quarantined and recorded, but QC
/// gets at most ten quarantine notices a day, then one saying the rest
/// are held back; the day after, notices flow again.
#[test]
fn qc_gets_at_most_ten_notices_of_a_kind_a_day_then_one_saying_so() {
    use redress::service::intake::{process, Arrival, Processed};
    use redress::service::letters::NOTICES_PER_DAY;
    let (_dir, mut store, desk) = desk_on_a_store();
    let utc = |s: &str| -> DateTime<Utc> { s.parse().expect("instant") };
    let garbage = |store: &mut Store, n: u32, at: &str| {
        let raw = format!("Lorem ipsum number {n}\r\n");
        let p =
            process(store, &desk, raw.as_bytes(), &Arrival::default(), utc(at)).expect("process");
        assert!(matches!(p, Processed::Quarantined { .. }), "{p:?}");
    };
    let count = |store: &Store, sql: &str| crate::support::count(store, sql);
    let limit = NOTICES_PER_DAY as i64;
    for n in 0..NOTICES_PER_DAY + 5 {
        garbage(&mut store, n, &format!("2026-11-24T10:{:02}:00Z", n));
    }
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM messages WHERE quarantine_reason IS NOT NULL"
        ),
        limit + 5,
        "every mail is kept and quarantined"
    );
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM outbox WHERE kind = 'quarantine'"
        ),
        limit
    );
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM outbox WHERE kind = 'notices-held'"
        ),
        1
    );
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM events WHERE kind = 'notice-held'"
        ),
        5
    );
    let held: Vec<u8> = store
        .conn()
        .query_row(
            "SELECT raw FROM outbox WHERE kind = 'notices-held'",
            [],
            |r| r.get(0),
        )
        .expect("notice");
    let text = flat(&String::from_utf8_lossy(&held));
    assert!(text.contains("\"quarantine\" notices"), "{text}");
    assert!(text.contains("quality@opp.example"), "to QC: {text}");

    // A day later they go again.
    garbage(&mut store, 99, "2026-11-25T10:30:00Z");
    assert_eq!(
        count(
            &store,
            "SELECT count(*) FROM outbox WHERE kind = 'quarantine'"
        ),
        limit + 1
    );
}

/// An acknowledgement redress held back is given by hand, on a real
/// SQLite store: a `#reply` to the new-case email counts as the
/// acknowledgement once the server has taken it, and `#acknowledged`
/// records one given by phone; neither case is then reported overdue,
/// while a case nobody acknowledged is.
#[test]
fn a_held_acknowledgement_given_by_reply_or_by_phone_is_not_reported_overdue() {
    use redress::service::intake::{process, Arrival, Processed};
    let (_dir, mut store, desk) = desk_on_a_store();
    let utc = |s: &str| -> DateTime<Utc> { s.parse().expect("instant") };
    let now = utc("2026-11-23T10:00:00Z");
    // Four complaints from one sender in a day: the fourth's
    // acknowledgement is held (the cap on automatic replies is 3).
    for i in 0..4 {
        let raw = complaint(
            "Ivy",
            "ivy@example.net",
            &format!("Problem {i}"),
            &format!("ivy-{i}@example.net"),
            "",
            "Hello\r\n",
        );
        process(&mut store, &desk, &raw, &Arrival::default(), now).expect("process");
    }
    // Two with no address to write to (no From at all).
    for i in 0..2 {
        let raw = format!(
            "To: complaints@opp.example\r\nSubject: Posted {i}\r\nMessage-ID: <nofrom-{i}@example.net>\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\nContent-Type: text/plain\r\n\r\nPlease ring me on 01632 960123.\r\n"
        );
        process(&mut store, &desk, raw.as_bytes(), &Arrival::default(), now).expect("process");
    }
    let reference = |store: &Store, subject: &str| -> redress::adapters::db::CaseRecord {
        store
            .list_cases(None)
            .expect("cases")
            .into_iter()
            .find(|c| c.subject == subject)
            .expect("case")
    };
    let kinds = |store: &Store, reference: &str| -> Vec<String> {
        let d = store.case_detail(reference).expect("q").expect("case");
        d.events.iter().map(|e| e.kind.clone()).collect()
    };
    let capped = reference(&store, "Problem 3").reference;
    let phoned = reference(&store, "Posted 0").reference;
    let nobody = reference(&store, "Posted 1").reference;
    for r in [&capped, &phoned, &nobody] {
        assert!(
            kinds(&store, r).contains(&"acknowledgement-held".to_string()),
            "{r}: {:?}",
            kinds(&store, r)
        );
    }
    let notice = |store: &Store, reference: &str| -> String {
        store
            .conn()
            .query_row(
                "SELECT o.message_id FROM outbox o JOIN cases c ON c.id = o.case_id
                 WHERE c.reference = ?1 AND o.kind = 'new-case' AND o.recipient = 'quality@opp.example'",
                [reference],
                |r| r.get(0),
            )
            .expect("new-case notice to QC")
    };
    let qc_reply = |store: &mut Store, reference: &str, id: &str, body: &str| {
        let raw = format!(
            "From: Quinn <quality@opp.example>\r\nTo: complaints@opp.example\r\nSubject: Re: {reference}\r\nMessage-ID: <{id}@mail.example>\r\nIn-Reply-To: <{}>\r\nDate: Mon, 23 Nov 2026 11:00:00 +0000\r\nContent-Type: text/plain\r\n\r\n{body}\r\n",
            notice(store, reference)
        );
        let p = process(store, &desk, raw.as_bytes(), &Arrival::default(), now).expect("reply");
        assert!(
            matches!(p, Processed::Staff { authenticated: true, ref commands, .. } if !commands.is_empty()),
            "{p:?}"
        );
    };
    qc_reply(
        &mut store,
        &capped,
        "qc-reply",
        "#reply\nDear Ivy,\n\nWe have your complaint and are looking into it.",
    );
    qc_reply(
        &mut store,
        &phoned,
        "qc-phoned",
        "#acknowledged by phone\nRang the number in the mail on Monday afternoon.",
    );
    let detail = store.case_detail(&phoned).expect("q").expect("case");
    assert!(detail
        .events
        .iter()
        .any(|e| e.kind == "staff-acknowledged" && e.detail["how"] == "by phone"));
    // Twice is refused, and says when: nothing to record.
    let qc_again = format!(
        "From: Quinn <quality@opp.example>\r\nTo: complaints@opp.example\r\nSubject: Re: {phoned}\r\nMessage-ID: <qc-phoned-2@mail.example>\r\nIn-Reply-To: <{}>\r\nDate: Mon, 23 Nov 2026 12:00:00 +0000\r\nContent-Type: text/plain\r\n\r\n#acknowledged by letter\r\n",
        notice(&store, &phoned)
    );
    process(
        &mut store,
        &desk,
        qc_again.as_bytes(),
        &Arrival::default(),
        now,
    )
    .expect("again");
    let refused = store.case_detail(&phoned).expect("q").expect("case");
    assert_eq!(
        refused
            .events
            .iter()
            .filter(|e| e.kind == "staff-acknowledged")
            .count(),
        1
    );
    assert!(refused
        .events
        .iter()
        .any(|e| e.kind == "staff-command-refused"
            && e.detail["reason"]
                .as_str()
                .is_some_and(|r| r.contains("already acknowledged on Monday 23 November 2026"))));
    assert!(detail.events.iter().any(|e| e.kind == "note"
        && e.detail["text"]
            .as_str()
            .is_some_and(|t| t.contains("Monday afternoon"))));
    // The response counts only once the server has taken it.
    assert!(store
        .case(&capped)
        .expect("q")
        .expect("case")
        .acknowledged_at
        .is_none());
    let response = store
        .due_outbox(now, 100)
        .expect("outbox")
        .into_iter()
        .find(|r| r.kind == "response")
        .expect("the response is queued");
    assert_eq!(response.recipient, "ivy@example.net");
    redress::service::letters::mark_sent(&mut store, &desk, &response, now).expect("sent");
    assert!(kinds(&store, &capped).contains(&"acknowledged-by-letter".to_string()));

    // A week on, past every acknowledgement deadline.
    let later = working_morning_after(
        &desk.calendar,
        desk.calendar.local_date(now) + chrono::Duration::days(7),
        10,
        0,
    );
    redress::service::ladder::tick(&mut store, &desk, later, later, false).expect("tick");
    assert!(
        kinds(&store, &nobody).contains(&"acknowledgement-overdue".to_string()),
        "{:?}",
        kinds(&store, &nobody)
    );
    let overdue: Vec<u8> = store
        .conn()
        .query_row(
            "SELECT o.raw FROM outbox o JOIN cases c ON c.id = o.case_id
             WHERE c.reference = ?1 AND o.kind = 'acknowledgement-overdue'",
            [&nobody],
            |r| r.get(0),
        )
        .expect("the overdue notice");
    let overdue = flat(&String::from_utf8_lossy(&overdue));
    assert!(
        overdue.contains("no acknowledgement was sent")
            && overdue.contains("#acknowledged by phone")
            && overdue.contains(&format!("redress cases update {nobody} --email")),
        "{overdue}"
    );
    for r in [&capped, &phoned] {
        assert!(
            !kinds(&store, r).contains(&"acknowledgement-overdue".to_string()),
            "{r}: {:?}",
            kinds(&store, r)
        );
        assert!(store
            .case(r)
            .expect("q")
            .expect("case")
            .acknowledged_at
            .is_some());
    }
}

/// A letter of an earlier stage that goes out late does not acknowledge
/// the stage after it, on a real SQLite store: the informal stage's
/// response is still in the outbox when the case goes formal; when the
/// server takes it, the formal stage is still waiting for its own
/// acknowledgement, which then counts.
#[test]
fn a_late_letter_of_an_earlier_stage_does_not_acknowledge_the_next() {
    use redress::service::intake::{process, Arrival, Processed};
    let (_dir, mut store, desk) = desk_on_a_store();
    let utc = |s: &str| -> DateTime<Utc> { s.parse().expect("instant") };
    let t0 = utc("2026-11-23T10:00:00Z");
    let t1 = utc("2026-11-23T11:00:00Z");
    let t2 = utc("2026-11-23T12:00:00Z");
    let raw = complaint(
        "Mo",
        "mo@example.net",
        "Wrong grade",
        "mo-1@example.net",
        "",
        "Hello\r\n",
    );
    process(&mut store, &desk, &raw, &Arrival::default(), t0).expect("process");
    let reference = store.list_cases(None).expect("cases")[0].reference.clone();
    let notice: String = store
        .conn()
        .query_row(
            "SELECT message_id FROM outbox WHERE kind = 'new-case' AND recipient = 'quality@opp.example'",
            [],
            |r| r.get(0),
        )
        .expect("the new-case notice");
    let qc = |store: &mut Store, id: &str, body: &str, at: DateTime<Utc>| {
        let raw = format!(
            "From: Quinn <quality@opp.example>\r\nTo: complaints@opp.example\r\nSubject: Re: {reference}\r\nMessage-ID: <{id}@mail.example>\r\nIn-Reply-To: <{notice}>\r\nDate: Mon, 23 Nov 2026 11:00:00 +0000\r\nContent-Type: text/plain\r\n\r\n{body}\r\n"
        );
        let p = process(store, &desk, raw.as_bytes(), &Arrival::default(), at).expect("reply");
        assert!(
            matches!(p, Processed::Staff { authenticated: true, ref commands, .. } if !commands.is_empty()),
            "{p:?}"
        );
    };
    qc(
        &mut store,
        "qc-1",
        "#reply\nDear Mo,\n\nWe are checking the grade with the assessor.",
        t0,
    );
    qc(&mut store, "qc-2", "#formal", t1);
    let waiting = |store: &Store, kind: &str| {
        store
            .due_outbox(t2, 100)
            .expect("outbox")
            .into_iter()
            .filter(|r| r.kind == kind && r.recipient == "mo@example.net")
            .collect::<Vec<_>>()
    };
    let response = waiting(&store, "response").pop().expect("the response");
    let acks = waiting(&store, "acknowledgement");
    assert_eq!(acks.len(), 2, "the informal and the formal acknowledgement");
    let formal_ack = acks.iter().max_by_key(|r| r.id).expect("formal").clone();
    redress::service::letters::mark_sent(&mut store, &desk, &response, t2).expect("sent");
    let case = store.case(&reference).expect("q").expect("case");
    assert_eq!(case.stage, "formal");
    assert!(case.acknowledged_at.is_none(), "{case:?}");
    let kinds: Vec<String> = store
        .case_detail(&reference)
        .expect("q")
        .expect("case")
        .events
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert!(!kinds.contains(&"acknowledged-by-letter".to_string()));
    redress::service::letters::mark_sent(&mut store, &desk, &formal_ack, t2).expect("sent");
    let case = store.case(&reference).expect("q").expect("case");
    assert!(case.acknowledged_at.is_some());
}

/// The server took a letter, and recording what it does to its case
/// fails: the letter is recorded as sent all the same, so it never goes
/// a second time.
#[test]
fn a_letter_the_server_took_is_not_sent_again_when_its_case_cannot_take_it() {
    use redress::service::intake::{process, Arrival};
    let (_dir, mut store, desk) = desk_on_a_store();
    let now: DateTime<Utc> = "2026-11-23T10:00:00Z".parse().expect("now");
    let raw = complaint(
        "Hal",
        "hal@example.net",
        "Broken promise",
        "hal-1@example.net",
        "",
        "You promised a refund.\r\n",
    );
    process(&mut store, &desk, &raw, &Arrival::default(), now).expect("process");
    let ack = store
        .due_outbox(now, 100)
        .expect("outbox")
        .into_iter()
        .find(|r| r.kind == "acknowledgement")
        .expect("the acknowledgement is queued");
    // An instant that cannot be read: the case's side cannot be worked
    // out.
    store
        .conn()
        .execute("UPDATE cases SET stage_opened_at = 'not an instant'", [])
        .expect("break the case");
    redress::service::letters::mark_sent(&mut store, &desk, &ack, now).expect("sent");
    assert!(
        !store
            .due_outbox(now + chrono::Duration::hours(1), 100)
            .expect("outbox")
            .iter()
            .any(|r| r.id == ack.id),
        "the acknowledgement would go again"
    );
}
