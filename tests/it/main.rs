//! The one integration test binary: the CLI as users run it, the store on
//! real SQLite files, the mail adapters against a real Dovecot and Postfix
//! on 127.0.0.1 (started per test by `scripts/mailstack`), and the core's
//! text rules against real mail from the shared corpus.

mod cli;
mod command;
mod corpus;
mod followup;
mod intake;
mod ladder;
mod mail;
mod oauth;
mod ops;
mod purity;
mod record;
mod service;
mod support;
mod text;
mod unit_file;
