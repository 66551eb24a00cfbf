//! Whether the daemon runs: judged from what it recorded in the store (its
//! heartbeat, a clean stop mark) and what can be seen of its process.
//!
//! The daemon refreshes its heartbeat every [`HEARTBEAT_INTERVAL`]; one
//! older than [`STALE_AFTER`] (three missed beats) means it is gone or
//! stuck. A clean stop mark wins over everything (a pid can be reused), a
//! process seen gone on its own host wins over a fresh heartbeat (a
//! SIGKILL leaves one behind), and a process on another host can only be
//! judged by its heartbeat.

use chrono::{DateTime, Utc};
use std::time::Duration;

/// How often the daemon refreshes its heartbeat.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(15);

/// A heartbeat older than this (three intervals) is stale.
pub const STALE_AFTER: chrono::Duration = chrono::Duration::seconds(45);

/// What the daemon's own record says (the `daemon` row of the store).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonRecord {
    pub pid: u32,
    pub host: String,
    pub boot_id: String,
    pub version: String,
    pub started_at: DateTime<Utc>,
    pub heartbeat_at: DateTime<Utc>,
    pub imap_contact_at: Option<DateTime<Utc>>,
    pub stopped_at: Option<DateTime<Utc>>,
    pub stop_note: Option<String>,
}

/// What could be seen of the recorded process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessSeen {
    /// A redress process with that pid runs on this host, in this boot.
    Alive,
    /// It does not (no such pid, another program, or the host rebooted).
    Gone,
    /// Cannot tell: another host, or no way to look.
    Unknown,
}

/// The daemon's state, as `redress status` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DaemonState {
    /// Its heartbeat is fresh.
    Running,
    /// Its process is alive on this host but its heartbeat is stale: stuck.
    Unresponsive,
    /// It stopped cleanly.
    Stopped,
    /// Never ran on this store, crashed, or was killed.
    NotRunning,
}

impl DaemonState {
    pub fn as_str(self) -> &'static str {
        match self {
            DaemonState::Running => "running",
            DaemonState::Unresponsive => "unresponsive",
            DaemonState::Stopped => "stopped",
            DaemonState::NotRunning => "not-running",
        }
    }

    /// Whether a process may still be using the store (restore refuses).
    pub fn may_be_running(self) -> bool {
        matches!(self, DaemonState::Running | DaemonState::Unresponsive)
    }
}

/// Judges the daemon's state at `now`.
pub fn judge(record: Option<&DaemonRecord>, seen: ProcessSeen, now: DateTime<Utc>) -> DaemonState {
    let Some(r) = record else {
        return DaemonState::NotRunning;
    };
    if r.stopped_at.is_some() {
        return DaemonState::Stopped;
    }
    let fresh = now.signed_duration_since(r.heartbeat_at) <= STALE_AFTER;
    match (seen, fresh) {
        (ProcessSeen::Gone, _) => DaemonState::NotRunning,
        (_, true) => DaemonState::Running,
        (ProcessSeen::Alive, false) => DaemonState::Unresponsive,
        (ProcessSeen::Unknown, false) => DaemonState::NotRunning,
    }
}

/// Judges whether the recorded process is this host's, in this boot, and
/// alive: `host` and `boot_id` are this machine's (empty when unknown),
/// `alive` says whether the pid is a redress process here.
pub fn seen(record: &DaemonRecord, host: &str, boot_id: &str, alive: bool) -> ProcessSeen {
    if host.is_empty() || record.host != host {
        return ProcessSeen::Unknown;
    }
    if !boot_id.is_empty() && !record.boot_id.is_empty() && record.boot_id != boot_id {
        return ProcessSeen::Gone;
    }
    if alive {
        ProcessSeen::Alive
    } else {
        ProcessSeen::Gone
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().expect("instant")
    }

    fn record(heartbeat: &str) -> DaemonRecord {
        DaemonRecord {
            pid: 4242,
            host: "desk".into(),
            boot_id: "boot-a".into(),
            version: "0.1.0".into(),
            started_at: utc("2026-11-23T09:00:00Z"),
            heartbeat_at: utc(heartbeat),
            imap_contact_at: None,
            stopped_at: None,
            stop_note: None,
        }
    }

    #[test]
    fn a_fresh_heartbeat_is_running_unless_the_process_is_seen_gone() {
        let now = utc("2026-11-23T10:00:30Z");
        let r = record("2026-11-23T10:00:00Z");
        assert_eq!(
            judge(Some(&r), ProcessSeen::Alive, now),
            DaemonState::Running
        );
        assert_eq!(
            judge(Some(&r), ProcessSeen::Unknown, now),
            DaemonState::Running
        );
        // Killed with SIGKILL a moment ago: the heartbeat is fresh, the
        // process is not there.
        assert_eq!(
            judge(Some(&r), ProcessSeen::Gone, now),
            DaemonState::NotRunning
        );
    }

    #[test]
    fn a_stale_heartbeat_is_stuck_or_gone() {
        let now = utc("2026-11-23T10:00:46Z");
        let r = record("2026-11-23T10:00:00Z");
        assert_eq!(
            judge(Some(&r), ProcessSeen::Alive, now),
            DaemonState::Unresponsive
        );
        assert_eq!(
            judge(Some(&r), ProcessSeen::Unknown, now),
            DaemonState::NotRunning
        );
        // Exactly three intervals old is still fresh.
        let now = utc("2026-11-23T10:00:45Z");
        assert_eq!(
            judge(Some(&r), ProcessSeen::Unknown, now),
            DaemonState::Running
        );
    }

    #[test]
    fn a_clean_stop_wins_and_no_record_is_not_running() {
        let now = utc("2026-11-23T10:00:10Z");
        let mut r = record("2026-11-23T10:00:00Z");
        r.stopped_at = Some(utc("2026-11-23T10:00:05Z"));
        // The pid may have been reused by a new redress meanwhile.
        assert_eq!(
            judge(Some(&r), ProcessSeen::Alive, now),
            DaemonState::Stopped
        );
        assert_eq!(
            judge(None, ProcessSeen::Unknown, now),
            DaemonState::NotRunning
        );
        assert!(!DaemonState::Stopped.may_be_running());
        assert!(DaemonState::Unresponsive.may_be_running());
    }

    #[test]
    fn the_process_is_judged_only_on_its_own_host_and_boot() {
        let r = record("2026-11-23T10:00:00Z");
        assert_eq!(seen(&r, "desk", "boot-a", true), ProcessSeen::Alive);
        assert_eq!(seen(&r, "desk", "boot-a", false), ProcessSeen::Gone);
        assert_eq!(seen(&r, "other", "boot-a", false), ProcessSeen::Unknown);
        assert_eq!(seen(&r, "", "", true), ProcessSeen::Unknown);
        // The host rebooted: the pid belongs to someone else now.
        assert_eq!(seen(&r, "desk", "boot-b", true), ProcessSeen::Gone);
    }
}
