//! Log output: journald, a terminal, or JSON lines.
//!
//! - Under systemd (`JOURNAL_STREAM` names our stderr) each line starts
//!   with its syslog priority (`<3>` error ... `<7>` debug), as
//!   sd-daemon(3) describes, and carries no timestamp (journald adds its
//!   own). An event's line breaks are folded so one event stays one entry.
//! - On a terminal: human lines with a timestamp, coloured.
//! - JSON lines on request (`--log-format json` or `log.format = "json"`).
//!
//! The level comes from `RUST_LOG` when set, else from `log.level`, and is
//! reloaded with the config. Whatever the level, the IMAP and TLS crates
//! stay at `info`: their debug output carries protocol lines, and a LOGIN
//! line holds a password. So does the HTTP client's (ureq's trace output
//! dumps the token endpoint's answer, access token included).

use std::fmt;
use std::io::IsTerminal as _;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{self, FormatEvent, FormatFields, Writer};
use tracing_subscriber::fmt::FmtContext;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{prelude::*, reload, EnvFilter, Registry};

/// Crates whose debug output could carry a secret: never below `info`.
const CAPPED: &str = "async_imap=info,imap_proto=info,rustls=info,tokio_rustls=info,lettre=info,\
                      ureq=info,ureq_proto=info,httparse=info";

/// How log lines look.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Journal when stderr is the journal, else human.
    Auto,
    Human,
    Json,
    Journal,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Format, String> {
        match s {
            "auto" => Ok(Format::Auto),
            "human" => Ok(Format::Human),
            "json" => Ok(Format::Json),
            "journal" => Ok(Format::Journal),
            _ => Err(format!(
                "{s:?} is not a log format (auto, human, json, journal)"
            )),
        }
    }
}

/// Checks `level` as a filter: `info`, `debug`, `redress=debug,info` ...
pub fn check_level(level: &str) -> Result<(), String> {
    // A bare word is a target to the filter ("debgu" would log nothing
    // else): here it must be a level; targets are written `target=level`.
    const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];
    for d in level.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        if !d.contains('=') && !LEVELS.contains(&d.to_ascii_lowercase().as_str()) {
            return Err(format!(
                "{d:?} is not a level (off, error, warn, info, debug, trace); write target=level for one module"
            ));
        }
    }
    EnvFilter::builder()
        .parse(level)
        .map(|_| ())
        .map_err(|e| format!("{level:?} is not a log level or filter: {e}"))
}

fn filter(level: &str) -> EnvFilter {
    let base = EnvFilter::builder()
        .parse(level)
        .unwrap_or_else(|_| EnvFilter::new("info"));
    CAPPED
        .split(',')
        .filter_map(|d| d.parse().ok())
        .fold(base, EnvFilter::add_directive)
}

/// Changes the level at run time (on reload).
pub struct Handle {
    reload: Option<reload::Handle<EnvFilter, Registry>>,
    from_env: bool,
    level: std::sync::Mutex<String>,
}

impl Handle {
    /// A handle that changes nothing (tests, or logging set up elsewhere).
    pub fn none() -> Handle {
        Handle {
            reload: None,
            from_env: true,
            level: Default::default(),
        }
    }

    /// Applies `level` from a reloaded config; `RUST_LOG`, when set, wins.
    pub fn set_level(&self, level: &str) {
        let Some(reload) = &self.reload else { return };
        if self.from_env {
            return;
        }
        let mut current = self.level.lock().unwrap_or_else(|e| e.into_inner());
        if *current == level {
            return;
        }
        match reload.reload(filter(level)) {
            Ok(()) => {
                tracing::info!(level, "log level changed");
                *current = level.to_string();
            }
            Err(e) => tracing::warn!("log level {level:?} not applied: {e}"),
        }
    }
}

/// True when stderr is the journal's stream (`JOURNAL_STREAM` = dev:inode
/// of our stderr), as systemd.exec(5) says to check.
pub fn stderr_is_journal() -> bool {
    use std::os::fd::AsFd as _;
    use std::os::unix::fs::MetadataExt as _;
    let Some(expected) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Ok(fd) = std::io::stderr().as_fd().try_clone_to_owned() else {
        return false;
    };
    let Ok(meta) = std::fs::File::from(fd).metadata() else {
        return false;
    };
    expected.to_string_lossy() == format!("{}:{}", meta.dev(), meta.ino())
}

/// Sets up the global subscriber; `level` is used unless `RUST_LOG` is set.
pub fn init(format: Format, level: &str) -> Handle {
    let env = std::env::var("RUST_LOG")
        .ok()
        .filter(|s| !s.trim().is_empty());
    let from_env = env.is_some();
    let (filter_layer, reload) = reload::Layer::new(filter(env.as_deref().unwrap_or(level)));
    let format = match format {
        Format::Auto if stderr_is_journal() => Format::Journal,
        Format::Auto => Format::Human,
        f => f,
    };
    let registry = Registry::default().with(filter_layer);
    let stderr = std::io::stderr;
    match format {
        Format::Json => registry
            .with(tracing_subscriber::fmt::layer().json().with_writer(stderr))
            .init(),
        Format::Journal => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(false)
                    .event_format(Journal::default())
                    .with_writer(stderr),
            )
            .init(),
        _ => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(std::io::stderr().is_terminal())
                    .with_writer(stderr),
            )
            .init(),
    }
    Handle {
        reload: Some(reload),
        from_env,
        level: std::sync::Mutex::new(level.to_string()),
    }
}

/// syslog priority of a level, as journald reads it from `<N>`.
fn priority(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        _ => 7,
    }
}

/// One journal entry per event: `<N>target: message field=value`.
struct Journal {
    inner: format::Format<format::Full, ()>,
}

impl Default for Journal {
    fn default() -> Journal {
        Journal {
            inner: format::format()
                .without_time()
                .with_level(false)
                .with_ansi(false),
        }
    }
}

impl<S, N> FormatEvent<S, N> for Journal
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut line = String::new();
        self.inner
            .format_event(ctx, Writer::new(&mut line), event)?;
        let folded = fold_lines(line.trim_end_matches('\n'));
        writeln!(writer, "<{}>{folded}", priority(event.metadata().level()))
    }
}

/// One line: inner line breaks become " | ".
fn fold_lines(text: &str) -> String {
    text.split('\n')
        .map(|l| l.trim_end_matches('\r'))
        .collect::<Vec<_>>()
        .join(" | ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities_follow_syslog() {
        assert_eq!(priority(&Level::ERROR), 3);
        assert_eq!(priority(&Level::WARN), 4);
        assert_eq!(priority(&Level::INFO), 6);
        assert_eq!(priority(&Level::DEBUG), 7);
        assert_eq!(priority(&Level::TRACE), 7);
    }

    #[test]
    fn an_event_stays_one_line() {
        assert_eq!(fold_lines("a\nb\r\nc"), "a | b | c");
    }

    #[test]
    fn levels_are_checked() {
        assert!(check_level("debug").is_ok());
        assert!(check_level("redress=debug,info").is_ok());
        assert!(check_level("redress=loud").is_err());
        assert!(check_level("verbose").is_err());
    }

    #[test]
    fn the_imap_crates_stay_at_info_whatever_the_level() {
        let f = filter("trace").to_string();
        assert!(f.contains("async_imap=info"), "{f}");
        assert!(f.contains("ureq_proto=info"), "{f}");
        assert!(f.contains("trace"), "{f}");
    }
}
