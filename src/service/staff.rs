//! Mail from staff: replies that act on a case, and everything else.
//!
//! A mail is a staff action only when BOTH hold (DESIGN.md, "Only staff act
//! as staff"):
//! - its From is a configured staff address, and
//! - it carries a token for that case made for that address: in the
//!   Message-IDs it answers (In-Reply-To, References), or in the
//!   plus-address it was sent to. Tokens are keyed hashes (see
//!   [`crate::core::token`]) that only the recipient of our mail has.
//!
//! A token made for the desk (a notice about no case, such as a quarantined
//! mail) proves the reply is its recipient's, but there is no case to act
//! on: it is recorded, and nobody is alarmed.
//!
//! Anything else from a staff address is recorded as a plain message (on
//! the case it refers to, if any) with a note that it was not
//! authenticated, and QC is told. It changes nothing.
//!
//! An authenticated reply is read for commands ([`crate::core::command`]).
//! Every command is tried on the case first; if any is not understood or
//! cannot apply, nothing changes and the sender gets the list back.
//! Otherwise every command is carried out in the caller's transaction, and
//! any response stops the escalation climb.

use super::casework::{self, Details, When};
use super::intake::Processed;
use super::letters::{self, LetterSpec};
use super::Desk;
use crate::adapters::db;
use crate::adapters::outgoing::AutoSubmitted;
use crate::core::case::{self, Case, Context, Event, Status, Transition};
use crate::core::command::{self, Command, ExtendTo, ParsedReply, Problem};
use crate::core::message::Inbound;
use crate::core::threading::ThreadFacts;
use crate::core::token;
use chrono::{DateTime, Utc};
use rusqlite::Transaction;
use serde_json::json;

/// What a staff mail's tokens prove.
enum Proof {
    /// It answers our mail about this case, sent to its sender; `notice`
    /// when only by a notice to QC (about forged mail, a failed letter),
    /// which is no response to the case by itself.
    Case {
        case_id: i64,
        notice: bool,
    },
    /// It answers a notice about no case (a quarantined mail) sent to its
    /// sender: theirs, but there is nothing to act on.
    Desk,
    None,
}

/// The first token a staff mail carries that was made for a case and this
/// sender; else whether one made for the desk and this sender is there.
fn proof(tx: &Transaction, desk: &Desk, m: &Inbound) -> anyhow::Result<Proof> {
    let cfg = &desk.config;
    let domain = cfg.message_id_domain();
    let ids = || {
        m.in_reply_to
            .iter()
            .chain(&m.references)
            .map(|id| id.trim_matches(['<', '>']))
    };
    let rcpts = m.to.iter().chain(&m.cc).map(|a| a.address.as_str());
    let mut about_no_case = false;
    for (reference, t) in token::carried(ids(), rcpts, domain, &cfg.mailbox.address) {
        if token::verify(&desk.secret, &reference, m.from_address(), t) {
            if reference == token::DESK {
                about_no_case = true;
            } else if let Some(case_id) = db::case_id(tx, &reference)? {
                // Carried by notices alone (a plus-address is never a
                // notice's: they have no Reply-To of their own).
                let carriers: Vec<&str> = ids()
                    .filter(|id| token::parse_message_id(id, domain).is_some_and(|(_, x)| x == t))
                    .collect();
                let notice = !carriers.is_empty()
                    && carriers.iter().all(|id| token::is_notice_message_id(id))
                    && !m.to.iter().chain(&m.cc).any(|a| {
                        token::parse_plus_address(&a.address, &cfg.mailbox.address)
                            .is_some_and(|(_, x)| x == t)
                    });
                return Ok(Proof::Case { case_id, notice });
            }
        }
    }
    Ok(if about_no_case {
        Proof::Desk
    } else {
        Proof::None
    })
}

/// Handles mail from staff member `name`; returns the case it was recorded
/// on and what became of it. `automatic` is the classification of mail
/// that looks automatic on weak evidence and carries no command (an
/// out-of-office reply a mail client did not mark clearly): it is recorded
/// where it belongs, and is no response and no forgery.
#[allow(clippy::too_many_arguments)]
pub fn handle(
    tx: &Transaction,
    desk: &Desk,
    row: i64,
    m: &Inbound,
    name: &str,
    facts: &ThreadFacts,
    automatic: Option<&str>,
    now: DateTime<Utc>,
) -> anyhow::Result<(Option<i64>, Processed)> {
    let proof = proof(tx, desk, m)?;
    if let Some(classification) = automatic {
        let case_id = match proof {
            Proof::Case { case_id, .. } => Some(case_id),
            Proof::Desk => None,
            Proof::None => referred_case(facts),
        };
        db::append_event(
            tx,
            case_id,
            now,
            m.from_address(),
            "robot-message",
            &json!({"message_id": m.message_id, "subject": m.subject, "classification": classification, "from_staff": name}),
        )?;
        let reference = match case_id {
            Some(id) => Some(db::case_reference(tx, id)?),
            None => None,
        };
        return Ok((
            case_id,
            Processed::Robot {
                classification: classification.to_string(),
                reference,
            },
        ));
    }
    match proof {
        Proof::Case { case_id, notice } => act(tx, desk, m, name, case_id, !notice, now),
        Proof::Desk => {
            db::append_event(
                tx,
                None,
                now,
                m.from_address(),
                "staff-message",
                &json!({"message_id": m.message_id, "subject": m.subject, "about": "a notice about no case"}),
            )?;
            tracing::info!(from = %m.from_address(), "staff reply to a notice about no case: recorded");
            Ok((
                None,
                Processed::Staff {
                    reference: None,
                    authenticated: true,
                    commands: Vec::new(),
                },
            ))
        }
        Proof::None => unauthenticated(tx, desk, row, m, facts, now),
    }
}

/// The case a mail refers to without proving anything: a reference in
/// its subject or plus-address, else a Message-ID it answers.
fn referred_case(facts: &ThreadFacts) -> Option<i64> {
    facts
        .token_case
        .as_ref()
        .map(|t| t.case_id)
        .or(facts.referenced_case)
}

fn unauthenticated(
    tx: &Transaction,
    desk: &Desk,
    row: i64,
    m: &Inbound,
    facts: &ThreadFacts,
    now: DateTime<Utc>,
) -> anyhow::Result<(Option<i64>, Processed)> {
    let case_id = referred_case(facts);
    let reference = match case_id {
        Some(id) => db::case_reference(tx, id)?,
        None => String::new(),
    };
    let reason = "it does not answer a notification sent to that address about this case (it carries no valid token), so it may not be from them";
    db::append_event(
        tx,
        case_id,
        now,
        m.from_address(),
        "staff-message-unauthenticated",
        &json!({"message_id": m.message_id, "subject": m.subject, "reason": reason}),
    )?;
    letters::queue_notice(
        tx,
        desk,
        LetterSpec::notice_to_qc(
            desk,
            "staff-unauthenticated",
            format!("unauthenticated.{row}"),
            case_id,
            &reference,
            json!({
                "sender": m.from_address(),
                "subject": m.subject,
                "received_date": letters::long_date(desk.calendar.local_date(now)),
                "reason": reason,
                "case": reference,
            }),
        ),
        now,
    )?;
    tracing::warn!(from = %m.from_address(), case = %reference, "staff mail without a valid token: recorded, nothing changed");
    Ok((
        case_id,
        Processed::Staff {
            reference: (!reference.is_empty()).then_some(reference),
            authenticated: false,
            commands: Vec::new(),
        },
    ))
}

/// One command, tried: the transition it makes (state commands) and the
/// values its letters need.
struct Planned {
    command: Command,
    transition: Option<Transition>,
    details: Details,
}

/// Tries every command on the case in order; the problems, if any.
fn plan(
    desk: &Desk,
    case: &Case,
    parsed: &ParsedReply,
    now: DateTime<Utc>,
) -> Result<Vec<Planned>, Vec<Problem>> {
    let ctx = Context {
        procedure: &desk.procedure,
        calendar: &desk.calendar,
    };
    let cal = &desk.calendar;
    let today = cal.local_date(now);
    let mut current = case.clone();
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for c in &parsed.commands {
        let problem = |why: String| Problem {
            line: c.name().to_string(),
            why,
        };
        let mut details = Details {
            previous_target: current.target_date,
            ..Details::default()
        };
        let event = match c {
            Command::Reply | Command::Note | Command::External { .. } => None,
            Command::Assign { department } => {
                if desk.config.find_department(department).is_none() {
                    let known: Vec<&str> = desk
                        .config
                        .staff
                        .departments
                        .iter()
                        .map(|d| d.id.as_str())
                        .collect();
                    problems.push(problem(format!(
                        "there is no department {department:?}; the departments are {}",
                        known.join(", ")
                    )));
                }
                None
            }
            // The formal stage follows the first (informal) one at any
            // time; a later stage once the case is answered (the
            // complainant asking to take it further in a mail that is not
            // a reply to the response, which would have done it itself).
            Command::Formal => {
                let first = desk.procedure.first_stage().map(|s| &s.name);
                if first == Some(&current.stage) || current.status == Status::Resolved {
                    Some(Event::NextStage)
                } else {
                    problems.push(problem(format!(
                        "the case is at the {} stage and not yet answered: #formal takes a case on from the first stage, or from a later one once it is resolved",
                        current.stage
                    )));
                    None
                }
            }
            Command::Hold { reason, until } => {
                details.reason = reason.clone();
                Some(Event::Hold {
                    reason: reason.clone(),
                    until: *until,
                })
            }
            Command::Resume => Some(Event::Resume),
            Command::Acknowledged { .. } => match current.acknowledged_at {
                Some(at) => {
                    problems.push(problem(format!(
                        "the case was already acknowledged on {}: there is nothing to record (a plain reply is a note)",
                        letters::long_date(cal.local_date(at))
                    )));
                    None
                }
                None => Some(Event::Acknowledged),
            },
            Command::Extend { to, reason } => {
                details.reason = reason.clone();
                let to = match *to {
                    ExtendTo::Date(d) => Ok(d),
                    // N more working days on the target date, or on today
                    // when the target date has already passed.
                    ExtendTo::WorkingDays(n) => {
                        let base = current.target_date.unwrap_or(today).max(today);
                        cal.add_working_days(base, n)
                    }
                };
                match to {
                    Ok(to) => Some(Event::Extend {
                        to,
                        reason: reason.clone(),
                    }),
                    Err(e) => {
                        problems.push(problem(e.to_string()));
                        None
                    }
                }
            }
            Command::Resolve { outcome } => {
                details.response = parsed.text.clone();
                Some(Event::Resolve { outcome: *outcome })
            }
        };
        let transition = match event {
            Some(e) => match case::apply(&current, &e, now, &ctx) {
                Ok(t) => {
                    current = t.case.clone();
                    Some(t)
                }
                Err(e) => {
                    problems.push(problem(e.to_string()));
                    None
                }
            },
            None => None,
        };
        out.push(Planned {
            command: c.clone(),
            transition,
            details,
        });
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// Why text meant for the complainant may not go: it carries an internal
/// note of the case or the quoted staff email (see
/// [`command::internal_text_in`]).
fn leaks_internal(tx: &Transaction, case_id: i64, text: &str) -> anyhow::Result<Option<String>> {
    let notes: Vec<String> = db::case_events(tx, case_id)?
        .into_iter()
        .filter(|(_, _, kind, _)| kind == "note")
        .filter_map(|(_, _, _, detail)| {
            detail
                .get("text")
                .and_then(|t| t.as_str())
                .map(str::to_string)
        })
        .collect();
    let notes: Vec<&str> = notes.iter().map(String::as_str).collect();
    Ok(command::internal_text_in(text, &notes).map(str::to_string))
}

/// Carries out an authenticated reply on case `case_id`. `responds`: the
/// reply answers our mail about the case (not only a notice to QC), so
/// even a plain note is a response that stops the climb; otherwise only
/// commands that do something (not `#note`) are.
fn act(
    tx: &Transaction,
    desk: &Desk,
    m: &Inbound,
    name: &str,
    case_id: i64,
    responds: bool,
    now: DateTime<Utc>,
) -> anyhow::Result<(Option<i64>, Processed)> {
    let sender = m.from_address().to_ascii_lowercase();
    let case = db::load_case(tx, case_id)?;
    let reference = case.reference.to_string();
    let today = desk.calendar.local_date(now);
    let mut parsed = command::parse_reply(&m.body_text, today);
    if parsed.is_ok() && parsed.text_goes_to_complainant() {
        if let Some(why) = leaks_internal(tx, case_id, &parsed.text)? {
            parsed.problems.push(Problem {
                line: "(the text of the response)".into(),
                why,
            });
        }
    }
    // The reasons of #hold and #extend are quoted in their letters.
    let reasons: Vec<(&str, String)> = parsed
        .commands
        .iter()
        .filter_map(|c| match c {
            Command::Hold { reason, .. } => Some(("#hold", reason.clone())),
            Command::Extend { reason, .. } => Some(("#extend", reason.clone())),
            _ => None,
        })
        .collect();
    for (name, reason) in reasons {
        if let Some(why) = leaks_internal(tx, case_id, &reason)? {
            parsed.problems.push(Problem {
                line: format!("{name} {reason}"),
                why: format!("{why}; the reason is quoted in the letter to the complainant"),
            });
        }
    }
    let planned = if parsed.is_ok() {
        plan(desk, &case, &parsed, now)
    } else {
        Err(parsed.problems.clone())
    };
    let planned = match planned {
        Ok(p) => p,
        Err(problems) => {
            refuse(tx, desk, m, name, case_id, &reference, &problems, now)?;
            return Ok((
                Some(case_id),
                Processed::Staff {
                    reference: Some(reference),
                    authenticated: true,
                    commands: Vec::new(),
                },
            ));
        }
    };
    let when = When::now(now);
    let names: Vec<String> = planned
        .iter()
        .map(|p| p.command.name().to_string())
        .collect();
    // The text is a note unless it is the response.
    if !parsed.text_goes_to_complainant()
        && (!parsed.text.trim().is_empty() || parsed.commands.is_empty())
    {
        db::append_event(
            tx,
            Some(case_id),
            now,
            &sender,
            "note",
            &json!({"text": parsed.text, "message_id": m.message_id, "by": name}),
        )?;
    }
    for p in &planned {
        let detail = match &p.command {
            Command::Assign { department } => json!({"department": department}),
            Command::Hold { reason, until } => {
                json!({"reason": reason, "until": until.map(|d| d.to_string())})
            }
            Command::Extend { reason, .. } => json!({
                "reason": reason,
                "to": p.transition.as_ref().and_then(|t| t.case.target_date).map(|d| d.to_string()),
            }),
            Command::Resolve { outcome } => {
                json!({"outcome": outcome.as_str(), "response": parsed.text})
            }
            Command::Reply => json!({"response": parsed.text}),
            Command::External { body } => json!({"body": body}),
            Command::Acknowledged { how } => json!({"how": how}),
            Command::Note | Command::Formal | Command::Resume => json!({}),
        };
        if !matches!(p.command, Command::Note) {
            db::append_event(
                tx,
                Some(case_id),
                now,
                &sender,
                &format!("staff-{}", &p.command.name()[1..]),
                &detail,
            )?;
        }
        if let Some(t) = &p.transition {
            casework::carry_out(tx, desk, case_id, t, &p.details, when)?;
        }
        match &p.command {
            Command::Reply => {
                let record = db::case_record(tx, case_id)?;
                let target = record
                    .target_date
                    .as_deref()
                    .and_then(|d| d.parse().ok())
                    .map(letters::long_date)
                    .unwrap_or_default();
                casework::to_complainant(
                    tx,
                    desk,
                    &record,
                    "response",
                    json!({"response": parsed.text, "target_date": target}),
                    when,
                )?;
            }
            Command::Assign { department } => {
                // plan() has checked that the department exists.
                let Some(d) = desk.config.find_department(department) else {
                    continue;
                };
                db::set_department(tx, case_id, &d.id, now)?;
                let record = db::case_record(tx, case_id)?;
                casework::staff_case_letter(
                    tx,
                    desk,
                    &record,
                    "assigned",
                    &d.head.name,
                    &d.head.address,
                    json!({"assigned_by": name}),
                    when,
                )?;
            }
            _ => {}
        }
    }
    // Any response stops the climb.
    let acted = planned.iter().any(|p| !matches!(p.command, Command::Note));
    let current = db::load_case(tx, case_id)?;
    if current.escalation_rung > 0 && (responds || acted) {
        let ctx = Context {
            procedure: &desk.procedure,
            calendar: &desk.calendar,
        };
        if let Ok(t) = case::apply(&current, &Event::StaffResponded, now, &ctx) {
            db::append_event(
                tx,
                Some(case_id),
                now,
                &sender,
                "climb-stopped",
                &json!({"rung": current.escalation_rung, "by": name}),
            )?;
            casework::carry_out(tx, desk, case_id, &t, &Details::default(), when)?;
        }
    }
    tracing::info!(case = %reference, by = %sender, commands = ?names, "staff action");
    Ok((
        Some(case_id),
        Processed::Staff {
            reference: Some(reference),
            authenticated: true,
            commands: names,
        },
    ))
}

/// Nothing changes: the sender gets the list of what was not understood.
#[allow(clippy::too_many_arguments)]
fn refuse(
    tx: &Transaction,
    desk: &Desk,
    m: &Inbound,
    name: &str,
    case_id: i64,
    reference: &str,
    problems: &[Problem],
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    db::append_event(
        tx,
        Some(case_id),
        now,
        m.from_address(),
        "staff-command-refused",
        &json!({
            "message_id": m.message_id,
            "reason": problems.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("; "),
        }),
    )?;
    let refs: Vec<String> = m
        .references
        .iter()
        .cloned()
        .chain(std::iter::once(m.message_id.clone()))
        .collect();
    letters::queue(
        tx,
        desk,
        LetterSpec {
            template: "command-not-understood",
            case_id: Some(case_id),
            reference,
            to_name: name,
            to_address: m.from_address(),
            auto_reply: false,
            auto_submitted: AutoSubmitted::Replied,
            in_reply_to: Some(&m.message_id),
            references: &refs,
            message_id: None,
            reply_to: Some(desk.staff_reply_to(reference, m.from_address())),
            data: json!({
                "recipient_name": name,
                "subject": m.subject,
                "problems": problems.iter().map(|p| json!({"line": p.line, "why": p.why})).collect::<Vec<_>>(),
                "commands_help": casework::commands_help(),
            }),
        },
        now,
    )?;
    tracing::info!(case = %reference, by = %m.from_address(), "staff command not understood; nothing changed");
    Ok(())
}
