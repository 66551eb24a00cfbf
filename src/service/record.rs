//! A complaint that did not come by email to the complaints inbox (a
//! letter to head office, a phone call, a word with a member of staff, a
//! course review form), recorded by the Quality Coordinator with
//! `redress cases open` (seed 000 §4: "the member of staff receiving the
//! complaint will then pass the information on to the Quality Coordinator,
//! who will ensure the issue is recorded").
//!
//! It becomes a case like any other, in ONE transaction: the record is
//! stored as a message of the case (what was said, by whom, how it came),
//! the case opens in the stage given (a written complaint to head office
//! is seed 000's formal stage), the complainant is acknowledged by email
//! when an address is known, and the Quality Coordinator and the
//! department head get the new-case email they can act on by reply.
//! Recording the same complaint twice opens no second case.

use super::casework::When;
use super::intake::{open_case, Recording};
use super::letters::{long_date, Render};
use super::Desk;
use crate::adapters::db::{self, MessageFacts, RawStored, Source, Store};
use crate::core::case::Status;
use crate::core::message::{Inbound, Mailbox};
use crate::core::procedure::StageName;
use chrono::{DateTime, NaiveDate, Utc};
use sha2::Digest as _;

/// The start of a recorded complaint's Message-ID: `recorded.HASH@domain`.
pub const RECORD_ID_PREFIX: &str = "recorded.";

/// How a complaint came, in the words of the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Post,
    Phone,
    InPerson,
    Form,
    /// By email to someone other than the complaints inbox.
    Email,
    Other,
}

impl Via {
    /// Every way, in the order `--via` lists them.
    pub const ALL: [Via; 6] = [
        Via::Post,
        Via::Phone,
        Via::InPerson,
        Via::Form,
        Via::Email,
        Via::Other,
    ];

    /// The names `redress cases open --via` takes: [`Via::as_str`] of
    /// [`Via::ALL`] (a unit test keeps them equal; clap needs the list as
    /// a constant).
    pub const NAMES: [&'static str; 6] = ["post", "phone", "in-person", "form", "email", "other"];

    pub fn as_str(self) -> &'static str {
        match self {
            Via::Post => "post",
            Via::Phone => "phone",
            Via::InPerson => "in-person",
            Via::Form => "form",
            Via::Email => "email",
            Via::Other => "other",
        }
    }

    /// "Received {phrase}".
    pub fn phrase(self) -> &'static str {
        match self {
            Via::Post => "by post",
            Via::Phone => "by phone",
            Via::InPerson => "in person",
            Via::Form => "on a form",
            Via::Email => "by email to a member of staff",
            Via::Other => "another way",
        }
    }
}

impl std::str::FromStr for Via {
    type Err = String;

    fn from_str(s: &str) -> Result<Via, String> {
        Via::ALL
            .into_iter()
            .find(|v| v.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                format!(
                    "{s:?} is not a way of receiving a complaint: write one of {}",
                    Via::NAMES.join(", ")
                )
            })
    }
}

/// What the Quality Coordinator records.
#[derive(Debug, Clone)]
pub struct Complaint {
    /// The complainant's full name.
    pub name: String,
    /// Where letters go; without one, nothing can be sent to them.
    pub email: Option<String>,
    pub phone: Option<String>,
    pub subject: String,
    /// The full details of the complaint.
    pub text: String,
    pub via: Via,
    /// When it was received (not when it is recorded).
    pub received: DateTime<Utc>,
    /// The date the issue arose, when known: a complaint raised after the
    /// stage's `raise_within` is flagged, never refused.
    pub issue_date: Option<NaiveDate>,
    /// The stage it opens in (default: the first).
    pub stage: Option<String>,
    /// A department id or name (default: the routing rules, on the subject
    /// and text).
    pub department: Option<String>,
    /// The complainant was already acknowledged (in person, by a letter
    /// handed over): no acknowledgement is sent.
    pub acknowledged: bool,
    /// Who records it (default: the Quality Coordinator's address).
    pub by: Option<String>,
}

/// How the acknowledgement went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Acknowledgement {
    /// Queued to the complainant's address; the daemon sends it.
    Queued,
    /// Already given another way, as recorded.
    AlreadyGiven,
    /// No address to write to: the letter went to the Quality Coordinator
    /// to post.
    NoAddress,
}

/// What recording did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Recorded {
    pub reference: String,
    pub stage: String,
    pub department: String,
    /// ISO local date.
    pub target_date: Option<NaiveDate>,
    pub acknowledgement: Acknowledgement,
    /// When raised late: the last day it was due.
    pub raised_late_due: Option<NaiveDate>,
}

/// Records `c` as a new case at `now`. A bad value is refused with the
/// option it came from and nothing is written; the same complaint
/// recorded twice is refused with the case it already is.
pub fn record(
    store: &mut Store,
    desk: &Desk,
    c: &Complaint,
    now: DateTime<Utc>,
) -> anyhow::Result<Recorded> {
    let cfg = &desk.config;
    let name = one_line(&c.name);
    let email = c
        .email
        .as_deref()
        .map(|e| e.trim().to_ascii_lowercase())
        .filter(|e| !e.is_empty());
    let phone = c.phone.as_deref().map(one_line).unwrap_or_default();
    let subject = one_line(&c.subject);
    let text = c.text.replace("\r\n", "\n").trim().to_string();
    if name.is_empty() && email.is_none() {
        anyhow::bail!("--name and --email are both empty: say who complained");
    }
    if subject.is_empty() {
        anyhow::bail!("--subject is empty: give the complaint a short title");
    }
    if text.is_empty() {
        anyhow::bail!(
            "the complaint's text is empty: give its full details with --text or --text-file"
        );
    }
    if let Some(e) = &email {
        check_email(desk, e)?;
    }
    if c.received > now + chrono::Duration::minutes(5) {
        anyhow::bail!("--received is in the future");
    }
    // A few minutes ahead (clocks differ) is taken as now: nothing is
    // received after it is recorded, and its letters belong to its stage.
    let received = c.received.min(now);
    let stage = match &c.stage {
        Some(s) => {
            let wanted = StageName(s.trim().to_string());
            desk.procedure
                .stages
                .iter()
                .find(|st| st.name.0.eq_ignore_ascii_case(&wanted.0))
                .ok_or_else(|| {
                    let names: Vec<&str> = desk
                        .procedure
                        .stages
                        .iter()
                        .map(|s| s.name.0.as_str())
                        .collect();
                    anyhow::anyhow!(
                        "--stage {s:?} is not a stage of the procedure: write one of {}",
                        names.join(", ")
                    )
                })?
        }
        None => desk
            .procedure
            .first_stage()
            .ok_or_else(|| anyhow::anyhow!("the procedure has no stage"))?,
    };
    let received_date = desk.calendar.local_date(received);
    let raised_late_due = match c.issue_date {
        Some(issue) if issue > received_date => anyhow::bail!(
            "--issue-date {issue} is after the complaint was received ({received_date})"
        ),
        Some(issue) => stage.raised_late(issue, received_date, &desk.calendar)?,
        None => None,
    };
    let late_note = match (c.issue_date, raised_late_due, stage.raise_within) {
        (Some(issue), Some(due), Some(window)) => Some(format!(
            "Raised late: the issue arose on {}, and the {} stage asks for complaints within {window} of it (by {}). It is recorded all the same; please consider it.",
            long_date(issue),
            stage.name.0,
            long_date(due)
        )),
        _ => None,
    };
    let mut m = Inbound {
        message_id: String::new(),
        message_id_synthetic: false,
        in_reply_to: Vec::new(),
        references: Vec::new(),
        from: Some(Mailbox {
            name: name.clone(),
            address: email.clone().unwrap_or_default(),
        }),
        reply_to: None,
        to: Vec::new(),
        cc: Vec::new(),
        return_path: None,
        subject: subject.clone(),
        date: Some(received.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        headers: Vec::new(),
        content_type: "text/plain".to_string(),
        report_type: None,
        body_text: text.clone(),
        attachments: Vec::new(),
    };
    let department = match &c.department {
        Some(d) => cfg
            .find_department(d.trim())
            .map(|d| d.id.clone())
            .ok_or_else(|| {
                let known: Vec<String> = cfg
                    .staff
                    .departments
                    .iter()
                    .map(|d| format!("{} ({})", d.id, d.name))
                    .collect();
                anyhow::anyhow!(
                    "--department {d:?} is not a department: write one of {}",
                    known.join(", ")
                )
            })?,
        None => crate::core::intake::route(&m, &desk.routing, cfg.default_department()).to_string(),
    };
    let by =
        c.by.as_deref()
            .map(one_line)
            .filter(|b| !b.is_empty())
            .unwrap_or_else(|| cfg.staff.quality_coordinator.address.clone());

    // The record itself, kept as the case's first message. Its id comes
    // from who complained (name, email) and what they said (subject,
    // text), not how, when, or with what phone number: entering the same
    // complaint again is a duplicate.
    let who = [
        ("Complainant-Name", name.clone()),
        ("Complainant-Email", email.clone().unwrap_or_default()),
        ("Subject", subject.clone()),
    ];
    let mut hash = sha2::Sha256::new();
    for (k, v) in &who {
        hash.update(format!("{k}: {v}\n"));
    }
    hash.update(&text);
    let digest = hex::encode(hash.finalize());
    m.message_id = format!(
        "{RECORD_ID_PREFIX}{}@{}",
        &digest[..24],
        cfg.message_id_domain()
    );
    let more = [
        ("Complainant-Phone", phone.clone()),
        ("Received-Via", c.via.as_str().to_string()),
        (
            "Issue-Date",
            c.issue_date.map(|d| d.to_string()).unwrap_or_default(),
        ),
    ];
    let raw = record_text(&m, &who, &more, &by, now);

    let tx = store.transaction()?;
    if let Some(case) = db::message_case_reference(&tx, &m.message_id)? {
        anyhow::bail!(
            "this complaint is already recorded{}: nothing was changed",
            case.map(|r| format!(" as {r}")).unwrap_or_default()
        );
    }
    let row = match db::store_raw(
        &tx,
        &m.message_id,
        false,
        raw.as_bytes(),
        &Source::default(),
        received,
    )? {
        RawStored::New(row) => row,
        RawStored::Duplicate { .. } => anyhow::bail!("this complaint is already recorded"),
    };
    let recording = Recording {
        stage: &stage.name,
        department: &department,
        phone: &phone,
        via: c.via.as_str(),
        via_phrase: c.via.phrase(),
        issue_date: c.issue_date,
        by: &by,
        acknowledged: c.acknowledged,
        late_note,
    };
    let (case_id, reference, acknowledged) = open_case(
        &tx,
        desk,
        Render::Now,
        &m,
        received,
        now,
        true,
        false,
        None,
        None,
        Some(&recording),
    )?;
    db::message_processed(
        &tx,
        row,
        &MessageFacts {
            case_id: Some(case_id),
            from_address: m.from_address(),
            from_name: &name,
            subject: &subject,
            sent_date: m.date.as_deref(),
            body_text: &text,
            classification: "recorded",
            ..MessageFacts::default()
        },
        now,
    )?;
    let target_date = db::load_case(&tx, case_id)?.target_date;
    tx.commit()?;
    tracing::info!(
        reference = reference.as_str(),
        via = c.via.as_str(),
        by = by.as_str(),
        "complaint recorded"
    );
    Ok(Recorded {
        reference: reference.to_string(),
        stage: stage.name.0.clone(),
        department,
        target_date,
        acknowledgement: if acknowledged {
            Acknowledgement::Queued
        } else if c.acknowledged {
            Acknowledgement::AlreadyGiven
        } else {
            Acknowledgement::NoAddress
        },
        raised_late_due,
    })
}

/// Refuses a complainant's address (`--email`, lower case) that letters
/// cannot go to, or that is the desk's or a member of staff's.
fn check_email(desk: &Desk, e: &str) -> anyhow::Result<()> {
    if !crate::adapters::outgoing::is_sendable(e) {
        anyhow::bail!("--email {e:?} is not an address letters can be sent to");
    }
    if desk.is_desk_or_staff(e) {
        anyhow::bail!(
            "--email {e} is a staff or complaints-desk address: its mail would be taken for staff actions, not a complainant's"
        );
    }
    Ok(())
}

/// A value for one line of the record: line breaks become spaces.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The stored record: mail-like headers (UTF-8, RFC 6532) and the text.
fn record_text(
    m: &Inbound,
    fields: &[(&str, String)],
    more: &[(&str, String)],
    by: &str,
    now: DateTime<Utc>,
) -> String {
    let mut out = format!("Message-ID: <{}>\r\n", m.message_id);
    for (k, v) in fields.iter().chain(more) {
        if !v.is_empty() {
            out.push_str(&format!("X-Redress-{k}: {v}\r\n"));
        }
    }
    if let Some(date) = &m.date {
        out.push_str(&format!("X-Redress-Received: {date}\r\n"));
    }
    out.push_str(&format!("X-Redress-Recorded-By: {by}\r\n"));
    out.push_str(&format!("X-Redress-Recorded-At: {}\r\n", now.to_rfc3339()));
    out.push_str("Content-Type: text/plain; charset=utf-8\r\n\r\n");
    for line in m.body_text.lines() {
        out.push_str(line);
        out.push_str("\r\n");
    }
    out
}

/// New contact details for a case's complainant (`redress cases update`):
/// each field given replaces the one on the case.
#[derive(Debug, Clone, Default)]
pub struct Contact {
    pub name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    /// Who changes them (default: the Quality Coordinator's address).
    pub by: Option<String>,
}

/// What changing the contact details did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ContactChanged {
    pub reference: String,
    pub name: String,
    pub email: String,
    pub phone: String,
    /// The fields that changed, by name (`name`, `email`, `phone`).
    pub changed: Vec<&'static str>,
    /// `queued` when the case had not been acknowledged and now has an
    /// address: the acknowledgement goes to it.
    pub acknowledgement: Option<Acknowledgement>,
}

/// Changes the complainant's contact details on case `reference` at `now`,
/// in one transaction with a `contact-changed` event. With a new address,
/// letters from now on go to it, and so do those still waiting in the
/// outbox (re-addressed, with a Message-ID for the new address); mail from
/// it joins the case. The old address stays one of the complainant's (its
/// mail still joins, and can still take the case further). A case not yet
/// acknowledged (no address to write to, or the acknowledgement held) that
/// gets an address is acknowledged at it, unless an acknowledgement is
/// already waiting to go (it goes to the new address instead). A bad
/// value is refused with its option, and nothing is written.
pub fn change_contact(
    store: &mut Store,
    desk: &Desk,
    reference: &str,
    c: &Contact,
    now: DateTime<Utc>,
) -> anyhow::Result<ContactChanged> {
    let email = c.email.as_deref().map(|e| e.trim().to_ascii_lowercase());
    if let Some(e) = &email {
        check_email(desk, e)?;
    }
    let name = c.name.as_deref().map(one_line);
    let phone = c.phone.as_deref().map(one_line);
    if name.is_none() && email.is_none() && phone.is_none() {
        anyhow::bail!("nothing to change: give --name, --email or --phone");
    }
    let by =
        c.by.as_deref()
            .map(one_line)
            .filter(|b| !b.is_empty())
            .unwrap_or_else(|| desk.config.staff.quality_coordinator.address.clone());
    let tx = store.transaction()?;
    let case_id = db::case_id(&tx, reference)?
        .ok_or_else(|| anyhow::anyhow!("there is no case {reference}"))?;
    let before = db::case_record(&tx, case_id)?;
    let after_name = name.unwrap_or_else(|| before.complainant_name.clone());
    let after_phone = phone.unwrap_or_else(|| before.complainant_phone.clone());
    let after_email = email
        .clone()
        .unwrap_or_else(|| before.reply_address.clone());
    if c.name.is_some() && after_name.is_empty() && after_email.is_empty() {
        anyhow::bail!("--name would leave the case with neither a name nor an email address");
    }
    let mut changed = Vec::new();
    let mut detail = serde_json::Map::new();
    for (field, old, new) in [
        ("name", &before.complainant_name, &after_name),
        ("email", &before.reply_address, &after_email),
        ("phone", &before.complainant_phone, &after_phone),
    ] {
        if old != new {
            changed.push(field);
            detail.insert(field.into(), serde_json::json!({"from": old, "to": new}));
        }
    }
    let new_email = changed.contains(&"email").then_some(after_email.as_str());
    let mut acknowledgement = None;
    if !changed.is_empty() {
        db::set_contact(&tx, case_id, &after_name, new_email, &after_phone, now)?;
        if let Some(e) = new_email {
            db::add_participant(&tx, case_id, e, &after_name, "complainant")?;
            let moved = super::letters::readdress_waiting(&tx, desk, &before, &after_name, e, now)?;
            if !moved.is_empty() {
                detail.insert("letters_readdressed".into(), serde_json::json!(moved));
            }
        }
        db::append_event(
            &tx,
            Some(case_id),
            now,
            &by,
            "contact-changed",
            &serde_json::Value::Object(detail),
        )?;
        // A case not yet acknowledged is acknowledged at its new address;
        // one whose acknowledgement is still waiting has it written again
        // (the greeting, the address), never a second one.
        let case = db::load_case(&tx, case_id)?;
        let open = matches!(case.status, Status::Open | Status::OnHold);
        let waiting = db::acknowledgement_waiting(&tx, case_id, case.stage_opened_at)?;
        let sendable = crate::adapters::outgoing::is_sendable(&after_email);
        let due = case.acknowledged_at.is_none() && open && sendable;
        if due && (new_email.is_some() || waiting.is_some()) {
            let record = db::case_record(&tx, case_id)?;
            super::casework::acknowledge(&tx, desk, &record, &case, When::now(now), waiting)?;
            acknowledgement = Some(Acknowledgement::Queued);
        }
    }
    tx.commit()?;
    tracing::info!(
        reference,
        by = by.as_str(),
        changed = ?changed,
        "contact details changed"
    );
    Ok(ContactChanged {
        reference: reference.to_string(),
        name: after_name,
        email: after_email,
        phone: after_phone,
        changed,
        acknowledgement,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn via_names_are_the_ways_as_written() {
        assert_eq!(Via::ALL.map(Via::as_str), Via::NAMES);
        for v in Via::ALL {
            assert_eq!(v.as_str().parse::<Via>(), Ok(v));
        }
        assert!("pigeon".parse::<Via>().is_err());
    }
}
