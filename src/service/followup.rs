//! After the first mail: what a complainant's later mail on their case
//! does, and the request for feedback once a case is answered. Inside the
//! caller's transaction, like the rest of `service`.
//!
//! A complainant's mail is never just filed: either it takes the case to
//! the next stage (a reply to the written response within the window the
//! resolution letter gives), or the people handling the case get it by
//! email, with what it means for the case.

use super::casework::{self, staff_case_letter, Details, When};
use super::letters::long_date;
use super::Desk;
use crate::adapters::db::{self, CaseRecord};
use crate::core::case::{self, Context, FollowUp, LaterMail, Outcome, Situation};
use crate::core::message::Inbound;
use crate::core::procedure::Answerer;
use chrono::{DateTime, Utc};
use rusqlite::Transaction;
use serde_json::json;

/// The template of the request for feedback (also its outbox kind).
pub const FEEDBACK_REQUEST: &str = "feedback-request";

/// The staff letter that passes a complainant's later mail on.
const COMPLAINANT_WROTE: &str = "complainant-wrote";

/// At most this many `complainant-wrote` letters about one case go to one
/// member of staff in 24 hours; the last says that more mail is only
/// recorded on the case. A complainant who writes twenty times in a
/// morning does not fill twenty inboxes twice over.
pub const COMPLAINANT_WROTE_PER_DAY: u32 = 5;

/// Handles mail `m` on case `case_id` (already recorded on it; not staff
/// mail, not a robot's on strong evidence), with `text` its readable text
/// without the quoted history; `doubt` is why it looks automatic, on weak
/// evidence (it can then not move the case). Returns the new stage when
/// the mail took the case further.
#[allow(clippy::too_many_arguments)]
pub fn complainant_wrote(
    tx: &Transaction,
    desk: &Desk,
    case_id: i64,
    m: &Inbound,
    text: &str,
    doubt: Option<&str>,
    received: DateTime<Utc>,
    now: DateTime<Utc>,
) -> anyhow::Result<Option<String>> {
    let current = db::load_case(tx, case_id)?;
    let ctx = Context {
        procedure: &desk.procedure,
        calendar: &desk.calendar,
    };
    let record = db::case_record(tx, case_id)?;
    let from = m.from_address();
    let refs = m.referenced_ids();
    let mail = LaterMail {
        received,
        window_ends: db::window_end(tx, case_id)?,
        answers_resolution: db::letter_among(tx, case_id, &refs, "resolution")?,
        answers_feedback: db::letter_among(tx, case_id, &refs, FEEDBACK_REQUEST)?,
        from_complainant: from.eq_ignore_ascii_case(&record.complainant_email)
            || from.eq_ignore_ascii_case(&record.reply_address)
            || db::is_complainant(tx, case_id, from)?,
        doubtful: doubt.is_some(),
    };
    // Staff see what came with it; the files stay with the case.
    let text = with_attachment_list(text, m);
    match case::follow_up(&current, &mail, &ctx) {
        FollowUp::TakeFurther => {
            // The new stage runs from the reply's arrival, as a new case
            // runs from its complaint's.
            let start = received.min(now);
            let t = case::take_further(&current, start, &ctx)?;
            let stage = t.case.stage.0.clone();
            db::append_event(
                tx,
                Some(case_id),
                now,
                from,
                "taken-further",
                &json!({"message_id": m.message_id, "stage": stage}),
            )?;
            let details = Details {
                complainant_message: if text.trim().is_empty() {
                    "(their reply has no text)".to_string()
                } else {
                    text
                },
                ..Details::default()
            };
            let when = When {
                at: start,
                queued: now,
            };
            casework::carry_out(tx, desk, case_id, &t, &details, when)?;
            Ok(Some(stage))
        }
        FollowUp::Tell(situation) => {
            let mut words = situation_text(desk, &record, situation, &mail, now);
            if let Some(reason) = doubt {
                words = format!("It looks automatic ({reason}), but only on weak evidence, so it has not moved the case on. {words}");
            }
            let message_date = casework::local_time_text(desk, received);
            let sender = match m.from.as_ref().map(|f| f.name.trim()) {
                Some(name) if !name.is_empty() => format!("{name} <{from}>"),
                _ => from.to_string(),
            };
            let day_ago = now - chrono::Duration::hours(24);
            for (name, address) in recipients(desk, &record, situation) {
                let sent =
                    db::letters_since(tx, COMPLAINANT_WROTE, &address, Some(case_id), day_ago)?;
                if sent >= COMPLAINANT_WROTE_PER_DAY {
                    db::append_event(
                        tx,
                        Some(case_id),
                        now,
                        "redress",
                        "letter-held",
                        &json!({"kind": COMPLAINANT_WROTE, "to": address, "message_id": m.message_id}),
                    )?;
                    continue;
                }
                let mut situation = words.clone();
                if sent + 1 == COMPLAINANT_WROTE_PER_DAY {
                    situation.push_str(&format!(
                        " That makes {COMPLAINANT_WROTE_PER_DAY} such emails about this case in 24 hours: until a day has passed, more mail on it is recorded on the case (redress cases show {}) without an email each.",
                        record.reference
                    ));
                }
                staff_case_letter(
                    tx,
                    desk,
                    &record,
                    COMPLAINANT_WROTE,
                    &name,
                    &address,
                    json!({
                        "sender": sender,
                        "situation": situation,
                        "message": text,
                        "message_date": message_date,
                    }),
                    When::now(now),
                )?;
            }
            Ok(None)
        }
    }
}

/// `text`, and a line naming the mail's attachments, if any.
fn with_attachment_list(text: &str, m: &Inbound) -> String {
    if m.attachments.is_empty() {
        return text.to_string();
    }
    let names: Vec<String> = m
        .attachments
        .iter()
        .map(|a| {
            let name = if a.filename.is_empty() {
                "(no name)"
            } else {
                a.filename.as_str()
            };
            format!("{name} ({}, {} KB)", a.content_type, a.size.div_ceil(1024))
        })
        .collect();
    format!(
        "{text}\n\n[Attached, and kept with the case: {}]",
        names.join("; ")
    )
}

/// Who hears of mail on a case: the Quality Coordinator and whoever
/// answers the case's stage (its department head, or the Managing
/// Director); the Managing Director too once every stage is done, as
/// seed 002 has them write when a complainant tries to reopen the issue.
fn recipients(desk: &Desk, record: &CaseRecord, situation: Situation) -> Vec<(String, String)> {
    let staff = &desk.config.staff;
    let person = |p: &crate::config::Person| (p.name.clone(), p.address.clone());
    let mut to = vec![person(&staff.quality_coordinator)];
    let answerer = desk
        .procedure
        .stage(&crate::core::procedure::StageName(record.stage.clone()))
        .map(|s| s.answered_by)
        .unwrap_or_default();
    match answerer {
        Answerer::DepartmentHead => {
            if let Some(d) = desk.config.department(&record.department) {
                to.push(person(&d.head));
            }
        }
        Answerer::ManagingDirector => to.push(person(&staff.managing_director)),
        Answerer::QualityCoordinator => {}
    }
    if situation == Situation::Exhausted {
        to.push(person(&staff.managing_director));
    }
    let mut seen = Vec::new();
    to.retain(|(_, address)| {
        let key = address.to_ascii_lowercase();
        let new = !seen.contains(&key);
        seen.push(key);
        new
    });
    to
}

/// What the mail means for the case, and what staff can do, in a sentence
/// or two of the staff email.
fn situation_text(
    desk: &Desk,
    record: &CaseRecord,
    situation: Situation,
    mail: &LaterMail,
    now: DateTime<Utc>,
) -> String {
    let day = |t: DateTime<Utc>| long_date(desk.calendar.local_date(t));
    let target = record
        .target_date
        .as_deref()
        .and_then(|d| d.parse().ok())
        .map(long_date)
        .unwrap_or_else(|| "not set".to_string());
    let answered = record
        .resolved_at
        .as_deref()
        .and_then(|t| t.parse().ok())
        .map(day)
        .unwrap_or_default();
    let answer = "To answer them, reply to this email with #reply on the first line and your answer below it.";
    let further = |end: DateTime<Utc>| {
        format!(
            "They can still take it to the next stage until {}: if that is what they ask, reply with #formal to take it there.",
            day(end)
        )
    };
    let open_window = mail
        .window_ends
        .filter(|end| *end >= now && record.status == "resolved");
    match situation {
        Situation::Open => format!(
            "The case is open, at the {} stage, with a target date of {target}. {answer}",
            record.stage
        ),
        Situation::OnHold => format!(
            "The case is on hold ({}). {answer} To take it off hold, reply with #resume.",
            record.hold_reason.as_deref().unwrap_or("no reason recorded")
        ),
        Situation::Feedback => {
            let mut words = "This is their reply to our request for feedback on how the complaint was handled; it has not moved the case on.".to_string();
            if let Some(end) = open_window {
                words = format!("{words} {}", further(end));
            }
            words
        }
        Situation::Withdrawn => format!(
            "The complaint was withdrawn, so the case stays closed. If they want to raise the matter again, they can write to {} as a new complaint. {answer}",
            desk.config.mailbox.address
        ),
        Situation::TooLate => {
            let ended = match mail.window_ends {
                Some(t) => format!("ended on {}", day(t)),
                None => "has ended".to_string(),
            };
            format!(
                "We answered this complaint on {answered}, and the time the procedure gives to take it to the next stage {ended}, so the case has not moved on. {answer}"
            )
        }
        Situation::WindowOpen => {
            let mut words = format!(
                "We answered this complaint on {answered}. A reply to our response letter takes it to the next stage; this mail is not one (it answers another of our letters, or was sent before the response), so the case has not moved on."
            );
            if let Some(end) = mail.window_ends {
                words = format!("{words} {}", further(end));
            }
            format!("{words} {answer}")
        }
        Situation::NotComplainant => format!(
            "It does not come from the complainant's address, so it cannot take the case to the next stage. The case is {}, at the {} stage.",
            record.status, record.stage
        ),
        Situation::Exhausted => format!(
            "Every stage of our complaints procedure has been completed for this case. If they are asking to reopen the same issue, the procedure is that the Managing Director writes to tell them that the matter is closed. {answer}"
        ),
    }
}

/// The feedback timer of case `case_id` fired: the complainant is asked
/// how the complaint was handled (not after a withdrawal, nor without an
/// address to write to; the timer does not fire for a case that has moved
/// on to another stage meanwhile). Returns whether they were asked.
pub fn request_feedback(
    tx: &Transaction,
    desk: &Desk,
    case_id: i64,
    when: When,
) -> anyhow::Result<bool> {
    let current = db::load_case(tx, case_id)?;
    let record = db::case_record(tx, case_id)?;
    if current.outcome == Some(Outcome::Withdrawn)
        || !crate::adapters::outgoing::is_sendable(&record.reply_address)
    {
        return Ok(false);
    }
    let resolved = current
        .resolved_at
        .map(|t| long_date(desk.calendar.local_date(t)))
        .unwrap_or_default();
    casework::to_complainant(
        tx,
        desk,
        &record,
        FEEDBACK_REQUEST,
        json!({ "resolved_date": resolved }),
        when,
    )?;
    Ok(true)
}
