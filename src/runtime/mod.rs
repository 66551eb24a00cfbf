//! The daemon: the long-running loops and how they stop.
//!
//! One way to stop: SIGTERM and SIGINT cancel one `CancellationToken`; every
//! loop stops at a safe point (a mail is either committed or left for the
//! next start); the daemon waits for them with a bound, then aborts.

pub mod intake;
pub mod liveness;
pub mod metrics;
pub mod outbox;
pub mod scheduler;

use crate::adapters::db::Store;
use crate::config::Config;
use crate::service::Desk;
use anyhow::Context as _;
use std::sync::Arc;
use std::time::Duration;
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

/// Runs the daemon until `token` is cancelled.
pub async fn run(config: Config, token: CancellationToken) -> anyhow::Result<()> {
    let path = config.store.path.clone();
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
    let transport = crate::adapters::smtp::transport(&desk.config.smtp, desk.config.smtp_port())?;
    let shared = Arc::new(intake::IntakeShared::default());
    let metrics_task = metrics::start(&desk.config, &path, shared.clone(), token.clone()).await?;
    let liveness = liveness::start(&path, shared.clone(), token.clone())?;
    let intake_task = tokio::spawn(intake::run(
        desk.clone(),
        store,
        shared.clone(),
        token.clone(),
    ));
    let outbox_task = tokio::spawn(outbox::run(
        desk.clone(),
        transport,
        Store::open(&path)?,
        shared.clone(),
        token.clone(),
    ));
    let timer_task = tokio::spawn(scheduler::run(
        desk.clone(),
        Store::open(&path)?,
        shared.clone(),
        token.clone(),
    ));
    token.cancelled().await;
    for (name, task) in [
        ("intake", intake_task),
        ("outbox", outbox_task),
        ("timers", timer_task),
    ] {
        let abort = task.abort_handle();
        if tokio::time::timeout(STOP_GRACE, task).await.is_err() {
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
