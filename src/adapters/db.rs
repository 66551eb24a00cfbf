//! The SQLite store: schema, migrations and queries.
//!
//! - WAL mode, foreign keys on, a busy timeout so the CLI and the daemon can
//!   share the file.
//! - Numbered migrations (`migrations/NNNN_*.sql`), each applied in its own
//!   transaction together with its `user_version` bump; the version only goes
//!   up, and a store written by a newer redress is refused, not damaged.
//! - The audit log (`events`) is append-only, enforced by triggers.
//! - Times are stored as RFC 3339 UTC text, dates as ISO local dates.

use crate::core::case::{CaseRef, Status};
use anyhow::{bail, Context as _};
use chrono::{DateTime, Datelike, NaiveDate, SecondsFormat, Utc};
use rusqlite::{params, Connection, OptionalExtension, Transaction};
use serde::Serialize;
use std::path::Path;
use std::time::Duration;

/// The migrations, in order; the index + 1 is the schema version.
const MIGRATIONS: &[&str] = &[include_str!("../../migrations/0001_initial.sql")];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// An instant as stored.
pub fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// An open store.
pub struct Store {
    conn: Connection,
}

impl Store {
    /// Opens (creating if needed) and migrates the store at `path`.
    pub fn open(path: &Path) -> anyhow::Result<Store> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("Creating the store's directory {}", parent.display()))?;
        }
        let conn = Connection::open(path)
            .with_context(|| format!("Opening the store {}", path.display()))?;
        conn.busy_timeout(Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let mut store = Store { conn };
        store
            .migrate()
            .with_context(|| format!("Migrating the store {}", path.display()))?;
        Ok(store)
    }

    /// The schema version of the open store.
    pub fn version(&self) -> anyhow::Result<i64> {
        Ok(self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))?)
    }

    fn migrate(&mut self) -> anyhow::Result<()> {
        let current = self.version()?;
        if current > SCHEMA_VERSION {
            bail!(
                "the store has schema version {current}, newer than this redress knows ({SCHEMA_VERSION}): upgrade redress"
            );
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
            let version = i as i64 + 1;
            let tx = self.conn.transaction()?;
            tx.execute_batch(sql)
                .with_context(|| format!("Applying migration {version}"))?;
            tx.pragma_update(None, "user_version", version)?;
            tx.commit()?;
            tracing::info!(version, "store migrated");
        }
        Ok(())
    }

    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// A write transaction; everything a decision changes is committed in one.
    pub fn transaction(&mut self) -> anyhow::Result<Transaction<'_>> {
        Ok(self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?)
    }

    /// Cases, newest first, optionally only those with `status`.
    pub fn list_cases(&self, status: Option<Status>) -> anyhow::Result<Vec<CaseRecord>> {
        let sql = format!(
            "SELECT {CASE_COLUMNS} FROM cases WHERE (?1 IS NULL OR status = ?1) ORDER BY received_at DESC, id DESC"
        );
        let mut stmt = self.conn.prepare(&sql)?;
        let rows = stmt.query_map(params![status.map(|s| s.as_str())], case_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// One case by reference.
    pub fn case(&self, reference: &str) -> anyhow::Result<Option<CaseRecord>> {
        let sql = format!("SELECT {CASE_COLUMNS} FROM cases WHERE reference = ?1");
        Ok(self
            .conn
            .query_row(
                &sql,
                params![reference.trim().to_ascii_uppercase()],
                case_from_row,
            )
            .optional()?)
    }

    /// One case with its messages and its audit log.
    pub fn case_detail(&self, reference: &str) -> anyhow::Result<Option<CaseDetail>> {
        let Some(case) = self.case(reference)? else {
            return Ok(None);
        };
        let mut stmt = self.conn.prepare(
            "SELECT message_id, direction, from_address, from_name, subject, sent_date, received_at,
                    classification, body_text
             FROM messages WHERE case_id = ?1 ORDER BY received_at, id",
        )?;
        let messages = stmt
            .query_map(params![case.id], |r| {
                Ok(MessageRecord {
                    message_id: r.get(0)?,
                    direction: r.get(1)?,
                    from_address: r.get(2)?,
                    from_name: r.get(3)?,
                    subject: r.get(4)?,
                    date: r.get(5)?,
                    received_at: r.get(6)?,
                    classification: r.get(7)?,
                    body_text: r.get(8)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        let mut stmt = self
            .conn
            .prepare("SELECT at, actor, kind, detail FROM events WHERE case_id = ?1 ORDER BY id")?;
        let events = stmt
            .query_map(params![case.id], |r| {
                let detail: String = r.get(3)?;
                Ok(EventRecord {
                    at: r.get(0)?,
                    actor: r.get(1)?,
                    kind: r.get(2)?,
                    detail: serde_json::from_str(&detail)
                        .unwrap_or(serde_json::Value::String(detail)),
                })
            })?
            .collect::<Result<_, _>>()?;
        Ok(Some(CaseDetail {
            case,
            messages,
            events,
        }))
    }

    /// The IMAP checkpoint of a folder: (UIDVALIDITY, last processed UID).
    pub fn checkpoint(&self, folder: &str) -> anyhow::Result<Option<(u32, u32)>> {
        Ok(self
            .conn
            .query_row(
                "SELECT uidvalidity, last_uid FROM imap_checkpoints WHERE folder = ?1",
                params![folder],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
    }
}

/// Records the IMAP checkpoint of a folder.
pub fn set_checkpoint(
    tx: &Transaction,
    folder: &str,
    uidvalidity: u32,
    last_uid: u32,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    tx.execute(
        "INSERT INTO imap_checkpoints (folder, uidvalidity, last_uid, updated_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (folder) DO UPDATE SET uidvalidity = ?2, last_uid = ?3, updated_at = ?4",
        params![folder, uidvalidity, last_uid, ts(now)],
    )?;
    Ok(())
}

/// What a new case row needs.
#[derive(Debug, Clone)]
pub struct NewCase<'a> {
    pub prefix: &'a str,
    pub stage: &'a str,
    pub complainant_name: &'a str,
    pub complainant_email: &'a str,
    pub complainant_phone: &'a str,
    pub reply_address: &'a str,
    pub subject: &'a str,
    pub department: &'a str,
    pub received_at: DateTime<Utc>,
    pub target_date: Option<NaiveDate>,
}

/// Inserts a case with the next reference of its year (the year the
/// complaint was received), and the complainant as a participant.
pub fn insert_case(
    tx: &Transaction,
    new: &NewCase,
    now: DateTime<Utc>,
) -> anyhow::Result<(i64, CaseRef)> {
    let year = new.received_at.year();
    let seq: u32 = tx.query_row(
        "SELECT COALESCE(MAX(seq), 0) + 1 FROM cases WHERE year = ?1",
        params![year],
        |r| r.get(0),
    )?;
    let reference = CaseRef::new(new.prefix, year, seq);
    tx.execute(
        "INSERT INTO cases (reference, year, seq, stage, status, complainant_name, complainant_email,
                            complainant_phone, reply_address, subject, department, received_at,
                            stage_opened_at, target_date, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, 'open', ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11, ?12, ?13, ?13)",
        params![
            reference.as_str(),
            year,
            seq,
            new.stage,
            new.complainant_name,
            new.complainant_email.to_ascii_lowercase(),
            new.complainant_phone,
            new.reply_address,
            new.subject,
            new.department,
            ts(new.received_at),
            new.target_date.map(|d| d.to_string()),
            ts(now),
        ],
    )?;
    let id = tx.last_insert_rowid();
    tx.execute(
        "INSERT INTO participants (case_id, address, name, role) VALUES (?1, ?2, ?3, 'complainant')",
        params![id, new.complainant_email.to_ascii_lowercase(), new.complainant_name],
    )?;
    Ok((id, reference))
}

/// Appends one event to a case's audit log.
pub fn append_event(
    tx: &Transaction,
    case_id: Option<i64>,
    at: DateTime<Utc>,
    actor: &str,
    kind: &str,
    detail: &serde_json::Value,
) -> anyhow::Result<()> {
    tx.execute(
        "INSERT INTO events (case_id, at, actor, kind, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![case_id, ts(at), actor, kind, detail.to_string()],
    )?;
    Ok(())
}

const CASE_COLUMNS: &str = "id, reference, stage, status, complainant_name, complainant_email, complainant_phone,
    reply_address, subject, department, received_at, acknowledged_at, target_date, hold_since, hold_reason,
    hold_until, escalation_rung, outcome, resolved_at";

fn case_from_row(r: &rusqlite::Row) -> rusqlite::Result<CaseRecord> {
    Ok(CaseRecord {
        id: r.get(0)?,
        reference: r.get(1)?,
        stage: r.get(2)?,
        status: r.get(3)?,
        complainant_name: r.get(4)?,
        complainant_email: r.get(5)?,
        complainant_phone: r.get(6)?,
        reply_address: r.get(7)?,
        subject: r.get(8)?,
        department: r.get(9)?,
        received_at: r.get(10)?,
        acknowledged_at: r.get(11)?,
        target_date: r.get(12)?,
        hold_since: r.get(13)?,
        hold_reason: r.get(14)?,
        hold_until: r.get(15)?,
        escalation_rung: r.get(16)?,
        outcome: r.get(17)?,
        resolved_at: r.get(18)?,
    })
}

/// A case as the CLI shows it (`cases list --format json`). The field names
/// are a stable interface: add fields, never rename them.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CaseRecord {
    #[serde(skip)]
    pub id: i64,
    pub reference: String,
    pub stage: String,
    pub status: String,
    pub complainant_name: String,
    pub complainant_email: String,
    pub complainant_phone: String,
    pub reply_address: String,
    pub subject: String,
    pub department: String,
    pub received_at: String,
    pub acknowledged_at: Option<String>,
    pub target_date: Option<String>,
    pub hold_since: Option<String>,
    pub hold_reason: Option<String>,
    pub hold_until: Option<String>,
    pub escalation_rung: i64,
    pub outcome: Option<String>,
    pub resolved_at: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MessageRecord {
    pub message_id: String,
    pub direction: String,
    pub from_address: String,
    pub from_name: String,
    pub subject: String,
    pub date: Option<String>,
    pub received_at: String,
    pub classification: String,
    pub body_text: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct EventRecord {
    pub at: String,
    pub actor: String,
    pub kind: String,
    pub detail: serde_json::Value,
}

/// `cases show --format json`: the case's fields plus `messages` and
/// `events`.
#[derive(Debug, Clone, Serialize)]
pub struct CaseDetail {
    #[serde(flatten)]
    pub case: CaseRecord,
    pub messages: Vec<MessageRecord>,
    pub events: Vec<EventRecord>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().expect("instant")
    }

    fn new_case<'a>(email: &'a str, received: &str) -> NewCase<'a> {
        NewCase {
            prefix: "OPP",
            stage: "informal",
            complainant_name: "Alice Example",
            complainant_email: email,
            complainant_phone: "01254 123456",
            reply_address: email,
            subject: "Late certificate",
            department: "training",
            received_at: utc(received),
            target_date: "2026-12-21".parse().ok(),
        }
    }

    #[test]
    fn references_run_per_year() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = Store::open(&dir.path().join("s.sqlite")).expect("open");
        let now = utc("2026-11-23T10:00:00Z");
        let tx = store.transaction().expect("tx");
        let (_, a) =
            insert_case(&tx, &new_case("a@example.net", "2026-11-23T10:00:00Z"), now).expect("a");
        let (_, b) =
            insert_case(&tx, &new_case("b@example.net", "2026-12-31T23:00:00Z"), now).expect("b");
        let (_, c) =
            insert_case(&tx, &new_case("c@example.net", "2027-01-01T09:00:00Z"), now).expect("c");
        tx.commit().expect("commit");
        assert_eq!(
            [a.as_str(), b.as_str(), c.as_str()],
            ["OPP-2026-0001", "OPP-2026-0002", "OPP-2027-0001"]
        );
        let open = store.list_cases(Some(Status::Open)).expect("list");
        assert_eq!(open.len(), 3);
        assert!(store
            .list_cases(Some(Status::Closed))
            .expect("list")
            .is_empty());
    }

    #[test]
    fn the_audit_log_is_append_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = Store::open(&dir.path().join("s.sqlite")).expect("open");
        let now = utc("2026-11-23T10:00:00Z");
        let tx = store.transaction().expect("tx");
        let (id, r) =
            insert_case(&tx, &new_case("a@example.net", "2026-11-23T10:00:00Z"), now).expect("a");
        append_event(
            &tx,
            Some(id),
            now,
            "redress",
            "opened",
            &serde_json::json!({"stage": "informal"}),
        )
        .expect("event");
        tx.commit().expect("commit");
        assert!(store
            .conn()
            .execute("UPDATE events SET kind = 'x'", [])
            .is_err());
        assert!(store.conn().execute("DELETE FROM events", []).is_err());
        let detail = store
            .case_detail(r.as_str())
            .expect("detail")
            .expect("case");
        assert_eq!(detail.events.len(), 1);
        assert_eq!(detail.events[0].detail["stage"], "informal");
    }

    #[test]
    fn migrations_are_idempotent_and_refuse_a_newer_store() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.sqlite");
        let store = Store::open(&path).expect("open");
        assert_eq!(store.version().expect("version"), SCHEMA_VERSION);
        drop(store);
        let store = Store::open(&path).expect("reopen");
        assert_eq!(store.version().expect("version"), SCHEMA_VERSION);
        let mode: String = store
            .conn()
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .expect("mode");
        assert_eq!(mode, "wal");
        store
            .conn()
            .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .expect("bump");
        drop(store);
        let err = Store::open(&path).err().expect("refused");
        assert!(format!("{err:#}").contains("newer"), "{err:#}");
    }

    #[test]
    fn checkpoints_are_kept_per_folder() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = Store::open(&dir.path().join("s.sqlite")).expect("open");
        let now = utc("2026-11-23T10:00:00Z");
        assert_eq!(store.checkpoint("INBOX").expect("cp"), None);
        let tx = store.transaction().expect("tx");
        set_checkpoint(&tx, "INBOX", 7, 42, now).expect("set");
        set_checkpoint(&tx, "INBOX", 7, 43, now).expect("set");
        tx.commit().expect("commit");
        assert_eq!(store.checkpoint("INBOX").expect("cp"), Some((7, 43)));
    }
}
