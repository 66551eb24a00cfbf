//! The functional core: every decision redress makes, as pure functions of
//! plain facts.
//!
//! Nothing under `core` does I/O or reads the clock: none of the I/O
//! crates (tokio, rusqlite, lettre, async-imap, mail-parser, handlebars), no
//! file, network or process access, no reading of the system clock. Callers
//! pass `now`. A test (`tests/it/purity.rs`) fails the suite if that
//! boundary is crossed.

pub mod calendar;
pub mod case;
pub mod classify;
pub mod command;
pub mod holidays;
pub mod intake;
pub mod ladder;
pub mod liveness;
pub mod message;
pub mod oauth2;
pub mod procedure;
pub mod text;
pub mod threading;
pub mod token;
