//! The daemon's liveness record in the store, for `redress status`,
//! `redress restore` and the metrics: registered at start, a heartbeat
//! every [`HEARTBEAT_INTERVAL`] carrying the last successful IMAP round
//! trip, and a stop mark on a clean stop.
//!
//! The writes are tiny and run on a blocking thread with their own
//! connection, so a busy store (a backlog being committed) delays a
//! heartbeat, never a loop of the daemon. A heartbeat that finds the record
//! taken by another process (a second daemon on the same store) is logged.
//! While a loop is wedged (it broke its watchdog promise) no heartbeat is
//! written, so `redress status` reports the daemon as unresponsive.

use super::intake::IntakeShared;
use super::watchdog::Progress;
use crate::adapters::db::Store;
use crate::adapters::health::{self, ThisHost};
use crate::core::liveness::HEARTBEAT_INTERVAL;
use chrono::{DateTime, Utc};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often the loop looks for a first IMAP contact to record at once
/// (so `redress status` shows it without waiting a whole interval).
const LOOK: Duration = Duration::from_secs(1);

/// The registered daemon; call [`Liveness::stopped`] after a clean stop.
pub struct Liveness {
    store: Arc<Mutex<Store>>,
    pid: u32,
    task: tokio::task::JoinHandle<()>,
}

/// Registers this process as the daemon of the store at `path` and starts
/// the heartbeat, until `token` is cancelled.
pub fn start(
    path: &Path,
    shared: Arc<IntakeShared>,
    progress: Arc<Progress>,
    token: CancellationToken,
) -> anyhow::Result<Liveness> {
    let store = Store::open(path)?;
    let pid = std::process::id();
    health::register_daemon(store.conn(), pid, &ThisHost::read(), crate::clock::now())?;
    let store = Arc::new(Mutex::new(store));
    let task = tokio::spawn(beat(store.clone(), pid, shared, progress, token));
    Ok(Liveness { store, pid, task })
}

impl Liveness {
    /// Marks the clean stop (after the loops have stopped).
    pub async fn stopped(self) {
        let _ = self.task.await;
        let (store, pid) = (self.store, self.pid);
        let marked = tokio::task::spawn_blocking(move || {
            health::daemon_stopped(
                lock(&store).conn(),
                Some(pid),
                crate::clock::now(),
                "stopped",
            )
        })
        .await;
        if let Ok(Err(e)) = marked {
            tracing::warn!("store: recording the stop: {e:#}");
        }
    }
}

async fn beat(
    store: Arc<Mutex<Store>>,
    pid: u32,
    shared: Arc<IntakeShared>,
    progress: Arc<Progress>,
    token: CancellationToken,
) {
    let mut last_beat = tokio::time::Instant::now();
    let mut recorded_contact: Option<DateTime<Utc>> = None;
    let mut taken_over = false;
    let mut failing = false;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(LOOK) => {}
            _ = token.cancelled() => return,
        }
        let contact = shared.last_imap_contact();
        let first_contact = recorded_contact.is_none() && contact.is_some();
        if !first_contact && last_beat.elapsed() < HEARTBEAT_INTERVAL {
            continue;
        }
        // A wedged loop (see `watchdog`) stops the heartbeat too, so
        // `redress status` says the daemon is unresponsive, as systemd's
        // watchdog would.
        if !progress.wedged_at(std::time::Instant::now()).is_empty() {
            continue;
        }
        last_beat = tokio::time::Instant::now();
        let db = store.clone();
        let written = tokio::task::spawn_blocking(move || {
            health::heartbeat(lock(&db).conn(), pid, crate::clock::now(), contact)
        })
        .await;
        match written {
            Ok(Ok(true)) => {
                recorded_contact = contact;
                if failing {
                    tracing::info!("store: heartbeat recorded again");
                    failing = false;
                }
            }
            Ok(Ok(false)) => {
                if !taken_over {
                    tracing::warn!(
                        "store: another redress process now records itself as this store's daemon; is a second `redress run` using the same store?"
                    );
                    taken_over = true;
                }
            }
            Ok(Err(e)) => {
                if !failing {
                    tracing::warn!("store: recording the heartbeat: {e:#}");
                    failing = true;
                }
            }
            Err(e) => tracing::warn!("heartbeat task: {e}"),
        }
    }
}

fn lock(store: &Mutex<Store>) -> std::sync::MutexGuard<'_, Store> {
    store
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
