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

use crate::adapters::db::{self, Source, Store};
use crate::adapters::imap::{self, Session};
use crate::adapters::oauth2::TokenSource;
use crate::service::intake::{self, Arrival, Incoming, Processed};
use crate::service::Desk;
use anyhow::Context as _;
use futures::TryStreamExt as _;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// How long one IDLE runs before it is re-issued.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(25 * 60);
/// The keyword that marks a processed mail.
pub const DONE_KEYWORD: &str = "$Redress-Done";
/// Mails fetched per round trip while draining a backlog.
const FETCH_BATCH: usize = 200;
/// How long syncing the store may take before the loop counts as wedged.
const SYNC_BOUND: Duration = Duration::from_secs(60);
/// In a backlog, committed mail is synced and flagged this many at a time.
const FLAG_EVERY: usize = 2000;
/// The longest UID set in one STORE or MOVE, in bytes: well under the
/// 8 KB command line servers are asked to take (RFC 7162 §4).
const MARK_SET_MAX: usize = 4000;
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
    /// Woken after mail changed a case's timers (staff commands).
    pub timers: Notify,
    /// Unix time of the last successful IMAP round trip (0: none yet), for
    /// `redress status` and the metrics.
    pub imap_contact: std::sync::atomic::AtomicI64,
}

impl IntakeShared {
    /// Notes a successful IMAP round trip (login, search, fetch, IDLE, NOOP).
    pub fn imap_ok(&self) {
        self.imap_contact.store(
            crate::clock::now().timestamp(),
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    /// The last successful IMAP round trip.
    pub fn last_imap_contact(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        match self.imap_contact.load(std::sync::atomic::Ordering::Relaxed) {
            0 => None,
            t => chrono::DateTime::from_timestamp(t, 0),
        }
    }
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
    mut desks: super::Desks,
    store: Store,
    shared: Arc<IntakeShared>,
    tokens: Option<Arc<TokenSource>>,
    token: CancellationToken,
) {
    let checkpointer = Checkpointer::new(&desks.borrow(), &store);
    let store = Arc::new(Mutex::new(store));
    let mut state = StateLog(None);
    let mut failures = 0u32;
    while !token.is_cancelled() {
        super::watchdog::stall_hook(&token).await;
        let mut ctx = Ctx {
            desks: &mut desks,
            store: &store,
            checkpointer: &checkpointer,
            shared: &shared,
            tokens: tokens.as_deref(),
            token: &token,
            state: &mut state,
            failures: &mut failures,
        };
        match session(&mut ctx).await {
            Ok(End::Cancelled) => break,
            Ok(End::Reconnect) => continue,
            Err(e) => {
                state.set(format!("IMAP: {e:#}; retrying"), true);
                let wait = backoff(failures);
                failures = failures.saturating_add(1);
                super::watchdog::expect(wait);
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = token.cancelled() => break,
                }
            }
        }
    }
    tracing::info!("intake stopped");
}

/// How long one IMAP command may take before the connection counts as dead
/// (a half-open connection would otherwise hang intake for ever).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs one IMAP command with [`COMMAND_TIMEOUT`].
async fn timed<T, E>(
    what: &str,
    fut: impl std::future::Future<Output = Result<T, E>>,
) -> anyhow::Result<T>
where
    E: Into<anyhow::Error>,
{
    super::watchdog::expect(COMMAND_TIMEOUT);
    match tokio::time::timeout(COMMAND_TIMEOUT, fut).await {
        Ok(r) => r.map_err(Into::into).with_context(|| what.to_string()),
        Err(_) => anyhow::bail!("{what}: no answer within {} s", COMMAND_TIMEOUT.as_secs()),
    }
}

/// Empties the queue of untagged responses; true when one announced new
/// mail (EXISTS/RECENT), which must then be fetched before idling again.
fn drain_unsolicited(session: &mut Session) -> bool {
    let mut new_mail = false;
    while let Ok(r) = session.unsolicited_responses.try_recv() {
        new_mail |= matches!(
            r,
            async_imap::types::UnsolicitedResponse::Exists(_)
                | async_imap::types::UnsolicitedResponse::Recent(_)
        );
    }
    new_mail
}

/// How a session ended without an error.
enum End {
    Cancelled,
    /// The IMAP settings changed on reload.
    Reconnect,
}

/// What a session works with.
struct Ctx<'a> {
    desks: &'a mut super::Desks,
    store: &'a Arc<Mutex<Store>>,
    checkpointer: &'a Checkpointer,
    shared: &'a IntakeShared,
    tokens: Option<&'a TokenSource>,
    token: &'a CancellationToken,
    state: &'a mut StateLog,
    failures: &'a mut u32,
}

/// Why a wait ended.
enum Woken {
    Mail,
    Cancelled,
    Reloaded,
}

/// One connection's life: returns Ok when cancelled or when the IMAP
/// settings changed, Err when the connection failed.
async fn session(ctx: &mut Ctx<'_>) -> anyhow::Result<End> {
    let (store, token) = (ctx.store, ctx.token);
    let mut desk: Arc<Desk> = ctx.desks.borrow_and_update().clone();
    let mut reloadable = true;
    let cfg = desk.config.clone();
    let folder = cfg.imap.folder.as_str();
    // Connect, greeting, STARTTLS, TLS and login are each bounded, and so
    // is getting an OAuth2 token (twice when the first is refused).
    super::watchdog::expect(imap::STEP_TIMEOUT * 9);
    let mut session = tokio::select! {
        s = imap::connect_with(&cfg.imap, cfg.imap_port(), ctx.tokens) => s?,
        _ = token.cancelled() => return Ok(End::Cancelled),
    };
    let caps = timed("CAPABILITY", session.capabilities()).await?;
    let idle = cfg.imap.idle && caps.has_str("IDLE");
    let mailbox = timed(&format!("SELECT {folder}"), session.select(folder)).await?;
    let uidvalidity = mailbox.uid_validity.unwrap_or(0);
    let keywords = mailbox
        .permanent_flags
        .iter()
        .any(|f| matches!(f, async_imap::types::Flag::MayCreate));
    let mark = Mark::choose(&desk, keywords);
    if let Mark::Move(target) = &mark {
        // Creating an existing folder fails harmlessly.
        let _ = timed("CREATE", session.create(target)).await;
    }
    drain_unsolicited(&mut session);
    ctx.shared.imap_ok();
    // Said (and the back-off forgotten) once the first round of mail went
    // through: an error that comes back after every login (a store that
    // cannot write, a folder that cannot be moved to) keeps its back-off
    // and logs no "watching" line between its retries.
    let mut watching = Some((
        format!(
            "IMAP: watching {folder} of {} on {}:{} ({}; {})",
            cfg.imap.username,
            cfg.imap.host,
            cfg.imap_port(),
            if idle { "IDLE" } else { "polling" },
            mark.describe()
        ),
        false,
    ));

    // The checkpoint is a UID of this account's folder: another account
    // (the admin moved from a test mailbox to the real one) may well show
    // the same UIDVALIDITY, and its first mails must not pass for done.
    let account = format!(
        "{} on {}",
        cfg.imap.username,
        cfg.imap.host.to_ascii_lowercase()
    );
    let checkpoint = {
        let mut s = lock(store);
        if let Some(old) = s.claim_imap_account(&account)? {
            tracing::warn!(
                from = %old,
                to = %account,
                "the IMAP account changed: reading its folder again (mail already stored is skipped)"
            );
        }
        s.checkpoint(folder)?
    };
    let mut last = match checkpoint {
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
        let stale: Vec<u32> = timed("UID SEARCH", session.uid_search(&query))
            .await?
            .into_iter()
            .collect();
        flag(&cfg.store.path, &mut session, &mark, &stale, last).await?;
    }
    loop {
        super::watchdog::stall_hook(token).await;
        let watch = Watch {
            desk: &desk,
            checkpointer: ctx.checkpointer,
            shared: ctx.shared,
            folder,
            uidvalidity,
            mark: &mark,
            token,
        };
        // Drain until a round finds nothing and no new mail was announced
        // meanwhile: an EXISTS seen while fetching must not wait for IDLE.
        loop {
            let (new_last, processed) = drain(&watch, store, &mut session, last).await?;
            last = new_last;
            ctx.shared.imap_ok();
            if let Some((line, warn)) = watching.take() {
                ctx.state.set(line, warn);
                *ctx.failures = 0;
            }
            let announced = drain_unsolicited(&mut session);
            if (processed == 0 && !announced) || token.is_cancelled() {
                break;
            }
        }
        if token.is_cancelled() {
            logout(&mut session).await;
            return Ok(End::Cancelled);
        }
        let woken = if idle {
            let mut handle = session.idle();
            timed("IDLE", handle.init()).await?;
            ctx.shared.imap_ok();
            super::watchdog::expect(IDLE_TIMEOUT);
            let woken = {
                // async-imap's own timeout counts silence only: every
                // keep-alive ("* OK Still here", every 2 minutes from
                // Dovecot) starts it again. The sleep beside it is the
                // deadline RFC 2177 asks for, however chatty the server.
                let (wait, _stop) = handle.wait_with_timeout(IDLE_TIMEOUT);
                tokio::select! {
                    r = wait => { r.context("IDLE")?; Woken::Mail }
                    _ = tokio::time::sleep(IDLE_TIMEOUT) => Woken::Mail,
                    r = ctx.desks.changed(), if reloadable => {
                        reloadable = r.is_ok();
                        Woken::Reloaded
                    }
                    _ = token.cancelled() => Woken::Cancelled,
                }
            };
            session = timed("IDLE DONE", handle.done()).await?;
            ctx.shared.imap_ok();
            woken
        } else {
            let wait = Duration::from_secs(cfg.imap.poll_interval);
            super::watchdog::expect(wait);
            let woken = tokio::select! {
                _ = tokio::time::sleep(wait) => Woken::Mail,
                r = ctx.desks.changed(), if reloadable => {
                    reloadable = r.is_ok();
                    Woken::Reloaded
                }
                _ = token.cancelled() => Woken::Cancelled,
            };
            if matches!(woken, Woken::Mail) {
                timed("NOOP", session.noop()).await?;
                ctx.shared.imap_ok();
            }
            woken
        };
        match woken {
            Woken::Mail => {}
            Woken::Cancelled => {
                logout(&mut session).await;
                return Ok(End::Cancelled);
            }
            Woken::Reloaded => {
                let newest = ctx.desks.borrow_and_update().clone();
                if !desk.config.same_mailbox_as(&newest.config) {
                    logout(&mut session).await;
                    return Ok(End::Reconnect);
                }
                // Same mailbox: the connection stays; mail is handled with
                // the new config and templates from now on.
                desk = newest;
            }
        }
    }
}

/// Says goodbye to the server, but never waits long for it: a stop must
/// not hang on a half-open connection.
async fn logout(session: &mut Session) {
    let _ = tokio::time::timeout(imap::STEP_TIMEOUT / 6, session.logout()).await;
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

    /// Marks `uids` (in any order), in as many commands as keep each
    /// command line short ([`mark_sets`]).
    async fn apply(&self, session: &mut Session, uids: &[u32]) -> anyhow::Result<()> {
        for set in mark_sets(uids) {
            self.apply_set(session, &set).await?;
        }
        Ok(())
    }

    async fn apply_set(&self, session: &mut Session, set: &str) -> anyhow::Result<()> {
        match self {
            Mark::Keyword => {
                let _: Vec<_> = session
                    .uid_store(set, format!("+FLAGS.SILENT ({DONE_KEYWORD} \\Seen)"))
                    .await?
                    .try_collect()
                    .await?;
            }
            Mark::SeenOnly => {
                let _: Vec<_> = session
                    .uid_store(set, "+FLAGS.SILENT (\\Seen)")
                    .await?
                    .try_collect()
                    .await?;
            }
            Mark::Move(folder) => session.uid_mv(set, folder).await?,
        }
        Ok(())
    }
}

/// The folder being watched, and what processing it needs.
struct Watch<'a> {
    desk: &'a Arc<Desk>,
    checkpointer: &'a Checkpointer,
    shared: &'a IntakeShared,
    folder: &'a str,
    uidvalidity: u32,
    mark: &'a Mark,
    token: &'a CancellationToken,
}

/// Processes every mail above `last`; returns the new last UID and how many
/// UIDs the search found.
async fn drain(
    w: &Watch<'_>,
    store: &Arc<Mutex<Store>>,
    session: &mut Session,
    last: u32,
) -> anyhow::Result<(u32, usize)> {
    let Watch { shared, mark, .. } = *w;
    // In keyword mode, mail already marked done is never taken again, even
    // when the store was lost or restored from a backup.
    let query = match mark {
        Mark::Keyword => format!("UID {}:* UNKEYWORD {DONE_KEYWORD}", last.saturating_add(1)),
        _ => format!("UID {}:*", last.saturating_add(1)),
    };
    let mut uids: Vec<u32> = timed("UID SEARCH", session.uid_search(&query))
        .await?
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
    let processed = uids.len();
    let result = drain_chunks(w, store, session, last, &uids).await;
    if backlog {
        shared
            .backlog
            .store(false, std::sync::atomic::Ordering::SeqCst);
        shared.outbox.notify_one();
        shared.timers.notify_one();
    }
    Ok((result?, processed))
}

/// Copies the WAL into the database file on a blocking thread of its own,
/// after each committed chunk, with a second connection: the intake
/// connection's automatic checkpoints (a copy and two fsyncs every 1000
/// pages, a tenth of a backlog's time) are turned off, so its thread only
/// stores and decides.
struct Checkpointer {
    store: Option<Arc<Mutex<Store>>>,
    busy: Arc<std::sync::atomic::AtomicBool>,
}

impl Checkpointer {
    /// A second connection to the store; without one (it could not be
    /// opened), `intake` keeps checkpointing itself.
    fn new(desk: &Desk, intake: &Store) -> Checkpointer {
        let store = match Store::open(&desk.config.store.path) {
            Ok(s) => match intake.set_auto_checkpoint(false) {
                Ok(()) => Some(Arc::new(Mutex::new(s))),
                Err(e) => {
                    tracing::warn!("store: {e:#}; intake checkpoints the WAL itself");
                    None
                }
            },
            Err(e) => {
                tracing::warn!("store: {e:#}; intake checkpoints the WAL itself");
                None
            }
        };
        Checkpointer {
            store,
            busy: Arc::default(),
        }
    }

    /// Starts a checkpoint unless one is running.
    fn kick(&self) {
        use std::sync::atomic::Ordering::SeqCst;
        let Some(store) = &self.store else { return };
        if self.busy.swap(true, SeqCst) {
            return;
        }
        let (store, busy) = (store.clone(), self.busy.clone());
        tokio::task::spawn_blocking(move || {
            if let Err(e) = lock(&store).checkpoint_wal() {
                tracing::debug!("WAL checkpoint: {e:#}");
            }
            busy.store(false, SeqCst);
        });
    }
}

/// The store, also when a processing thread panicked while holding it (its
/// transaction was rolled back as the panic unwound).
fn lock(store: &Mutex<Store>) -> MutexGuard<'_, Store> {
    store
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A fetched mail: UID, raw bytes, INTERNALDATE.
type Fetched = (u32, Vec<u8>, Option<chrono::DateTime<chrono::Utc>>);

/// A chunk being processed on a blocking thread: its UIDs in order, and
/// what became of them.
type Processing = tokio::task::JoinHandle<(Vec<u32>, intake::BatchOutcome)>;

/// Fetches, processes and marks `uids` in batches; returns the new last UID.
///
/// Fetching is pipelined with processing: while one chunk is decided and
/// committed on a blocking thread, the next is fetched. A chunk is handed
/// to processing only after the one before it committed without trouble,
/// so mails are always committed in UID order and the checkpoint never
/// passes a mail that was not committed; a chunk is flagged on the server
/// only after its transaction committed.
async fn drain_chunks(
    w: &Watch<'_>,
    store: &Arc<Mutex<Store>>,
    session: &mut Session,
    mut last: u32,
    uids: &[u32],
) -> anyhow::Result<u32> {
    let Watch {
        desk,
        checkpointer,
        shared,
        folder,
        uidvalidity,
        mark,
        token,
    } = *w;
    let mut chunks = uids.chunks(FETCH_BATCH);
    let mut pending: Option<Processing> = None;
    // Committed, not yet flagged on the server.
    let mut unflagged: Vec<u32> = Vec::new();
    let mut stopped = false;
    loop {
        let fetched = match chunks.next().filter(|_| !stopped && !token.is_cancelled()) {
            Some(chunk) => match fetch_chunk(session, chunk).await {
                Ok((mails, missing)) => {
                    stopped |= missing;
                    Some(mails)
                }
                Err(e) => {
                    // Let the chunk in hand commit before giving up (its
                    // mails are flagged by the next session's catch-up).
                    if let Some(p) = pending.take() {
                        let _ = p.await;
                    }
                    return Err(e);
                }
            },
            None => None,
        };
        let previous = match pending.take() {
            Some(p) => Some(p.await.context("the intake processing thread failed")?),
            None => None,
        };
        let previous_failed = previous
            .as_ref()
            .is_some_and(|(_, outcome)| outcome.error.is_some());
        // The next chunk goes to processing before the previous one is
        // flagged, so the flagging overlaps with processing.
        if let Some(mails) = fetched.filter(|m| !m.is_empty() && !previous_failed) {
            let (desk, store, folder) = (desk.clone(), store.clone(), folder.to_string());
            pending = Some(tokio::task::spawn_blocking(move || {
                process_chunk(&desk, &store, &folder, uidvalidity, mails)
            }));
        }
        if let Some((chunk_uids, outcome)) = previous {
            checkpointer.kick();
            let done = &chunk_uids[..outcome.done.len()];
            for (uid, processed) in done.iter().zip(&outcome.done) {
                log_outcome(*uid, processed);
            }
            unflagged.extend_from_slice(done);
            if !done.is_empty() {
                shared.outbox.notify_one();
                shared.timers.notify_one();
            }
            // Flagged a few thousand at a time in a backlog, at once
            // otherwise (see `flag`).
            let failed = outcome.error.is_some();
            if unflagged.len() >= FLAG_EVERY || pending.is_none() || failed {
                last = flag(&desk.config.store.path, session, mark, &unflagged, last).await?;
                unflagged.clear();
            }
            if let Some(e) = outcome.error {
                let uid = chunk_uids.get(done.len()).copied().unwrap_or_default();
                return Err(e.context(format!(
                    "Storing mail UID {uid} (nothing from it on was flagged)"
                )));
            }
        }
        if pending.is_none() {
            break;
        }
    }
    Ok(last)
}

/// Flags `uids` (committed) done on the server; returns the new last UID.
/// Their commits are made durable first: a power cut must not take back
/// the case of a mail the server already has as done. The sync costs a
/// backlog's drain more the more often it runs beside the deciding (the
/// checkpoints and the WAL writes wait for it), so a backlog is flagged
/// every [`FLAG_EVERY`] mails; mail committed and not yet flagged when
/// the daemon stops is flagged by the next session's catch-up.
async fn flag(
    store_path: &std::path::Path,
    session: &mut Session,
    mark: &Mark,
    uids: &[u32],
    last: u32,
) -> anyhow::Result<u32> {
    if uids.is_empty() {
        return Ok(last);
    }
    let path = store_path.to_path_buf();
    super::watchdog::expect(SYNC_BOUND);
    tokio::task::spawn_blocking(move || db::sync_wal(&path))
        .await
        .context("the store sync thread failed")??;
    timed("marking processed mail", mark.apply(session, uids)).await?;
    Ok(uids.iter().copied().fold(last, u32::max))
}

/// Fetches the bodies of `chunk`: the mails in UID order up to the first
/// requested UID the answer has no body for, and whether one was missing.
async fn fetch_chunk(session: &mut Session, chunk: &[u32]) -> anyhow::Result<(Vec<Fetched>, bool)> {
    let set = uid_set(chunk);
    // Only answers to this FETCH that carry a body: a server may also
    // send flag-change FETCH responses (with a UID) at any time.
    let fetches: Vec<_> = timed("UID FETCH", async {
        session
            .uid_fetch(&set, "(UID INTERNALDATE BODY.PEEK[])")
            .await?
            .try_collect::<Vec<_>>()
            .await
    })
    .await?;
    let mut fetched: Vec<Fetched> = fetches
        .iter()
        .filter_map(|f| {
            let uid = f.uid.filter(|u| chunk.binary_search(u).is_ok())?;
            let body = f.body()?;
            Some((
                uid,
                body.to_vec(),
                f.internal_date().map(|d| d.with_timezone(&chrono::Utc)),
            ))
        })
        .collect();
    fetched.sort_by_key(|(uid, _, _)| *uid);
    fetched.dedup_by_key(|(uid, _, _)| *uid);
    // A requested UID without a body (expunged meanwhile, or an odd server
    // answer): stop before it; the next round searches again, and nothing
    // after it is processed or flagged out of order.
    let complete = fetched
        .iter()
        .zip(chunk)
        .take_while(|((uid, _, _), want)| uid == *want)
        .count();
    let missing = complete < chunk.len();
    if missing {
        tracing::debug!(
            uid = chunk[complete],
            "no body in the FETCH answer; searching again"
        );
        fetched.truncate(complete);
    }
    Ok((fetched, missing))
}

/// The UID sets of [`Mark::apply`]'s commands: ranges where UIDs run on,
/// at most [`MARK_SET_MAX`] bytes each.
fn mark_sets(uids: &[u32]) -> Vec<String> {
    let mut uids = uids.to_vec();
    uids.sort_unstable();
    uids.dedup();
    if uids.is_empty() {
        return Vec::new();
    }
    let mut sets = Vec::new();
    let mut set = String::new();
    for range in uid_set(&uids).split(',') {
        if !set.is_empty() && set.len() + 1 + range.len() > MARK_SET_MAX {
            sets.push(std::mem::take(&mut set));
        }
        if !set.is_empty() {
            set.push(',');
        }
        set.push_str(range);
    }
    sets.push(set);
    sets
}

/// A UID set in IMAP syntax, runs of consecutive UIDs as ranges
/// (`1:200,205`): `uids` is sorted.
fn uid_set(uids: &[u32]) -> String {
    let mut set = String::new();
    let mut i = 0;
    while i < uids.len() {
        let mut j = i;
        while j + 1 < uids.len() && uids[j + 1] == uids[j].wrapping_add(1) {
            j += 1;
        }
        if !set.is_empty() {
            set.push(',');
        }
        if j > i {
            set.push_str(&format!("{}:{}", uids[i], uids[j]));
        } else {
            set.push_str(&uids[i].to_string());
        }
        i = j + 1;
    }
    set
}

/// Stores and decides a fetched chunk (on a blocking thread).
fn process_chunk(
    desk: &Desk,
    store: &Mutex<Store>,
    folder: &str,
    uidvalidity: u32,
    mails: Vec<Fetched>,
) -> (Vec<u32>, intake::BatchOutcome) {
    let incoming: Vec<Incoming> = mails
        .iter()
        .map(|(uid, raw, received)| Incoming {
            raw,
            arrival: Arrival {
                source: Source {
                    folder,
                    uidvalidity: Some(uidvalidity),
                    uid: Some(*uid),
                },
                received: *received,
            },
        })
        .collect();
    let outcome = intake::process_batch(&mut lock(store), desk, &incoming, crate::clock::now());
    (mails.iter().map(|(uid, _, _)| *uid).collect(), outcome)
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
            tracing::info!(uid, case = %reference, "mail added to case; staff told")
        }
        Processed::TakenFurther { reference, stage } => {
            tracing::info!(uid, case = %reference, stage = %stage, "case taken to the next stage")
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
        Processed::Staff {
            reference,
            authenticated,
            commands,
        } => tracing::info!(
            uid,
            case = reference.as_deref().unwrap_or("-"),
            authenticated,
            commands = ?commands,
            "staff mail"
        ),
        Processed::Duplicate => tracing::debug!(uid, "already processed"),
        Processed::Quarantined { reason } => tracing::warn!(uid, reason, "mail quarantined"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marking_a_backlog_keeps_each_command_short() {
        // Runs become ranges, in order, without repeats.
        assert_eq!(mark_sets(&[5, 3, 4, 9, 4, 1]), ["1,3:5,9"]);
        assert!(mark_sets(&[]).is_empty());
        // A run of 10,000: one range.
        let run: Vec<u32> = (1..=10_000).collect();
        assert_eq!(mark_sets(&run), ["1:10000"]);
        // 2000 UIDs none of which run on: several commands, each short,
        // together every UID once.
        let scattered: Vec<u32> = (0..2000).map(|i| 1_000_000 + 2 * i).collect();
        let sets = mark_sets(&scattered);
        assert!(sets.len() > 1);
        assert!(sets.iter().all(|s| s.len() <= MARK_SET_MAX));
        let listed: Vec<u32> = sets
            .iter()
            .flat_map(|s| s.split(','))
            .map(|u| u.parse().expect("a UID"))
            .collect();
        assert_eq!(listed, scattered);
    }
}
