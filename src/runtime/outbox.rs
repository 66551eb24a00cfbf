//! The outbox sender: the only way mail leaves redress.
//!
//! A loop is wait + tick: it waits for the earliest due row, a wake-up from
//! intake, or a cap (the CLI can queue from another process), then calls
//! [`tick`], which tests call directly. Each attempt is counted before it is
//! made; a row is marked sent only after the server's 250, so a crash never
//! loses a letter (at worst a letter interrupted exactly between the 250 and
//! the commit goes twice, a window of microseconds).
//!
//! Transient failures (4xx, connection trouble) retry with back-off; a row
//! the server still refuses [`GIVE_UP_AFTER`] its first refusal (time while
//! the server could not be reached or the daemon was stopped does not
//! count) and permanent failures (5xx) are marked failed and the Quality
//! Coordinator is told once.

use crate::adapters::db::{self, PendingOutbox, Store};
use crate::adapters::smtp::{self, SendOutcome, Transport};
use crate::service::letters::{self, LetterSpec};
use crate::service::Desk;
use chrono::{DateTime, Utc};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The longest the loop sleeps without looking at the store.
const WAKE_CAP: Duration = Duration::from_secs(60);
/// The longest one letter's send may take (connect, TLS, login and a few
/// commands, each bounded by lettre's timeout).
const SEND_BOUND: Duration = Duration::from_secs(180);
/// Rows handled per tick.
const BATCH: u32 = 100;
/// A row that has not gone after this long is given up.
pub const GIVE_UP_AFTER: chrono::Duration = chrono::Duration::hours(48);

/// What one tick did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TickReport {
    pub sent: usize,
    pub retried: usize,
    pub failed: usize,
    /// The server could not be reached: the loop should pause.
    pub unreachable: Option<String>,
}

/// The retry delay after `attempts` failed attempts: 30 s doubling, at most
/// an hour.
fn retry_delay(attempts: u32) -> chrono::Duration {
    chrono::Duration::seconds((30i64 << attempts.min(7)).min(3600))
}

/// Sends every row due at `now`; a stop asked for (`stop`) ends the tick
/// between two letters, never in the middle of one.
pub async fn tick(
    store: &mut Store,
    desk: &Desk,
    transport: &Transport,
    now: DateTime<Utc>,
    stop: &CancellationToken,
) -> anyhow::Result<TickReport> {
    let mut report = TickReport::default();
    let due = store.due_outbox(now, BATCH)?;
    if !due.is_empty() {
        // What queued these rows (a new case, a staff command) is on disk
        // before any of them goes: a power cut cannot take back a decision
        // the complainant has already heard of.
        store.sync()?;
    }
    for row in due {
        if stop.is_cancelled() {
            break;
        }
        store.outbox_attempt(row.id)?;
        // lettre's own timeout bounds each SMTP command.
        super::watchdog::expect(SEND_BOUND);
        let outcome = smtp::send_raw(
            transport,
            desk.config.from_address(),
            &[&row.recipient],
            &row.raw,
        )
        .await;
        match outcome.clone() {
            SendOutcome::Sent => {
                letters::mark_sent(store, desk, &row, now)?;
                // Sent is on disk, so a power cut does not send it again.
                store.sync()?;
                report.sent += 1;
                // Not the Message-ID: it carries the recipient's token.
                tracing::info!(kind = %row.kind, to = %row.recipient, outbox = row.id, "sent");
            }
            SendOutcome::Retry(error) | SendOutcome::Unreachable(error) => {
                let unreachable = matches!(outcome, SendOutcome::Unreachable(_));
                // Only a server that keeps refusing a letter counts against
                // it, from its first refusal: not time while the server
                // could not be reached, nor while the daemon was stopped.
                let refused_since: DateTime<Utc> = row
                    .refused_since
                    .as_deref()
                    .and_then(|t| t.parse().ok())
                    .unwrap_or(now);
                if !unreachable && now - refused_since > GIVE_UP_AFTER {
                    fail(store, desk, &row, &error, now)?;
                    report.failed += 1;
                } else {
                    tracing::debug!(kind = %row.kind, to = %row.recipient, error, "will try again");
                    let refused = (!unreachable).then_some(now);
                    store.outbox_retry(&row, now + retry_delay(row.attempts), &error, refused)?;
                    report.retried += 1;
                }
                if unreachable {
                    // An unreachable server fails every row the same way:
                    // stop here and let the loop pause.
                    report.unreachable = Some(error);
                    break;
                }
            }
            SendOutcome::Failed(error) => {
                fail(store, desk, &row, &error, now)?;
                report.failed += 1;
            }
        }
    }
    Ok(report)
}

fn fail(
    store: &mut Store,
    desk: &Desk,
    row: &PendingOutbox,
    error: &str,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    tracing::warn!(kind = %row.kind, to = %row.recipient, error, "giving up on a letter");
    let reference = match row.case_id {
        Some(id) => db::case_reference(store.conn(), id)?,
        None => String::new(),
    };
    // The failure and the notice about it commit together.
    let tx = store.transaction()?;
    if !db::outbox_failed(&tx, row, now, error)? {
        // Re-addressed meanwhile: the failure was the old address's, and
        // the letter now waits for the new one.
        tx.commit()?;
        return Ok(());
    }
    // Notices to QC that fail are only logged: telling QC about failing to
    // tell QC would loop.
    if matches!(row.kind.as_str(), "send-failed" | "quarantine") {
        tx.commit()?;
        return Ok(());
    }
    letters::queue_notice(
        &tx,
        desk,
        LetterSpec::notice_to_qc(
            desk,
            "send-failed",
            format!("send-failed.{}", row.id),
            row.case_id,
            &reference,
            json!({
                "kind": row.kind,
                "complainant_email": row.recipient,
                "reason": error,
            }),
        ),
        now,
    )?;
    tx.commit()?;
    Ok(())
}

/// Runs until `token` is cancelled.
pub async fn run(
    mut desks: super::Desks,
    mut sender: smtp::Sender,
    mut store: Store,
    wake: Arc<super::intake::IntakeShared>,
    token: CancellationToken,
) {
    let mut pauses = 0u32;
    let mut reachable: Option<bool> = None;
    let mut desk: Arc<Desk> = desks.borrow_and_update().clone();
    let mut reloadable = true;
    loop {
        super::watchdog::stall_hook(&token).await;
        if token.is_cancelled() {
            break;
        }
        let newest = desks.borrow_and_update().clone();
        if desk.config.smtp != newest.config.smtp {
            match smtp::Sender::new(
                &newest.config.smtp,
                newest.config.smtp_port(),
                sender.tokens(),
            ) {
                Ok(s) => {
                    sender = s;
                    reachable = None;
                    pauses = 0;
                }
                Err(e) => tracing::error!(
                    "SMTP settings not applied, still sending with the previous ones: {e:#}"
                ),
            }
        }
        desk = newest;
        if wake.backlog.load(std::sync::atomic::Ordering::SeqCst) {
            super::watchdog::expect(Duration::from_millis(200));
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                _ = wake.outbox.notified() => {}
                _ = token.cancelled() => break,
            }
            continue;
        }
        let now = crate::clock::now();
        let mut pause = None;
        // With XOAUTH2 the transport follows the access token: getting one
        // may wait for another refresh and then make its own (each bounded
        // by the HTTP client's timeout).
        super::watchdog::expect(Duration::from_secs(120));
        let ticked = match sender.transport().await {
            Ok(transport) => tick(&mut store, &desk, transport, now, &token).await,
            Err(error) => Ok(TickReport {
                unreachable: Some(error),
                ..TickReport::default()
            }),
        };
        if let Ok(TickReport {
            unreachable: Some(error),
            ..
        }) = &ticked
        {
            sender.failed(error).await;
        }
        match ticked {
            Ok(report) => match report.unreachable {
                Some(error) => {
                    if reachable != Some(false) {
                        tracing::warn!(
                            "SMTP {}:{}: {error}; letters wait in the outbox",
                            desk.config.smtp.host,
                            desk.config.smtp_port()
                        );
                        reachable = Some(false);
                    }
                    pause = Some(super::intake::backoff(pauses).min(WAKE_CAP));
                    pauses = pauses.saturating_add(1);
                }
                None => {
                    if report.sent > 0 && reachable != Some(true) {
                        if reachable == Some(false) {
                            tracing::info!("SMTP reachable again; sending the outbox");
                        }
                        reachable = Some(true);
                    }
                    pauses = 0;
                }
            },
            Err(e) => {
                tracing::error!("outbox: {e:#}");
                pause = Some(super::intake::backoff(pauses).min(WAKE_CAP));
                pauses = pauses.saturating_add(1);
            }
        }
        let wait = match pause {
            Some(p) => p,
            None => match store.next_outbox_due() {
                Ok(Some(next)) => (next - crate::clock::now())
                    .to_std()
                    .unwrap_or(Duration::ZERO)
                    .min(WAKE_CAP),
                _ => WAKE_CAP,
            },
        };
        super::watchdog::expect(wait);
        if pause.is_some() {
            // While the server is unreachable, new rows wait for the pause
            // (or new SMTP settings).
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                r = desks.changed(), if reloadable => reloadable = r.is_ok(),
                _ = token.cancelled() => break,
            }
        } else {
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                r = desks.changed(), if reloadable => reloadable = r.is_ok(),
                _ = wake.outbox.notified() => {}
                // Letters queued by another process (`redress tick`).
                _ = super::store_changed(&mut store) => {}
                _ = token.cancelled() => break,
            }
        }
    }
    tracing::info!("outbox stopped");
}
