//! The OAuth2 health watcher: follows the token source's health changes
//! (never its retries) and has the desk record them: a refused refresh
//! starts an episode and the Quality Coordinator's one notice, a working
//! refresh ends it (see `service::oauth`). While refreshing fails it also
//! retries it at the token source's back-off pace. Runs only when IMAP or
//! SMTP logs in with XOAUTH2.

use crate::adapters::db::Store;
use crate::adapters::oauth2::TokenSource;
use crate::core::oauth2::{needs_notice, Health};
use crate::service::Desk;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Runs until `token` is cancelled.
pub async fn run(
    desks: super::Desks,
    mut store: Store,
    tokens: Arc<TokenSource>,
    shared: Arc<super::intake::IntakeShared>,
    token: CancellationToken,
) {
    let mut health = tokens.subscribe();
    loop {
        // While refreshing fails, keep trying at the source's back-off pace
        // (whatever intake's own pace), so that the end of an outage is
        // seen, logged and recorded promptly.
        let retry = match tokens.retry_in().await {
            Some(wait) => wait.max(std::time::Duration::from_millis(100)),
            None => std::time::Duration::from_secs(86400),
        };
        tokio::select! {
            changed = health.changed() => if changed.is_err() { break },
            _ = tokio::time::sleep(retry) => {
                // Its outcome shows as a change of health, if any.
                let _ = tokens.access_token().await;
                continue;
            }
            _ = token.cancelled() => break,
        }
        let now = crate::clock::now();
        let desk: Arc<Desk> = desks.borrow().clone();
        let current = health.borrow_and_update().clone();
        let result = if needs_notice(&current) {
            match tokens.last_error().await {
                Some(error) => crate::service::oauth::refresh_failing(
                    &mut store,
                    &desk,
                    &error,
                    tokens.token_url(),
                    now,
                )
                .map(|queued| {
                    if queued {
                        tracing::warn!(
                            "OAuth2: the Quality Coordinator is told that the token refresh fails"
                        );
                        shared.outbox.notify_one();
                    }
                }),
                None => Ok(()),
            }
        } else if current == Health::Working {
            crate::service::oauth::refresh_working(&mut store, now).map(|_| ())
        } else {
            Ok(())
        };
        if let Err(e) = result {
            tracing::error!("OAuth2 watcher: {e:#}");
        }
    }
}
