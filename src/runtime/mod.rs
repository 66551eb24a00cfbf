//! The daemon: opens the store, then runs until SIGTERM or SIGINT.
//!
//! One way to stop: both signals cancel one `CancellationToken`, and every
//! loop stops at a safe point. In this version the daemon opens and migrates
//! the store and idles; intake, the outbox sender and the timers are added
//! as loops under the same token.

use crate::adapters::db::Store;
use crate::config::Config;
use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

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
    let calendar = config.calendar(None)?;
    crate::adapters::render::Templates::load(config.templates.dir.as_deref())?;
    let store = Store::open(&config.store.path)?;
    let open_cases = store
        .list_cases(Some(crate::core::case::Status::Open))?
        .len();
    tracing::info!(
        store = %config.store.path.display(),
        schema = store.version()?,
        nation = %calendar.spec().nation,
        mailbox = %config.mailbox.address,
        open_cases,
        "redress started"
    );
    tracing::warn!("this version opens the store and waits; mail intake is not built yet");
    token.cancelled().await;
    tracing::info!("redress stopped");
    Ok(())
}
