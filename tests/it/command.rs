//! `core::command` against real replies from the shared mail corpus
//! (`../shared/corpus/mail`, see its SOURCES.md): a `#reply` command put in
//! front of the new text of replies written by Gmail, Apple Mail,
//! Thunderbird (bottom-posted) and Outlook, parsed with the same mail-parser
//! the intake uses. What is kept is the text above (or below) the quote.
//!
//! Here rather than beside the code because it reads files, and `src/core/`
//! reads none (see `purity.rs`). Without the corpus the test skips, except
//! under `CI=true`, where a missing corpus is a failure (as in `text.rs`).

use crate::support::repo;
use chrono::NaiveDate;
use redress::core::command::{parse_reply, Command};
use std::path::PathBuf;

/// The corpus folder beside the checkout, else at its usual place on the
/// shared machine; None (test skipped) when neither is there outside CI.
fn corpus() -> Option<PathBuf> {
    let candidates = [
        repo().join("../shared/corpus/mail"),
        PathBuf::from("/work/shared/corpus/mail"),
    ];
    if let Some(dir) = candidates.iter().find(|d| d.is_dir()) {
        return Some(dir.clone());
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "the mail corpus is missing at {} and CI=true",
        candidates[0].display()
    );
    println!("corpus not found (outside CI): the command checks did not run");
    None
}

/// The decoded text body of one corpus message.
fn body(rel: &str) -> Option<String> {
    let path = corpus()?.join(rel);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let msg = mail_parser::MessageParser::default()
        .parse(&bytes)
        .unwrap_or_else(|| panic!("{} does not parse", path.display()));
    let text = msg
        .body_text(0)
        .unwrap_or_else(|| panic!("{} has no text", path.display()));
    Some(text.into_owned())
}

/// `body` with `command` on a line of its own just before the first line
/// that reads `first` (the start of the sender's own text).
fn with_command(body: &str, command: &str, first: &str) -> String {
    let mut out = String::new();
    let mut done = false;
    for line in body.split_inclusive('\n') {
        if !done && line.trim() == first {
            out.push_str(command);
            out.push('\n');
            done = true;
        }
        out.push_str(line);
    }
    assert!(done, "no line {first:?} in {body:?}");
    out
}

#[test]
fn reply_commands_in_real_replies_keep_only_the_new_text() {
    let today = NaiveDate::from_ymd_opt(2026, 11, 23).expect("date");
    let cases = [
        "gmail.eml",       // On Mon, Apr 2, 2012 at 6:26 PM, ... wrote: + "> "
        "apple_mail.eml",  // On Apr 3, 2012, at 4:19 PM, bob wrote:
        "thunderbird.eml", // bottom-posted below On ... wrote:
        "outlook.eml",     // From:/Sent:/To:/Subject: without a rule
    ];
    for file in cases {
        let Some(raw) = body(&format!("talon/standard_replies/{file}")) else {
            return;
        };
        let p = parse_reply(&with_command(&raw, "#Reply", "Hello"), today);
        assert!(p.is_ok(), "{file}: {:?}", p.problems);
        assert_eq!(p.commands, [Command::Reply], "{file}");
        assert_eq!(p.text, "Hello", "{file}");

        // Without a command the same reply is a note of the same text.
        let p = parse_reply(&raw, today);
        assert!(p.is_ok() && p.commands.is_empty(), "{file}: {p:?}");
        assert_eq!(p.text, "Hello", "{file}");
    }
}
