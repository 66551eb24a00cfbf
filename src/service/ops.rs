//! Operations for admins and monitoring: `redress status` (is the daemon
//! running, is mail flowing, what waits) and the words `backup` and
//! `restore` print. The JSON of `status` is a stable interface for
//! external checks: fields are added, never renamed.

use crate::adapters::backup::{BackupReport, RestoreReport};
use crate::adapters::db::Store;
use crate::adapters::health::{human_age, Health};
use crate::config::Config;
use crate::core::liveness::DaemonState;
use anyhow::bail;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::fmt::Write as _;

/// `redress status`: the health snapshot plus the verdict.
#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    /// The watched complaints address.
    pub mailbox: String,
    pub store_path: String,
    /// True when the daemon runs and nothing in `problems` is wrong.
    pub healthy: bool,
    /// What is wrong, in plain words.
    pub problems: Vec<String>,
    #[serde(flatten)]
    pub health: Health,
}

/// What `redress status` exits with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusVerdict {
    /// 0: running, nothing wrong.
    Healthy,
    /// 3 (as LSB init scripts say "not running"): stopped, crashed, or
    /// never started.
    NotRunning,
    /// 4: running (or stuck) with a problem listed.
    Unhealthy,
}

impl StatusVerdict {
    pub fn exit_code(self) -> u8 {
        match self {
            StatusVerdict::Healthy => 0,
            StatusVerdict::NotRunning => 3,
            StatusVerdict::Unhealthy => 4,
        }
    }
}

impl StatusReport {
    pub fn verdict(&self) -> StatusVerdict {
        match self.health.daemon_state {
            DaemonState::Stopped | DaemonState::NotRunning => StatusVerdict::NotRunning,
            _ if self.healthy => StatusVerdict::Healthy,
            _ => StatusVerdict::Unhealthy,
        }
    }
}

/// How long the daemon may go without an IMAP round trip before `status`
/// calls it a problem: an IDLE is re-issued every 25 minutes (quiet until
/// mail arrives), a poll comes every `poll_interval`.
pub fn imap_quiet_limit(config: &Config) -> chrono::Duration {
    if config.imap.idle {
        chrono::Duration::from_std(crate::runtime::intake::IDLE_TIMEOUT)
            .unwrap_or(chrono::Duration::minutes(25))
            + chrono::Duration::minutes(5)
    } else {
        chrono::Duration::seconds(3 * config.imap.poll_interval.min(86_400) as i64)
            + chrono::Duration::minutes(2)
    }
}

/// Reads the store named by `config` at `now`.
pub fn status(config: &Config, now: DateTime<Utc>) -> anyhow::Result<StatusReport> {
    let path = &config.store.path;
    if !path.exists() {
        bail!(
            "there is no store at {} (has `redress run` ever run with this config?)",
            path.display()
        );
    }
    let store = Store::open(path)?;
    let health = store.health_at(now)?;
    let problems = health.problems(imap_quiet_limit(config));
    Ok(StatusReport {
        mailbox: config.mailbox.address.clone(),
        store_path: path.display().to_string(),
        healthy: problems.is_empty(),
        problems,
        health,
    })
}

/// The status for people.
pub fn status_table(r: &StatusReport, tz: chrono_tz::Tz) -> String {
    let h = &r.health;
    let d = &h.daemon;
    let when = |t: &Option<String>| -> String {
        match t.as_deref().and_then(|s| s.parse::<DateTime<Utc>>().ok()) {
            Some(t) => format!(
                "{} ({} ago)",
                t.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S %Z"),
                human_age(h.now - t)
            ),
            None => "never".into(),
        }
    };
    let mut out = String::new();
    let daemon = match h.daemon_state {
        DaemonState::Running | DaemonState::Unresponsive => format!(
            "{} (pid {} on {}, redress {}, started {}, heartbeat {})",
            d.state,
            d.pid.unwrap_or_default(),
            d.host.as_deref().unwrap_or("?"),
            d.version.as_deref().unwrap_or("?"),
            when(&d.started_at),
            when(&d.heartbeat_at),
        ),
        DaemonState::Stopped => format!(
            "stopped {}{}",
            when(&d.stopped_at),
            d.stop_note
                .as_deref()
                .filter(|n| *n != "stopped")
                .map(|n| format!(": {n}"))
                .unwrap_or_default()
        ),
        DaemonState::NotRunning => match &d.heartbeat_at {
            Some(_) => format!(
                "not running (pid {} on {}; last heartbeat {}; it did not stop cleanly)",
                d.pid.unwrap_or_default(),
                d.host.as_deref().unwrap_or("?"),
                when(&d.heartbeat_at)
            ),
            None => "not running (it has never run on this store)".into(),
        },
    };
    let _ = writeln!(out, "daemon:             {daemon}");
    let _ = writeln!(out, "mailbox:            {}", r.mailbox);
    let _ = writeln!(
        out,
        "store:              {} (schema {})",
        r.store_path, h.schema_version
    );
    let _ = writeln!(out, "last IMAP contact:  {}", when(&h.last_imap_contact_at));
    let _ = writeln!(
        out,
        "last mail received: {}",
        when(&h.last_mail_received_at)
    );
    let o = &h.outbox;
    let waiting = match o.depth {
        0 => "empty".to_string(),
        n => format!(
            "{n} waiting ({} retrying), oldest queued {}",
            o.retrying,
            when(&o.oldest_queued_at)
        ),
    };
    let _ = writeln!(out, "outbox:             {waiting}");
    let _ = writeln!(out, "failed sends:       {}", o.failed);
    let _ = writeln!(out, "quarantined mail:   {}", h.quarantined);
    let stages: Vec<String> = h
        .open_cases
        .by_stage
        .iter()
        .map(|(s, n)| format!("{s} {n}"))
        .collect();
    let _ = writeln!(
        out,
        "open cases:         {}{}{}",
        h.open_cases.total,
        if stages.is_empty() {
            String::new()
        } else {
            format!(" ({})", stages.join(", "))
        },
        if h.open_cases.on_hold > 0 {
            format!(", {} on hold", h.open_cases.on_hold)
        } else {
            String::new()
        }
    );
    let next = match &h.next_deadline {
        Some(n) => {
            let due = n
                .due_at
                .parse::<DateTime<Utc>>()
                .map(|t| t.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z").to_string())
                .unwrap_or_else(|_| n.due_at.clone());
            format!("{due}: {} of {}", n.kind, n.reference)
        }
        None => "none".into(),
    };
    let _ = writeln!(out, "next deadline:      {next}");
    if r.problems.is_empty() {
        let _ = writeln!(out, "problems:           none");
    } else {
        for p in &r.problems {
            let _ = writeln!(out, "problem:            {p}");
        }
    }
    out
}

/// What `redress backup` prints.
pub fn backup_text(r: &BackupReport) -> String {
    format!(
        "{} {}: {} bytes, schema version {}, {} case(s), {} message(s); integrity checked",
        if r.replaced { "replaced" } else { "wrote" },
        r.path.display(),
        r.facts.bytes,
        r.facts.schema_version,
        r.facts.cases,
        r.facts.messages
    )
}

/// What `redress restore` prints.
pub fn restore_text(r: &RestoreReport, from: &std::path::Path) -> String {
    let mut out = String::new();
    if r.moved_aside.is_empty() {
        let _ = writeln!(out, "there was no store at {}", r.store.display());
    }
    for p in &r.moved_aside {
        let _ = writeln!(out, "moved aside (kept): {}", p.display());
    }
    let _ = writeln!(
        out,
        "restored {} from {}: schema version {}, {} case(s), {} message(s)",
        r.store.display(),
        from.display(),
        r.facts.schema_version,
        r.facts.cases,
        r.facts.messages
    );
    let _ = writeln!(
        out,
        "start the daemon again (systemctl start redress); mail already marked done on the server after the backup was taken is not taken again (see README, Backup and restore)"
    );
    out
}
