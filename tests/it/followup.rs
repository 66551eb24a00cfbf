//! A complainant's mail after the first, on a real SQLite store (no mail
//! servers): it takes a case to the next stage when it answers our
//! response in time, and otherwise reaches the people handling the case;
//! the feedback request of seed 002 and the answers to it.

use crate::support::{complaint, count, example_config, flat};
use chrono::{DateTime, Utc};
use redress::adapters::db::Store;
use redress::config::parse_str;
use redress::service::intake::{process, Arrival, Processed};
use redress::service::ladder::tick;
use redress::service::Desk;

const QC: &str = "quality@opp.example";
const HEAD: &str = "training.head@opp.example";
const MD: &str = "md@opp.example";
const FAY: &str = "fay@example.net";

fn utc(s: &str) -> DateTime<Utc> {
    s.parse().expect("instant")
}

/// The example config (seed 000), with `extra` TOML lines added to its
/// `[procedure]` table, on a fresh store.
fn desk(extra: &str) -> (tempfile::TempDir, Store, Desk) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("s.sqlite");
    let env = vec![("REDRESS_STORE_PATH".to_string(), path.display().to_string())];
    let text = example_config().replacen("[procedure]\n", &format!("[procedure]\n{extra}\n"), 1);
    let cfg = parse_str(&text, "t", &env).expect("config");
    let mut store = Store::open(&path).expect("store");
    let desk = Desk::new(cfg, &mut store).expect("desk");
    (dir, store, desk)
}

/// Fay's complaint, received at `at`; its reference.
fn file(store: &mut Store, desk: &Desk, at: &str) -> String {
    let raw = complaint(
        "Fay",
        FAY,
        "Late certificate",
        "fay-1@example.net",
        "",
        "My certificate is six weeks late.\r\n",
    );
    match process(store, desk, &raw, &Arrival::default(), utc(at)).expect("process") {
        Processed::Opened { reference, .. } => reference,
        other => panic!("{other:?}"),
    }
}

/// An authenticated command from the head of training, replying to their
/// notification of case `reference`.
fn staff(store: &mut Store, desk: &Desk, reference: &str, n: u32, body: &str, at: &str) {
    let token = redress::core::token::token(&desk.secret, reference, HEAD);
    let notice = redress::core::token::message_id(3, reference, &token, "opp.example");
    let raw = format!(
        "From: Head of Training <{HEAD}>\r\nTo: complaints@opp.example\r\nSubject: Re: Complaint [{reference}]\r\nMessage-ID: <staff-{n}@opp.example>\r\nIn-Reply-To: <{notice}>\r\nDate: Mon, 23 Nov 2026 11:00:00 +0000\r\nContent-Type: text/plain\r\n\r\n{body}\r\n"
    );
    let p = process(store, desk, raw.as_bytes(), &Arrival::default(), utc(at)).expect("staff");
    // Authenticated and carried out (a refused command has none).
    assert!(
        matches!(
            &p,
            Processed::Staff {
                authenticated: true,
                commands,
                ..
            } if !commands.is_empty()
        ),
        "{p:?}"
    );
}

/// Fay (or `from`) replying to our letter `parent` with `body` above the
/// quoted letter.
fn reply(
    store: &mut Store,
    desk: &Desk,
    from: &str,
    n: u32,
    parent: &str,
    body: &str,
    at: &str,
) -> Processed {
    reply_received(store, desk, from, n, parent, body, at, None)
}

/// [`reply`], handled at `at` but received by the server at `received`.
#[allow(clippy::too_many_arguments)]
fn reply_received(
    store: &mut Store,
    desk: &Desk,
    from: &str,
    n: u32,
    parent: &str,
    body: &str,
    at: &str,
    received: Option<&str>,
) -> Processed {
    let arrival = Arrival {
        received: received.map(utc),
        ..Arrival::default()
    };
    let raw = format!(
        "From: Fay <{from}>\r\nTo: complaints@opp.example\r\nSubject: Re: Late certificate\r\nMessage-ID: <fay-reply-{n}@example.net>\r\nIn-Reply-To: <{parent}>\r\nReferences: <fay-1@example.net> <{parent}>\r\nDate: Mon, 23 Nov 2026 11:00:00 +0000\r\nContent-Type: text/plain\r\n\r\n{body}\r\n\r\nOn 23/11/2026 10:00, OP Performance Limited wrote:\r\n> Our letter to you\r\n"
    );
    process(store, desk, raw.as_bytes(), &arrival, utc(at)).expect("reply")
}

/// The Message-ID of the newest letter of `kind` to Fay.
fn letter_id(store: &Store, kind: &str) -> String {
    store
        .conn()
        .query_row(
            "SELECT message_id FROM outbox WHERE kind = ?1 AND recipient = ?2 ORDER BY id DESC LIMIT 1",
            [kind, FAY],
            |r| r.get(0),
        )
        .unwrap_or_else(|e| panic!("no {kind} letter: {e}"))
}

/// The letters of `kind` queued since outbox row `after`: (recipient,
/// decoded text).
fn letters(store: &Store, kind: &str, after: i64) -> Vec<(String, String)> {
    let mut stmt = store
        .conn()
        .prepare("SELECT recipient, raw FROM outbox WHERE kind = ?1 AND id > ?2 ORDER BY id")
        .expect("prepare");
    stmt.query_map(rusqlite::params![kind, after], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?))
    })
    .expect("query")
    .map(|r| {
        let (to, raw) = r.expect("row");
        (to, flat(&String::from_utf8_lossy(&raw)))
    })
    .collect()
}

fn last_outbox(store: &Store) -> i64 {
    count(store, "SELECT coalesce(max(id), 0) FROM outbox")
}

fn recipients(found: &[(String, String)]) -> Vec<&str> {
    let mut to: Vec<&str> = found.iter().map(|(to, _)| to.as_str()).collect();
    to.sort_unstable();
    to
}

#[test]
fn replies_to_the_response_in_time_climb_the_stages_and_other_mail_reaches_staff() {
    let (_dir, mut store, desk) = desk("");
    let reference = file(&mut store, &desk, "2026-11-23T10:00:00Z");
    let case = |store: &Store| store.case(&reference).expect("q").expect("case");

    // More evidence on the open case: QC and the head of training get it,
    // without the quoted letter; no second acknowledgement.
    let mark = last_outbox(&store);
    let p = reply(
        &mut store,
        &desk,
        FAY,
        1,
        "fay-1@example.net",
        "Here is the enrolment form you asked about.",
        "2026-11-24T09:00:00Z",
    );
    assert!(matches!(p, Processed::Joined { .. }), "{p:?}");
    let told = letters(&store, "complainant-wrote", mark);
    assert_eq!(recipients(&told), [QC, HEAD]);
    for (_, text) in &told {
        assert!(text.contains("Here is the enrolment form"), "{text}");
        assert!(!text.contains("Our letter to you"), "{text}");
        assert!(text.contains("The case is open"), "{text}");
        assert!(text.contains("#reply"), "{text}");
    }
    assert!(letters(&store, "acknowledgement", mark).is_empty());

    // Answered; Fay replies to the resolution letter within the month: the
    // formal stage, with its acknowledgement to her, and staff see why.
    staff(
        &mut store,
        &desk,
        &reference,
        1,
        "#resolve not-upheld\r\nThe handbook allows eight weeks.",
        "2026-11-25T10:00:00Z",
    );
    assert_eq!(case(&store).status, "resolved");
    let resolution = letter_id(&store, "resolution");
    let mark = last_outbox(&store);
    let p = reply(
        &mut store,
        &desk,
        FAY,
        2,
        &resolution,
        "I do not accept this: I was promised the certificate in four weeks.",
        "2026-12-10T09:00:00Z",
    );
    assert!(
        matches!(&p, Processed::TakenFurther { stage, .. } if stage == "formal"),
        "{p:?}"
    );
    let c = case(&store);
    assert_eq!((c.stage.as_str(), c.status.as_str()), ("formal", "open"));
    let acks = letters(&store, "acknowledgement", mark);
    assert_eq!(recipients(&acks), [FAY]);
    let assigned = letters(&store, "assigned", mark);
    assert_eq!(recipients(&assigned), [QC, HEAD]);
    for (_, text) in &assigned {
        assert!(text.contains("I do not accept this"), "{text}");
        assert!(text.contains("formal stage"), "{text}");
    }
    assert!(letters(&store, "complainant-wrote", mark).is_empty());
    let detail = store.case_detail(&reference).expect("q").expect("case");
    assert!(detail.events.iter().any(|e| e.kind == "taken-further"));

    // Answered at the formal stage; her reply in time is an appeal, which
    // the Managing Director answers: the MD is told.
    staff(
        &mut store,
        &desk,
        &reference,
        2,
        "#resolve not-upheld\r\nWe looked again.",
        "2026-12-14T10:00:00Z",
    );
    // She answers the formal stage's acknowledgement instead of the
    // response: staff are told the window is open; #formal takes it on.
    let ack = letter_id(&store, "acknowledgement");
    let mark = last_outbox(&store);
    let p = reply(
        &mut store,
        &desk,
        FAY,
        3,
        &ack,
        "Thanks for your letter, but I want to appeal to the MD.",
        "2026-12-15T09:00:00Z",
    );
    assert!(matches!(p, Processed::Joined { .. }), "{p:?}");
    assert_eq!(case(&store).stage, "formal");
    let told = letters(&store, "complainant-wrote", mark);
    assert!(told[0].1.contains("this mail is not one"), "{}", told[0].1);
    assert!(told[0].1.contains("#formal"), "{}", told[0].1);
    let mark = last_outbox(&store);
    staff(
        &mut store,
        &desk,
        &reference,
        20,
        "#formal",
        "2026-12-15T10:00:00Z",
    );
    let c = case(&store);
    assert_eq!((c.stage.as_str(), c.status.as_str()), ("appeal", "open"));
    assert!(recipients(&letters(&store, "assigned", mark)).contains(&MD));
    assert_eq!(recipients(&letters(&store, "acknowledgement", mark)), [FAY]);

    // The appeal answered, every stage is done: her next mail changes
    // nothing and goes to QC and the MD, who writes to close the matter.
    staff(
        &mut store,
        &desk,
        &reference,
        3,
        "#resolve not-upheld\r\nThe MD's decision.",
        "2027-01-05T10:00:00Z",
    );
    let resolution = letter_id(&store, "resolution");
    let mark = last_outbox(&store);
    let p = reply(
        &mut store,
        &desk,
        FAY,
        4,
        &resolution,
        "I still disagree.",
        "2027-01-06T09:00:00Z",
    );
    assert!(matches!(p, Processed::Joined { .. }), "{p:?}");
    let c = case(&store);
    assert_eq!(
        (c.stage.as_str(), c.status.as_str()),
        ("appeal", "resolved")
    );
    let told = letters(&store, "complainant-wrote", mark);
    assert_eq!(recipients(&told), [MD, QC]);
    assert!(told[0]
        .1
        .contains("Every stage of our complaints procedure"));
    assert!(letters(&store, "acknowledgement", mark).is_empty());
}

#[test]
fn a_reply_after_the_window_or_from_someone_else_does_not_move_the_case() {
    let (_dir, mut store, desk) = desk("");
    let reference = file(&mut store, &desk, "2026-11-23T10:00:00Z");
    let case = |store: &Store| store.case(&reference).expect("q").expect("case");
    staff(
        &mut store,
        &desk,
        &reference,
        1,
        "#resolve upheld\r\nWe are sorry.",
        "2026-11-25T10:00:00Z",
    );
    let resolution = letter_id(&store, "resolution");

    // Somebody else replying in the window (a relative copied in): staff
    // are told; the case stays where it is.
    let mark = last_outbox(&store);
    let p = reply(
        &mut store,
        &desk,
        "brother@example.net",
        1,
        &resolution,
        "My sister is not happy.",
        "2026-11-26T09:00:00Z",
    );
    assert!(matches!(p, Processed::Joined { .. }), "{p:?}");
    assert_eq!(case(&store).stage, "informal");
    let told = letters(&store, "complainant-wrote", mark);
    assert!(!told.is_empty());
    assert!(told[0].1.contains("brother@example.net"), "{}", told[0].1);
    assert!(
        told[0].1.contains("does not come from the complainant"),
        "{}",
        told[0].1
    );

    // The month passes and the timer closes the case; then Fay writes.
    let now = utc("2026-11-25T10:00:00Z");
    tick(&mut store, &desk, utc("2027-01-04T09:00:00Z"), now, false).expect("tick");
    assert_eq!(case(&store).status, "closed");
    let mark = last_outbox(&store);
    let p = reply(
        &mut store,
        &desk,
        FAY,
        2,
        &resolution,
        "I would like to appeal after all.",
        "2027-01-04T10:00:00Z",
    );
    assert!(matches!(p, Processed::Joined { .. }), "{p:?}");
    let c = case(&store);
    assert_eq!(
        (c.stage.as_str(), c.status.as_str()),
        ("informal", "closed")
    );
    let told = letters(&store, "complainant-wrote", mark);
    assert_eq!(recipients(&told), [QC, HEAD]);
    assert!(told[0].1.contains("ended on"), "{}", told[0].1);
    assert!(
        told[0].1.contains("I would like to appeal"),
        "{}",
        told[0].1
    );
}

/// Evidence sent later: staff are told what came with it.
#[test]
fn staff_hear_which_files_came_with_a_later_mail() {
    let (_dir, mut store, desk) = desk("");
    let reference = file(&mut store, &desk, "2026-11-23T10:00:00Z");
    let raw = format!(
        "From: Fay <{FAY}>\r\nTo: complaints@opp.example\r\nSubject: Re: Late certificate [{reference}]\r\nMessage-ID: <fay-evidence@example.net>\r\nIn-Reply-To: <fay-1@example.net>\r\nDate: Tue, 24 Nov 2026 09:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nThe enrolment form is attached.\r\n--b\r\nContent-Type: application/pdf; name=\"enrolment.pdf\"\r\nContent-Disposition: attachment; filename=\"enrolment.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--b--\r\n"
    );
    let p = process(
        &mut store,
        &desk,
        raw.as_bytes(),
        &Arrival::default(),
        utc("2026-11-24T09:00:00Z"),
    )
    .expect("process");
    assert!(matches!(p, Processed::Joined { .. }), "{p:?}");
    let told = letters(&store, "complainant-wrote", 0);
    assert_eq!(recipients(&told), [QC, HEAD]);
    let text = &told[0].1;
    assert!(text.contains("The enrolment form is attached."), "{text}");
    assert!(
        text.contains("[Attached, and kept with the case: enrolment.pdf (application/pdf, 1 KB)]"),
        "{text}"
    );
}

/// A later mail that looks automatic only by its subject may be a person:
/// staff see it, marked as such; it cannot take the case further.
#[test]
fn a_doubtful_auto_reply_on_a_case_reaches_staff_but_moves_nothing() {
    let (_dir, mut store, desk) = desk("");
    let reference = file(&mut store, &desk, "2026-11-23T10:00:00Z");
    staff(
        &mut store,
        &desk,
        &reference,
        1,
        "#resolve not-upheld\r\nThe handbook allows eight weeks.",
        "2026-11-25T10:00:00Z",
    );
    let resolution = letter_id(&store, "resolution");
    let mark = last_outbox(&store);
    let raw = format!(
        "From: Fay <{FAY}>\r\nTo: complaints@opp.example\r\nSubject: Out of office: Our response to your complaint [{reference}]\r\nMessage-ID: <fay-ooo@example.net>\r\nIn-Reply-To: <{resolution}>\r\nDate: Thu, 26 Nov 2026 09:00:00 +0000\r\nContent-Type: text/plain\r\n\r\nI am away until Monday; I do not accept your answer.\r\n"
    );
    let p = process(
        &mut store,
        &desk,
        raw.as_bytes(),
        &Arrival::default(),
        utc("2026-11-26T09:00:00Z"),
    )
    .expect("process");
    assert!(matches!(p, Processed::Robot { .. }), "{p:?}");
    assert_eq!(
        store.case(&reference).expect("q").expect("c").stage,
        "informal"
    );
    let told = letters(&store, "complainant-wrote", mark);
    assert_eq!(recipients(&told), [QC, HEAD]);
    assert!(told[0].1.contains("It looks automatic"), "{}", told[0].1);
    assert!(told[0].1.contains("I do not accept"), "{}", told[0].1);
    assert!(letters(&store, "acknowledgement", mark).is_empty());
}

/// The daemon was down when the window ended: on its return the timer
/// closes the case before intake reaches Fay's reply, which arrived in
/// time. It still takes the case further.
#[test]
fn a_reply_that_arrived_in_time_counts_even_after_the_timer_closed_the_case() {
    let (_dir, mut store, desk) = desk("");
    let reference = file(&mut store, &desk, "2026-11-23T10:00:00Z");
    staff(
        &mut store,
        &desk,
        &reference,
        1,
        "#resolve not-upheld\r\nThe handbook allows eight weeks.",
        "2026-11-25T10:00:00Z",
    );
    let resolution = letter_id(&store, "resolution");
    let now = utc("2026-11-25T10:00:00Z");
    tick(&mut store, &desk, utc("2027-01-04T09:00:00Z"), now, false).expect("tick");
    assert_eq!(
        store.case(&reference).expect("q").expect("c").status,
        "closed"
    );
    let p = reply_received(
        &mut store,
        &desk,
        FAY,
        1,
        &resolution,
        "I want to take this further.",
        "2027-01-04T09:01:00Z",
        Some("2026-12-22T16:00:00Z"),
    );
    assert!(
        matches!(&p, Processed::TakenFurther { stage, .. } if stage == "formal"),
        "{p:?}"
    );
    let c = store.case(&reference).expect("q").expect("case");
    assert_eq!((c.stage.as_str(), c.status.as_str()), ("formal", "open"));
}

#[test]
fn the_feedback_request_goes_after_resolution_and_its_answer_is_feedback() {
    let (_dir, mut store, desk) = desk("feedback_after = \"15 working days\"");
    let reference = file(&mut store, &desk, "2026-11-23T10:00:00Z");
    let case = |store: &Store| store.case(&reference).expect("q").expect("case");
    let now = utc("2026-11-25T10:00:00Z");
    staff(
        &mut store,
        &desk,
        &reference,
        1,
        "#resolve partly-upheld\r\nPart of it was our fault.",
        "2026-11-25T10:00:00Z",
    );
    // Not before its time; then once, to Fay, naming the response's date.
    tick(&mut store, &desk, utc("2026-12-15T09:00:00Z"), now, false).expect("tick");
    assert!(letters(&store, "feedback-request", 0).is_empty());
    for _ in 0..2 {
        tick(&mut store, &desk, utc("2026-12-17T09:00:00Z"), now, false).expect("tick");
    }
    let asked = letters(&store, "feedback-request", 0);
    assert_eq!(recipients(&asked), [FAY]);
    assert!(
        asked[0].1.contains("Wednesday 25 November 2026"),
        "{}",
        asked[0].1
    );
    assert!(asked[0].1.contains(&reference));

    // Her answer, still inside the window to take it further: feedback
    // for QC, not an appeal.
    let feedback = letter_id(&store, "feedback-request");
    let mark = last_outbox(&store);
    let p = reply(
        &mut store,
        &desk,
        FAY,
        1,
        &feedback,
        "You kept me informed, thank you.",
        "2026-12-18T09:00:00Z",
    );
    assert!(matches!(p, Processed::Joined { .. }), "{p:?}");
    assert_eq!(case(&store).stage, "informal");
    let told = letters(&store, "complainant-wrote", mark);
    assert!(recipients(&told).contains(&QC));
    assert!(told[0].1.contains("request for feedback"), "{}", told[0].1);
    // The window is still open: staff are told how to take it further.
    assert!(told[0].1.contains("#formal"), "{}", told[0].1);
    assert!(told[0].1.contains("You kept me informed"), "{}", told[0].1);
}

#[test]
fn a_withdrawn_complaint_is_not_asked_for_feedback() {
    let (_dir, mut store, desk) = desk("feedback_after = \"15 working days\"");
    let reference = file(&mut store, &desk, "2026-11-23T10:00:00Z");
    staff(
        &mut store,
        &desk,
        &reference,
        1,
        "#resolve withdrawn\r\nWithdrawn at the complainant's request.",
        "2026-11-25T10:00:00Z",
    );
    assert_eq!(
        store.case(&reference).expect("q").expect("case").status,
        "resolved"
    );
    let now = utc("2026-11-25T10:00:00Z");
    tick(&mut store, &desk, utc("2027-02-01T09:00:00Z"), now, false).expect("tick");
    assert!(letters(&store, "feedback-request", 0).is_empty());
    let detail = store.case_detail(&reference).expect("q").expect("case");
    let kinds: Vec<&str> = detail.events.iter().map(|e| e.kind.as_str()).collect();
    assert!(kinds.contains(&"feedback-due"), "{kinds:?}");
}

/// A complainant who writes again and again: each mail is recorded on the
/// case, but staff get at most five emails about it a day each; the fifth
/// says so. A day later they hear again.
#[test]
fn staff_get_at_most_five_emails_a_day_about_one_case_s_later_mail() {
    use redress::service::followup::COMPLAINANT_WROTE_PER_DAY;
    let (_dir, mut store, desk) = desk("");
    let reference = file(&mut store, &desk, "2026-11-23T10:00:00Z");
    let ack = letter_id(&store, "acknowledgement");
    let cap = COMPLAINANT_WROTE_PER_DAY as usize;
    for n in 0..cap + 3 {
        let at = format!("2026-11-24T09:{:02}:00Z", n * 5);
        let p = reply(
            &mut store,
            &desk,
            FAY,
            n as u32,
            &ack,
            &format!("And another thing, number {n}."),
            &at,
        );
        assert!(matches!(p, Processed::Joined { .. }), "{p:?}");
    }
    let detail = store.case_detail(&reference).expect("q").expect("case");
    let from_fay = detail
        .messages
        .iter()
        .filter(|m| m.from_address == FAY)
        .count();
    assert_eq!(from_fay, cap + 4, "every mail is on the case");
    let held = detail
        .events
        .iter()
        .filter(|e| e.kind == "letter-held")
        .count();
    assert_eq!(held, 2 * 3, "three mails held back for each of two people");
    let told = letters(&store, "complainant-wrote", 0);
    for who in [QC, HEAD] {
        let theirs: Vec<&String> = told
            .iter()
            .filter(|(to, _)| to == who)
            .map(|(_, t)| t)
            .collect();
        assert_eq!(theirs.len(), cap, "{who}");
        let last = theirs[cap - 1];
        assert!(last.contains("number 4"), "{last}");
        assert!(
            last.contains("without an email each") && last.contains(&reference),
            "{last}"
        );
        assert!(!theirs[0].contains("without an email each"));
    }
    // The next day, the next mail is passed on again.
    let p = reply(
        &mut store,
        &desk,
        FAY,
        99,
        &ack,
        "Still waiting.",
        "2026-11-25T09:30:00Z",
    );
    assert!(matches!(p, Processed::Joined { .. }), "{p:?}");
    let told = letters(&store, "complainant-wrote", 0);
    assert_eq!(told.len(), 2 * cap + 2);
    assert!(told[told.len() - 1].1.contains("Still waiting."));
}

#[test]
fn an_organisation_s_letters_may_greet_the_complainant_as_recipient_name() {
    // `recipient_name` is in every letter's contract, so `redress check`
    // passes templates that use it; the letters queued must have it too.
    let dir = tempfile::tempdir().expect("tempdir");
    let own = dir.path().join("templates");
    std::fs::create_dir(&own).expect("templates dir");
    for (name, subject) in [
        ("acknowledgement", "Received"),
        ("hold", "On hold"),
        ("resolution", "Resolved"),
    ] {
        std::fs::write(
            own.join(format!("{name}.txt.hbs")),
            format!("Subject: {subject} [{{{{reference}}}}]\n\nDear {{{{recipient_name}}}},\n\n{name} letter.\n"),
        )
        .expect("write");
    }
    let path = dir.path().join("s.sqlite");
    let env = vec![
        ("REDRESS_STORE_PATH".to_string(), path.display().to_string()),
        (
            "REDRESS_TEMPLATES_DIR".to_string(),
            own.display().to_string(),
        ),
    ];
    let cfg = parse_str(&example_config(), "t", &env).expect("config");
    let mut store = Store::open(&path).expect("store");
    let desk = Desk::new(cfg, &mut store).expect("desk");
    let reference = file(&mut store, &desk, "2026-11-23T10:00:00Z");
    staff(
        &mut store,
        &desk,
        &reference,
        1,
        "#hold waiting for the awarding body",
        "2026-11-24T10:00:00Z",
    );
    staff(
        &mut store,
        &desk,
        &reference,
        2,
        "#resume\r\n#resolve upheld\r\nYour certificate is on its way.",
        "2026-11-25T10:00:00Z",
    );
    for kind in ["acknowledgement", "hold", "resolution"] {
        let found = letters(&store, kind, 0);
        assert_eq!(recipients(&found), [FAY], "{kind}");
        assert!(found[0].1.contains("Dear Fay,"), "{kind}: {}", found[0].1);
    }
}

#[test]
fn a_reply_to_naming_the_desk_or_staff_is_not_where_letters_go() {
    let (_dir, mut store, desk) = desk("");
    for (n, reply_to) in [
        "complaints@opp.example",
        "complaints+x@opp.example",
        "training.head@opp.example",
        "gil.alt@example.net",
    ]
    .into_iter()
    .enumerate()
    {
        let from = format!("gil{n}@example.net");
        let raw = complaint(
            "Gil",
            &from,
            "Lost coursework",
            &format!("gil-{n}@example.net"),
            &format!("Reply-To: {reply_to}\r\n"),
            "My coursework was lost.\r\n",
        );
        let p = process(
            &mut store,
            &desk,
            &raw,
            &Arrival::default(),
            utc("2026-11-23T10:00:00Z"),
        )
        .expect("process");
        assert!(matches!(p, Processed::Opened { .. }), "{p:?}");
        let to: String = store
            .conn()
            .query_row(
                "SELECT recipient FROM outbox WHERE kind = 'acknowledgement' ORDER BY id DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
            .expect("an acknowledgement");
        // A person's own other address is honoured; ours never is.
        let expected = if n == 3 { reply_to.to_string() } else { from };
        assert_eq!(to, expected, "Reply-To: {reply_to}");
    }
}
