//! The timer loop: sleeps until the earliest live timer, a wake-up from
//! intake (a staff command changed the timers), a change in the store made
//! by another process (`redress tick`, the CLI), or a cap; then runs
//! [`crate::service::ladder::tick`] at the clock's time.

use super::intake::IntakeShared;
use crate::adapters::db::{self, Store};
use crate::service::Desk;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The longest the loop sleeps without looking at the timers.
const WAKE_CAP: Duration = Duration::from_secs(60);

pub async fn run(
    desk: Arc<Desk>,
    mut store: Store,
    shared: Arc<IntakeShared>,
    token: CancellationToken,
) {
    let mut failures = 0u32;
    loop {
        let now = crate::clock::now();
        // Most wake-ups (each committed intake chunk) find nothing due and
        // take no write transaction.
        let due = matches!(db::next_deadline_due(store.conn()), Ok(Some(t)) if t <= now);
        if due {
            match crate::service::ladder::tick(&mut store, &desk, now, now, false) {
                Ok(actions) => {
                    failures = 0;
                    for a in &actions {
                        tracing::info!(case = %a.reference, action = %a.action, kind = %a.kind, to = %a.to, "timer");
                    }
                    if actions.iter().any(|a| a.action == "send") {
                        shared.outbox.notify_one();
                    }
                }
                Err(e) => {
                    tracing::error!("timers: {e:#}");
                    failures = failures.saturating_add(1);
                }
            }
        }
        let wait = if failures > 0 {
            super::intake::backoff(failures - 1).min(WAKE_CAP)
        } else {
            match db::next_deadline_due(store.conn()) {
                Ok(Some(next)) => (next - crate::clock::now())
                    .to_std()
                    .unwrap_or(Duration::ZERO)
                    .min(WAKE_CAP),
                _ => WAKE_CAP,
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shared.timers.notified() => {}
            _ = super::store_changed(&mut store) => {}
            _ = token.cancelled() => break,
        }
    }
    tracing::info!("timers stopped");
}
