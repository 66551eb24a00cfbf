//! redress: a complaints desk run by email.
//!
//! Functional core, imperative shell: every decision is in [`core`] (pure,
//! no I/O, no clock reads); [`adapters`] do the I/O; [`runtime`] wires the
//! long-running loops; [`config`] is the one TOML file an admin writes.

#![forbid(unsafe_code)]

pub mod adapters;
pub mod clock;
pub mod config;
pub mod core;
pub mod logging;
pub mod runtime;
pub mod service;
