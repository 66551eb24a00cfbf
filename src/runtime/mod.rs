//! The daemon: the long-running loops and how they stop.
//!
//! One way to stop: SIGTERM and SIGINT cancel one `CancellationToken`; every
//! loop stops at a safe point (a mail is either committed or left for the
//! next start); the daemon waits for them with a bound, then aborts.
//!
//! Under systemd (see `dist/redress.service`): `READY=1` once the store and
//! config are good, `STATUS=` every few seconds, `WATCHDOG=1` only while
//! every loop keeps its promises ([`watchdog`]), `STOPPING=1` on a stop,
//! and SIGHUP reloads the config and templates.

pub mod intake;
pub mod liveness;
pub mod metrics;
pub mod oauth;
pub mod outbox;
pub mod scheduler;
pub mod watchdog;

use crate::adapters::db::Store;
use crate::config::Config;
use crate::service::Desk;
use anyhow::Context as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// How long the loops get to reach a safe point after a stop signal.
const STOP_GRACE: Duration = Duration::from_secs(20);

/// Resolves when another connection has committed to the store (checked
/// every second: `PRAGMA data_version` costs no I/O).
pub async fn store_changed(store: &mut Store) {
    let Ok(start) = store.data_version() else {
        return std::future::pending().await;
    };
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        match store.data_version() {
            Ok(v) if v != start => return,
            _ => {}
        }
    }
}

/// Cancels `token` on SIGTERM or SIGINT.
pub fn cancel_on_signals(token: CancellationToken) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("Installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("Installing the SIGINT handler")?;
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: stopping"),
            _ = int.recv() => tracing::info!("SIGINT: stopping"),
        }
        token.cancel();
    });
    Ok(())
}

/// What `run` needs besides the config.
pub struct Options {
    /// Read again on SIGHUP.
    pub config_path: PathBuf,
    /// Takes a reloaded `log.level`.
    pub log: crate::logging::Handle,
}

/// The current desk: replaced on reload; loops take the newest at each safe
/// point.
pub type Desks = watch::Receiver<Arc<Desk>>;

/// Loops get this long to reach their first safe point.
const START_GRACE: Duration = Duration::from_secs(120);
/// How often `STATUS=` is refreshed.
const STATUS_EVERY: Duration = Duration::from_secs(10);

/// Runs the daemon until `token` is cancelled.
///
/// systemd hears `READY=1` only once the store is open and migrated and the
/// config and every template have been checked (`Desk::new` renders each
/// template with sample data); `STOPPING=1` as soon as a stop is asked.
pub async fn run(config: Config, options: Options, token: CancellationToken) -> anyhow::Result<()> {
    let path = config.store.path.clone();
    // First of all: nothing is read or sent while another daemon has the
    // store. Held until `run` returns.
    let _one_daemon = crate::adapters::db::lock_for_daemon(&path)?;
    let mut store = Store::open(&path)?;
    let desk = Arc::new(Desk::new(config, &mut store)?);
    let finished =
        crate::service::intake::finish_unprocessed(&mut store, &desk, crate::clock::now())?;
    if finished > 0 {
        tracing::info!(count = finished, "finished mail stored by the last run");
    }
    let open_cases = store
        .list_cases(Some(crate::core::case::Status::Open))?
        .len();
    tracing::info!(
        store = %path.display(),
        schema = store.version()?,
        nation = %desk.calendar.spec().nation,
        mailbox = %desk.config.mailbox.address,
        open_cases,
        "redress started"
    );
    // A transport that cannot be built (bad TLS settings, CA file) is a
    // start-up error, not letters queued for ever.
    // With XOAUTH2, one token source serves IMAP and SMTP.
    let tokens = crate::adapters::oauth2::for_config(&desk.config, Some(&path))?;
    let sender = crate::adapters::smtp::Sender::new(
        &desk.config.smtp,
        desk.config.smtp_port(),
        tokens.clone(),
    )?;
    let shared = Arc::new(intake::IntakeShared::default());
    let metrics_task = metrics::start(&desk.config, &path, shared.clone(), token.clone()).await?;
    let progress = Arc::new(watchdog::Progress::new(START_GRACE));
    let liveness = liveness::start(&path, shared.clone(), progress.clone(), token.clone())?;
    let (desk_tx, desks) = watch::channel(desk);
    let intake_task = tokio::spawn(watchdog::as_loop(
        progress.clone(),
        watchdog::Loop::Intake,
        intake::run(
            desks.clone(),
            store,
            shared.clone(),
            tokens.clone(),
            token.clone(),
        ),
    ));
    let outbox_task = tokio::spawn(watchdog::as_loop(
        progress.clone(),
        watchdog::Loop::Outbox,
        outbox::run(
            desks.clone(),
            sender,
            Store::open(&path)?,
            shared.clone(),
            token.clone(),
        ),
    ));
    let tokens_for_reload = tokens.clone();
    let oauth_task = match tokens {
        Some(t) => Some(tokio::spawn(oauth::run(
            desks.clone(),
            Store::open(&path)?,
            t,
            shared.clone(),
            token.clone(),
        ))),
        None => None,
    };
    let timer_task = tokio::spawn(watchdog::as_loop(
        progress.clone(),
        watchdog::Loop::Timers,
        scheduler::run(
            desks.clone(),
            Store::open(&path)?,
            shared.clone(),
            token.clone(),
        ),
    ));
    let mut status_store = Store::open(&path)?;
    // SIGHUP's default is to end the process: handled before systemd may
    // send one (after READY=1).
    let reloads = reload_on_sighup(options, desk_tx, Store::open(&path)?, tokens_for_reload)?;
    watchdog::notify(&[sd_notify::NotifyState::Ready]);
    watchdog::status(&status_line(&mut status_store, &desks.borrow()));
    tokio::spawn(watchdog::run(progress, token.clone()));
    let mut refresh = tokio::time::interval(STATUS_EVERY);
    let mut watching = desks.clone();
    let mut reloadable = true;
    loop {
        tokio::select! {
            _ = refresh.tick() => {}
            r = watching.changed(), if reloadable => reloadable = r.is_ok(),
            _ = token.cancelled() => break,
        }
        let desk = watching.borrow_and_update().clone();
        watchdog::status(&status_line(&mut status_store, &desk));
    }
    watchdog::notify(&[
        sd_notify::NotifyState::Stopping,
        sd_notify::NotifyState::Status("stopping: finishing the mail in hand"),
    ]);
    reloads.abort();
    // One bound for the whole stop, not one per loop.
    let deadline = tokio::time::Instant::now() + STOP_GRACE;
    for (name, task) in [
        ("intake", intake_task),
        ("outbox", outbox_task),
        ("timers", timer_task),
    ]
    .into_iter()
    .chain(oauth_task.map(|t| ("oauth2", t)))
    {
        let abort = task.abort_handle();
        if tokio::time::timeout_at(deadline, task).await.is_err() {
            tracing::warn!(task = name, "did not stop in time; aborted");
            abort.abort();
        }
    }
    if let Some(task) = metrics_task {
        task.abort();
    }
    liveness.stopped().await;
    tracing::info!("redress stopped");
    Ok(())
}

/// `STATUS=`: what the daemon watches and how the work stands, in words.
fn status_line(store: &mut Store, desk: &Desk) -> String {
    let mailbox = &desk.config.mailbox.address;
    match store.health_at(crate::clock::now()) {
        Ok(h) => h.summary_line(mailbox, desk.calendar.spec().time_zone),
        Err(e) => format!("watching {mailbox}; store unreadable: {e:#}"),
    }
}

/// Reloads the config and templates on each SIGHUP. A config or template
/// that fails is refused with one log line and the running one stays.
fn reload_on_sighup(
    options: Options,
    desks: watch::Sender<Arc<Desk>>,
    mut store: Store,
    tokens: Option<Arc<crate::adapters::oauth2::TokenSource>>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = signal(SignalKind::hangup()).context("Installing the SIGHUP handler")?;
    Ok(tokio::spawn(async move {
        while hup.recv().await.is_some() {
            watchdog::notify(&[sd_notify::NotifyState::Reloading]);
            let current = desks.borrow().clone();
            match reload(&options.config_path, &current, &mut store, tokens.clone()) {
                Ok(desk) => {
                    options.log.set_level(&desk.config.log.level);
                    if desk.config.log.format != current.config.log.format {
                        tracing::warn!("log.format changes at the next start");
                    }
                    if desk.config.metrics.listen != current.config.metrics.listen {
                        tracing::warn!("metrics.listen changes at the next start");
                    }
                    let imap = if current.config.same_mailbox_as(&desk.config) {
                        "IMAP unchanged, connection kept"
                    } else {
                        "IMAP settings changed, reconnecting"
                    };
                    let smtp = if current.config.smtp == desk.config.smtp {
                        "SMTP unchanged"
                    } else {
                        "SMTP settings changed"
                    };
                    tracing::info!(
                        config = %options.config_path.display(),
                        "SIGHUP: reloaded the config and templates ({imap}; {smtp})"
                    );
                    desks.send_replace(Arc::new(desk));
                }
                Err(e) => {
                    let why = format!("{e:#}").replace('\n', "; ");
                    tracing::error!(
                        config = %options.config_path.display(),
                        "SIGHUP: reload refused, still running on the previous config: {why}"
                    );
                }
            }
            watchdog::notify(&[sd_notify::NotifyState::Ready]);
        }
    }))
}

/// Reads and checks the config and templates again.
fn reload(
    path: &Path,
    current: &Desk,
    store: &mut Store,
    tokens: Option<Arc<crate::adapters::oauth2::TokenSource>>,
) -> anyhow::Result<Desk> {
    let config = crate::config::load(path)?;
    if let Some(why) = current.config.restart_needed_for(&config) {
        anyhow::bail!(why);
    }
    // New SMTP settings that cannot make a transport (a bad CA file) are
    // refused here, not found out by the outbox.
    crate::adapters::smtp::Sender::new(&config.smtp, config.smtp_port(), tokens)?;
    // Likewise a new IMAP CA file that cannot be read: refused now, not
    // found out after logging out of a working connection.
    if config.imap.tls != crate::config::TlsMode::None {
        crate::adapters::tls::client_config(config.imap.ca_file.as_deref())
            .context("imap.ca_file")?;
    }
    Desk::new(config, store)
}
