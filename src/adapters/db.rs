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
const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/0001_initial.sql"),
    include_str!("../../migrations/0002_daemon.sql"),
    include_str!("../../migrations/0003_refused_since.sql"),
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Makes every commit to the store at `path` so far survive a power cut:
/// syncs its WAL file, where commits are until a checkpoint copies them
/// into the database file (and syncs that). A sync through any descriptor
/// of a file covers what every process wrote to it. Without a WAL file
/// (the last connection checkpointed and removed it) the database file is
/// synced.
pub fn sync_wal(path: &Path) -> anyhow::Result<()> {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    let file = match std::fs::File::open(&wal) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => std::fs::File::open(path)
            .with_context(|| format!("Opening the store {} to sync it", path.display()))?,
        Err(e) => {
            return Err(e).with_context(|| format!("Opening {} to sync it", wal.to_string_lossy()))
        }
    };
    file.sync_data()
        .with_context(|| format!("Syncing the store {}", path.display()))
}

/// Creates the directory the store at `path` lives in, if it is missing.
fn store_directory(path: &Path) -> anyhow::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("Creating the store's directory {}", parent.display()))?;
    }
    Ok(())
}

/// Holds the store at `path` for one daemon: an exclusive lock on
/// `<store>.lock`, kept while the returned file is open and let go by the
/// kernel however the process ends (a SIGKILL too). Two daemons on one
/// store would each send every letter in the outbox.
pub fn lock_for_daemon(path: &Path) -> anyhow::Result<std::fs::File> {
    store_directory(path)?;
    let mut name = path.as_os_str().to_owned();
    name.push(".lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&name)
        .with_context(|| format!("Opening {}", name.to_string_lossy()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "another redress daemon is already running on the store {} (it holds {}); two would send every letter twice: stop that one first (`redress status` shows it)",
            path.display(),
            name.to_string_lossy()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("Locking {}", name.to_string_lossy()))
        }
    }
}

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
        store_directory(path)?;
        let conn = Connection::open(path)
            .with_context(|| format!("Opening the store {}", path.display()))?;
        conn.busy_timeout(Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // NORMAL: a commit survives a crash of the process at once, and a
        // power cut once the WAL is synced. Before anything outside sees a
        // commit (mail flagged done on the server, a letter handed to SMTP
        // or marked sent) the WAL is synced with [`sync_wal`]: never a
        // complaint lost, or a letter sent twice, by a power cut. Syncing
        // only there, and the intake's sync off its deciding thread, costs
        // the backlog drain far less than FULL (a sync at every commit,
        // slowed by the checkpoints running beside it).
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // Savepoint journals (one savepoint per mail in a batch) in memory,
        // not in a temporary file created and written for every mail.
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        // A batch of mail dirties a few MiB of pages: room for them in the
        // page cache, so they are written once, at the commit, not spilled
        // to the WAL half-way (the default cache is 2 MiB).
        conn.pragma_update(None, "cache_size", -32768)?;
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
        if self.version()? == SCHEMA_VERSION {
            // Up to date: no write lock for a mere open (the CLI's reads).
            return Ok(());
        }
        loop {
            // The version is read inside the write transaction: two
            // processes opening a new store at once (the daemon and the
            // CLI) must not both apply the same migration.
            let tx = self
                .conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let current: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
            if current > SCHEMA_VERSION {
                bail!(
                    "the store has schema version {current}, newer than this redress knows ({SCHEMA_VERSION}): upgrade redress"
                );
            }
            let Some(sql) = MIGRATIONS.get(current as usize) else {
                return Ok(());
            };
            let version = current + 1;
            tx.execute_batch(sql)
                .with_context(|| format!("Applying migration {version}"))?;
            tx.pragma_update(None, "user_version", version)?;
            tx.commit()?;
            tracing::info!(version, "store migrated");
        }
    }

    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Makes every commit so far durable: see [`sync_wal`].
    pub fn sync(&self) -> anyhow::Result<()> {
        let path = self
            .conn
            .path()
            .filter(|p| !p.is_empty())
            .ok_or_else(|| anyhow::anyhow!("the store has no file"))?;
        sync_wal(Path::new(path))
    }

    /// Turns SQLite's automatic WAL checkpoints on this connection on (the
    /// default: after a commit that leaves 1000 pages in the WAL) or off,
    /// for a connection whose checkpoints another one does
    /// ([`Store::checkpoint_wal`]).
    pub fn set_auto_checkpoint(&self, on: bool) -> anyhow::Result<()> {
        self.conn
            .pragma_update(None, "wal_autocheckpoint", if on { 1000 } else { 0 })?;
        Ok(())
    }

    /// Copies what the WAL holds into the database file, as far as it can
    /// without waiting for readers or writers (a PASSIVE checkpoint).
    pub fn checkpoint_wal(&self) -> anyhow::Result<()> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))?;
        Ok(())
    }

    /// A write transaction; everything a decision changes is committed in one.
    /// Changes whenever another connection (another process, or another
    /// loop of this one) commits: a cheap way to notice the CLI's writes.
    pub fn data_version(&self) -> anyhow::Result<i64> {
        Ok(self
            .conn
            .pragma_query_value(None, "data_version", |r| r.get(0))?)
    }

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
        // Mail in and letters out, in time order (letters show their kind
        // as the classification and their send time as the date).
        let mut stmt = self.conn.prepare(
            "SELECT message_id, direction, from_address, from_name, to_addresses, subject, sent_date,
                    received_at, classification, body_text, quarantine_reason
             FROM messages WHERE case_id = ?1
             UNION ALL
             SELECT message_id, 'out', '', '', recipient, subject, sent_at, created_at, kind, '', NULL
             FROM outbox WHERE case_id = ?1
             ORDER BY 8",
        )?;
        let messages = stmt
            .query_map(params![case.id], |r| {
                Ok(MessageRecord {
                    message_id: r.get(0)?,
                    direction: r.get(1)?,
                    from_address: r.get(2)?,
                    from_name: r.get(3)?,
                    to: r.get(4)?,
                    subject: r.get(5)?,
                    date: r.get(6)?,
                    received_at: r.get(7)?,
                    classification: r.get(8)?,
                    body_text: r.get(9)?,
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
    /// Records that intake reads `account` (user and host): when it is
    /// not the account last read, the old one's checkpoints go with the
    /// change, in one transaction (a crash cannot leave the new name beside
    /// them), since another mailbox may show the same UIDVALIDITY. Returns
    /// the account it replaced, if one was recorded.
    pub fn claim_imap_account(&mut self, account: &str) -> anyhow::Result<Option<String>> {
        let known = setting(&self.conn, "imap_account")?;
        if known.as_deref() == Some(account) {
            return Ok(None);
        }
        let tx = self.transaction()?;
        if known.is_some() {
            tx.execute("DELETE FROM imap_checkpoints", [])?;
        }
        set_setting(&tx, "imap_account", account)?;
        tx.commit()?;
        Ok(known)
    }

    pub fn checkpoint(&self, folder: &str) -> anyhow::Result<Option<(u32, u32)>> {
        checkpoint(&self.conn, folder)
    }
}

/// Opens the savepoint of one mail's work inside a batch's transaction; end
/// it with [`release`] (keep the work) or [`roll_back`] (undo only it).
pub fn savepoint(tx: &Transaction) -> anyhow::Result<()> {
    tx.prepare_cached("SAVEPOINT mail")?.execute([])?;
    Ok(())
}

/// Keeps the work done since [`savepoint`].
pub fn release(tx: &Transaction) -> anyhow::Result<()> {
    tx.prepare_cached("RELEASE mail")?.execute([])?;
    Ok(())
}

/// Undoes the work done since [`savepoint`], and ends it.
pub fn roll_back(tx: &Transaction) -> anyhow::Result<()> {
    tx.execute_batch("ROLLBACK TO mail; RELEASE mail")?;
    Ok(())
}

/// The IMAP checkpoint of a folder: (UIDVALIDITY, last processed UID).
pub fn checkpoint(conn: &Connection, folder: &str) -> anyhow::Result<Option<(u32, u32)>> {
    Ok(conn
        .prepare_cached("SELECT uidvalidity, last_uid FROM imap_checkpoints WHERE folder = ?1")?
        .query_row(params![folder], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?)
}

/// Where a raw message came from on the IMAP server.
#[derive(Debug, Clone, Default)]
pub struct Source<'a> {
    pub folder: &'a str,
    pub uidvalidity: Option<u32>,
    pub uid: Option<u32>,
}

/// The outcome of storing a raw message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawStored {
    /// A new row.
    New(i64),
    /// The Message-ID was already stored; `processed` says whether intake
    /// finished with it.
    Duplicate { id: i64, processed: bool },
}

/// Stores the raw bytes of an incoming mail unless the same mail (same
/// Message-ID and same bytes) is already stored: the dedupe that makes
/// re-fetching safe. A different mail that reuses a stored Message-ID is
/// kept under a derived one (`ID.HASH`), never dropped. `received` is when
/// the server got it (INTERNALDATE), kept for a later restart.
pub fn store_raw(
    tx: &Transaction,
    message_id: &str,
    synthetic: bool,
    raw: &[u8],
    source: &Source,
    received: DateTime<Utc>,
) -> anyhow::Result<RawStored> {
    use sha2::Digest as _;
    let sha = hex::encode(sha2::Sha256::digest(raw));
    let mut id = message_id.to_string();
    for _ in 0..2 {
        let existing: Option<(i64, Option<String>, String)> = tx
            .prepare_cached(
                "SELECT id, processed_at, raw_sha256 FROM messages WHERE message_id = ?1",
            )?
            .query_row(params![id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        match existing {
            None => break,
            Some((row, processed, stored_sha)) if stored_sha == sha || stored_sha.is_empty() => {
                return Ok(RawStored::Duplicate {
                    id: row,
                    processed: processed.is_some(),
                })
            }
            Some(_) => {
                tracing::warn!(
                    message_id,
                    "a different mail reuses a stored Message-ID: kept under a derived one"
                );
                id = format!("{message_id}.{}", &sha[..12]);
            }
        }
    }
    tx.prepare_cached(
        "INSERT INTO messages (direction, message_id, raw, raw_sha256, synthetic_id, folder, uidvalidity, uid, received_at)
         VALUES ('in', ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![id, raw, sha, synthetic, source.folder, source.uidvalidity, source.uid, ts(received)])?;
    Ok(RawStored::New(tx.last_insert_rowid()))
}

/// How many events of `kind` a case has.
pub fn count_case_events(tx: &Transaction, case_id: i64, kind: &str) -> anyhow::Result<i64> {
    Ok(tx
        .prepare_cached("SELECT count(*) FROM events WHERE case_id = ?1 AND kind = ?2")?
        .query_row(params![case_id, kind], |r| r.get(0))?)
}

/// Whether a message with this Message-ID is stored: `Some` with the
/// reference of its case, if it has one.
pub fn message_case_reference(
    tx: &Transaction,
    message_id: &str,
) -> anyhow::Result<Option<Option<String>>> {
    Ok(tx
        .prepare_cached(
            "SELECT c.reference FROM messages m LEFT JOIN cases c ON c.id = m.case_id WHERE m.message_id = ?1",
        )?
        .query_row(params![message_id], |r| r.get(0))
        .optional()?)
}

/// The parsed facts of a stored message, written once intake decided.
#[derive(Debug, Clone, Default)]
pub struct MessageFacts<'a> {
    pub case_id: Option<i64>,
    pub in_reply_to: &'a str,
    pub refs: &'a str,
    pub from_address: &'a str,
    pub from_name: &'a str,
    pub reply_to: &'a str,
    pub to_addresses: &'a str,
    pub cc_addresses: &'a str,
    pub subject: &'a str,
    pub sent_date: Option<&'a str>,
    pub body_text: &'a str,
    pub classification: &'a str,
}

/// Records intake's decision on a stored message.
pub fn message_processed(
    tx: &Transaction,
    id: i64,
    f: &MessageFacts,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    tx.prepare_cached("UPDATE messages SET case_id = ?2, in_reply_to = ?3, refs = ?4, from_address = ?5, from_name = ?6,
                reply_to = ?7, to_addresses = ?8, cc_addresses = ?9, subject = ?10, sent_date = ?11,
                body_text = ?12, classification = ?13, processed_at = ?14
         WHERE id = ?1")?.execute(
        params![
            id,
            f.case_id,
            f.in_reply_to,
            f.refs,
            f.from_address,
            f.from_name,
            f.reply_to,
            f.to_addresses,
            f.cc_addresses,
            f.subject,
            f.sent_date,
            f.body_text,
            f.classification,
            ts(now)
        ],
    )?;
    Ok(())
}

/// Records an attachment's facts.
pub fn add_attachment(
    tx: &Transaction,
    message: i64,
    filename: &str,
    content_type: &str,
    size: u64,
    oversize: bool,
) -> anyhow::Result<()> {
    tx.prepare_cached("INSERT INTO attachments (message_id, filename, content_type, size, oversize) VALUES (?1, ?2, ?3, ?4, ?5)")?.execute(
        params![message, filename, content_type, size as i64, oversize],
    )?;
    Ok(())
}

/// Quarantines a stored message: kept, with the reason, on no case.
pub fn quarantine(
    tx: &Transaction,
    id: i64,
    reason: &str,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    tx.prepare_cached("UPDATE messages SET quarantine_reason = ?2, classification = 'quarantined', processed_at = ?3 WHERE id = ?1")?.execute(
        params![id, reason, ts(now)],
    )?;
    Ok(())
}

/// A case's id by reference.
pub fn case_id(tx: &Connection, reference: &str) -> anyhow::Result<Option<i64>> {
    Ok(tx
        .prepare_cached("SELECT id FROM cases WHERE reference = ?1")?
        .query_row(params![reference], |r| r.get(0))
        .optional()?)
}

/// Whether `address` takes part in the case.
pub fn is_participant(tx: &Connection, case_id: i64, address: &str) -> anyhow::Result<bool> {
    Ok(tx
        .prepare_cached("SELECT 1 FROM participants WHERE case_id = ?1 AND address = ?2")?
        .query_row(params![case_id, address.to_ascii_lowercase()], |_| Ok(()))
        .optional()?
        .is_some())
}

/// Marks a row sent (after the server's 250) and logs it on the case.
/// False when the row was re-addressed since it was read: the letter that
/// went is logged, and the row still waits for its new recipient.
pub fn outbox_sent(
    tx: &Transaction,
    row: &PendingOutbox,
    now: DateTime<Utc>,
) -> anyhow::Result<bool> {
    // Only the letter as it was sent: one re-addressed meanwhile (a new
    // Message-ID) still waits, and goes to its new recipient.
    let changed = tx
        .prepare_cached(
            "UPDATE outbox SET sent_at = ?2, last_error = NULL WHERE id = ?1 AND message_id = ?3",
        )?
        .execute(params![row.id, ts(now), row.message_id])?;
    if let Some(case_id) = row.case_id {
        append_event(
            tx,
            Some(case_id),
            now,
            "redress",
            "letter-sent",
            &serde_json::json!({"kind": row.kind, "to": row.recipient, "message_id": row.message_id}),
        )?;
    }
    Ok(changed > 0)
}

/// A case as the state machine sees it.
pub fn load_case(tx: &Connection, case_id: i64) -> anyhow::Result<crate::core::case::Case> {
    use crate::core::case::{Case, CaseRef, Hold, Outcome, Status};
    use crate::core::procedure::StageName;
    let instant = |s: Option<String>| -> anyhow::Result<Option<DateTime<Utc>>> {
        s.map(|t| {
            t.parse::<DateTime<Utc>>()
                .with_context(|| format!("stored time {t:?}"))
        })
        .transpose()
    };
    let date = |s: Option<String>| -> anyhow::Result<Option<NaiveDate>> {
        s.map(|t| {
            t.parse::<NaiveDate>()
                .with_context(|| format!("stored date {t:?}"))
        })
        .transpose()
    };
    type Row = (
        String,
        String,
        String,
        String,
        String,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        u8,
        Option<String>,
        Option<String>,
    );
    let r: Row = tx
        .prepare_cached(
            "SELECT reference, stage, status, received_at, stage_opened_at, acknowledged_at, target_date,
                    hold_since, hold_reason, hold_until, escalation_rung, outcome, resolved_at
             FROM cases WHERE id = ?1",
        )?
        .query_row(params![case_id], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
                r.get(8)?,
                r.get(9)?,
                r.get(10)?,
                r.get(11)?,
                r.get(12)?,
            ))
        })?;
    let hold = match instant(r.7)? {
        Some(since) => Some(Hold {
            since,
            reason: r.8.unwrap_or_default(),
            until: date(r.9)?,
        }),
        None => None,
    };
    Ok(Case {
        reference: CaseRef::parse(&r.0).with_context(|| format!("stored reference {:?}", r.0))?,
        stage: StageName(r.1),
        status: r.2.parse::<Status>()?,
        received_at: instant(Some(r.3))?.unwrap_or_default(),
        stage_opened_at: instant(Some(r.4))?.unwrap_or_default(),
        acknowledged_at: instant(r.5)?,
        target_date: date(r.6)?,
        hold,
        escalation_rung: r.10,
        outcome: r
            .11
            .map(|o| o.parse::<Outcome>())
            .transpose()
            .map_err(anyhow::Error::msg)?,
        resolved_at: instant(r.12)?,
    })
}

/// Marks an outbox row failed for good, unless it was re-addressed since
/// it was read (its Message-ID changed): then it still waits, for its new
/// recipient, and this returns false.
pub fn outbox_failed(
    tx: &Transaction,
    row: &PendingOutbox,
    now: DateTime<Utc>,
    error: &str,
) -> anyhow::Result<bool> {
    let changed = tx
        .prepare_cached(
            "UPDATE outbox SET failed_at = ?2, last_error = ?3 WHERE id = ?1 AND message_id = ?4",
        )?
        .execute(params![row.id, ts(now), error, row.message_id])?;
    Ok(changed > 0)
}

/// A case's reference by id.
pub fn case_reference(tx: &Connection, case_id: i64) -> anyhow::Result<String> {
    Ok(tx
        .prepare_cached("SELECT reference FROM cases WHERE id = ?1")?
        .query_row(params![case_id], |r| r.get(0))?)
}

/// The latest case, not closed, whose complainant is `address`.
pub fn open_case_of(tx: &Connection, address: &str) -> anyhow::Result<Option<i64>> {
    if address.is_empty() {
        return Ok(None);
    }
    Ok(tx
        .prepare_cached(
            "SELECT id FROM cases WHERE complainant_email = ?1 AND status != 'closed' ORDER BY id DESC LIMIT 1",
        )?
        .query_row(params![address.to_ascii_lowercase()], |r| r.get(0))
        .optional()?)
}

/// Adds a participant (no-op when already there).
pub fn add_participant(
    tx: &Transaction,
    case_id: i64,
    address: &str,
    name: &str,
    role: &str,
) -> anyhow::Result<()> {
    tx.prepare_cached(
        "INSERT OR IGNORE INTO participants (case_id, address, name, role) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![case_id, address.to_ascii_lowercase(), name, role])?;
    Ok(())
}

/// The case of the first of `ids` that is a message we received or sent.
pub fn case_by_message_ids(tx: &Connection, ids: &[&str]) -> anyhow::Result<Option<i64>> {
    for id in ids {
        let found: Option<i64> = tx
            .prepare_cached(
                "SELECT case_id FROM messages WHERE message_id = ?1 AND case_id IS NOT NULL
                 UNION ALL
                 SELECT case_id FROM outbox WHERE message_id = ?1 AND case_id IS NOT NULL
                 LIMIT 1",
            )?
            .query_row(params![id], |r| r.get(0))
            .optional()?;
        if found.is_some() {
            return Ok(found);
        }
    }
    Ok(None)
}

/// Automatic replies queued to `address` since `since`.
pub fn auto_replies_since(
    tx: &Connection,
    address: &str,
    since: DateTime<Utc>,
) -> anyhow::Result<u32> {
    Ok(tx.prepare_cached("SELECT COUNT(*) FROM outbox WHERE recipient = ?1 AND auto_reply = 1 AND created_at > ?2")?.query_row(
        params![address.to_ascii_lowercase(), ts(since)],
        |r| r.get(0),
    )?)
}

/// Letters of `kind` queued for `address` since `since`; with `case_id`,
/// only those about that case.
pub fn letters_since(
    tx: &Connection,
    kind: &str,
    address: &str,
    case_id: Option<i64>,
    since: DateTime<Utc>,
) -> anyhow::Result<u32> {
    Ok(tx
        .prepare_cached(
            "SELECT COUNT(*) FROM outbox WHERE recipient = ?1 AND created_at > ?2 AND kind = ?3 AND (?4 IS NULL OR case_id = ?4)",
        )?
        .query_row(
            params![address.to_ascii_lowercase(), ts(since), kind, case_id],
            |r| r.get(0),
        )?)
}

/// Whether an event of `kind` by `actor` was logged since `since`.
pub fn event_since(
    tx: &Connection,
    kind: &str,
    actor: &str,
    since: DateTime<Utc>,
) -> anyhow::Result<bool> {
    Ok(tx
        .prepare_cached("SELECT 1 FROM events WHERE kind = ?1 AND actor = ?2 AND at > ?3 LIMIT 1")?
        .query_row(params![kind, actor, ts(since)], |_| Ok(()))
        .optional()?
        .is_some())
}

/// The id the next outbox row will get (for its Message-ID; called inside
/// the transaction that inserts it).
pub fn next_outbox_id(tx: &Transaction) -> anyhow::Result<i64> {
    Ok(tx
        .prepare_cached("SELECT COALESCE(MAX(id), 0) + 1 FROM outbox")?
        .query_row([], |r| r.get(0))?)
}

/// A message to send, fixed when queued.
#[derive(Debug, Clone)]
pub struct NewOutbox<'a> {
    pub id: i64,
    pub case_id: Option<i64>,
    pub kind: &'a str,
    pub message_id: &'a str,
    pub recipient: &'a str,
    pub auto_reply: bool,
    pub subject: &'a str,
    pub raw: &'a [u8],
}

/// Queues a message. A Message-ID already queued is not queued twice
/// (returns false): notices keyed by what they report go out once.
pub fn queue_outbox(tx: &Transaction, m: &NewOutbox, now: DateTime<Utc>) -> anyhow::Result<bool> {
    let n = tx.prepare_cached("INSERT INTO outbox (id, case_id, kind, message_id, recipient, auto_reply, subject, raw, created_at, next_attempt_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)
         ON CONFLICT (message_id) DO NOTHING")?.execute(
        params![
            m.id,
            m.case_id,
            m.kind,
            m.message_id,
            m.recipient.to_ascii_lowercase(),
            m.auto_reply,
            m.subject,
            m.raw,
            ts(now)
        ],
    )?;
    Ok(n == 1)
}

/// Writes a queued letter's subject and bytes (rendered after its row was
/// inserted, before the transaction commits).
pub fn set_outbox_bytes(
    tx: &Transaction,
    id: i64,
    subject: &str,
    raw: &[u8],
) -> anyhow::Result<()> {
    tx.prepare_cached("UPDATE outbox SET subject = ?2, raw = ?3 WHERE id = ?1")?
        .execute(params![id, subject, raw])?;
    Ok(())
}

/// Sets a case's deadline of `kind` (replacing a live one).
pub fn set_deadline(
    tx: &Transaction,
    case_id: i64,
    kind: &str,
    due: DateTime<Utc>,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    cancel_deadline(tx, case_id, kind, now)?;
    tx.prepare_cached("INSERT INTO deadlines (case_id, kind, due_at) VALUES (?1, ?2, ?3)")?
        .execute(params![case_id, kind, ts(due)])?;
    Ok(())
}

/// Cancels a case's live deadline of `kind`.
pub fn cancel_deadline(
    tx: &Transaction,
    case_id: i64,
    kind: &str,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    tx.prepare_cached("UPDATE deadlines SET cancelled_at = ?3 WHERE case_id = ?1 AND kind = ?2 AND fired_at IS NULL AND cancelled_at IS NULL")?.execute(
        params![case_id, kind, ts(now)],
    )?;
    Ok(())
}

/// Writes the state-machine fields of a case.
pub fn update_case_state(
    tx: &Transaction,
    case_id: i64,
    c: &crate::core::case::Case,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    tx.prepare_cached("UPDATE cases SET stage = ?2, status = ?3, stage_opened_at = ?4, acknowledged_at = ?5, target_date = ?6,
                hold_since = ?7, hold_reason = ?8, hold_until = ?9, escalation_rung = ?10, outcome = ?11,
                resolved_at = ?12, updated_at = ?13
         WHERE id = ?1")?.execute(
        params![
            case_id,
            c.stage.0,
            c.status.as_str(),
            ts(c.stage_opened_at),
            c.acknowledged_at.map(ts),
            c.target_date.map(|d| d.to_string()),
            c.hold.as_ref().map(|h| ts(h.since)),
            c.hold.as_ref().map(|h| h.reason.clone()),
            c.hold.as_ref().and_then(|h| h.until.map(|d| d.to_string())),
            c.escalation_rung,
            c.outcome.map(|o| o.as_str()),
            c.resolved_at.map(ts),
            ts(now)
        ],
    )?;
    Ok(())
}

/// Reads (creating on first use) a named random secret of 32 bytes.
pub fn secret(
    tx: &Transaction,
    name: &str,
    fresh: impl FnOnce() -> anyhow::Result<Vec<u8>>,
) -> anyhow::Result<Vec<u8>> {
    let existing: Option<String> = tx
        .prepare_cached("SELECT value FROM settings WHERE name = ?1")?
        .query_row(params![name], |r| r.get(0))
        .optional()?;
    if let Some(hex_value) = existing {
        return hex::decode(hex_value).context("the stored secret is not hex");
    }
    let value = fresh()?;
    tx.prepare_cached("INSERT INTO settings (name, value) VALUES (?1, ?2)")?
        .execute(params![name, hex::encode(&value)])?;
    Ok(value)
}

/// A value in the `settings` table.
pub fn setting(conn: &Connection, name: &str) -> anyhow::Result<Option<String>> {
    Ok(conn
        .prepare_cached("SELECT value FROM settings WHERE name = ?1")?
        .query_row(params![name], |r| r.get(0))
        .optional()?)
}

/// Sets (or replaces) a value in the `settings` table.
pub fn set_setting(conn: &Connection, name: &str, value: &str) -> anyhow::Result<()> {
    conn.prepare_cached(
        "INSERT INTO settings (name, value) VALUES (?1, ?2)
         ON CONFLICT (name) DO UPDATE SET value = excluded.value",
    )?
    .execute(params![name, value])?;
    Ok(())
}

/// Removes a value from the `settings` table; true when there was one.
pub fn delete_setting(conn: &Connection, name: &str) -> anyhow::Result<bool> {
    Ok(conn
        .prepare_cached("DELETE FROM settings WHERE name = ?1")?
        .execute(params![name])?
        > 0)
}

/// One row of the outbox waiting to go.
#[derive(Debug, Clone)]
pub struct PendingOutbox {
    pub id: i64,
    pub case_id: Option<i64>,
    pub kind: String,
    pub message_id: String,
    pub recipient: String,
    pub raw: Vec<u8>,
    pub attempts: u32,
    pub created_at: String,
    /// When the server first refused it (a transient refusal), if it has.
    pub refused_since: Option<String>,
}

/// A row of `SELECT id, case_id, kind, message_id, recipient, raw,
/// attempts, created_at, refused_since FROM outbox`.
fn pending_from_row(r: &rusqlite::Row) -> rusqlite::Result<PendingOutbox> {
    Ok(PendingOutbox {
        id: r.get(0)?,
        case_id: r.get(1)?,
        kind: r.get(2)?,
        message_id: r.get(3)?,
        recipient: r.get(4)?,
        raw: r.get(5)?,
        attempts: r.get(6)?,
        created_at: r.get(7)?,
        refused_since: r.get(8)?,
    })
}

impl Store {
    /// Rows due at `now`, oldest first.
    pub fn due_outbox(&self, now: DateTime<Utc>, limit: u32) -> anyhow::Result<Vec<PendingOutbox>> {
        let mut stmt = self.conn.prepare(
            "SELECT id, case_id, kind, message_id, recipient, raw, attempts, created_at, refused_since FROM outbox
             WHERE sent_at IS NULL AND failed_at IS NULL AND next_attempt_at <= ?1
             ORDER BY next_attempt_at, id LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![ts(now), limit], pending_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// When the next unsent row is due.
    pub fn next_outbox_due(&self) -> anyhow::Result<Option<DateTime<Utc>>> {
        let next: Option<String> = self.conn.prepare_cached("SELECT MIN(next_attempt_at) FROM outbox WHERE sent_at IS NULL AND failed_at IS NULL")?.query_row(
            [],
            |r| r.get(0),
        )?;
        Ok(next.and_then(|t| t.parse().ok()))
    }

    /// Counts an attempt before it is made (so a crash mid-send still
    /// counts it).
    pub fn outbox_attempt(&self, id: i64) -> anyhow::Result<()> {
        self.conn
            .prepare_cached("UPDATE outbox SET attempts = attempts + 1 WHERE id = ?1")?
            .execute(params![id])?;
        Ok(())
    }

    /// Schedules another attempt (not of a row re-addressed since it was
    /// read: that one is due for its new recipient).
    pub fn outbox_retry(
        &self,
        row: &PendingOutbox,
        next: DateTime<Utc>,
        error: &str,
        refused_at: Option<DateTime<Utc>>,
    ) -> anyhow::Result<()> {
        self.conn
            .prepare_cached(
                "UPDATE outbox SET next_attempt_at = ?2, last_error = ?3,
                        refused_since = COALESCE(refused_since, ?5)
                 WHERE id = ?1 AND message_id = ?4",
            )?
            .execute(params![
                row.id,
                ts(next),
                error,
                row.message_id,
                refused_at.map(ts)
            ])?;
        Ok(())
    }

    /// Messages stored but not yet processed (a crash between storing and
    /// deciding): intake finishes them at start.
    pub fn unprocessed_messages(&self) -> anyhow::Result<Vec<(i64, Vec<u8>, String)>> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, raw, received_at FROM messages WHERE processed_at IS NULL AND direction = 'in' ORDER BY id")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
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
    tx.prepare_cached("INSERT INTO imap_checkpoints (folder, uidvalidity, last_uid, updated_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (folder) DO UPDATE SET uidvalidity = ?2, last_uid = ?3, updated_at = ?4")?.execute(
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
    let seq: u32 = tx
        .prepare_cached("SELECT COALESCE(MAX(seq), 0) + 1 FROM cases WHERE year = ?1")?
        .query_row(params![year], |r| r.get(0))?;
    let reference = CaseRef::new(new.prefix, year, seq);
    tx.prepare_cached("INSERT INTO cases (reference, year, seq, stage, status, complainant_name, complainant_email,
                            complainant_phone, reply_address, subject, department, received_at,
                            stage_opened_at, target_date, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, 'open', ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11, ?12, ?13, ?13)")?.execute(
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
    // A complaint recorded without an address has no one to match mail by.
    if !new.complainant_email.is_empty() {
        tx.prepare_cached("INSERT INTO participants (case_id, address, name, role) VALUES (?1, ?2, ?3, 'complainant')")?.execute(
            params![id, new.complainant_email.to_ascii_lowercase(), new.complainant_name],
        )?;
    }
    Ok((id, reference))
}

/// An earlier copy of the same mail, already decided: the same Message-ID
/// (the copy at hand was stored under a derived one, its bytes being
/// others), sender, subject and text. Returns its case (None when it
/// joined none).
pub fn earlier_copy(
    tx: &Transaction,
    row: i64,
    message_id: &str,
    from_address: &str,
    subject: &str,
    body_text: &str,
) -> anyhow::Result<Option<Option<i64>>> {
    Ok(tx
        .prepare_cached(
            "SELECT case_id FROM messages
             WHERE message_id = ?1 AND id <> ?2 AND direction = 'in'
               AND processed_at IS NOT NULL AND quarantine_reason IS NULL
               AND from_address = ?3 COLLATE NOCASE AND subject = ?4 AND body_text = ?5
             ORDER BY id LIMIT 1",
        )?
        .query_row(
            params![message_id, row, from_address, subject, body_text],
            |r| r.get(0),
        )
        .optional()?)
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
    tx.prepare_cached(
        "INSERT INTO events (case_id, at, actor, kind, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![case_id, ts(at), actor, kind, detail.to_string()])?;
    Ok(())
}

/// A case's record by row id.
pub fn case_record(conn: &Connection, case_id: i64) -> anyhow::Result<CaseRecord> {
    let sql = format!("SELECT {CASE_COLUMNS} FROM cases WHERE id = ?1");
    Ok(conn
        .prepare_cached(&sql)?
        .query_row(params![case_id], case_from_row)?)
}

/// Moves a case to another department.
pub fn set_department(
    tx: &Transaction,
    case_id: i64,
    department: &str,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    tx.prepare_cached("UPDATE cases SET department = ?2, updated_at = ?3 WHERE id = ?1")?
        .execute(params![case_id, department, ts(now)])?;
    Ok(())
}

/// Sets the complainant's name and phone, and with `email` their address
/// (where letters go, and the complainant's address on the case).
pub fn set_contact(
    tx: &Transaction,
    case_id: i64,
    name: &str,
    email: Option<&str>,
    phone: &str,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    tx.prepare_cached(
        "UPDATE cases SET complainant_name = ?2, complainant_email = COALESCE(?3, complainant_email),
                reply_address = COALESCE(?3, reply_address), complainant_phone = ?4, updated_at = ?5
         WHERE id = ?1",
    )?
    .execute(params![case_id, name, email, phone, ts(now)])?;
    Ok(())
}

/// Whether `address` is one of the case's complainant's addresses (the
/// one the complaint came from, and any added later).
pub fn is_complainant(tx: &Connection, case_id: i64, address: &str) -> anyhow::Result<bool> {
    Ok(tx
        .prepare_cached(
            "SELECT 1 FROM participants WHERE case_id = ?1 AND address = ?2 AND role = 'complainant'",
        )?
        .query_row(params![case_id, address.to_ascii_lowercase()], |_| Ok(()))
        .optional()?
        .is_some())
}

/// Letters about case `case_id` to `recipient` still waiting to go (not
/// sent, not failed), oldest first.
pub fn waiting_letters_to(
    tx: &Connection,
    case_id: i64,
    recipient: &str,
) -> anyhow::Result<Vec<PendingOutbox>> {
    let mut stmt = tx.prepare_cached(
        "SELECT id, case_id, kind, message_id, recipient, raw, attempts, created_at, refused_since FROM outbox
         WHERE case_id = ?1 AND recipient = ?2 AND sent_at IS NULL AND failed_at IS NULL ORDER BY id",
    )?;
    let rows = stmt.query_map(
        params![case_id, recipient.to_ascii_lowercase()],
        pending_from_row,
    )?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Gives a letter that has not gone yet a new recipient, Message-ID and
/// bytes, and with `subject` a new subject (the complainant's details
/// changed before it went).
/// It is due at once, its attempts at the old address forgotten (the
/// time it was queued stays: it says which stage the letter belongs to).
pub fn readdress_outbox(
    tx: &Transaction,
    id: i64,
    recipient: &str,
    message_id: &str,
    subject: Option<&str>,
    raw: &[u8],
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    tx.prepare_cached(
        "UPDATE outbox SET recipient = ?2, message_id = ?3, subject = COALESCE(?4, subject), raw = ?5,
                attempts = 0, last_error = NULL, refused_since = NULL, next_attempt_at = ?6
         WHERE id = ?1 AND sent_at IS NULL AND failed_at IS NULL",
    )?
    .execute(params![
        id,
        recipient.to_ascii_lowercase(),
        message_id,
        subject,
        raw,
        ts(now)
    ])?;
    Ok(())
}

/// The outbox row of an acknowledgement queued at or after `since` (the
/// current stage's start) that is still waiting to go: not sent, not
/// failed.
pub fn acknowledgement_waiting(
    tx: &Connection,
    case_id: i64,
    since: DateTime<Utc>,
) -> anyhow::Result<Option<i64>> {
    Ok(tx
        .prepare_cached(
            "SELECT id FROM outbox WHERE case_id = ?1 AND kind = 'acknowledgement'
             AND sent_at IS NULL AND failed_at IS NULL AND created_at >= ?2 ORDER BY id DESC LIMIT 1",
        )?
        .query_row(params![case_id, ts(since)], |r| r.get(0))
        .optional()?)
}

/// A case's audit log, oldest first: (at, actor, kind, detail).
pub fn case_events(
    conn: &Connection,
    case_id: i64,
) -> anyhow::Result<Vec<(String, String, String, serde_json::Value)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT at, actor, kind, detail FROM events WHERE case_id = ?1 ORDER BY id",
    )?;
    let rows = stmt.query_map(params![case_id], |r| {
        let detail: String = r.get(3)?;
        Ok((
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            serde_json::from_str(&detail).unwrap_or(serde_json::Value::String(detail)),
        ))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The first mail the complainant sent on a case: (Message-ID, text).
pub fn first_message(conn: &Connection, case_id: i64) -> anyhow::Result<Option<(String, String)>> {
    Ok(conn
        .prepare_cached(
            "SELECT message_id, body_text FROM messages
             WHERE case_id = ?1 AND direction = 'in' ORDER BY id LIMIT 1",
        )?
        .query_row(params![case_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?)
}

/// A live timer that is due.
#[derive(Debug, Clone)]
pub struct DueDeadline {
    pub id: i64,
    pub case_id: i64,
    pub kind: String,
    pub due_at: DateTime<Utc>,
}

/// Live timers due at or before `at`, earliest first.
pub fn due_deadlines(conn: &Connection, at: DateTime<Utc>) -> anyhow::Result<Vec<DueDeadline>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, case_id, kind, due_at FROM deadlines
         WHERE fired_at IS NULL AND cancelled_at IS NULL AND due_at <= ?1
         ORDER BY due_at, id",
    )?;
    let rows = stmt.query_map(params![ts(at)], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (id, case_id, kind, due) = row?;
        let due_at = due
            .parse()
            .with_context(|| format!("stored deadline time {due:?}"))?;
        out.push(DueDeadline {
            id,
            case_id,
            kind,
            due_at,
        });
    }
    Ok(out)
}

/// The earliest live timer.
pub fn next_deadline_due(conn: &Connection) -> anyhow::Result<Option<DateTime<Utc>>> {
    let due: Option<String> = conn
        .prepare_cached(
            "SELECT min(due_at) FROM deadlines WHERE fired_at IS NULL AND cancelled_at IS NULL",
        )?
        .query_row([], |r| r.get(0))?;
    Ok(due.and_then(|d| d.parse().ok()))
}

/// When the window to take case `case_id` to the next stage ends: the due
/// time of its newest timer for it that was not cancelled (still running,
/// or fired when it closed the case).
pub fn window_end(conn: &Connection, case_id: i64) -> anyhow::Result<Option<DateTime<Utc>>> {
    let due: Option<String> = conn
        .prepare_cached(
            "SELECT due_at FROM deadlines WHERE case_id = ?1 AND kind = 'next-stage-window'
             AND cancelled_at IS NULL ORDER BY id DESC LIMIT 1",
        )?
        .query_row(params![case_id], |r| r.get(0))
        .optional()?;
    Ok(due.and_then(|d| d.parse().ok()))
}

/// Whether one of `ids` is the Message-ID of a letter of kind `kind` queued
/// on case `case_id`.
pub fn letter_among(
    conn: &Connection,
    case_id: i64,
    ids: &[&str],
    kind: &str,
) -> anyhow::Result<bool> {
    let mut stmt = conn.prepare_cached(
        "SELECT 1 FROM outbox WHERE message_id = ?1 AND case_id = ?2 AND kind = ?3",
    )?;
    for id in ids {
        if stmt.exists(params![id, case_id, kind])? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Marks a timer as done.
pub fn fire_deadline(tx: &Transaction, id: i64, now: DateTime<Utc>) -> anyhow::Result<()> {
    tx.prepare_cached("UPDATE deadlines SET fired_at = ?2 WHERE id = ?1")?
        .execute(params![id, ts(now)])?;
    Ok(())
}

/// Moves a live timer on (it waits for working time).
pub fn defer_deadline(tx: &Transaction, id: i64, due: DateTime<Utc>) -> anyhow::Result<()> {
    tx.prepare_cached("UPDATE deadlines SET due_at = ?2 WHERE id = ?1")?
        .execute(params![id, ts(due)])?;
    Ok(())
}

/// Outbox rows from `first_id` on: (reference, kind, recipient, subject).
pub fn outbox_since(
    conn: &Connection,
    first_id: i64,
) -> anyhow::Result<Vec<(String, String, String, String)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT coalesce(c.reference, ''), o.kind, o.recipient, o.subject
         FROM outbox o LEFT JOIN cases c ON c.id = o.case_id WHERE o.id >= ?1 ORDER BY o.id",
    )?;
    let rows = stmt.query_map(params![first_id], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
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
    /// Recipients: the To addresses of a mail in, the recipient of a letter out.
    pub to: String,
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

/// A bare case for other modules' unit tests: (id, reference).
#[cfg(test)]
pub(crate) fn test_case(
    store: &mut Store,
    email: &str,
    stage: &str,
    now: DateTime<Utc>,
) -> (i64, String) {
    let tx = store.transaction().expect("tx");
    let (id, r) = insert_case(
        &tx,
        &NewCase {
            prefix: "OPP",
            stage,
            complainant_name: "",
            complainant_email: email,
            complainant_phone: "",
            reply_address: email,
            subject: "s",
            department: "",
            received_at: now,
            target_date: None,
        },
        now,
    )
    .expect("case");
    tx.commit().expect("commit");
    (id, r.as_str().to_string())
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

    /// Root opening the store of a daemon that runs as another user (a
    /// CLI command such as `cases open` or `tick` on the package's store)
    /// leaves its side files to that user: SQLite gives a new `-wal` and
    /// `-shm` the owner of the database when it runs as root, and redress
    /// relies on it. Only root can give files away; CI runs as root.
    #[test]
    fn side_files_keep_the_owner_of_the_store() {
        use std::os::unix::fs::MetadataExt as _;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.sqlite");
        drop(Store::open(&path).expect("create"));
        const NOBODY: u32 = 65534;
        if std::os::unix::fs::chown(&path, Some(NOBODY), Some(NOBODY)).is_err() {
            // Not root: nothing can be given away, and opening still works.
            assert!(Store::open(&path).is_ok());
            return;
        }
        let store = Store::open(&path).expect("open as root");
        for side in ["s.sqlite-wal", "s.sqlite-shm"] {
            let meta = std::fs::metadata(dir.path().join(side)).expect(side);
            assert_eq!((meta.uid(), meta.gid()), (NOBODY, NOBODY), "{side}");
        }
        drop(store);
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
        let synchronous: i64 = store
            .conn()
            .pragma_query_value(None, "synchronous", |r| r.get(0))
            .expect("synchronous");
        assert_eq!(
            synchronous, 1,
            "NORMAL: synced by sync_wal where it matters"
        );
        store.sync().expect("sync with a WAL");
        let in_memory = Store {
            conn: Connection::open_in_memory().expect("memory"),
        };
        assert!(in_memory.sync().is_err(), "a store without a file");
        store
            .conn()
            .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .expect("bump");
        drop(store);
        let err = Store::open(&path).err().expect("refused");
        assert!(format!("{err:#}").contains("newer"), "{err:#}");
    }

    #[test]
    fn a_case_state_round_trips() {
        use crate::core::case::{Hold, Outcome, Status};
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = Store::open(&dir.path().join("s.sqlite")).expect("open");
        let now = utc("2026-11-23T10:00:00Z");
        let tx = store.transaction().expect("tx");
        let (id, _) =
            insert_case(&tx, &new_case("a@example.net", "2026-11-23T10:00:00Z"), now).expect("a");
        let mut case = load_case(&tx, id).expect("load");
        assert_eq!(case.status, Status::Open);
        assert_eq!(case.target_date, "2026-12-21".parse().ok());
        case.status = Status::OnHold;
        case.hold = Some(Hold {
            since: now,
            reason: "investigator away".into(),
            until: "2026-12-01".parse().ok(),
        });
        case.escalation_rung = 2;
        case.outcome = Some(Outcome::PartlyUpheld);
        case.acknowledged_at = Some(now);
        update_case_state(&tx, id, &case, now).expect("update");
        assert_eq!(load_case(&tx, id).expect("reload"), case);
        tx.commit().expect("commit");
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
