//! Letters into the outbox: render the template, fix the Message-ID (with
//! the token binding case and recipient), build the bytes, queue the row,
//! all inside the caller's transaction. Mail leaves only through the outbox.

use super::Desk;
use crate::adapters::db::{self, NewOutbox, PendingOutbox, Store};
use crate::adapters::outgoing::{self, AutoSubmitted, Outgoing};
use crate::core::case::{self, Context, Effect, Event};
use crate::core::token;
use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::Transaction;
use serde_json::Value;

/// One letter to queue.
pub struct LetterSpec<'a> {
    /// The template name, also the outbox row's kind.
    pub template: &'a str,
    pub case_id: Option<i64>,
    /// The case reference ("" for mail about no case).
    pub reference: &'a str,
    pub to_name: &'a str,
    pub to_address: &'a str,
    /// An automatic reply to a complainant (counts towards the cap).
    pub auto_reply: bool,
    pub auto_submitted: AutoSubmitted,
    /// The mail this answers, and its references.
    pub in_reply_to: Option<&'a str>,
    pub references: &'a [String],
    /// A fixed Message-ID (notices that must go once); else one is made.
    pub message_id: Option<String>,
    /// Where replies go, when not the complaints address (staff mail: the
    /// plus-address with the case token, when configured).
    pub reply_to: Option<String>,
    pub data: Value,
}

/// The values every letter has, where the caller did not set them:
/// `organisation`, `mailbox` and `reference`.
pub fn common_values(desk: &Desk, reference: &str, data: &mut Value) {
    if let Value::Object(map) = data {
        let cfg = &desk.config;
        map.entry("organisation")
            .or_insert_with(|| Value::String(cfg.organisation.name.clone()));
        map.entry("mailbox")
            .or_insert_with(|| Value::String(cfg.mailbox.address.clone()));
        map.entry("reference")
            .or_insert_with(|| Value::String(reference.to_string()));
    }
}

/// Marks a case acknowledged at `at` and stops its acknowledgement timer
/// (a closed case takes no events, and is left as it is).
pub fn mark_acknowledged(
    tx: &Transaction,
    desk: &Desk,
    case_id: i64,
    at: DateTime<Utc>,
) -> anyhow::Result<()> {
    let case = db::load_case(tx, case_id)?;
    acknowledge_loaded(tx, desk, case_id, &case, at)
}

/// [`mark_acknowledged`] of a case already loaded.
fn acknowledge_loaded(
    tx: &Transaction,
    desk: &Desk,
    case_id: i64,
    case: &case::Case,
    at: DateTime<Utc>,
) -> anyhow::Result<()> {
    let ctx = Context {
        procedure: &desk.procedure,
        calendar: &desk.calendar,
    };
    if let Ok(t) = case::apply(case, &Event::Acknowledged, at, &ctx) {
        apply_deadline_effects(tx, case_id, &t.effects, at)?;
        db::update_case_state(tx, case_id, &t.case, at)?;
    }
    Ok(())
}

/// Whether a letter of `kind` to the complainant tells them their
/// complaint was received: the acknowledgement, and any letter written to
/// them about the complaint. A case whose acknowledgement was held (weak
/// evidence of a robot, the reply cap) and that staff then answered by
/// hand with `#reply` is acknowledged, and no "overdue" notice follows.
pub fn acknowledges(kind: &str) -> bool {
    matches!(
        kind,
        "acknowledgement" | "response" | "hold" | "resume" | "extension" | "resolution"
    )
}

/// Marks a case acknowledged by a letter of `kind` (one that
/// [`acknowledges`]), queued at `queued`, that went out, or to QC to post,
/// at `at`. Only a letter of the case's current stage counts: one from an
/// earlier stage that went late does not acknowledge the new one. A
/// letter other than the acknowledgement that is the first to reach the
/// complainant says so in the case's history.
pub fn acknowledged_by(
    tx: &Transaction,
    desk: &Desk,
    case_id: i64,
    kind: &str,
    queued: DateTime<Utc>,
    at: DateTime<Utc>,
) -> anyhow::Result<()> {
    let case = db::load_case(tx, case_id)?;
    if case.status == case::Status::Closed || queued < case.stage_opened_at {
        return Ok(());
    }
    if case.acknowledged_at.is_none() && kind != "acknowledgement" {
        db::append_event(
            tx,
            Some(case_id),
            at,
            "redress",
            "acknowledged-by-letter",
            &serde_json::json!({
                "kind": kind,
                "reason": format!("the complainant was not acknowledged before: the {kind} letter counts as the acknowledgement"),
            }),
        )?;
    }
    acknowledge_loaded(tx, desk, case_id, &case, at)
}

/// Sends the letters about `case` still waiting to go to its address (not
/// sent, not failed) to `new` instead, each with a Message-ID for
/// the new address; returns their kinds.
pub fn readdress_waiting(
    tx: &Transaction,
    desk: &Desk,
    case: &db::CaseRecord,
    new_name: &str,
    new: &str,
    now: DateTime<Utc>,
) -> anyhow::Result<Vec<String>> {
    let (case_id, reference, old) = (
        case.id,
        case.reference.as_str(),
        case.reply_address.as_str(),
    );
    let mut kinds = Vec::new();
    if old.is_empty() {
        return Ok(kinds);
    }
    for row in db::waiting_letters_to(tx, case_id, old)? {
        let message_id = own_message_id(desk, reference, new, row.id);
        let raw = outgoing::readdress(&row.raw, new_name, new, &message_id)?;
        db::readdress_outbox(tx, row.id, new, &message_id, None, &raw, now)?;
        kinds.push(row.kind);
    }
    Ok(kinds)
}

/// Renders `spec` again into the waiting outbox row `row` (queued before
/// the complainant's details changed): new bytes, subject, recipient and
/// Message-ID, still the same row, still not sent.
pub fn rerender(
    tx: &Transaction,
    desk: &Desk,
    row: i64,
    spec: LetterSpec,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    let to_address = spec.to_address;
    let job = spec.into_job(desk, row, now);
    let (subject, raw) = render_and_build(desk, &job)?;
    db::readdress_outbox(
        tx,
        row,
        to_address,
        &job.message_id,
        Some(&subject),
        &raw,
        now,
    )
}

/// Records that the server accepted a letter (its 250), in one
/// transaction: the row is sent, and a letter that [`acknowledges`] marks
/// its case acknowledged (the acknowledgement deadline stops only now, so
/// a letter that never goes out keeps it running). Only letters to the
/// complainant count: staff mail about the case does not.
pub fn mark_sent(
    store: &mut Store,
    desk: &Desk,
    row: &PendingOutbox,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    let full = (|| {
        let tx = store.transaction()?;
        // A letter re-addressed while it went does not count: the one to
        // the complainant's new address still waits.
        let current = db::outbox_sent(&tx, row, now)?;
        if let Some(case_id) = row.case_id.filter(|_| current && acknowledges(&row.kind)) {
            // A closed case takes no events; the letter is sent all the same.
            let queued = row.created_at.parse().unwrap_or(now);
            acknowledged_by(&tx, desk, case_id, &row.kind, queued, now)?;
        }
        tx.commit()?;
        anyhow::Ok(())
    })();
    let Err(e) = full else { return Ok(()) };
    // The server has the letter: whatever went wrong with the case's side
    // of it, the row must not go out again. Sent is recorded alone (the
    // case then shows as not acknowledged, which QC hears of; a letter
    // sent twice nobody can take back).
    tracing::error!(
        outbox = row.id,
        "recording a sent letter's effects on its case: {e:#}; recording it as sent only"
    );
    let tx = store.transaction()?;
    db::outbox_sent(&tx, row, now)?;
    tx.commit()?;
    Ok(())
}

/// Carries out the deadline effects of a transition (the others are
/// letters, which the caller queues).
pub fn apply_deadline_effects(
    tx: &Transaction,
    case_id: i64,
    effects: &[Effect],
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    for effect in effects {
        match effect {
            Effect::SetDeadline { kind, due } => {
                db::set_deadline(tx, case_id, &kind.as_key(), *due, now)?
            }
            Effect::CancelDeadlines(kinds) => {
                for k in kinds {
                    db::cancel_deadline(tx, case_id, &k.as_key(), now)?;
                }
            }
            Effect::SendLetter(_) | Effect::NotifyStaff { .. } => {}
        }
    }
    Ok(())
}

impl<'a> LetterSpec<'a> {
    /// The letter as outbox row `row`'s rendering job, dated `now`: its
    /// Message-ID is the fixed one, else the row's own for its recipient,
    /// and its values include those every letter has.
    fn into_job(self, desk: &Desk, row: i64, now: DateTime<Utc>) -> Job {
        let message_id = self
            .message_id
            .unwrap_or_else(|| own_message_id(desk, self.reference, self.to_address, row));
        let mut data = self.data;
        common_values(desk, self.reference, &mut data);
        // Every letter's contract has `recipient_name` (see
        // `render::sample`), so a template checked at start may use it in
        // any letter, a complainant's too.
        if let Value::Object(map) = &mut data {
            map.entry("recipient_name")
                .or_insert_with(|| Value::String(super::casework::greeting_for(self.to_name)));
        }
        Job {
            row,
            template: self.template.to_string(),
            data,
            to_name: self.to_name.to_string(),
            to_address: self.to_address.to_string(),
            message_id,
            in_reply_to: self.in_reply_to.map(str::to_string),
            references: self.references.to_vec(),
            reply_to: self.reply_to,
            auto_submitted: self.auto_submitted,
            date: now,
        }
    }

    /// A notice to the Quality Coordinator about something that happened
    /// once (`key` names it, e.g. `quarantine.42`): its Message-ID is fixed
    /// by the key, so QC hears about it once however often it is queued.
    pub fn notice_to_qc(
        desk: &'a Desk,
        template: &'a str,
        key: String,
        case_id: Option<i64>,
        reference: &'a str,
        data: Value,
    ) -> Self {
        let qc = &desk.config.staff.quality_coordinator;
        let mut data = data;
        if let Value::Object(map) = &mut data {
            map.entry("recipient_name")
                .or_insert_with(|| Value::String(qc.name.clone()));
        }
        LetterSpec {
            template,
            case_id,
            reference,
            to_name: &qc.name,
            to_address: &qc.address,
            auto_reply: false,
            auto_submitted: AutoSubmitted::Generated,
            in_reply_to: None,
            references: &[],
            // Fixed by the key, with QC's token: QC's reply is known as
            // theirs (see service::staff), not taken for a forgery.
            message_id: Some(token::notice_message_id(
                &key,
                token_reference(reference),
                &token::token(&desk.secret, token_reference(reference), &qc.address),
                desk.config.message_id_domain(),
            )),
            reply_to: None,
            data,
        }
    }
}

/// The Message-ID of outbox row `row` when its letter has no fixed one:
/// with the token binding the case (or the desk) and the recipient.
fn own_message_id(desk: &Desk, reference: &str, to_address: &str, row: i64) -> String {
    let reference = token_reference(reference);
    let t = token::token(&desk.secret, reference, to_address);
    token::message_id(row, reference, &t, desk.config.message_id_domain())
}

/// The reference a letter's token binds: the case's, or the desk's for
/// mail about no case.
fn token_reference(reference: &str) -> &str {
    if reference.is_empty() {
        token::DESK
    } else {
        reference
    }
}

/// Dates as letters show them: "Friday 18 December 2026".
pub fn long_date(date: NaiveDate) -> String {
    crate::core::text::uk_long_date(date)
}

/// At most this many notices of one kind go to QC in 24 hours; after
/// that, one `notices-held` notice says further ones are only recorded.
pub const NOTICES_PER_DAY: u32 = 10;

/// Queues a notice to QC made by [`LetterSpec::notice_to_qc`], unless
/// [`NOTICES_PER_DAY`] of its kind went in the last 24 hours: then it is
/// recorded as an event (`notice-held`) and QC is told once a day that
/// they are being held. Returns the Message-ID when it was queued.
pub fn queue_notice(
    tx: &Transaction,
    desk: &Desk,
    spec: LetterSpec,
    now: DateTime<Utc>,
) -> anyhow::Result<Option<String>> {
    let since = now - chrono::Duration::hours(24);
    let sent = db::letters_since(tx, spec.template, spec.to_address, None, since)?;
    if sent < NOTICES_PER_DAY {
        return queue(tx, desk, spec, now);
    }
    db::append_event(
        tx,
        spec.case_id,
        now,
        "redress",
        "notice-held",
        &serde_json::json!({"kind": spec.template, "to": spec.to_address, "reference": spec.reference}),
    )?;
    let day = desk.calendar.local_date(now).format("%Y%m%d");
    queue(
        tx,
        desk,
        LetterSpec::notice_to_qc(
            desk,
            "notices-held",
            format!("notices-held-{}.{day}", spec.template),
            None,
            "",
            serde_json::json!({
                "kind": spec.template,
                "limit": NOTICES_PER_DAY,
                "since": crate::service::casework::local_time_text(desk, now),
            }),
        ),
        now,
    )?;
    Ok(None)
}

/// Queues the letter; returns its Message-ID, or None when a notice with
/// the same fixed Message-ID was already queued.
pub fn queue(
    tx: &Transaction,
    desk: &Desk,
    spec: LetterSpec,
    now: DateTime<Utc>,
) -> anyhow::Result<Option<String>> {
    queue_with(tx, desk, spec, now, Render::Now)
}

/// When a queued letter is rendered.
#[derive(Clone, Copy)]
pub enum Render<'r> {
    /// Rendered and built before its row is inserted.
    Now,
    /// Its row is inserted at once without its bytes, and a helper thread
    /// renders it while the batch goes on; [`Deferred::finish`] writes the
    /// bytes into the rows before the batch commits.
    Later(&'r Deferred),
}

/// A letter to render on the helper thread.
struct Job {
    row: i64,
    template: String,
    data: Value,
    to_name: String,
    to_address: String,
    message_id: String,
    in_reply_to: Option<String>,
    references: Vec<String>,
    /// Where replies go, when not the complaints address.
    reply_to: Option<String>,
    auto_submitted: AutoSubmitted,
    date: DateTime<Utc>,
}

/// A rendered letter: its outbox row, subject and bytes.
type Rendered = (i64, anyhow::Result<(String, Vec<u8>)>);

/// The letters of a batch rendered on a helper thread (templates and MIME
/// building are a third of a new case's work, and need nothing from the
/// store), so that they take another core while the store's work goes on.
pub struct Deferred {
    jobs: std::sync::mpsc::Sender<Job>,
    rendered: std::sync::mpsc::Receiver<Rendered>,
    queued: std::cell::Cell<usize>,
}

impl Deferred {
    /// Runs `f` with a helper thread rendering the letters it queues with
    /// [`Render::Later`].
    pub fn run<T>(desk: &Desk, f: impl FnOnce(&Deferred) -> T) -> T {
        let (jobs, job_rx) = std::sync::mpsc::channel::<Job>();
        let (done_tx, rendered) = std::sync::mpsc::channel::<Rendered>();
        std::thread::scope(|scope| {
            scope.spawn(move || {
                for job in job_rx {
                    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        render_and_build(desk, &job)
                    }))
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("rendering the letter panicked")));
                    if done_tx.send((job.row, result)).is_err() {
                        break;
                    }
                }
            });
            let deferred = Deferred {
                jobs,
                rendered,
                queued: std::cell::Cell::new(0),
            };
            // Dropping `deferred` at the end closes the channel: the helper
            // stops and the scope joins it.
            f(&deferred)
        })
    }

    /// Waits for every letter queued so far and writes their bytes into
    /// their rows; an error when one could not be rendered (the caller
    /// rolls the batch back and does it again rendering at once, where
    /// such a letter is an error of its own mail).
    pub fn finish(&self, tx: &Transaction) -> anyhow::Result<()> {
        for _ in 0..self.queued.replace(0) {
            let (row, result) = self
                .rendered
                .recv()
                .map_err(|_| anyhow::anyhow!("the letter rendering thread stopped"))?;
            let (subject, raw) = result?;
            db::set_outbox_bytes(tx, row, &subject, &raw)?;
        }
        Ok(())
    }
}

fn render_and_build(desk: &Desk, job: &Job) -> anyhow::Result<(String, Vec<u8>)> {
    let cfg = &desk.config;
    let letter = desk.templates.render(&job.template, &job.data)?;
    let raw = outgoing::build(&Outgoing {
        from_name: &cfg.organisation.name,
        from_address: cfg.from_address(),
        to_name: &job.to_name,
        to_address: &job.to_address,
        reply_to: Some(job.reply_to.as_deref().unwrap_or(&cfg.mailbox.address)),
        subject: &letter.subject,
        text: &letter.text,
        html: &letter.html,
        message_id: &job.message_id,
        in_reply_to: job.in_reply_to.as_deref(),
        references: &job.references,
        auto_submitted: job.auto_submitted,
        date: job.date,
    })?;
    Ok((letter.subject, raw))
}

/// Queues the letter, rendered as `render` says; returns its Message-ID,
/// or None when a notice with the same fixed Message-ID was already queued.
pub fn queue_with(
    tx: &Transaction,
    desk: &Desk,
    spec: LetterSpec,
    now: DateTime<Utc>,
    render: Render,
) -> anyhow::Result<Option<String>> {
    let id = db::next_outbox_id(tx)?;
    let (kind, case_id, to_address, auto_reply) = (
        spec.template,
        spec.case_id,
        spec.to_address,
        spec.auto_reply,
    );
    let job = spec.into_job(desk, id, now);
    let message_id = job.message_id.clone();
    let (subject, raw, job) = match render {
        Render::Now => {
            let (subject, raw) = render_and_build(desk, &job)?;
            (subject, raw, None)
        }
        Render::Later(_) => (String::new(), Vec::new(), Some(job)),
    };
    let queued = db::queue_outbox(
        tx,
        &NewOutbox {
            id,
            case_id,
            kind,
            message_id: &message_id,
            recipient: to_address,
            auto_reply,
            subject: &subject,
            raw: &raw,
        },
        now,
    )?;
    if let (true, Render::Later(deferred), Some(job)) = (queued, render, job) {
        deferred
            .jobs
            .send(job)
            .map_err(|_| anyhow::anyhow!("the letter rendering thread stopped"))?;
        deferred.queued.set(deferred.queued.get() + 1);
    }
    if queued {
        if let Some(case_id) = case_id {
            db::append_event(
                tx,
                Some(case_id),
                now,
                "redress",
                "letter-queued",
                &serde_json::json!({"kind": kind, "to": to_address, "message_id": message_id}),
            )?;
        }
    }
    Ok(queued.then_some(message_id))
}
