//! Carrying out what the state machine decided for an existing case, inside
//! the caller's transaction: letters to the complainant, emails to staff up
//! the ladder, timers, and the new state. Staff commands and the timers both
//! come through here.
//!
//! Letters to the complainant are made from the case's record and the few
//! values the event carries (a reason, a response written with `#reply` or
//! `#resolve`); nothing else staff wrote (notes, the quoted notification)
//! ever goes into them.

use super::letters::{self, long_date, LetterSpec};
use super::Desk;
use crate::adapters::db::{self, CaseRecord};
use crate::adapters::outgoing::AutoSubmitted;
use crate::core::case::{Case, Effect, Letter, Outcome, Transition};
use crate::core::ladder::rung_title;
use crate::core::procedure::{Answerer, Span};
use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::Transaction;
use serde_json::{json, Value};

/// What an event carries for its letters.
#[derive(Debug, Clone, Default)]
pub struct Details {
    /// Why (hold, extension).
    pub reason: String,
    /// The written response (`#resolve`).
    pub response: String,
    /// The target date before the event (extension letters).
    pub previous_target: Option<NaiveDate>,
    /// What the complainant wrote when their mail moved the case on (shown
    /// to staff only).
    pub complainant_message: String,
}

/// The times of one piece of work: when it happens (`at`; `redress tick
/// --at` can name another instant than the clock's) and when its mail is
/// queued (the clock: mail queued "in the future" would wait for then).
#[derive(Debug, Clone, Copy)]
pub struct When {
    pub at: DateTime<Utc>,
    pub queued: DateTime<Utc>,
}

impl When {
    pub fn now(now: DateTime<Utc>) -> When {
        When {
            at: now,
            queued: now,
        }
    }
}

/// Carries out `t` (the transition of case `case_id`): its letters, staff
/// emails and timers, then writes the new state.
pub fn carry_out(
    tx: &Transaction,
    desk: &Desk,
    case_id: i64,
    t: &Transition,
    details: &Details,
    when: When,
) -> anyhow::Result<()> {
    // A transition worked out before an earlier action of the same staff
    // mail acknowledged the case (a #reply handed to QC to post) keeps
    // that acknowledgement: within a stage it is never undone.
    let stored = db::load_case(tx, case_id)?;
    let mut next = t.case.clone();
    if next.stage == stored.stage && next.stage_opened_at == stored.stage_opened_at {
        next.acknowledged_at = next.acknowledged_at.or(stored.acknowledged_at);
    }
    db::update_case_state(tx, case_id, &next, when.at)?;
    let record = db::case_record(tx, case_id)?;
    for effect in &t.effects {
        match effect {
            Effect::SetDeadline { .. } | Effect::CancelDeadlines(_) => {
                letters::apply_deadline_effects(tx, case_id, std::slice::from_ref(effect), when.at)?
            }
            Effect::SendLetter(letter) => {
                complainant_letter(tx, desk, &record, &t.case, letter, details, when)?;
            }
            Effect::NotifyStaff { rung: 0 } => {
                for (name, address) in desk.stage_recipients(&record.department, &t.case.stage) {
                    staff_case_letter(
                        tx,
                        desk,
                        &record,
                        "assigned",
                        name,
                        address,
                        json!({
                            "assigned_by": format!("the {} stage of the procedure", t.case.stage),
                            "complainant_message": details.complainant_message,
                        }),
                        when,
                    )?;
                }
            }
            Effect::NotifyStaff { rung } => escalate(tx, desk, &record, &t.case, *rung, when)?,
        }
    }
    Ok(())
}

/// The greeting name of the complainant.
fn greeting(record: &CaseRecord) -> String {
    greeting_for(&record.complainant_name)
}

/// The name a letter greets the complainant by ("Dear {name},"): theirs,
/// or, when the mail gave none, "Sir or Madam" (not their address, which
/// may since have changed, and reads oddly).
pub fn greeting_for(name: &str) -> String {
    let name = name.trim();
    if name.is_empty() {
        "Sir or Madam".to_string()
    } else {
        name.to_string()
    }
}

fn date_text(d: Option<NaiveDate>) -> String {
    d.map(long_date).unwrap_or_default()
}

/// A letter to the complainant on template `template`, threaded under
/// their first mail.
pub fn to_complainant(
    tx: &Transaction,
    desk: &Desk,
    record: &CaseRecord,
    template: &str,
    data: Value,
    when: When,
) -> anyhow::Result<()> {
    complainant_mail(tx, desk, record, template, data, when, None)
}

/// [`to_complainant`], or with `into` rendered into that waiting outbox
/// row instead of a new one (the complainant's details changed before it
/// went).
fn complainant_mail(
    tx: &Transaction,
    desk: &Desk,
    record: &CaseRecord,
    template: &str,
    data: Value,
    when: When,
    into: Option<i64>,
) -> anyhow::Result<()> {
    let address = record.reply_address.as_str();
    let mut data = data;
    if let Value::Object(map) = &mut data {
        map.entry("complainant_name")
            .or_insert_with(|| Value::String(greeting(record)));
        map.entry("subject")
            .or_insert_with(|| Value::String(record.subject.clone()));
    }
    if !crate::adapters::outgoing::is_sendable(address) {
        db::append_event(
            tx,
            Some(record.id),
            when.at,
            "redress",
            "letter-not-sent",
            &json!({"kind": template, "reason": format!("no address to write to ({address:?})")}),
        )?;
        if address.is_empty() && recorded(tx, record.id)? {
            to_post(tx, desk, record, template, data, when)?;
        }
        return Ok(());
    }
    let first = db::first_message(tx, record.id)?;
    let parent = first.as_ref().map(|(id, _)| id.as_str());
    let references = parent.map(|p| vec![p.to_string()]).unwrap_or_default();
    let spec = LetterSpec {
        template,
        case_id: Some(record.id),
        reference: &record.reference,
        to_name: &record.complainant_name,
        to_address: address,
        auto_reply: false,
        auto_submitted: AutoSubmitted::Generated,
        in_reply_to: parent,
        references: &references,
        message_id: None,
        reply_to: None,
        data,
    };
    match into {
        Some(row) => letters::rerender(tx, desk, row, spec, when.queued)?,
        None => {
            letters::queue(tx, desk, spec, when.queued)?;
        }
    }
    Ok(())
}

/// Whether a case was recorded by the Quality Coordinator (`redress cases
/// open`) rather than opened by a mail.
fn recorded(tx: &Transaction, case_id: i64) -> anyhow::Result<bool> {
    Ok(db::first_message(tx, case_id)?
        .is_some_and(|(id, _)| id.starts_with(super::record::RECORD_ID_PREFIX)))
}

/// A letter for a complainant recorded without an email address (`redress
/// cases open` with no --email): rendered as it would have been sent, and
/// handed to the Quality Coordinator to post or read out by phone, so a
/// written response never silently stays in the store. An acknowledgement
/// handed over counts as given: its timer would only tell QC what QC is
/// already doing.
pub(super) fn to_post(
    tx: &Transaction,
    desk: &Desk,
    record: &CaseRecord,
    template: &str,
    data: Value,
    when: When,
) -> anyhow::Result<()> {
    let mut data = data;
    letters::common_values(desk, &record.reference, &mut data);
    let letter = desk.templates.render(template, &data)?;
    // One notice per letter: numbered by the letters not sent so far.
    let n = db::count_case_events(tx, record.id, "letter-not-sent")?;
    letters::queue(
        tx,
        desk,
        LetterSpec::notice_to_qc(
            desk,
            "letter-to-post",
            format!("to-post.{n}"),
            Some(record.id),
            &record.reference,
            json!({
                "kind": template,
                "complainant_name": record.complainant_name,
                "complainant_phone": record.complainant_phone,
                "letter_subject": letter.subject,
                "letter_text": letter.text,
            }),
        ),
        when.queued,
    )?;
    if template == "acknowledgement" {
        db::append_event(
            tx,
            Some(record.id),
            when.at,
            "redress",
            "acknowledgement-to-post",
            &json!({"reason": "no email address: the acknowledgement went to the Quality Coordinator to post"}),
        )?;
    }
    if letters::acknowledges(template) {
        letters::acknowledged_by(tx, desk, record.id, template, when.at, when.at)?;
    }
    Ok(())
}

/// Queues the acknowledgement of the case's current stage now (one that
/// could not go when the stage began: there was no address to write to),
/// or with `into` renders it again into that waiting row (the
/// complainant's details changed before it went).
pub fn acknowledge(
    tx: &Transaction,
    desk: &Desk,
    record: &CaseRecord,
    case: &Case,
    when: When,
    into: Option<i64>,
) -> anyhow::Result<()> {
    let (template, data) = letter_values(
        desk,
        case,
        &Letter::Acknowledgement,
        &Details::default(),
        when,
    )?;
    complainant_mail(tx, desk, record, template, data, when, into)
}

fn complainant_letter(
    tx: &Transaction,
    desk: &Desk,
    record: &CaseRecord,
    case: &Case,
    letter: &Letter,
    details: &Details,
    when: When,
) -> anyhow::Result<()> {
    let (template, data) = letter_values(desk, case, letter, details, when)?;
    to_complainant(tx, desk, record, template, data, when)
}

/// A letter's template and values.
fn letter_values(
    desk: &Desk,
    case: &Case,
    letter: &Letter,
    details: &Details,
    when: When,
) -> anyhow::Result<(&'static str, Value)> {
    let target = date_text(case.target_date);
    let (template, data) = match letter {
        Letter::Acknowledgement => (
            "acknowledgement",
            json!({
                // When the stage began: its complaint or request was
                // received then (at a later acknowledgement too).
                "received_date": long_date(desk.calendar.local_date(case.stage_opened_at)),
                "target_date": target,
                "next_steps": desk.config.next_steps(&case.stage.0),
                "stage": case.stage.0,
            }),
        ),
        Letter::Hold => (
            "hold",
            json!({
                "reason": details.reason,
                "until_date": date_text(case.hold.as_ref().and_then(|h| h.until)),
            }),
        ),
        Letter::Resume => ("resume", json!({ "target_date": target })),
        Letter::Extension => (
            "extension",
            json!({
                "reason": details.reason,
                "previous_target_date": date_text(details.previous_target),
                "target_date": target,
            }),
        ),
        Letter::Resolution(outcome) => (
            "resolution",
            resolution_data(desk, case, *outcome, details, when)?,
        ),
    };
    Ok((template, data))
}

/// The resolution letter's values: the appeal route and its deadline when
/// the procedure has a next stage (seed 000 §6: one calendar month).
fn resolution_data(
    desk: &Desk,
    case: &Case,
    outcome: Outcome,
    details: &Details,
    when: When,
) -> anyhow::Result<Value> {
    let procedure = &desk.procedure;
    let next = procedure.next_stage(&case.stage);
    let window = procedure.stage(&case.stage).and_then(|s| s.escalate_within);
    let (has_appeal, route, deadline) = match (next, window) {
        (Some(next), Some(window)) if outcome != Outcome::Withdrawn => {
            let due = window
                .due_from(when.at, &desk.calendar)?
                .date(&desk.calendar);
            let route = match next.answered_by {
                Answerer::ManagingDirector => "an appeal to the Managing Director".to_string(),
                _ => format!("the {} stage of our complaints procedure", next.name),
            };
            (true, route, long_date(due))
        }
        _ => (false, String::new(), String::new()),
    };
    Ok(json!({
        "outcome": outcome.as_str(),
        "response": details.response,
        "has_appeal": has_appeal,
        "appeal_route": route,
        "appeal_deadline": deadline,
        "external_route": desk.config.organisation.external_escalation.clone().unwrap_or_default(),
    }))
}

/// Who rung `rung` of the ladder is for a case of `department`: the
/// department head (QC when the department has none), its senior manager
/// (the Managing Director when none), the Managing Director.
pub fn rung_person(desk: &Desk, department: &str, rung: u8) -> (String, String) {
    let staff = &desk.config.staff;
    let dept = desk.config.department(department);
    let person = |p: &crate::config::Person| (p.name.clone(), p.address.clone());
    match rung {
        1 => dept
            .map(|d| person(&d.head))
            .unwrap_or_else(|| person(&staff.quality_coordinator)),
        2 => dept
            .and_then(|d| {
                staff
                    .senior_managers
                    .iter()
                    .find(|m| m.id == d.senior_manager)
            })
            .map(|m| (m.name.clone(), m.address.clone()))
            .unwrap_or_else(|| person(&staff.managing_director)),
        _ => person(&staff.managing_director),
    }
}

/// The date a case's complaint was received, as letters show it.
pub fn received_text(desk: &Desk, record: &CaseRecord) -> String {
    record
        .received_at
        .parse::<DateTime<Utc>>()
        .map(|t| long_date(desk.calendar.local_date(t)))
        .unwrap_or_default()
}

/// How a window reads in a letter.
fn window_text(span: Span) -> String {
    span.to_string()
}

/// A moment as staff letters show it: "Thursday 3 December 2026 at 14:12".
pub fn local_time_text(desk: &Desk, at: DateTime<Utc>) -> String {
    let local = at.with_timezone(&desk.calendar.time_zone());
    format!(
        "{} at {}",
        long_date(local.date_naive()),
        local.format("%H:%M")
    )
}

/// The case's audit log as staff letters show it (the last 20 entries).
pub fn history(tx: &Transaction, desk: &Desk, case_id: i64) -> anyhow::Result<Vec<Value>> {
    let events = db::case_events(tx, case_id)?;
    let skip = events.len().saturating_sub(20);
    Ok(events
        .into_iter()
        .skip(skip)
        .map(|(at, actor, kind, detail)| {
            let at = at
                .parse::<DateTime<Utc>>()
                .map(|t| {
                    t.with_timezone(&desk.calendar.time_zone())
                        .format("%d %b %Y %H:%M")
                        .to_string()
                })
                .unwrap_or(at);
            json!({"at": at, "who": actor, "what": describe(&kind, &detail)})
        })
        .collect())
}

/// One line for an audit entry.
fn describe(kind: &str, detail: &Value) -> String {
    let field = |k: &str| detail.get(k).and_then(Value::as_str).unwrap_or("");
    let short = |s: &str| {
        let one_line = s.split_whitespace().collect::<Vec<_>>().join(" ");
        if one_line.chars().count() > 160 {
            format!("{}...", one_line.chars().take(160).collect::<String>())
        } else {
            one_line
        }
    };
    match kind {
        "letter-queued" => format!("letter {} to {} queued", field("kind"), field("to")),
        "letter-sent" => format!("letter {} to {} sent", field("kind"), field("to")),
        "escalated" => format!("escalated to {} ({})", field("name"), field("title")),
        "note" => format!("internal note: {}", short(field("text"))),
        "message-received" | "staff-message" | "staff-message-unauthenticated" => {
            format!("{kind}: {}", short(field("subject")))
        }
        _ => {
            let text = field("reason");
            if text.is_empty() {
                kind.to_string()
            } else {
                format!("{kind}: {}", short(text))
            }
        }
    }
}

/// A letter to a staff member about a case: Reply-To and Message-ID carry
/// the token that lets their reply act on the case.
#[allow(clippy::too_many_arguments)]
pub fn staff_case_letter(
    tx: &Transaction,
    desk: &Desk,
    record: &CaseRecord,
    template: &str,
    name: &str,
    address: &str,
    extra: Value,
    when: When,
) -> anyhow::Result<()> {
    let body = db::first_message(tx, record.id)?
        .map(|(_, b)| b)
        .unwrap_or_default();
    let department = desk
        .config
        .department(&record.department)
        .map(|d| d.name.clone())
        .unwrap_or_else(|| record.department.clone());
    let mut data = json!({
        "recipient_name": name,
        "complainant_name": record.complainant_name,
        "complainant_email": record.complainant_email,
        "subject": record.subject,
        "department": department,
        "stage": record.stage,
        "received_date": received_text(desk, record),
        "target_date": date_text(record.target_date.as_deref().and_then(|d| d.parse().ok())),
        "body": body,
        "complainant_message": "",
        "commands_help": commands_help(),
    });
    if let (Value::Object(map), Value::Object(more)) = (&mut data, extra) {
        map.extend(more);
    }
    letters::queue(
        tx,
        desk,
        LetterSpec {
            template,
            case_id: Some(record.id),
            reference: &record.reference,
            to_name: name,
            to_address: address,
            auto_reply: false,
            auto_submitted: AutoSubmitted::Generated,
            in_reply_to: None,
            references: &[],
            message_id: None,
            reply_to: Some(desk.staff_reply_to(&record.reference, address)),
            data,
        },
        when.queued,
    )?;
    Ok(())
}

/// The help on staff commands that ends every staff email.
pub fn commands_help() -> String {
    crate::core::command::HELP.to_string()
}

/// Rung `rung` of the ladder: the email to that rung's person, saying who
/// was asked before and by when a response is expected.
fn escalate(
    tx: &Transaction,
    desk: &Desk,
    record: &CaseRecord,
    case: &Case,
    rung: u8,
    when: When,
) -> anyhow::Result<()> {
    let (name, address) = rung_person(desk, &record.department, rung);
    let cal = &desk.calendar;
    let window = desk.procedure.escalation_window;
    let respond_by = window.due_from(when.at, cal)?.instant(cal)?;
    let respond_by = if desk.procedure.escalate_in_working_time {
        cal.next_working_time(respond_by)?
    } else {
        respond_by
    };
    // Who was asked in this climb, from the audit log.
    let mut asked: Vec<Value> = Vec::new();
    for (at, _, kind, detail) in db::case_events(tx, record.id)? {
        if kind == "climb-stopped" {
            asked.clear();
        }
        if kind != "escalated" {
            continue;
        }
        let r = detail.get("rung").and_then(Value::as_u64).unwrap_or(0);
        if r == 1 {
            asked.clear();
        }
        if r < u64::from(rung) {
            asked.push(json!({
                "name": detail.get("name").and_then(Value::as_str).unwrap_or(""),
                "title": detail.get("title").and_then(Value::as_str).unwrap_or(""),
                "asked_at": at
                    .parse::<DateTime<Utc>>()
                    .map(|t| local_time_text(desk, t))
                    .unwrap_or(at),
            }));
        }
    }
    let today = cal.local_date(when.at);
    let overdue = case
        .target_date
        .map(|t| cal.working_days_between(t, today).max(0))
        .unwrap_or(0);
    db::append_event(
        tx,
        Some(record.id),
        when.at,
        "redress",
        "escalated",
        &json!({"rung": rung, "name": name, "to": address, "title": rung_title(rung)}),
    )?;
    let history = history(tx, desk, record.id)?;
    staff_case_letter(
        tx,
        desk,
        record,
        &format!("escalation-{rung}"),
        &name,
        &address,
        json!({
            "rung": rung,
            "rung_title": rung_title(rung),
            "asked_before": asked,
            "days_overdue": overdue,
            "respond_by": local_time_text(desk, respond_by),
            "window": window_text(window),
            "history": history,
        }),
        when,
    )
}
