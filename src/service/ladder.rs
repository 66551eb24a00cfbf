//! The timers: one public [`tick`] that acts on every timer due at an
//! instant, in one transaction.
//!
//! A tick is idempotent: a timer it acts on is marked fired in the same
//! transaction as the letters it queues, so a second tick for the same
//! instant finds nothing due. A timer that must wait for working time is
//! moved on to the next working morning instead. A dry run does all the
//! same work and rolls it back, reporting what would have been sent.

use super::casework::{self, Details, When};
use super::letters::{self, LetterSpec};
use super::Desk;
use crate::adapters::db::{self, Store};
use crate::core::case::{self, Context, DeadlineKind, Event};
use crate::core::ladder::{self, DueAction};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;

/// One thing a tick did (or, in a dry run, would do).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TickAction {
    pub reference: String,
    /// `send` (a letter), `wait` (a timer waiting for working time),
    /// `close` (a case closed when its window ran out), `resume`, `note`.
    pub action: String,
    /// The letter's kind (its template), or the timer's kind.
    pub kind: String,
    /// The recipient of a letter.
    pub to: String,
    /// The letter's subject, or what the action means.
    pub subject: String,
    /// When the timer was due, or when a waiting timer will act.
    pub at: String,
}

/// Acts on every timer due at `at`. `queued` is the clock's time (letters
/// are queued then); with `dry_run`, nothing is changed.
pub fn tick(
    store: &mut Store,
    desk: &Desk,
    at: DateTime<Utc>,
    queued: DateTime<Utc>,
    dry_run: bool,
) -> anyhow::Result<Vec<TickAction>> {
    let when = When {
        at,
        queued: queued.min(at),
    };
    let ctx = Context {
        procedure: &desk.procedure,
        calendar: &desk.calendar,
    };
    let tx = store.transaction()?;
    let first_outbox = db::next_outbox_id(&tx)?;
    let mut actions = Vec::new();
    for due in db::due_deadlines(&tx, at)? {
        let Some(kind) = DeadlineKind::from_key(&due.kind) else {
            tracing::warn!(kind = %due.kind, "unknown timer kind; dropped");
            db::fire_deadline(&tx, due.id, at)?;
            continue;
        };
        let case = db::load_case(&tx, due.case_id)?;
        let reference = case.reference.to_string();
        let note = |action: &str, subject: String, when_at: DateTime<Utc>| TickAction {
            reference: reference.clone(),
            action: action.to_string(),
            kind: due.kind.clone(),
            to: String::new(),
            subject,
            at: db::ts(when_at),
        };
        match ladder::on_due(&case, kind, at, &ctx)? {
            DueAction::Wait(until) => {
                db::defer_deadline(&tx, due.id, until)?;
                actions.push(note(
                    "wait",
                    format!("waits for working time ({} timer)", due.kind),
                    until,
                ));
            }
            DueAction::Spent => db::fire_deadline(&tx, due.id, at)?,
            DueAction::Apply(event) => {
                db::fire_deadline(&tx, due.id, at)?;
                let t = match case::apply(&case, &event, at, &ctx) {
                    Ok(t) => t,
                    Err(e) => {
                        // Not a reason to stop every other timer.
                        tracing::warn!(case = %reference, timer = %due.kind, "timer: {e}");
                        db::append_event(
                            &tx,
                            Some(due.case_id),
                            at,
                            "redress",
                            "timer-failed",
                            &json!({"timer": due.kind, "reason": e.to_string()}),
                        )?;
                        continue;
                    }
                };
                let (kind_name, what) = match &event {
                    Event::Escalate { rung } => ("escalate", format!("rung {rung}")),
                    Event::Resume => ("resume", "the hold ended".to_string()),
                    Event::Close => ("close", "the window to take it further ended".to_string()),
                    _ => ("event", String::new()),
                };
                if !matches!(event, Event::Escalate { .. }) {
                    db::append_event(
                        &tx,
                        Some(due.case_id),
                        at,
                        "redress",
                        match event {
                            Event::Resume => "resumed",
                            Event::Close => "closed",
                            _ => "timer",
                        },
                        &json!({"timer": due.kind, "reason": what}),
                    )?;
                }
                casework::carry_out(&tx, desk, due.case_id, &t, &Details::default(), when)?;
                actions.push(note(kind_name, what, at));
            }
            DueAction::AcknowledgementOverdue => {
                db::fire_deadline(&tx, due.id, at)?;
                let record = db::case_record(&tx, due.case_id)?;
                let stage_opened = db::load_case(&tx, due.case_id)?.stage_opened_at;
                let queued = db::acknowledgement_waiting(&tx, due.case_id, stage_opened)?.is_some();
                let has_address = crate::adapters::outgoing::is_sendable(&record.reply_address);
                letters::queue_notice(
                    &tx,
                    desk,
                    LetterSpec::notice_to_qc(
                        desk,
                        "acknowledgement-overdue",
                        format!("ack-overdue.{}", due.id),
                        Some(due.case_id),
                        &record.reference,
                        json!({
                            "complainant_name": record.complainant_name,
                            "complainant_email": record.complainant_email,
                            "subject": record.subject,
                            "received_date": casework::received_text(desk, &record),
                            "acknowledgement_queued": queued,
                            "has_address": has_address,
                        }),
                    ),
                    when.queued,
                )?;
                db::append_event(
                    &tx,
                    Some(due.case_id),
                    at,
                    "redress",
                    "acknowledgement-overdue",
                    &json!({"reason": "the acknowledgement has not gone out in time"}),
                )?;
            }
            DueAction::Feedback => {
                db::fire_deadline(&tx, due.id, at)?;
                let asked = super::followup::request_feedback(&tx, desk, due.case_id, when)?;
                db::append_event(
                    &tx,
                    Some(due.case_id),
                    at,
                    "redress",
                    "feedback-due",
                    &json!({"reason": if asked {
                        "the complainant is asked for feedback on how the complaint was handled"
                    } else {
                        "no feedback request: the complaint was withdrawn, or there is no address to write to"
                    }}),
                )?;
                if !asked {
                    actions.push(note(
                        "note",
                        "no feedback request (withdrawn, or no address)".into(),
                        at,
                    ));
                }
            }
        }
    }
    for (reference, kind, to, subject) in db::outbox_since(&tx, first_outbox)? {
        actions.push(TickAction {
            reference,
            action: "send".into(),
            kind,
            to,
            subject,
            at: db::ts(at),
        });
    }
    if dry_run {
        tx.rollback()?;
    } else {
        tx.commit()?;
    }
    Ok(actions)
}
