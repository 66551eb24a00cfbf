//! Incoming mail, from raw bytes to committed decisions, a batch (a fetched
//! chunk) at a time.
//!
//! Order of work (and why): the raw bytes are stored first, in a transaction
//! with the Message-ID dedupe, so nothing is ever lost and a re-fetch never
//! doubles anything; then each mail is parsed, classified and matched, the
//! core decides, and every consequence (case, events, outbox rows,
//! deadlines, the IMAP checkpoint) is committed in ONE transaction, that
//! of its batch. A crash between the two leaves stored, unprocessed rows
//! that the next run finishes. Only after that commit may the caller flag
//! the mails on the server.
//!
//! A mail that cannot be parsed or handled is quarantined: kept raw, with the
//! reason, and QC is told once. It never stalls the mailbox, and its failure
//! undoes only its own work (the batch is done again with a savepoint per
//! mail). The store's own trouble
//! (busy, full) is not the mail's: the batch stops there, uncommitted mail
//! is not flagged, and it is taken again later.

use super::letters::{self, long_date, LetterSpec, Render};
use super::Desk;
use crate::adapters::db::{self, MessageFacts, NewCase, RawStored, Source, Store};
use crate::adapters::mail_parse;
use crate::adapters::outgoing::AutoSubmitted;
use crate::core::case::{self, CaseRef, Context, Effect, Letter};
use crate::core::classify::{classify, Classification};
use crate::core::intake::{self, IntakeDecision, SenderFacts};
use crate::core::message::{synthetic_message_id, Inbound};
use crate::core::procedure::StageName;
use crate::core::threading::{self, ThreadDecision, ThreadFacts, TokenCase};
use chrono::{DateTime, Duration, Utc};
use rusqlite::Transaction;
use serde_json::json;
use sha2::Digest as _;

/// What became of a mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Processed {
    /// A new case; `acknowledged` is false past the reply cap.
    Opened {
        reference: String,
        acknowledged: bool,
    },
    /// Added to an existing case.
    Joined { reference: String },
    /// A reply to the written response, in time: the case went on to
    /// `stage`.
    TakenFurther { reference: String, stage: String },
    /// A robot's mail, recorded (on a case when it refers to one).
    Robot {
        classification: String,
        reference: Option<String>,
    },
    /// From a configured staff address: an action on the case when it
    /// carries a valid token (`authenticated`), else recorded only.
    Staff {
        reference: Option<String>,
        authenticated: bool,
        /// The commands carried out ("#extend"...); empty when refused.
        commands: Vec<String>,
    },
    /// Already processed (same Message-ID).
    Duplicate,
    /// Kept aside with the reason; QC told.
    Quarantined { reason: String },
}

/// Where the mail came from and when it arrived.
#[derive(Debug, Clone, Default)]
pub struct Arrival<'a> {
    pub source: Source<'a>,
    /// The server's INTERNALDATE, when known: the complaint's receipt time.
    pub received: Option<DateTime<Utc>>,
}

/// One mail handed to intake: its raw bytes and where it came from.
#[derive(Debug, Clone)]
pub struct Incoming<'a> {
    pub raw: &'a [u8],
    pub arrival: Arrival<'a>,
}

/// What became of a batch of mails.
#[derive(Debug, Default)]
pub struct BatchOutcome {
    /// The outcomes of the mails whose processing committed, in order: a
    /// prefix of the batch (all of it unless `error` is set). Only these may
    /// be flagged on the server.
    pub done: Vec<Processed>,
    /// What stopped the batch early (the store's trouble, not a bad mail:
    /// a bad mail is quarantined and the batch goes on). The mails after
    /// the prefix are taken again on the next round.
    pub error: Option<anyhow::Error>,
}

/// Processes one raw mail at `now` (a batch of one).
pub fn process(
    store: &mut Store,
    desk: &Desk,
    raw: &[u8],
    arrival: &Arrival,
    now: DateTime<Utc>,
) -> anyhow::Result<Processed> {
    let mut outcome = process_batch(
        store,
        desk,
        &[Incoming {
            raw,
            arrival: arrival.clone(),
        }],
        now,
    );
    match (outcome.error.take(), outcome.done.pop()) {
        (Some(e), _) => Err(e),
        (None, Some(p)) => Ok(p),
        (None, None) => anyhow::bail!("intake finished no mail"),
    }
}

/// Processes a batch of mails (a fetched chunk) at `now`, in two
/// transactions whatever its size:
///
/// 1. the raw bytes of every mail, with the Message-ID dedupe: from here
///    on nothing is lost;
/// 2. every decision, each mail in its own savepoint, so that a mail that
///    cannot be handled rolls back only its own work and is quarantined
///    while the others commit; the IMAP checkpoint goes with them.
///
/// A crash between the two leaves stored, unprocessed rows that the next
/// run finishes. One transaction per batch rather than per mail is what
/// makes a backlog fast: SQLite writes every page a transaction touched to
/// the WAL at its commit, and the mails of a batch share most of them.
pub fn process_batch(
    store: &mut Store,
    desk: &Desk,
    mails: &[Incoming],
    now: DateTime<Utc>,
) -> BatchOutcome {
    let mut outcome = BatchOutcome::default();
    let parsed: Vec<Parsed> = mails.iter().map(|m| parse(m.raw)).collect();
    // The receipt time is the server's INTERNALDATE (never in the future).
    let received: Vec<DateTime<Utc>> = mails
        .iter()
        .map(|m| m.arrival.received.filter(|r| *r <= now).unwrap_or(now))
        .collect();
    let stored = match store_raws(store, mails, &parsed, &received) {
        Ok(s) => s,
        Err(e) => {
            outcome.error = Some(e);
            return outcome;
        }
    };
    // Savepoints cost a copy of every page a mail touches, so the batch is
    // first tried without them; only when a mail fails is it done again
    // carefully, each mail in its own savepoint. Both give the same result.
    let mut careful = false;
    loop {
        let tx = match store.transaction() {
            Ok(tx) => tx,
            Err(e) => {
                outcome.error = Some(e);
                return outcome;
            }
        };
        let decided = if careful {
            decide_batch(&tx, desk, mails, &parsed, &stored, &received, now, None)
        } else if mails.len() < DEFER_LETTERS_FROM {
            decide_batch(
                &tx,
                desk,
                mails,
                &parsed,
                &stored,
                &received,
                now,
                Some(Render::Now),
            )
        } else {
            // The letters are rendered on a helper thread meanwhile.
            letters::Deferred::run(desk, |deferred| {
                let decided = decide_batch(
                    &tx,
                    desk,
                    mails,
                    &parsed,
                    &stored,
                    &received,
                    now,
                    Some(Render::Later(deferred)),
                )?;
                deferred.finish(&tx).map_err(|_| Redo)?;
                Ok(decided)
            })
        };
        let (done, error) = match decided {
            Ok(decided) => decided,
            Err(Redo) => {
                drop(tx);
                careful = true;
                continue;
            }
        };
        if tx.is_autocommit() {
            // SQLite rolled the transaction back on an error (it may on a
            // full disk or an I/O error): nothing of it happened, and
            // nothing more may be written outside it.
            outcome.error =
                Some(error.unwrap_or_else(|| anyhow::anyhow!("the store rolled the batch back")));
            return outcome;
        }
        let committed = advance_checkpoints(&tx, &mails[..done.len()], now)
            .and_then(|()| tx.commit().map_err(anyhow::Error::from));
        match committed {
            Ok(()) => {
                for (i, p) in done.iter().enumerate() {
                    if let Processed::Quarantined { reason } = p {
                        let (message_id, _) = stored_message_id(mails[i].raw, &parsed[i]);
                        tracing::warn!(message_id = %message_id, reason = %reason, "mail quarantined");
                    }
                }
                outcome.done = done;
                outcome.error = error;
            }
            Err(e) => {
                // Nothing of this transaction happened: the stored rows stay
                // unprocessed and are finished on the next round.
                outcome.error = Some(error.unwrap_or(e));
            }
        }
        return outcome;
    }
}

/// Batches from this size on have their letters rendered on a helper
/// thread; smaller ones (mail arriving one by one) are not worth a thread.
const DEFER_LETTERS_FROM: usize = 16;

/// A mail failed in a batch tried without savepoints: roll it all back and
/// do it again carefully.
struct Redo;

/// Decides every stored mail of a batch inside `tx`; returns the outcomes
/// of a prefix of the batch (all of it unless the error is set: the
/// store's trouble, not a bad mail's). With `optimistic`, the batch is
/// tried without savepoints and its letters rendered as that says (any
/// failure asks for a careful redo); without, each mail has its savepoint
/// and its letters are rendered at once.
#[allow(clippy::too_many_arguments)]
fn decide_batch(
    tx: &Transaction,
    desk: &Desk,
    mails: &[Incoming],
    parsed: &[Parsed],
    stored: &[RawStored],
    received: &[DateTime<Utc>],
    now: DateTime<Utc>,
    optimistic: Option<Render>,
) -> Result<(Vec<Processed>, Option<anyhow::Error>), Redo> {
    // Rows finished in this batch: the same mail twice in one batch is
    // processed once.
    let mut finished = std::collections::HashSet::new();
    let mut done = Vec::with_capacity(mails.len());
    for (i, mail) in mails.iter().enumerate() {
        let result = match stored[i] {
            RawStored::Duplicate {
                processed: true, ..
            } => Ok(Processed::Duplicate),
            RawStored::New(row) | RawStored::Duplicate { id: row, .. } => {
                if !finished.insert(row) {
                    Ok(Processed::Duplicate)
                } else if let Some(render) = optimistic {
                    let Ok(m) = &parsed[i] else {
                        // Known bad before deciding: quarantined without a
                        // savepoint (a failure here is the store's).
                        let reason = parsed[i].as_ref().err().cloned().unwrap_or_default();
                        let (message_id, _) = stored_message_id(mail.raw, &parsed[i]);
                        match quarantine(tx, desk, row, &message_id, mail.raw, &reason, now) {
                            Ok(()) => {
                                done.push(Processed::Quarantined { reason });
                                continue;
                            }
                            Err(_) => return Err(Redo),
                        }
                    };
                    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        decide_and_commit(tx, desk, row, m, received[i], now, render)
                    })) {
                        Ok(Ok(p)) => Ok(p),
                        _ => return Err(Redo),
                    }
                } else {
                    decide_one(tx, desk, row, mail.raw, &parsed[i], received[i], now)
                }
            }
        };
        match result {
            Ok(p) => done.push(p),
            Err(e) => {
                // The store is busy or the disk is full (or quarantining
                // itself failed): nothing from here on is flagged, and the
                // rest is taken again on the next round.
                return Ok((done, Some(e)));
            }
        }
    }
    Ok((done, None))
}

/// A mail as the parser left it: the Inbound, or why there is none.
type Parsed = Result<Inbound, String>;

fn parse(raw: &[u8]) -> Parsed {
    match std::panic::catch_unwind(|| mail_parse::parse(raw)) {
        Ok(Ok(m)) => Ok(m),
        Ok(Err(e)) => Err(format!("could not be parsed: {e}")),
        Err(_) => Err("the parser failed on it".to_string()),
    }
}

/// The Message-ID a mail is stored under (made from its hash when the
/// parser found none, or failed).
fn stored_message_id(raw: &[u8], parsed: &Parsed) -> (String, bool) {
    match parsed {
        Ok(m) => (m.message_id.clone(), m.message_id_synthetic),
        Err(_) => (
            synthetic_message_id(&hex::encode(sha2::Sha256::digest(raw))),
            true,
        ),
    }
}

/// Stores the raw bytes of every mail in one transaction.
fn store_raws(
    store: &mut Store,
    mails: &[Incoming],
    parsed: &[Parsed],
    received: &[DateTime<Utc>],
) -> anyhow::Result<Vec<RawStored>> {
    let tx = store.transaction()?;
    let mut stored = Vec::with_capacity(mails.len());
    for (i, mail) in mails.iter().enumerate() {
        let (message_id, synthetic) = stored_message_id(mail.raw, &parsed[i]);
        stored.push(db::store_raw(
            &tx,
            &message_id,
            synthetic,
            mail.raw,
            &mail.arrival.source,
            received[i],
        )?);
    }
    tx.commit()?;
    Ok(stored)
}

/// Decides one stored mail inside the batch's transaction, in a savepoint
/// of its own: a mail that cannot be handled is quarantined. Errs only on
/// the store's own trouble, with this mail's work rolled back.
fn decide_one(
    tx: &Transaction,
    desk: &Desk,
    row: i64,
    raw: &[u8],
    parsed: &Parsed,
    received: DateTime<Utc>,
    now: DateTime<Utc>,
) -> anyhow::Result<Processed> {
    let reason = match parsed {
        Ok(m) => {
            db::savepoint(tx)?;
            // A bug must not stall the mailbox: a panic while deciding rolls
            // the mail's savepoint back and quarantines it like an error.
            let decided = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                decide_and_commit(tx, desk, row, m, received, now, Render::Now)
            }));
            match decided {
                Ok(Ok(p)) => {
                    db::release(tx)?;
                    return Ok(p);
                }
                Ok(Err(e)) if is_transient_store_error(&e) => {
                    // SQLite may have rolled the whole transaction back
                    // already (a full disk does): the caller checks.
                    let _ = db::roll_back(tx);
                    return Err(e);
                }
                Ok(Err(e)) => {
                    db::roll_back(tx)?;
                    format!("could not be handled: {e:#}")
                }
                Err(_) => {
                    db::roll_back(tx)?;
                    "redress failed on it (a bug: please report it)".to_string()
                }
            }
        }
        Err(reason) => reason.clone(),
    };
    let (message_id, _) = stored_message_id(raw, parsed);
    db::savepoint(tx)?;
    match quarantine(tx, desk, row, &message_id, raw, &reason, now) {
        Ok(()) => db::release(tx)?,
        Err(e) => {
            db::roll_back(tx)?;
            return Err(e);
        }
    }
    Ok(Processed::Quarantined { reason })
}

/// Whether an error is the store's passing trouble (busy, locked, disk full)
/// rather than something about the mail.
fn is_transient_store_error(e: &anyhow::Error) -> bool {
    use rusqlite::ErrorCode::*;
    e.chain()
        .any(|c| match c.downcast_ref::<rusqlite::Error>() {
            Some(rusqlite::Error::SqliteFailure(f, _)) => {
                matches!(
                    f.code,
                    DatabaseBusy | DatabaseLocked | DiskFull | SystemIoFailure | CannotOpen
                )
            }
            _ => false,
        })
}

/// Finishes rows stored by an earlier run that stopped before deciding.
pub fn finish_unprocessed(
    store: &mut Store,
    desk: &Desk,
    now: DateTime<Utc>,
) -> anyhow::Result<usize> {
    let rows = store.unprocessed_messages()?;
    for chunk in rows.chunks(200) {
        let mails: Vec<Incoming> = chunk
            .iter()
            .map(|(_, raw, received)| Incoming {
                raw,
                arrival: Arrival {
                    received: received.parse().ok(),
                    ..Arrival::default()
                },
            })
            .collect();
        if let Some(e) = process_batch(store, desk, &mails, now).error {
            return Err(e);
        }
    }
    Ok(rows.len())
}

/// Moves each folder's checkpoint to the highest UID of `mails`.
fn advance_checkpoints(
    tx: &Transaction,
    mails: &[Incoming],
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    let mut highest: Vec<&Source> = Vec::new();
    for source in mails.iter().map(|m| &m.arrival.source) {
        match highest
            .iter_mut()
            .find(|h| h.folder == source.folder && h.uidvalidity == source.uidvalidity)
        {
            Some(h) if h.uid < source.uid => *h = source,
            Some(_) => {}
            None => highest.push(source),
        }
    }
    for source in highest {
        advance_checkpoint(tx, source, now)?;
    }
    Ok(())
}

fn advance_checkpoint(tx: &Transaction, source: &Source, now: DateTime<Utc>) -> anyhow::Result<()> {
    if let (Some(v), Some(uid)) = (source.uidvalidity, source.uid) {
        // Only forward: re-processing an older UID never moves it back.
        let forward = match db::checkpoint(tx, source.folder)? {
            Some((cv, last)) => cv != v || uid > last,
            None => true,
        };
        if forward {
            db::set_checkpoint(tx, source.folder, v, uid, now)?;
        }
    }
    Ok(())
}

fn quarantine(
    tx: &Transaction,
    desk: &Desk,
    row: i64,
    message_id: &str,
    raw: &[u8],
    reason: &str,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    db::quarantine(tx, row, reason, now)?;
    db::append_event(
        tx,
        None,
        now,
        "redress",
        "quarantined",
        &json!({"message_id": message_id, "reason": reason}),
    )?;
    // A crude look at the headers for the notice (the parser failed).
    let head = String::from_utf8_lossy(&raw[..raw.len().min(8192)]).into_owned();
    let header = |name: &str| {
        head.lines()
            .find_map(|l| {
                let (start, rest) = (l.get(..name.len())?, l.get(name.len()..)?);
                start
                    .eq_ignore_ascii_case(name)
                    .then(|| rest.trim().chars().take(200).collect::<String>())
            })
            .unwrap_or_default()
    };
    let qc = &desk.config.staff.quality_coordinator;
    letters::queue_notice(
        tx,
        desk,
        // Keyed by the stored row: QC hears about each mail once.
        LetterSpec::notice_to_qc(
            desk,
            "quarantine",
            format!("quarantine.{row}"),
            None,
            "",
            json!({
                "recipient_name": qc.name,
                "received_date": long_date(desk.calendar.local_date(now)),
                "message_id": message_id,
                "complainant_email": header("from:"),
                "subject": header("subject:"),
                "reason": reason,
            }),
        ),
        now,
    )?;
    Ok(())
}

/// The thread facts of a mail from the store.
fn thread_facts(tx: &Transaction, desk: &Desk, m: &Inbound) -> anyhow::Result<ThreadFacts> {
    let cfg = &desk.config;
    let mut facts = ThreadFacts::default();
    for reference in
        threading::case_tokens(m, &cfg.organisation.reference_prefix, &cfg.mailbox.address)
    {
        if let Some(case_id) = db::case_id(tx, reference.as_str())? {
            // From only: Reply-To is the sender's to choose, so it proves
            // nothing about who is writing.
            let participant =
                !m.from_address().is_empty() && db::is_participant(tx, case_id, m.from_address())?;
            facts.token_case = Some(TokenCase {
                case_id,
                reference,
                sender_is_participant: participant,
            });
            break;
        }
    }
    // Our own Message-IDs carry a token for the person we sent them to: one
    // quoted by somebody else (a complainant holding a staff notification
    // of another case) does not join them to that case.
    let domain = cfg.message_id_domain();
    let ids: Vec<&str> = m
        .referenced_ids()
        .into_iter()
        .filter(
            |id| match crate::core::token::parse_message_id(id, domain) {
                Some((reference, t)) => {
                    crate::core::token::verify(&desk.secret, reference, m.from_address(), t)
                        || crate::core::token::verify(&desk.secret, reference, m.reply_address(), t)
                }
                None => true,
            },
        )
        .collect();
    facts.referenced_case = db::case_by_message_ids(tx, &ids)?;
    Ok(facts)
}

fn decide_and_commit(
    tx: &Transaction,
    desk: &Desk,
    row: i64,
    m: &Inbound,
    received: DateTime<Utc>,
    now: DateTime<Utc>,
    render: Render,
) -> anyhow::Result<Processed> {
    let cfg = &desk.config;
    let class = classify(m, &desk.own);
    // The same mail delivered again with other trace headers (the sender's
    // server retrying, a redirect rule, an alias into the same box): kept
    // and shown on the first copy's case, and nothing decided twice, so no
    // second case and no second acknowledgement.
    if !m.message_id_synthetic {
        let body = display_body(m);
        let copy = db::earlier_copy(tx, row, &m.message_id, m.from_address(), &m.subject, &body)?;
        if let Some(case_id) = copy {
            record_message(tx, desk, row, m, case_id, class, now)?;
            if case_id.is_some() {
                db::append_event(
                    tx,
                    case_id,
                    now,
                    "redress",
                    "duplicate-delivery",
                    &serde_json::json!({ "message": row, "message_id": m.message_id }),
                )?;
            }
            return Ok(Processed::Duplicate);
        }
    }
    let facts = thread_facts(tx, desk, m)?;
    // Staff mail never opens a case; see service::staff. A robot's (an
    // out-of-office reply to an escalation) is no response. Mail that looks
    // automatic on weak evidence only (a header some mail clients set) is
    // still a staff member's when it carries commands: an out-of-office
    // reply does not start with "#resolve"; without any, it is recorded.
    if !class.is_robot() || class.is_weak() {
        if let Some((name, _role)) = desk.staff_member(m.from_address()) {
            let automatic =
                (class.is_robot() && !carries_commands(desk, m, now)).then(|| class.as_str());
            let (case_id, outcome) =
                super::staff::handle(tx, desk, row, m, &name, &facts, automatic, now)?;
            record_message(tx, desk, row, m, case_id, class, now)?;
            return Ok(outcome);
        }
    }
    let thread = threading::decide(&facts);
    let reply_to = desk.letters_address(m);
    let sender = SenderFacts {
        auto_replies_last_day: db::auto_replies_since(tx, &reply_to, now - Duration::hours(24))?,
        cap_notice_sent: db::event_since(
            tx,
            "reply-cap-reached",
            &reply_to,
            now - Duration::hours(24),
        )?,
        open_case: if class.is_robot() {
            db::open_case_of(tx, m.from_address())?
        } else {
            None
        },
    };
    let decision = intake::decide(&class, &thread, sender, cfg.intake.max_auto_replies_per_day);
    let (case_id, outcome) = match decision {
        IntakeDecision::OpenCase {
            acknowledge,
            tell_qc_cap,
            doubtful,
        } => {
            let noted = match &thread {
                ThreadDecision::NewCase { noted_reference } => noted_reference.clone(),
                ThreadDecision::Attach { .. } => None,
            };
            let (id, reference, acknowledged) = open_case(
                tx,
                desk,
                render,
                m,
                received,
                now,
                acknowledge,
                tell_qc_cap,
                noted,
                doubtful,
                None,
            )?;
            (
                Some(id),
                Processed::Opened {
                    reference: reference.to_string(),
                    acknowledged,
                },
            )
        }
        IntakeDecision::AddToCase { case_id, robot } => {
            let reference = db::case_reference(tx, case_id)?;
            let kind = if robot {
                "robot-message"
            } else if desk.is_staff(m.from_address()) {
                "staff-message"
            } else {
                "message-received"
            };
            db::append_event(
                tx,
                Some(case_id),
                now,
                m.from_address(),
                kind,
                &json!({"message_id": m.message_id, "subject": m.subject, "classification": class.as_str(), "reason": class.reason()}),
            )?;
            let outcome = if robot {
                // Automatic on weak evidence only (a subject phrase, a
                // header some mail clients set): it may be a person, so
                // the people handling the case see it all the same.
                if class.is_weak() && !desk.is_staff(m.from_address()) {
                    super::followup::complainant_wrote(
                        tx,
                        desk,
                        case_id,
                        m,
                        &display_body(m),
                        Some(class.reason()),
                        received,
                        now,
                    )?;
                }
                Processed::Robot {
                    classification: class.as_str().to_string(),
                    reference: Some(reference.clone()),
                }
            } else {
                // Never just filed: it takes the case further, or the
                // people handling it are told.
                let text = display_body(m);
                match super::followup::complainant_wrote(
                    tx, desk, case_id, m, &text, None, received, now,
                )? {
                    Some(stage) => Processed::TakenFurther { reference, stage },
                    None => Processed::Joined { reference },
                }
            };
            (Some(case_id), outcome)
        }
        IntakeDecision::RecordOnly => {
            db::append_event(
                tx,
                None,
                now,
                m.from_address(),
                "robot-message",
                &json!({"message_id": m.message_id, "subject": m.subject, "classification": class.as_str(), "reason": class.reason()}),
            )?;
            (
                None,
                Processed::Robot {
                    classification: class.as_str().to_string(),
                    reference: None,
                },
            )
        }
    };
    record_message(tx, desk, row, m, case_id, class, now)?;
    Ok(outcome)
}

/// Whether the mail's text starts with staff commands (understood or not).
fn carries_commands(desk: &Desk, m: &Inbound, now: DateTime<Utc>) -> bool {
    let parsed = crate::core::command::parse_reply(&m.body_text, desk.calendar.local_date(now));
    !parsed.commands.is_empty() || !parsed.problems.is_empty()
}

/// The text shown for a mail: a reply without its quoted history; a first
/// mail or a forward whole (pasted or forwarded mail is often the evidence).
fn display_body(m: &Inbound) -> String {
    use crate::core::text::{is_forward_subject, strip_quoted};
    let is_reply = !m.in_reply_to.is_empty() || !m.references.is_empty();
    if is_reply && !is_forward_subject(&m.subject) {
        let stripped = strip_quoted(&m.body_text);
        if !stripped.trim().is_empty() {
            return stripped;
        }
    }
    m.body_text.trim_end().to_string()
}

fn record_message(
    tx: &Transaction,
    desk: &Desk,
    row: i64,
    m: &Inbound,
    case_id: Option<i64>,
    class: Classification,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    let join = |v: &[crate::core::message::Mailbox]| {
        v.iter()
            .map(|x| x.address.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (to, cc) = (join(&m.to), join(&m.cc));
    let refs = m.references.join(" ");
    let in_reply_to = m.in_reply_to.join(" ");
    let body = display_body(m);
    db::message_processed(
        tx,
        row,
        &MessageFacts {
            case_id,
            in_reply_to: &in_reply_to,
            refs: &refs,
            from_address: m.from_address(),
            from_name: m.from.as_ref().map(|f| f.name.as_str()).unwrap_or(""),
            reply_to: m
                .reply_to
                .as_ref()
                .map(|r| r.address.as_str())
                .unwrap_or(""),
            to_addresses: &to,
            cc_addresses: &cc,
            subject: &m.subject,
            sent_date: m.date.as_deref(),
            body_text: &body,
            classification: class.as_str(),
        },
        now,
    )?;
    for a in &m.attachments {
        let oversize = a.size > desk.config.intake.attachment_size_cap;
        db::add_attachment(tx, row, &a.filename, &a.content_type, a.size, oversize)?;
        if oversize {
            if let Some(case_id) = case_id {
                db::append_event(
                    tx,
                    Some(case_id),
                    now,
                    "redress",
                    "attachment-oversize",
                    &json!({"filename": a.filename, "size": a.size, "cap": desk.config.intake.attachment_size_cap}),
                )?;
            }
        }
    }
    Ok(())
}

/// A complaint that came another way (post, phone, in person), as the
/// Quality Coordinator records it (`redress cases open`, see
/// [`super::record`]): what the mail would otherwise tell.
pub(super) struct Recording<'a> {
    pub stage: &'a StageName,
    pub department: &'a str,
    pub phone: &'a str,
    /// How it came (`post`, ...; "by post" in letters), when the issue
    /// arose if known, and who recorded it.
    pub via: &'a str,
    pub via_phrase: &'a str,
    pub issue_date: Option<chrono::NaiveDate>,
    pub by: &'a str,
    /// The complainant was already acknowledged another way: no letter.
    pub acknowledged: bool,
    /// Why it is flagged as raised late, if it is.
    pub late_note: Option<String>,
}

#[allow(clippy::too_many_arguments)]
pub(super) fn open_case(
    tx: &Transaction,
    desk: &Desk,
    render: Render,
    m: &Inbound,
    received: DateTime<Utc>,
    now: DateTime<Utc>,
    acknowledge: bool,
    tell_qc_cap: bool,
    noted_reference: Option<CaseRef>,
    doubtful: Option<String>,
    recording: Option<&Recording>,
) -> anyhow::Result<(i64, CaseRef, bool)> {
    let cfg = &desk.config;
    let department = match recording {
        Some(r) => r.department.to_string(),
        None => intake::route(m, &desk.routing, cfg.default_department()).to_string(),
    };
    let stage = match recording {
        Some(r) => r.stage.clone(),
        None => desk
            .procedure
            .first_stage()
            .ok_or_else(|| anyhow::anyhow!("the procedure has no stage"))?
            .name
            .clone(),
    };
    let name = m.from.as_ref().map(|f| f.name.trim()).unwrap_or("");
    let phone = match recording {
        Some(r) => r.phone.to_string(),
        None => crate::core::text::signature_phone(&m.body_text).unwrap_or_default(),
    };
    let reply_address = desk.letters_address(m);
    // No usable address: the case is opened all the same, nobody can be
    // acknowledged, and staff are told so.
    let can_reply = crate::adapters::outgoing::is_sendable(&reply_address);
    // A recorded complaint is always announced to those who handle it.
    let notify = acknowledge || tell_qc_cap || recording.is_some();
    let held_note = if let Some(r) = recording.filter(|r| r.acknowledged) {
        Some(format!(
            "No acknowledgement was sent: {} recorded that the complainant was already acknowledged.",
            r.by
        ))
    } else if recording.is_some() && !can_reply {
        Some(
            "No acknowledgement was emailed: no email address was recorded. The acknowledgement letter has been sent to the Quality Coordinator to post."
                .to_string(),
        )
    } else if let Some(reason) = &doubtful {
        Some(format!(
            "No acknowledgement was sent: the mail looks automatic ({reason}), but only on weak evidence. Please check it, and if it is a real complaint, reply to this email with #reply above your letter to the complainant (it counts as the acknowledgement)."
        ))
    } else if !can_reply {
        Some(format!(
            "No acknowledgement was sent: the mail has no address to reply to ({reply_address:?}). Please contact the complainant another way. When they give an email address, add it with `redress cases update` and this case's reference (the acknowledgement then goes to it); once they are acknowledged another way, reply to this email with a line such as \"#acknowledged by phone\" to record it."
        ))
    } else if !acknowledge {
        Some(
            "No acknowledgement was sent: the sender has reached the daily limit of automatic replies. If this is genuine, reply to this email with #reply above your letter to them (it counts as the acknowledgement); further mail from them today is recorded without notifying you."
                .to_string(),
        )
    } else {
        None
    };
    let capped = tell_qc_cap;
    let notify = notify || !can_reply || doubtful.is_some();
    let acknowledge = acknowledge && can_reply && !recording.is_some_and(|r| r.acknowledged);
    let (case_id, reference) = db::insert_case(
        tx,
        &NewCase {
            prefix: &cfg.organisation.reference_prefix,
            stage: &stage.0,
            complainant_name: name,
            complainant_email: m.from_address(),
            complainant_phone: &phone,
            reply_address: &reply_address,
            subject: m.subject.trim(),
            department: &department,
            received_at: received,
            target_date: None,
        },
        now,
    )?;
    if reply_address != m.from_address() && !reply_address.is_empty() {
        db::add_participant(tx, case_id, &reply_address, name, "complainant")?;
    }
    let ctx = Context {
        procedure: &desk.procedure,
        calendar: &desk.calendar,
    };
    let transition = match recording {
        Some(_) => case::open_recorded(reference.clone(), received, now, &stage, &ctx)?,
        None => case::open(reference.clone(), received, &ctx)?,
    };
    let mut opened = json!({
        "message_id": m.message_id,
        "stage": stage.0,
        "department": department,
        "target_date": transition.case.target_date.map(|d| d.to_string()),
        "noted_reference": noted_reference.as_ref().map(|r| r.to_string()),
    });
    if let (Some(r), Some(map)) = (recording, opened.as_object_mut()) {
        map.insert("received_via".into(), json!(r.via));
        map.insert("recorded_by".into(), json!(r.by));
        map.insert(
            "issue_date".into(),
            json!(r.issue_date.map(|d| d.to_string())),
        );
    }
    let actor = recording.map_or(m.from_address(), |r| r.by);
    db::append_event(tx, Some(case_id), now, actor, "opened", &opened)?;
    if let Some(note) = recording.and_then(|r| r.late_note.as_deref()) {
        db::append_event(
            tx,
            Some(case_id),
            now,
            "redress",
            "raised-late",
            &json!({ "reason": note }),
        )?;
    }
    if let Some(note) = &held_note {
        db::append_event(
            tx,
            Some(case_id),
            now,
            "redress",
            "acknowledgement-held",
            &json!({"reason": note, "address": reply_address}),
        )?;
    }
    if capped {
        db::append_event(
            tx,
            None,
            now,
            &reply_address,
            "reply-cap-reached",
            &json!({"case": reference.as_str()}),
        )?;
    }
    let target = transition.case.target_date;
    let target_text = target.map(long_date).unwrap_or_default();
    let received_text = long_date(desk.calendar.local_date(received));
    let greeting = super::casework::greeting_for(name);
    // The acknowledgement answers the complainant's mail; a recorded
    // complaint has none they would know (its id is the record's).
    let parent = recording.is_none().then_some(m.message_id.as_str());
    let refs: Vec<String> = m.references.clone();
    let recorded_note = recording.map_or(String::new(), |r| {
        format!("Received {}; recorded by {}.", r.via_phrase, r.by)
    });
    let late_note = recording
        .and_then(|r| r.late_note.clone())
        .unwrap_or_default();
    let ack_data = json!({
        "complainant_name": greeting,
        "received_date": received_text,
        "target_date": target_text,
        "next_steps": cfg.next_steps(&stage.0),
        "stage": stage.0,
        "subject": m.subject,
    });
    let mut acknowledged = false;
    for effect in transition.effects.clone() {
        match effect {
            Effect::SendLetter(Letter::Acknowledgement) if acknowledge => {
                letters::queue_with(
                    tx,
                    desk,
                    LetterSpec {
                        template: "acknowledgement",
                        case_id: Some(case_id),
                        reference: reference.as_str(),
                        to_name: name,
                        to_address: &reply_address,
                        auto_reply: true,
                        auto_submitted: AutoSubmitted::Replied,
                        in_reply_to: parent,
                        references: &refs,
                        message_id: None,
                        reply_to: None,
                        data: ack_data.clone(),
                    },
                    now,
                    render,
                )?;
                acknowledged = true;
            }
            Effect::SendLetter(_) => {}
            Effect::NotifyStaff { rung: 0 } if notify => {
                let dept = cfg.department(&department);
                for (staff_name, staff_address) in desk.stage_recipients(&department, &stage) {
                    letters::queue_with(
                        tx,
                        desk,
                        LetterSpec {
                            template: "new-case",
                            case_id: Some(case_id),
                            reference: reference.as_str(),
                            to_name: staff_name,
                            to_address: staff_address,
                            auto_reply: false,
                            auto_submitted: AutoSubmitted::Generated,
                            in_reply_to: None,
                            references: &[],
                            message_id: None,
                            reply_to: Some(desk.staff_reply_to(reference.as_str(), staff_address)),
                            data: json!({
                                "recipient_name": staff_name,
                                "complainant_name": name,
                                "complainant_email": m.from_address(),
                                "complainant_phone": phone,
                                "received_date": received_text,
                                "target_date": target_text,
                                "stage": stage.0,
                                "department": dept.map(|d| d.name.as_str()).unwrap_or(department.as_str()),
                                "subject": m.subject,
                                "body": display_body(m),
                                "noted_reference": noted_reference.as_ref().map(|r| r.to_string()).unwrap_or_default(),
                                "acknowledgement_note": held_note.clone().unwrap_or_default(),
                                "recorded_note": recorded_note,
                                "late_note": late_note,
                                "commands_help": super::casework::commands_help(),
                            }),
                        },
                        now,
                        render,
                    )?;
                }
            }
            Effect::NotifyStaff { .. } => {}
            e @ (Effect::SetDeadline { .. } | Effect::CancelDeadlines(_)) => {
                letters::apply_deadline_effects(tx, case_id, std::slice::from_ref(&e), now)?
            }
        }
    }
    db::update_case_state(tx, case_id, &transition.case, now)?;
    if recording.is_some_and(|r| r.acknowledged) {
        letters::mark_acknowledged(tx, desk, case_id, now)?;
        db::append_event(
            tx,
            Some(case_id),
            now,
            actor,
            "acknowledged-otherwise",
            &json!({"reason": "the complainant was acknowledged when the complaint was recorded"}),
        )?;
    }
    if recording.is_some_and(|r| !r.acknowledged) && reply_address.is_empty() {
        // Recorded without an email address: the acknowledgement goes to
        // QC to post, like every later letter.
        let record = db::case_record(tx, case_id)?;
        super::casework::to_post(
            tx,
            desk,
            &record,
            "acknowledgement",
            ack_data,
            super::casework::When::now(now),
        )?;
    }
    Ok((case_id, reference, acknowledged))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desk(dir: &std::path::Path) -> (Store, Desk) {
        let path = dir.join("s.sqlite");
        let env = vec![("REDRESS_STORE_PATH".to_string(), path.display().to_string())];
        let text = include_str!("../../config.example.toml");
        let cfg = crate::config::parse_str(text, "config.example.toml", &env).expect("config");
        let mut store = Store::open(&path).expect("store");
        let desk = Desk::new(cfg, &mut store).expect("desk");
        (store, desk)
    }

    fn complaint(from: &str, id: &str) -> Vec<u8> {
        format!(
            "From: Someone <{from}>\r\nTo: complaints@opp.example\r\nSubject: A complaint from {from}\r\nMessage-ID: <{id}>\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n\r\nIt went wrong.\r\n"
        )
        .into_bytes()
    }

    fn count(store: &Store, sql: &str) -> i64 {
        store
            .conn()
            .query_row(sql, [], |r| r.get(0))
            .expect("count")
    }

    #[test]
    fn a_second_delivery_of_a_mail_joins_the_first_and_a_reused_id_does_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut store, desk) = desk(dir.path());
        let now = "2026-11-23T10:00:00Z".parse().expect("now");
        let first = complaint("kim@example.net", "kim-1@example.net");
        let opened = process(&mut store, &desk, &first, &Arrival::default(), now).expect("first");
        assert!(matches!(opened, Processed::Opened { .. }), "{opened:?}");
        // The same mail through an alias: other trace headers, same mail.
        let mut again = b"Received: from alias.example.net by mx.opp.example\r\nDelivered-To: complaints-alias@opp.example\r\n".to_vec();
        again.extend_from_slice(&first);
        let p = process(&mut store, &desk, &again, &Arrival::default(), now).expect("again");
        assert_eq!(p, Processed::Duplicate);
        // A broken mailer giving another person's mail the same id: a mail
        // of its own.
        let other = complaint("lee@example.net", "kim-1@example.net");
        let p = process(&mut store, &desk, &other, &Arrival::default(), now).expect("other");
        assert!(matches!(p, Processed::Opened { .. }), "{p:?}");
        assert_eq!(count(&store, "SELECT COUNT(*) FROM cases"), 2);
        assert_eq!(
            count(
                &store,
                "SELECT COUNT(*) FROM messages WHERE direction = 'in'"
            ),
            3
        );
        assert_eq!(
            count(
                &store,
                "SELECT COUNT(*) FROM outbox WHERE kind = 'acknowledgement'"
            ),
            2
        );
        assert_eq!(
            count(
                &store,
                "SELECT COUNT(*) FROM messages m JOIN cases c ON c.id = m.case_id WHERE c.complainant_email = 'kim@example.net'"
            ),
            2,
            "the second copy is shown on the first's case"
        );
        assert_eq!(
            count(
                &store,
                "SELECT COUNT(*) FROM events WHERE kind = 'duplicate-delivery'"
            ),
            1
        );
    }

    #[test]
    fn a_bad_mail_in_a_batch_is_quarantined_alone_and_a_repeat_is_processed_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut store, desk) = desk(dir.path());
        let now = "2026-11-23T10:00:00Z".parse().expect("now");
        // A mail that fails half-way through its decision (here the store
        // refuses its acknowledgement, after its case was inserted).
        store
            .conn()
            .execute_batch(
                "CREATE TEMP TRIGGER refuse BEFORE INSERT ON outbox WHEN NEW.recipient = 'bad@example.net'
                 BEGIN SELECT RAISE(ABORT, 'refused for the test'); END;",
            )
            .expect("trigger");
        let a = complaint("a@example.net", "a@example.net");
        let b = complaint("b@example.net", "b@example.net");
        let bad = complaint("bad@example.net", "bad@example.net");
        let junk = b"\x00\x01\x02 this is not an email\r\n".to_vec();
        // Enough others for the letters to be rendered on the helper thread.
        let others: Vec<Vec<u8>> = (0..15)
            .map(|i| complaint(&format!("o{i}@example.net"), &format!("o{i}@example.net")))
            .collect();
        let mut raws = vec![&a, &bad, &a, &junk, &b];
        raws.extend(others.iter());
        assert!(raws.len() >= DEFER_LETTERS_FROM);
        let mails: Vec<Incoming> = raws
            .iter()
            .enumerate()
            .map(|(i, raw)| Incoming {
                raw,
                arrival: Arrival {
                    source: Source {
                        folder: "INBOX",
                        uidvalidity: Some(7),
                        uid: Some(10 + i as u32),
                    },
                    received: None,
                },
            })
            .collect();
        let outcome = process_batch(&mut store, &desk, &mails, now);
        assert!(outcome.error.is_none(), "{:?}", outcome.error);
        assert_eq!(outcome.done.len(), raws.len());
        let kinds: Vec<&str> = outcome.done[..5]
            .iter()
            .map(|p| match p {
                Processed::Opened { .. } => "opened",
                Processed::Quarantined { .. } => "quarantined",
                Processed::Duplicate => "duplicate",
                _ => "other",
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "opened",
                "quarantined",
                "duplicate",
                "quarantined",
                "opened"
            ]
        );
        assert!(
            matches!(&outcome.done[1], Processed::Quarantined { reason } if reason.contains("refused for the test")),
            "{:?}",
            outcome.done[1]
        );
        assert!(
            matches!(&outcome.done[3], Processed::Quarantined { reason } if reason.starts_with("could not be parsed")),
            "{:?}",
            outcome.done[3]
        );
        assert!(outcome.done[5..]
            .iter()
            .all(|p| matches!(p, Processed::Opened { .. })));
        assert_eq!(count(&store, "SELECT COUNT(*) FROM cases"), 17);
        assert_eq!(count(&store, "SELECT COUNT(*) FROM messages"), 19);
        assert_eq!(
            count(
                &store,
                "SELECT COUNT(*) FROM messages WHERE processed_at IS NULL"
            ),
            0
        );
        assert_eq!(
            count(
                &store,
                "SELECT COUNT(*) FROM messages WHERE quarantine_reason IS NOT NULL AND case_id IS NULL"
            ),
            2
        );
        // Nothing the bad mails started survived them: a case and an
        // acknowledgement for each good one, a notice to QC about each bad
        // one, and every letter's bytes written.
        assert_eq!(
            count(
                &store,
                "SELECT COUNT(*) FROM outbox WHERE kind = 'acknowledgement'"
            ),
            17
        );
        assert_eq!(
            count(
                &store,
                "SELECT COUNT(*) FROM outbox WHERE kind = 'quarantine'"
            ),
            2
        );
        assert_eq!(
            count(&store, "SELECT COUNT(*) FROM events WHERE kind = 'opened'"),
            17
        );
        assert_eq!(
            count(
                &store,
                "SELECT COUNT(*) FROM outbox WHERE raw = X'' OR subject = ''"
            ),
            0
        );
        assert_eq!(store.checkpoint("INBOX").expect("cp"), Some((7, 29)));

        // The same batch again: every mail is a duplicate, nothing changes.
        let again = process_batch(&mut store, &desk, &mails, now);
        assert!(again.error.is_none());
        assert!(again.done.iter().all(|p| *p == Processed::Duplicate));
        assert_eq!(count(&store, "SELECT COUNT(*) FROM cases"), 17);
    }

    #[test]
    fn a_full_disk_stops_the_batch_without_quarantining_and_the_rest_is_taken_later() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut store, desk) = desk(dir.path());
        let now = "2026-11-23T10:00:00Z".parse().expect("now");
        let raws: Vec<Vec<u8>> = (0..40)
            .map(|i| complaint(&format!("c{i}@example.net"), &format!("m{i}@example.net")))
            .collect();
        let mails: Vec<Incoming> = raws
            .iter()
            .enumerate()
            .map(|(i, raw)| Incoming {
                raw,
                arrival: Arrival {
                    source: Source {
                        folder: "INBOX",
                        uidvalidity: Some(7),
                        uid: Some(1 + i as u32),
                    },
                    received: None,
                },
            })
            .collect();
        // Room for the raw mail, not for every decision: SQLITE_FULL.
        let pages: i64 = store
            .conn()
            .pragma_query_value(None, "page_count", |r| r.get(0))
            .expect("pages");
        store
            .conn()
            .pragma_update(None, "max_page_count", pages + 30)
            .expect("cap");
        let outcome = process_batch(&mut store, &desk, &mails, now);
        let error = outcome.error.expect("the store filled up");
        assert!(is_transient_store_error(&error), "{error:#}");
        // The mails before the one that did not fit are committed, unless
        // SQLite rolled the whole transaction back (it may, on SQLITE_FULL).
        let done = outcome.done.len();
        assert!(done < mails.len(), "{done}");
        assert!(outcome
            .done
            .iter()
            .all(|p| matches!(p, Processed::Opened { .. })));
        assert_eq!(
            count(
                &store,
                "SELECT COUNT(*) FROM messages WHERE quarantine_reason IS NOT NULL"
            ),
            0,
            "a full disk is not the mail's fault"
        );
        assert_eq!(count(&store, "SELECT COUNT(*) FROM cases"), done as i64);
        assert_eq!(
            store.checkpoint("INBOX").expect("cp"),
            (done > 0).then_some((7, done as u32))
        );
        // Room again: the same batch finishes, nothing twice.
        store
            .conn()
            .pragma_update(None, "max_page_count", 1_000_000_000)
            .expect("cap");
        let again = process_batch(&mut store, &desk, &mails, now);
        assert!(again.error.is_none(), "{:?}", again.error);
        assert!(again.done[..done]
            .iter()
            .all(|p| *p == Processed::Duplicate));
        assert!(again.done[done..]
            .iter()
            .all(|p| matches!(p, Processed::Opened { .. })));
        assert_eq!(count(&store, "SELECT COUNT(*) FROM cases"), 40);
        assert_eq!(
            count(
                &store,
                "SELECT COUNT(*) FROM outbox WHERE kind = 'acknowledgement'"
            ),
            40
        );
        // Rendered on the helper thread, written into their rows.
        assert_eq!(
            count(
                &store,
                "SELECT COUNT(*) FROM outbox WHERE raw = X'' OR subject = ''"
            ),
            0
        );
    }
}
