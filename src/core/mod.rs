//! The functional core: every decision redress makes, as pure functions of
//! plain facts.
//!
//! Nothing under `core` does I/O or reads the clock: no tokio, rusqlite,
//! lettre, async-imap, mail-parser or handlebars, no `std::fs`, `std::net`
//! or `Utc::now()`. Callers pass `now`. A test (`tests/it/purity.rs`) fails
//! the build if that boundary is crossed.

pub mod calendar;
pub mod case;
pub mod holidays;
pub mod message;
pub mod procedure;
pub mod text;
