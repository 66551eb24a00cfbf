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
    mut desks: super::Desks,
    mut store: Store,
    shared: Arc<IntakeShared>,
    token: CancellationToken,
) {
    let mut failures = 0u32;
    let mut reloadable = true;
    loop {
        super::watchdog::stall_hook(&token).await;
        if token.is_cancelled() {
            break;
        }
        let desk: Arc<Desk> = desks.borrow_and_update().clone();
        // A tick is a few queries and one transaction.
        super::watchdog::expect(Duration::from_secs(60));
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
        super::watchdog::expect(wait);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            r = desks.changed(), if reloadable => reloadable = r.is_ok(),
            _ = shared.timers.notified() => {}
            _ = super::store_changed(&mut store) => {}
            _ = token.cancelled() => break,
        }
    }
    tracing::info!("timers stopped");
}
