//! Adapters: every side effect lives here (SQLite, IMAP, SMTP). They carry
//! out what the core decided and report plain facts back; they decide
//! nothing themselves.

pub mod backup;
pub mod bank_holidays;
pub mod db;
pub mod health;
pub mod imap;
pub mod mail_parse;
pub mod oauth2;
pub mod outgoing;
pub mod render;
pub mod smtp;
pub mod tls;
