//! The intake loop: watch the complaints folder and process every mail.
//!
//! - Logs in (implicit TLS, STARTTLS, or plain on loopback), selects the
//!   folder and waits with IDLE, re-issued every [`IDLE_TIMEOUT`] (RFC 2177
//!   says clients must re-issue before 29 minutes; NAT boxes drop silent
//!   connections sooner), or polls every `poll_interval` seconds when the
//!   server has no IDLE.
//! - Remembers UIDVALIDITY and the last processed UID per folder; when
//!   UIDVALIDITY changes it reads the folder again from the start, and the
//!   Message-ID dedupe keeps that from processing anything twice.
//! - Each mail is committed (see `service::intake`) before it is flagged on
//!   the server (`$Redress-Done` + `\Seen`, or MOVE). Mail is never deleted.
//! - Connection loss is retried forever with jittered exponential back-off;
//!   one log line per state change, not per retry.

use crate::adapters::db::{Source, Store};
use crate::adapters::imap::{self, Session};
use crate::service::intake::{self, Arrival, Processed};
use crate::service::Desk;
use anyhow::Context as _;
use futures::TryStreamExt as _;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// How long one IDLE runs before it is re-issued.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(25 * 60);
/// The keyword that marks a processed mail.
pub const DONE_KEYWORD: &str = "$Redress-Done";
/// Mails fetched per round trip while draining a backlog.
const FETCH_BATCH: usize = 200;
/// The longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// What the loop tells the rest of the daemon.
#[derive(Default)]
pub struct IntakeShared {
    /// Woken after mail was committed (the outbox has work).
    pub outbox: Notify,
    /// True while a backlog of more than one batch is being stored: the
    /// outbox holds back until it is all committed (storing every complaint
    /// comes first; the letters follow seconds later).
    pub backlog: std::sync::atomic::AtomicBool,
}

/// A jittered exponential back-off: 1 s, 2 s, 4 s ... capped, each +-50 %.
pub fn backoff(failures: u32) -> Duration {
    let base = Duration::from_secs(1u64 << failures.min(9)).min(MAX_BACKOFF);
    base.mul_f64(0.5 + fastrand::f64())
}

/// Logs only when the connection state changes.
struct StateLog(Option<String>);

impl StateLog {
    fn set(&mut self, state: String, error: bool) {
        if self.0.as_deref() != Some(state.as_str()) {
            if error {
                tracing::warn!("{state}");
            } else {
                tracing::info!("{state}");
            }
            self.0 = Some(state);
        }
    }
}

/// Runs until `token` is cancelled.
pub async fn run(
    desk: Arc<Desk>,
    mut store: Store,
    shared: Arc<IntakeShared>,
    token: CancellationToken,
) {
    let mut state = StateLog(None);
    let mut failures = 0u32;
    while !token.is_cancelled() {
        match session(
            &desk,
            &mut store,
            &shared,
            &token,
            &mut state,
            &mut failures,
        )
        .await
        {
            Ok(()) => break,
            Err(e) => {
                state.set(format!("IMAP: {e:#}; retrying"), true);
                let wait = backoff(failures);
                failures = failures.saturating_add(1);
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = token.cancelled() => break,
                }
            }
        }
    }
    tracing::info!("intake stopped");
}

fn drain_unsolicited(session: &mut Session) {
    while session.unsolicited_responses.try_recv().is_ok() {}
}

/// One connection's life: returns Ok when cancelled, Err when the
/// connection failed.
async fn session(
    desk: &Desk,
    store: &mut Store,
    shared: &IntakeShared,
    token: &CancellationToken,
    state: &mut StateLog,
    failures: &mut u32,
) -> anyhow::Result<()> {
    let cfg = &desk.config;
    let folder = cfg.imap.folder.as_str();
    let mut session = tokio::select! {
        s = imap::connect(&cfg.imap, cfg.imap_port()) => s?,
        _ = token.cancelled() => return Ok(()),
    };
    let caps = session.capabilities().await.context("CAPABILITY")?;
    let idle = cfg.imap.idle && caps.has_str("IDLE");
    let mailbox = session
        .select(folder)
        .await
        .with_context(|| format!("SELECT {folder}"))?;
    let uidvalidity = mailbox.uid_validity.unwrap_or(0);
    let keywords = mailbox
        .permanent_flags
        .iter()
        .any(|f| matches!(f, async_imap::types::Flag::MayCreate));
    let mark = Mark::choose(desk, keywords);
    if let Mark::Move(target) = &mark {
        // Creating an existing folder fails harmlessly.
        let _ = session.create(target).await;
    }
    drain_unsolicited(&mut session);
    state.set(
        format!(
            "IMAP: watching {folder} of {} on {}:{} ({}; {})",
            cfg.imap.username,
            cfg.imap.host,
            cfg.imap_port(),
            if idle { "IDLE" } else { "polling" },
            mark.describe()
        ),
        false,
    );
    *failures = 0;

    let mut last = match store.checkpoint(folder)? {
        Some((v, last)) if v == uidvalidity => last,
        Some((v, _)) => {
            tracing::warn!(
                folder,
                old = v,
                new = uidvalidity,
                "UIDVALIDITY changed: reading the folder again (duplicates are skipped)"
            );
            0
        }
        None => 0,
    };
    // Mail processed before a crash but not yet flagged.
    if last > 0 {
        let query = match mark {
            Mark::Keyword => format!("UID 1:{last} UNKEYWORD {DONE_KEYWORD}"),
            Mark::SeenOnly => format!("UID 1:{last} UNSEEN"),
            // Whatever is still in the folder up to the checkpoint was processed.
            Mark::Move(_) => format!("UID 1:{last}"),
        };
        let stale: Vec<u32> = session
            .uid_search(&query)
            .await
            .context("UID SEARCH")?
            .into_iter()
            .collect();
        if !stale.is_empty() {
            mark.apply(&mut session, &stale).await?;
        }
    }
    loop {
        last = drain(
            desk,
            store,
            shared,
            &mut session,
            folder,
            uidvalidity,
            last,
            &mark,
            token,
        )
        .await?;
        if token.is_cancelled() {
            session.logout().await.ok();
            return Ok(());
        }
        if idle {
            let mut handle = session.idle();
            handle.init().await.context("IDLE")?;
            let cancelled = {
                let (wait, _stop) = handle.wait_with_timeout(IDLE_TIMEOUT);
                tokio::select! {
                    r = wait => { r.context("IDLE")?; false }
                    _ = token.cancelled() => true,
                }
            };
            session = handle.done().await.context("IDLE DONE")?;
            if cancelled {
                session.logout().await.ok();
                return Ok(());
            }
        } else {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(cfg.imap.poll_interval)) => {}
                _ = token.cancelled() => {
                    session.logout().await.ok();
                    return Ok(());
                }
            }
            session.noop().await.context("NOOP")?;
        }
        drain_unsolicited(&mut session);
    }
}

/// How processed mail is marked.
enum Mark {
    Keyword,
    Move(String),
    /// The server allows no keywords: \Seen and the checkpoint alone.
    SeenOnly,
}

impl Mark {
    fn choose(desk: &Desk, keywords_allowed: bool) -> Mark {
        match desk.config.intake.mark.as_str() {
            "move" => Mark::Move(desk.config.intake.done_folder.clone()),
            _ if keywords_allowed => Mark::Keyword,
            _ => Mark::SeenOnly,
        }
    }

    fn describe(&self) -> String {
        match self {
            Mark::Keyword => format!("processed mail gets {DONE_KEYWORD}"),
            Mark::Move(f) => format!("processed mail moves to {f}"),
            Mark::SeenOnly => {
                "the server allows no keywords: processed mail is marked \\Seen".into()
            }
        }
    }

    async fn apply(&self, session: &mut Session, uids: &[u32]) -> anyhow::Result<()> {
        let set = uids
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",");
        match self {
            Mark::Keyword => {
                let _: Vec<_> = session
                    .uid_store(&set, format!("+FLAGS.SILENT ({DONE_KEYWORD} \\Seen)"))
                    .await?
                    .try_collect()
                    .await?;
            }
            Mark::SeenOnly => {
                let _: Vec<_> = session
                    .uid_store(&set, "+FLAGS.SILENT (\\Seen)")
                    .await?
                    .try_collect()
                    .await?;
            }
            Mark::Move(folder) => session.uid_mv(&set, folder).await?,
        }
        Ok(())
    }
}

/// Processes every mail above `last`; returns the new last UID.
#[allow(clippy::too_many_arguments)]
async fn drain(
    desk: &Desk,
    store: &mut Store,
    shared: &IntakeShared,
    session: &mut Session,
    folder: &str,
    uidvalidity: u32,
    last: u32,
    mark: &Mark,
    token: &CancellationToken,
) -> anyhow::Result<u32> {
    let mut uids: Vec<u32> = session
        .uid_search(format!("UID {}:*", last.saturating_add(1)))
        .await
        .context("UID SEARCH")?
        .into_iter()
        .filter(|u| *u > last)
        .collect();
    uids.sort_unstable();
    let backlog = uids.len() > FETCH_BATCH;
    if backlog {
        tracing::info!(
            count = uids.len(),
            "storing a backlog of mail first; letters follow"
        );
        shared
            .backlog
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }
    let result = drain_chunks(
        desk,
        store,
        shared,
        session,
        folder,
        uidvalidity,
        last,
        &uids,
        mark,
        token,
    )
    .await;
    if backlog {
        shared
            .backlog
            .store(false, std::sync::atomic::Ordering::SeqCst);
        shared.outbox.notify_one();
    }
    result
}

#[allow(clippy::too_many_arguments)]
async fn drain_chunks(
    desk: &Desk,
    store: &mut Store,
    shared: &IntakeShared,
    session: &mut Session,
    folder: &str,
    uidvalidity: u32,
    mut last: u32,
    uids: &[u32],
    mark: &Mark,
    token: &CancellationToken,
) -> anyhow::Result<u32> {
    for chunk in uids.chunks(FETCH_BATCH) {
        let set = chunk
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let mut fetched: Vec<(u32, Vec<u8>, Option<chrono::DateTime<chrono::Utc>>)> = session
            .uid_fetch(&set, "(UID INTERNALDATE BODY.PEEK[])")
            .await
            .context("UID FETCH")?
            .try_filter_map(|f| async move {
                Ok(f.uid.map(|uid| {
                    (
                        uid,
                        f.body().map(<[u8]>::to_vec).unwrap_or_default(),
                        f.internal_date().map(|d| d.with_timezone(&chrono::Utc)),
                    )
                }))
            })
            .try_collect()
            .await
            .context("UID FETCH")?;
        fetched.sort_by_key(|(uid, _, _)| *uid);
        let mut done = Vec::with_capacity(fetched.len());
        for (uid, raw, received) in fetched {
            let arrival = Arrival {
                source: Source {
                    folder,
                    uidvalidity: Some(uidvalidity),
                    uid: Some(uid),
                },
                received,
            };
            let now = crate::clock::now();
            let outcome = intake::process(store, desk, &raw, &arrival, now)
                .with_context(|| format!("Storing mail UID {uid} (nothing was flagged)"))?;
            log_outcome(uid, &outcome);
            done.push(uid);
            last = last.max(uid);
            shared.outbox.notify_one();
        }
        if !done.is_empty() {
            mark.apply(session, &done)
                .await
                .context("marking processed mail")?;
        }
        drain_unsolicited(session);
        if token.is_cancelled() {
            break;
        }
    }
    Ok(last)
}

fn log_outcome(uid: u32, outcome: &Processed) {
    match outcome {
        Processed::Opened {
            reference,
            acknowledged,
        } => {
            tracing::info!(uid, case = %reference, acknowledged, "new case")
        }
        Processed::Joined { reference } => {
            tracing::info!(uid, case = %reference, "mail added to case")
        }
        Processed::Robot {
            classification,
            reference,
        } => tracing::info!(
            uid,
            classification,
            case = reference.as_deref().unwrap_or("-"),
            "automatic mail recorded, not answered"
        ),
        Processed::Duplicate => tracing::debug!(uid, "already processed"),
        Processed::Quarantined { reason } => tracing::warn!(uid, reason, "mail quarantined"),
    }
}
