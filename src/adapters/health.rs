//! The store's health at a glance, for `redress status`, the metrics and
//! systemd's STATUS= line; and the daemon's liveness record it rests on.
//!
//! - Every figure of one [`Health`] comes from one read transaction: a
//!   consistent snapshot, taken while the daemon writes (WAL readers never
//!   block it).
//! - The daemon's record (the `daemon` row, migration 0002) is written only
//!   by the daemon: [`register_daemon`] at start, [`heartbeat`] every
//!   [`crate::core::liveness::HEARTBEAT_INTERVAL`], [`daemon_stopped`] on a
//!   clean stop. Whether it runs is judged by `core::liveness` from that
//!   record and a look at `/proc` on this host.
//! - The counters for the metrics are counted from rows that are never
//!   deleted (the audit log is append-only), so they survive restarts and
//!   only go up.

use crate::adapters::db::{ts, Store};
use crate::core::liveness::{self, DaemonRecord, DaemonState};
use anyhow::Context as _;
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use std::collections::BTreeMap;

/// An outbox row older than this is a problem (the sender retries with
/// back-off, at most an hour apart: a letter half an hour late is stuck).
pub const OUTBOX_STUCK_AFTER: chrono::Duration = chrono::Duration::minutes(30);

/// This machine, as the daemon record names it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ThisHost {
    pub host: String,
    /// The kernel's boot id (`/proc/sys/kernel/random/boot_id`), empty
    /// where there is none.
    pub boot_id: String,
}

impl ThisHost {
    pub fn read() -> ThisHost {
        ThisHost {
            host: hostname::get()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_default(),
            boot_id: std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
                .map(|s| s.trim().to_string())
                .unwrap_or_default(),
        }
    }
}

/// Whether `pid` is a running redress process on this host (Linux `/proc`;
/// false where there is no `/proc`). A pid whose program cannot be read
/// (another user's) counts as alive: better a refused restore than a store
/// replaced under a running daemon.
pub fn process_alive(pid: u32) -> bool {
    let dir = std::path::PathBuf::from(format!("/proc/{pid}"));
    match std::fs::read_link(dir.join("exe")) {
        Ok(exe) => exe
            .file_name()
            .is_some_and(|n| n.to_string_lossy().contains("redress")),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => dir.exists(),
        Err(_) => false,
    }
}

/// Records this process as the store's daemon (replacing the record of an
/// earlier one).
pub fn register_daemon(
    conn: &Connection,
    pid: u32,
    this: &ThisHost,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    conn.execute(
        "INSERT OR REPLACE INTO daemon (id, pid, host, boot_id, version, started_at, heartbeat_at,
                                        imap_contact_at, stopped_at, stop_note)
         VALUES (1, ?1, ?2, ?3, ?4, ?5, ?5, NULL, NULL, NULL)",
        params![
            pid,
            this.host,
            this.boot_id,
            env!("CARGO_PKG_VERSION"),
            ts(now)
        ],
    )
    .context("Recording the daemon in the store")?;
    Ok(())
}

/// Refreshes the heartbeat of daemon `pid` and its last IMAP contact; false
/// when the record is another process's now (a second daemon took over).
pub fn heartbeat(
    conn: &Connection,
    pid: u32,
    now: DateTime<Utc>,
    imap_contact: Option<DateTime<Utc>>,
) -> anyhow::Result<bool> {
    let n = conn
        .prepare_cached(
            "UPDATE daemon SET heartbeat_at = ?2, imap_contact_at = coalesce(?3, imap_contact_at)
             WHERE id = 1 AND pid = ?1 AND stopped_at IS NULL",
        )?
        .execute(params![pid, ts(now), imap_contact.map(ts)])?;
    Ok(n == 1)
}

/// Marks daemon `pid` stopped (a clean stop, or the store restored).
pub fn daemon_stopped(
    conn: &Connection,
    pid: Option<u32>,
    now: DateTime<Utc>,
    note: &str,
) -> anyhow::Result<()> {
    conn.execute(
        "UPDATE daemon SET stopped_at = ?2, stop_note = ?3
         WHERE id = 1 AND (?1 IS NULL OR pid = ?1) AND stopped_at IS NULL",
        params![pid, ts(now), note],
    )?;
    Ok(())
}

/// The daemon's record, if one ever ran on this store.
pub fn daemon_record(conn: &Connection) -> anyhow::Result<Option<DaemonRecord>> {
    type Row = (
        u32,
        String,
        String,
        String,
        String,
        String,
        Option<String>,
        Option<String>,
        Option<String>,
    );
    let row: Option<Row> = conn
        .prepare_cached(
            "SELECT pid, host, boot_id, version, started_at, heartbeat_at, imap_contact_at,
                    stopped_at, stop_note
             FROM daemon WHERE id = 1",
        )?
        .query_row([], |r| {
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
            ))
        })
        .optional()?;
    let Some(r) = row else { return Ok(None) };
    Ok(Some(DaemonRecord {
        pid: r.0,
        host: r.1,
        boot_id: r.2,
        version: r.3,
        started_at: instant(&r.4)?,
        heartbeat_at: instant(&r.5)?,
        imap_contact_at: r.6.as_deref().map(instant).transpose()?,
        stopped_at: r.7.as_deref().map(instant).transpose()?,
        stop_note: r.8,
    }))
}

fn instant(s: &str) -> anyhow::Result<DateTime<Utc>> {
    s.parse()
        .with_context(|| format!("stored time {s:?} is not RFC 3339"))
}

/// Judges the recorded daemon from this host at `now`.
pub fn judge_daemon(record: Option<&DaemonRecord>, now: DateTime<Utc>) -> DaemonState {
    let seen = match record {
        Some(r) => {
            let this = ThisHost::read();
            let alive = this.host == r.host && process_alive(r.pid);
            liveness::seen(r, &this.host, &this.boot_id, alive)
        }
        None => liveness::ProcessSeen::Unknown,
    };
    liveness::judge(record, seen, now)
}

/// The daemon, as `redress status` reports it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DaemonHealth {
    /// `running`, `unresponsive`, `stopped` or `not-running`.
    pub state: &'static str,
    pub running: bool,
    pub pid: Option<u32>,
    pub host: Option<String>,
    pub version: Option<String>,
    pub started_at: Option<String>,
    pub heartbeat_at: Option<String>,
    pub stopped_at: Option<String>,
    pub stop_note: Option<String>,
}

/// The outbox: letters waiting, and letters given up.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct OutboxHealth {
    /// Rows not yet sent and not given up.
    pub depth: i64,
    /// Of those, rows tried at least once (waiting to retry).
    pub retrying: i64,
    /// When the oldest waiting row was queued.
    pub oldest_queued_at: Option<String>,
    pub oldest_age_seconds: Option<i64>,
    /// Rows given up for good (failed sends) since the store began.
    pub failed: i64,
}

/// Cases not resolved or closed.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct OpenCases {
    /// Status `open` or `on-hold`.
    pub total: i64,
    pub on_hold: i64,
    /// The same, per procedure stage.
    pub by_stage: BTreeMap<String, i64>,
}

/// The earliest live timer.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct NextDeadline {
    pub due_at: String,
    /// `acknowledge`, `target`, `escalation-N`, `hold-until`, `next-stage-window`, `feedback`.
    pub kind: String,
    pub reference: String,
}

/// One consistent snapshot of the store's health. The field names are a
/// stable interface (`redress status --format json`): add, never rename.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Health {
    pub generated_at: String,
    pub daemon: DaemonHealth,
    /// The daemon's last successful IMAP round trip (login, search, fetch,
    /// IDLE, NOOP), as of its last heartbeat.
    pub last_imap_contact_at: Option<String>,
    /// When the server received the newest mail in the store.
    pub last_mail_received_at: Option<String>,
    pub outbox: OutboxHealth,
    /// Mail kept but not handled (see `messages.quarantine_reason`).
    pub quarantined: i64,
    pub open_cases: OpenCases,
    pub next_deadline: Option<NextDeadline>,
    pub schema_version: i64,
    #[serde(skip)]
    pub daemon_state: DaemonState,
    #[serde(skip)]
    pub now: DateTime<Utc>,
    #[serde(skip)]
    pub started: Option<DateTime<Utc>>,
    #[serde(skip)]
    pub imap_contact: Option<DateTime<Utc>>,
    #[serde(skip)]
    pub last_mail: Option<DateTime<Utc>>,
}

/// Counters and gauges for the metrics, beyond [`Health`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counters {
    /// Incoming mail intake finished with (including robots, duplicates
    /// excluded, quarantined included).
    pub messages_processed: i64,
    pub acknowledgements_sent: i64,
    pub escalations_sent: i64,
    /// Outbox rows given up for good.
    pub send_failures: i64,
    /// Seconds from the server receiving the newest processed mail to
    /// intake deciding it; or, while a stored mail waits to be decided,
    /// its wait so far when longer.
    pub intake_lag_seconds: i64,
}

impl Store {
    /// The health of the store at `now`, in one read transaction.
    pub fn health_at(&self, now: DateTime<Utc>) -> anyhow::Result<Health> {
        let tx = self.conn().unchecked_transaction()?;
        let health = health_in(&tx, now)?;
        tx.rollback()?;
        Ok(health)
    }

    /// [`Health`] and [`Counters`] from one read transaction.
    pub fn metrics_at(&self, now: DateTime<Utc>) -> anyhow::Result<(Health, Counters)> {
        let tx = self.conn().unchecked_transaction()?;
        let health = health_in(&tx, now)?;
        let counters = counters_in(&tx, now)?;
        tx.rollback()?;
        Ok((health, counters))
    }
}

fn count(conn: &Connection, sql: &str) -> anyhow::Result<i64> {
    Ok(conn.prepare_cached(sql)?.query_row([], |r| r.get(0))?)
}

fn health_in(conn: &Connection, now: DateTime<Utc>) -> anyhow::Result<Health> {
    let record = daemon_record(conn)?;
    let state = judge_daemon(record.as_ref(), now);
    let daemon = DaemonHealth {
        state: state.as_str(),
        running: state == DaemonState::Running,
        pid: record.as_ref().map(|r| r.pid),
        host: record.as_ref().map(|r| r.host.clone()),
        version: record.as_ref().map(|r| r.version.clone()),
        started_at: record.as_ref().map(|r| ts(r.started_at)),
        heartbeat_at: record.as_ref().map(|r| ts(r.heartbeat_at)),
        stopped_at: record.as_ref().and_then(|r| r.stopped_at.map(ts)),
        stop_note: record.as_ref().and_then(|r| r.stop_note.clone()),
    };
    let imap_contact = record.as_ref().and_then(|r| r.imap_contact_at);
    let last_mail: Option<String> = conn
        .prepare_cached("SELECT max(received_at) FROM messages WHERE direction = 'in'")?
        .query_row([], |r| r.get(0))?;
    let (depth, retrying, oldest): (i64, i64, Option<String>) = conn
        .prepare_cached(
            "SELECT count(*), coalesce(sum(attempts > 0), 0), min(created_at) FROM outbox
             WHERE sent_at IS NULL AND failed_at IS NULL",
        )?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    let oldest_at = oldest.as_deref().map(instant).transpose()?;
    let failed = count(
        conn,
        "SELECT count(*) FROM outbox WHERE failed_at IS NOT NULL",
    )?;
    let quarantined = count(
        conn,
        "SELECT count(*) FROM messages WHERE quarantine_reason IS NOT NULL",
    )?;
    let mut by_stage = BTreeMap::new();
    let (mut total, mut on_hold) = (0, 0);
    {
        let mut stmt = conn.prepare_cached(
            "SELECT stage, status, count(*) FROM cases WHERE status IN ('open', 'on-hold')
             GROUP BY stage, status",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?;
        for row in rows {
            let (stage, status, n) = row?;
            *by_stage.entry(stage).or_insert(0) += n;
            total += n;
            if status == "on-hold" {
                on_hold += n;
            }
        }
    }
    let next_deadline = conn
        .prepare_cached(
            "SELECT d.due_at, d.kind, c.reference FROM deadlines d JOIN cases c ON c.id = d.case_id
             WHERE d.fired_at IS NULL AND d.cancelled_at IS NULL
             ORDER BY d.due_at, d.id LIMIT 1",
        )?
        .query_row([], |r| {
            Ok(NextDeadline {
                due_at: r.get(0)?,
                kind: r.get(1)?,
                reference: r.get(2)?,
            })
        })
        .optional()?;
    let schema_version = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    Ok(Health {
        generated_at: ts(now),
        daemon,
        last_imap_contact_at: imap_contact.map(ts),
        last_mail_received_at: last_mail.clone(),
        outbox: OutboxHealth {
            depth,
            retrying,
            oldest_queued_at: oldest,
            oldest_age_seconds: oldest_at.map(|t| (now - t).num_seconds().max(0)),
            failed,
        },
        quarantined,
        open_cases: OpenCases {
            total,
            on_hold,
            by_stage,
        },
        next_deadline,
        schema_version,
        daemon_state: state,
        now,
        started: record.as_ref().map(|r| r.started_at),
        imap_contact,
        last_mail: last_mail.as_deref().map(instant).transpose()?,
    })
}

fn counters_in(conn: &Connection, now: DateTime<Utc>) -> anyhow::Result<Counters> {
    let messages_processed = count(
        conn,
        "SELECT count(*) FROM messages WHERE direction = 'in' AND processed_at IS NOT NULL",
    )?;
    // Sent letters are counted from the audit log (append-only): each
    // `letter-sent` event was committed with the row's sent mark.
    let (acknowledgements_sent, escalations_sent): (i64, i64) = conn
        .prepare_cached(
            "SELECT coalesce(sum(k = 'acknowledgement'), 0), coalesce(sum(k LIKE 'escalation-%'), 0)
             FROM (SELECT json_extract(detail, '$.kind') AS k FROM events WHERE kind = 'letter-sent')",
        )?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let send_failures = count(
        conn,
        "SELECT count(*) FROM outbox WHERE failed_at IS NOT NULL",
    )?;
    let lag_of = |received: &str, until: DateTime<Utc>| -> anyhow::Result<i64> {
        Ok((until - instant(received)?).num_seconds().max(0))
    };
    let last: Option<(String, String)> = conn
        .prepare_cached(
            "SELECT received_at, processed_at FROM messages
             WHERE direction = 'in' AND processed_at IS NOT NULL ORDER BY id DESC LIMIT 1",
        )?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let mut intake_lag_seconds = match &last {
        Some((received, processed)) => lag_of(received, instant(processed)?)?,
        None => 0,
    };
    let waiting: Option<String> = conn
        .prepare_cached(
            "SELECT min(received_at) FROM messages WHERE processed_at IS NULL AND direction = 'in'",
        )?
        .query_row([], |r| r.get(0))?;
    if let Some(received) = waiting {
        intake_lag_seconds = intake_lag_seconds.max(lag_of(&received, now)?);
    }
    Ok(Counters {
        messages_processed,
        acknowledgements_sent,
        escalations_sent,
        send_failures,
        intake_lag_seconds,
    })
}

impl Health {
    /// What is wrong, in plain words; empty when all is well.
    /// `imap_quiet_limit` is how long the daemon may go without an IMAP
    /// round trip (longer with IDLE, which is quiet until mail arrives).
    pub fn problems(&self, imap_quiet_limit: chrono::Duration) -> Vec<String> {
        let mut p = Vec::new();
        let ago = |t: DateTime<Utc>| human_age(self.now - t);
        match self.daemon_state {
            DaemonState::Running => {
                let since = self.imap_contact.or(self.started);
                if let Some(since) = since {
                    if self.now - since > imap_quiet_limit {
                        p.push(match self.imap_contact {
                            Some(t) => format!("no IMAP contact for {}", ago(t)),
                            None => format!(
                                "no IMAP contact since the daemon started {} ago",
                                ago(since)
                            ),
                        });
                    }
                }
            }
            DaemonState::Unresponsive => p.push(format!(
                "the daemon (pid {}) runs but its heartbeat is {} old",
                self.daemon.pid.unwrap_or_default(),
                self.daemon
                    .heartbeat_at
                    .as_deref()
                    .and_then(|t| t.parse().ok())
                    .map(ago)
                    .unwrap_or_default()
            )),
            DaemonState::Stopped => p.push("the daemon is stopped".into()),
            DaemonState::NotRunning => p.push("the daemon is not running".into()),
        }
        if let Some(age) = self.outbox.oldest_age_seconds {
            if age > OUTBOX_STUCK_AFTER.num_seconds() {
                p.push(format!(
                    "{} letter(s) waiting in the outbox, the oldest for {}",
                    self.outbox.depth,
                    human_age(chrono::Duration::seconds(age))
                ));
            }
        }
        p
    }

    /// One line in plain words for systemd's STATUS= (and logs):
    /// "watching complaints@example.org; 12 open cases; outbox empty; last
    /// mail 10:42". Times are local to `tz`; a last mail on another day
    /// shows its date.
    pub fn summary_line(&self, mailbox: &str, tz: chrono_tz::Tz) -> String {
        let cases = match self.open_cases.total {
            1 => "1 open case".to_string(),
            n => format!("{n} open cases"),
        };
        let outbox = match (self.outbox.depth, self.outbox.oldest_age_seconds) {
            (0, _) => "outbox empty".to_string(),
            (n, Some(age)) if age >= 60 => format!(
                "outbox {n} waiting (oldest {})",
                human_age(chrono::Duration::seconds(age))
            ),
            (n, _) => format!("outbox {n} waiting"),
        };
        let mail = match self.last_mail {
            None => "no mail yet".to_string(),
            Some(t) => {
                let local = t.with_timezone(&tz);
                if local.date_naive() == self.now.with_timezone(&tz).date_naive() {
                    format!("last mail {}", local.format("%H:%M"))
                } else {
                    format!("last mail {}", local.format("%-d %b %H:%M"))
                }
            }
        };
        let mut line = format!("watching {mailbox}; {cases}; {outbox}; {mail}");
        if self.quarantined > 0 {
            line.push_str(&format!("; {} quarantined", self.quarantined));
        }
        line
    }
}

/// "42 s", "5 min", "3 h 10 min", "2 days".
pub fn human_age(d: chrono::Duration) -> String {
    let s = d.num_seconds().max(0);
    match s {
        0..=119 => format!("{s} s"),
        120..=3599 => format!("{} min", s / 60),
        3600..=172_799 => match (s % 3600) / 60 {
            0 => format!("{} h", s / 3600),
            m => format!("{} h {m} min", s / 3600),
        },
        _ => format!("{} days", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::db;

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().expect("instant")
    }

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("s.sqlite")).expect("open");
        (dir, store)
    }

    fn add_case(store: &mut Store, email: &str, stage: &str, now: DateTime<Utc>) -> i64 {
        db::test_case(store, email, stage, now).0
    }

    #[test]
    fn an_empty_store_is_quiet_and_not_running() {
        let (_dir, store) = store();
        let now = utc("2026-11-23T10:00:00Z");
        let h = store.health_at(now).expect("health");
        assert_eq!(h.daemon.state, "not-running");
        assert!(!h.daemon.running);
        assert_eq!(h.outbox.depth, 0);
        assert_eq!(h.open_cases.total, 0);
        assert_eq!(h.next_deadline, None);
        assert_eq!(h.schema_version, db::SCHEMA_VERSION);
        assert_eq!(
            h.problems(chrono::Duration::minutes(30)),
            ["the daemon is not running"]
        );
        let json = serde_json::to_value(&h).expect("json");
        assert_eq!(json["daemon"]["state"], "not-running");
        assert!(json.get("daemon_state").is_none(), "{json}");
    }

    #[test]
    fn the_snapshot_counts_cases_outbox_and_timers() {
        let (_dir, mut store) = store();
        let now = utc("2026-11-23T10:00:00Z");
        let a = add_case(&mut store, "a@example.net", "informal", now);
        add_case(&mut store, "b@example.net", "informal", now);
        let c = add_case(&mut store, "c@example.net", "formal", now);
        let tx = store.transaction().expect("tx");
        tx.execute("UPDATE cases SET status = 'on-hold' WHERE id = ?1", [c])
            .expect("hold");
        tx.execute("UPDATE cases SET status = 'closed' WHERE id = ?1", [a])
            .expect("close");
        db::set_deadline(&tx, c, "target", utc("2026-12-21T17:00:00Z"), now).expect("dl");
        db::set_deadline(&tx, c, "acknowledge", utc("2026-11-25T10:00:00Z"), now).expect("dl");
        for (i, kind) in ["acknowledgement", "escalation-1", "new-case"]
            .iter()
            .enumerate()
        {
            let id = db::next_outbox_id(&tx).expect("id");
            db::queue_outbox(
                &tx,
                &db::NewOutbox {
                    id,
                    case_id: Some(c),
                    kind,
                    message_id: &format!("m{i}@opp.example"),
                    recipient: "x@example.net",
                    auto_reply: false,
                    subject: "s",
                    raw: b"raw",
                },
                now - chrono::Duration::minutes(40 - i as i64),
            )
            .expect("queue");
        }
        tx.commit().expect("commit");
        let rows = store.due_outbox(now, 10).expect("due");
        let tx = store.transaction().expect("tx");
        db::outbox_sent(&tx, &rows[0], now).expect("sent");
        db::outbox_sent(&tx, &rows[1], now).expect("sent");
        tx.commit().expect("commit");

        let (h, counters) = store.metrics_at(now).expect("metrics");
        assert_eq!(h.open_cases.total, 2);
        assert_eq!(h.open_cases.on_hold, 1);
        assert_eq!(
            h.open_cases.by_stage,
            BTreeMap::from([("formal".to_string(), 1), ("informal".to_string(), 1)])
        );
        let next = h.next_deadline.clone().expect("deadline");
        assert_eq!(
            (next.due_at.as_str(), next.kind.as_str()),
            ("2026-11-25T10:00:00Z", "acknowledge")
        );
        assert_eq!(next.reference, "OPP-2026-0003");
        assert_eq!(h.outbox.depth, 1);
        assert_eq!(
            h.outbox.oldest_queued_at.as_deref(),
            Some("2026-11-23T09:22:00Z")
        );
        assert_eq!(h.outbox.oldest_age_seconds, Some(38 * 60));
        assert_eq!(counters.acknowledgements_sent, 1);
        assert_eq!(counters.escalations_sent, 1);
        assert_eq!(counters.send_failures, 0);
        // Waiting 38 minutes is a problem.
        let problems = h.problems(chrono::Duration::minutes(30));
        assert!(
            problems.iter().any(|p| p.contains("oldest for 38 min")),
            "{problems:?}"
        );
    }

    #[test]
    fn intake_lag_is_the_newest_mails_wait_or_a_stored_mails_wait() {
        let (_dir, mut store) = store();
        let now = utc("2026-11-23T10:00:00Z");
        let tx = store.transaction().expect("tx");
        let src = db::Source::default();
        let db::RawStored::New(first) =
            db::store_raw(&tx, "a@x", false, b"a", &src, utc("2026-11-23T09:59:00Z")).expect("raw")
        else {
            panic!("new")
        };
        db::message_processed(
            &tx,
            first,
            &db::MessageFacts::default(),
            utc("2026-11-23T09:59:07Z"),
        )
        .expect("processed");
        tx.commit().expect("commit");
        let (_, c) = store.metrics_at(now).expect("metrics");
        assert_eq!(c.messages_processed, 1);
        assert_eq!(c.intake_lag_seconds, 7);
        let tx = store.transaction().expect("tx");
        db::store_raw(&tx, "b@x", false, b"b", &src, utc("2026-11-23T09:58:00Z")).expect("raw");
        tx.commit().expect("commit");
        let (_, c) = store.metrics_at(now).expect("metrics");
        assert_eq!(c.messages_processed, 1);
        assert_eq!(c.intake_lag_seconds, 120, "the stored mail waits");
    }

    #[test]
    fn the_daemon_record_follows_start_heartbeat_and_stop() {
        let (_dir, store) = store();
        let t0 = utc("2026-11-23T10:00:00Z");
        // A process that has exited: its pid is no redress process now.
        let mut child = std::process::Command::new("true").spawn().expect("spawn");
        child.wait().expect("wait");
        let me = child.id();
        let this = ThisHost::read();
        register_daemon(store.conn(), me, &this, t0).expect("register");
        let contact = utc("2026-11-23T10:00:14Z");
        assert!(
            heartbeat(store.conn(), me, utc("2026-11-23T10:00:15Z"), Some(contact)).expect("beat")
        );
        // Another pid's heartbeat changes nothing.
        assert!(!heartbeat(store.conn(), me + 1, t0, None).expect("beat"));
        let h = store
            .health_at(utc("2026-11-23T10:00:20Z"))
            .expect("health");
        // Its process is gone: not running, though the heartbeat is fresh
        // (as after a SIGKILL). Without /proc the heartbeat alone counts.
        let expected = if std::path::Path::new("/proc/self/exe").exists() {
            "not-running"
        } else {
            "running"
        };
        assert_eq!(h.daemon.state, expected);
        assert_eq!(h.daemon.pid, Some(me));
        assert_eq!(
            h.last_imap_contact_at.as_deref(),
            Some("2026-11-23T10:00:14Z")
        );
        assert_eq!(
            h.daemon.heartbeat_at.as_deref(),
            Some("2026-11-23T10:00:15Z")
        );
        daemon_stopped(
            store.conn(),
            Some(me),
            utc("2026-11-23T10:01:00Z"),
            "stopped",
        )
        .expect("stop");
        let h = store
            .health_at(utc("2026-11-23T10:01:01Z"))
            .expect("health");
        assert_eq!(h.daemon.state, "stopped");
        assert_eq!(h.daemon.stopped_at.as_deref(), Some("2026-11-23T10:01:00Z"));
        // A heartbeat after the stop mark does not revive it.
        assert!(!heartbeat(store.conn(), me, utc("2026-11-23T10:01:02Z"), None).expect("beat"));
    }

    fn health(now: &str, last_mail: Option<&str>, depth: i64, oldest_age: Option<i64>) -> Health {
        let now = utc(now);
        Health {
            generated_at: ts(now),
            daemon: DaemonHealth {
                state: "running",
                running: true,
                pid: Some(1),
                host: None,
                version: None,
                started_at: None,
                heartbeat_at: None,
                stopped_at: None,
                stop_note: None,
            },
            last_imap_contact_at: None,
            last_mail_received_at: last_mail.map(str::to_string),
            outbox: OutboxHealth {
                depth,
                retrying: 0,
                oldest_queued_at: None,
                oldest_age_seconds: oldest_age,
                failed: 0,
            },
            quarantined: 0,
            open_cases: OpenCases {
                total: 12,
                on_hold: 0,
                by_stage: BTreeMap::new(),
            },
            next_deadline: None,
            schema_version: 2,
            daemon_state: DaemonState::Running,
            now,
            started: Some(now),
            imap_contact: Some(now),
            last_mail: last_mail.map(utc),
        }
    }

    #[test]
    fn the_summary_line_reads_plainly() {
        let tz = chrono_tz::Europe::London;
        let h = health(
            "2026-07-01T15:00:00Z",
            Some("2026-07-01T09:42:00Z"),
            0,
            None,
        );
        // 09:42 UTC is 10:42 in London in summer.
        assert_eq!(
            h.summary_line("complaints@opp.example", tz),
            "watching complaints@opp.example; 12 open cases; outbox empty; last mail 10:42"
        );
        let mut h = health(
            "2026-11-23T10:00:00Z",
            Some("2026-11-20T16:05:00Z"),
            3,
            Some(300),
        );
        h.open_cases.total = 1;
        h.quarantined = 2;
        assert_eq!(
            h.summary_line("c@x.example", tz),
            "watching c@x.example; 1 open case; outbox 3 waiting (oldest 5 min); last mail 20 Nov 16:05; 2 quarantined"
        );
        let h = health("2026-11-23T10:00:00Z", None, 1, Some(2));
        assert_eq!(
            h.summary_line("c@x.example", tz),
            "watching c@x.example; 12 open cases; outbox 1 waiting; no mail yet"
        );
    }

    #[test]
    fn a_quiet_imap_connection_is_a_problem_only_past_its_limit() {
        let mut h = health("2026-11-23T10:00:00Z", None, 0, None);
        h.imap_contact = Some(utc("2026-11-23T09:40:00Z"));
        assert!(h.problems(chrono::Duration::minutes(30)).is_empty());
        assert_eq!(
            h.problems(chrono::Duration::minutes(10)),
            ["no IMAP contact for 20 min"]
        );
        h.imap_contact = None;
        h.started = Some(utc("2026-11-23T09:00:00Z"));
        assert_eq!(
            h.problems(chrono::Duration::minutes(10)),
            ["no IMAP contact since the daemon started 1 h ago"]
        );
    }

    #[test]
    fn ages_read_plainly() {
        let s = chrono::Duration::seconds;
        assert_eq!(human_age(s(42)), "42 s");
        assert_eq!(human_age(s(300)), "5 min");
        assert_eq!(human_age(s(3600 * 3 + 600)), "3 h 10 min");
        assert_eq!(human_age(s(7200)), "2 h");
        assert_eq!(human_age(s(86_400 * 3)), "3 days");
    }
}
