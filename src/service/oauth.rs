//! OAuth2 trouble, as the desk sees it: the Quality Coordinator hears ONCE
//! per failure episode that redress cannot get access tokens (a refused
//! refresh: revoked consent, expired client secret), however often the
//! refresh is retried and across restarts; the episode ends when a
//! refresh works again.
//!
//! The episode is a row in the store's `settings` table, written in the
//! same transaction as the notice's outbox row; the notice's Message-ID is
//! fixed by the episode, so it cannot go twice. When SMTP itself uses
//! XOAUTH2 the notice waits in the outbox until tokens come again.

use super::letters::{self, LetterSpec};
use super::Desk;
use crate::adapters::db::{self, Store};
use crate::config::AuthMethod;
use crate::core::oauth2::RefreshError;
use chrono::{DateTime, Utc};
use serde_json::json;

/// The setting that marks a running episode (its value: when it began).
const EPISODE: &str = "oauth2-trouble";

/// Records that refreshing fails with `error`; queues the notice to QC
/// when this starts an episode. True when a notice was queued.
pub fn refresh_failing(
    store: &mut Store,
    desk: &Desk,
    error: &RefreshError,
    token_url: &str,
    now: DateTime<Utc>,
) -> anyhow::Result<bool> {
    let tx = store.transaction()?;
    if db::setting(&tx, EPISODE)?.is_some() {
        return Ok(false);
    }
    let episode = now.timestamp_millis();
    db::set_setting(&tx, EPISODE, &episode.to_string())?;
    db::append_event(
        &tx,
        None,
        now,
        "redress",
        "oauth2-refresh-failed",
        &json!({"token_url": token_url, "error": error.to_string()}),
    )?;
    let since = now
        .with_timezone(&desk.calendar.time_zone())
        .format("%A %-d %B %Y at %H:%M")
        .to_string();
    let queued = letters::queue_notice(
        &tx,
        desk,
        LetterSpec::notice_to_qc(
            desk,
            "oauth2-refresh-failed",
            format!("oauth2-refresh-failed.{episode}"),
            None,
            "",
            json!({
                "since": since,
                "token_url": token_url,
                "error": error.to_string(),
                "advice": error.advice(),
                "smtp_affected": desk.config.smtp.auth == AuthMethod::Xoauth2,
            }),
        ),
        now,
    )?;
    tx.commit()?;
    Ok(queued.is_some())
}

/// Records that refreshing works: ends the episode, if one was running.
/// True when one ended.
pub fn refresh_working(store: &mut Store, now: DateTime<Utc>) -> anyhow::Result<bool> {
    let tx = store.transaction()?;
    let ended = db::delete_setting(&tx, EPISODE)?;
    if ended {
        db::append_event(
            &tx,
            None,
            now,
            "redress",
            "oauth2-refresh-works",
            &json!({}),
        )?;
    }
    tx.commit()?;
    Ok(ended)
}
