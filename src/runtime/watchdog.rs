//! Is every loop still making progress? And telling systemd so.
//!
//! Each loop promises, before each wait or step, by when it will be back at
//! its next safe point: [`expect`] (connect, an IMAP command, an IDLE, a
//! send, a sleep; each is bounded). A loop that misses its own promise is
//! wedged. The watchdog task sends systemd `WATCHDOG=1` every half of
//! `WATCHDOG_USEC` only while no loop has missed its promise, so a wedged
//! loop (a hung call, a deadlock, a blocked thread) lets systemd's watchdog
//! fire and restart the service. A loop that is merely waiting out a mail
//! server's outage is not wedged: its back-off sleep is a promise it keeps.
//!
//! The promise is tied to the running task with a task-local, so code deep
//! in a loop (`timed` IMAP commands, each send) calls [`expect`] without
//! being handed anything; outside a loop (tests, the CLI) it does nothing.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The daemon's loops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loop {
    Intake,
    Outbox,
    Timers,
}

impl Loop {
    pub const ALL: [Loop; 3] = [Loop::Intake, Loop::Outbox, Loop::Timers];

    pub fn name(self) -> &'static str {
        match self {
            Loop::Intake => "intake",
            Loop::Outbox => "outbox",
            Loop::Timers => "timers",
        }
    }
}

/// Added to every promise: time for the work between two waits (storing a
/// chunk of mail, rendering letters) and for a slow machine.
const MARGIN: Duration = Duration::from_secs(30);

/// When each loop promised to be back.
pub struct Progress {
    start: Instant,
    /// Milliseconds after `start`, per loop.
    due: [AtomicU64; 3],
}

impl Progress {
    /// Every loop gets `grace` to start.
    pub fn new(grace: Duration) -> Progress {
        let p = Progress {
            start: Instant::now(),
            due: Default::default(),
        };
        for l in Loop::ALL {
            p.expect(l, grace);
        }
        p
    }

    fn slot(&self, l: Loop) -> &AtomicU64 {
        &self.due[l as usize]
    }

    fn millis(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.start).as_millis()).unwrap_or(u64::MAX)
    }

    /// `l` will be back within `within` (plus the margin).
    pub fn expect(&self, l: Loop, within: Duration) {
        let due = Instant::now() + within.saturating_add(MARGIN);
        self.slot(l).store(self.millis(due), Ordering::SeqCst);
    }

    /// `l` is stuck on purpose (the test hook): its promise is already broken.
    fn broken(&self, l: Loop) {
        self.slot(l).store(0, Ordering::SeqCst);
    }

    /// The loops that broke their promise at `now`.
    pub fn wedged_at(&self, now: Instant) -> Vec<Loop> {
        let now = self.millis(now);
        Loop::ALL
            .into_iter()
            .filter(|l| self.slot(*l).load(Ordering::SeqCst) <= now)
            .collect()
    }
}

tokio::task_local! {
    static CURRENT: (Arc<Progress>, Loop);
}

/// Runs `fut` as loop `l`: [`expect`] inside it records promises for `l`.
pub async fn as_loop<F: std::future::Future>(
    progress: Arc<Progress>,
    l: Loop,
    fut: F,
) -> F::Output {
    CURRENT.scope((progress, l), fut).await
}

/// The current loop will be back at a safe point within `within`.
pub fn expect(within: Duration) {
    let _ = CURRENT.try_with(|(p, l)| p.expect(*l, within));
}

/// The test hook: when `REDRESS_TEST_STALL_FILE` names a file that holds
/// this loop's name, the loop stalls here without keeping its promise
/// (until the daemon stops), as a hung call would. Tests use it to see the
/// watchdog stop; without the variable this costs one lookup.
pub async fn stall_hook(token: &tokio_util::sync::CancellationToken) {
    static FILE: std::sync::OnceLock<Option<std::path::PathBuf>> = std::sync::OnceLock::new();
    let Some(file) =
        FILE.get_or_init(|| std::env::var_os("REDRESS_TEST_STALL_FILE").map(Into::into))
    else {
        return;
    };
    let Ok(Some((p, l))) = CURRENT.try_with(|(p, l)| {
        let named = std::fs::read_to_string(file).unwrap_or_default();
        named
            .split_whitespace()
            .any(|n| n == l.name())
            .then(|| (p.clone(), *l))
    }) else {
        return;
    };
    tracing::warn!(task = l.name(), "test hook: stalling this loop");
    p.broken(l);
    token.cancelled().await;
}

/// Sends `state` to systemd when it is watching (`NOTIFY_SOCKET`); errors
/// are logged at debug level (a missing socket is not the daemon's fault).
pub fn notify(state: &[sd_notify::NotifyState]) {
    if let Err(e) = sd_notify::notify(state) {
        tracing::debug!("sd_notify: {e}");
    }
}

/// `STATUS=`: one line of plain words.
pub fn status(text: &str) {
    let line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    notify(&[sd_notify::NotifyState::Status(&line)]);
}

/// Sends `WATCHDOG=1` every half of `WATCHDOG_USEC` while no loop is
/// wedged; logs once when one is (and once when all are well again).
pub async fn run(progress: Arc<Progress>, token: tokio_util::sync::CancellationToken) {
    let Some(period) = sd_notify::watchdog_enabled() else {
        return;
    };
    let every = (period / 2).max(Duration::from_millis(100));
    tracing::info!(every_ms = every.as_millis() as u64, "systemd watchdog on");
    let mut reported = false;
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = token.cancelled() => return,
        }
        let wedged = progress.wedged_at(Instant::now());
        if wedged.is_empty() {
            if reported {
                tracing::info!("every loop is making progress again");
                reported = false;
            }
            notify(&[sd_notify::NotifyState::Watchdog]);
        } else if !reported {
            let names: Vec<_> = wedged.iter().map(|l| l.name()).collect();
            tracing::error!(
                loops = %names.join(","),
                "a loop has stopped making progress; not telling the watchdog all is well"
            );
            reported = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loop_that_misses_its_promise_is_wedged() {
        let p = Progress::new(Duration::ZERO);
        let now = Instant::now();
        assert!(
            p.wedged_at(now).is_empty(),
            "the margin covers a fresh start"
        );
        p.expect(Loop::Outbox, Duration::from_secs(10));
        let later = now + MARGIN + Duration::from_secs(5);
        assert_eq!(p.wedged_at(later), vec![Loop::Intake, Loop::Timers]);
        p.broken(Loop::Outbox);
        assert_eq!(p.wedged_at(now), vec![Loop::Outbox]);
    }

    #[tokio::test]
    async fn expect_inside_a_loop_records_for_that_loop_only() {
        let p = Arc::new(Progress::new(Duration::ZERO));
        as_loop(p.clone(), Loop::Timers, async {
            expect(Duration::from_secs(3600));
        })
        .await;
        expect(Duration::from_secs(3600)); // outside any loop: nothing
        let later = Instant::now() + MARGIN + Duration::from_secs(60);
        assert_eq!(p.wedged_at(later), vec![Loop::Intake, Loop::Outbox]);
    }
}
