//! The real-world mail corpus (`../shared/corpus/mail`, see its
//! `SOURCES.md`) through the parser and the classifier.
//!
//! Invariants checked: no file makes `parse` or `classify` panic; every
//! file's outcome matches the golden file `tests/fixtures/corpus-golden.tsv`
//! (regenerate with `REDRESS_BLESS=1 cargo test --test it corpus`); a
//! handful of files with known answers (bounces, auto-replies, list mail,
//! personal mail) get them. `REDRESS_CORPUS_VERBOSE=1` prints each file's
//! reason.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use redress::adapters::mail_parse::parse;
use redress::core::classify::{classify, OwnIdentity};

use crate::support::repo;

const GOLDEN: &str = "tests/fixtures/corpus-golden.tsv";

fn corpus_dir() -> PathBuf {
    repo().join("../shared/corpus/mail")
}

fn own() -> OwnIdentity {
    OwnIdentity {
        addresses: vec!["complaints@opp.example".to_string()],
        message_id_domain: "opp.example".to_string(),
    }
}

/// Label and licence files that sit beside the messages.
fn is_mail(rel: &str) -> bool {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    let upper = name.to_ascii_uppercase();
    let label_ext = [".json", ".tsv", ".yml", ".yaml", ".md"]
        .iter()
        .any(|e| name.to_ascii_lowercase().ends_with(e));
    !(label_ext
        || upper.starts_with("LICENSE")
        || upper.starts_with("COPYING")
        || upper.starts_with("MIT-LICENSE")
        || upper.starts_with("README")
        || rel.contains("/LICENSES/")
        // talon's expected reply texts, not mail.
        || name.ends_with("_reply_text"))
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            walk(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// Every mail file under `dir`: (path relative to `dir`, full path), in
/// a stable order.
fn mails(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut files = Vec::new();
    walk(dir, &mut files);
    files
        .into_iter()
        .filter_map(|path| {
            let rel = path
                .strip_prefix(dir)
                .expect("under corpus")
                .to_string_lossy()
                .replace('\\', "/");
            is_mail(&rel).then_some((rel, path))
        })
        .collect()
}

/// One file's outcome: (parse "ok"/"error", classification, reason).
type Outcome = (&'static str, &'static str, String);

fn run_one(raw: &[u8]) -> Outcome {
    match parse(raw) {
        Ok(m) => {
            let c = classify(&m, &own());
            ("ok", c.as_str(), c.reason().to_string())
        }
        Err(e) => ("error", "-", e.to_string()),
    }
}

#[test]
fn corpus_parses_classifies_and_matches_golden() {
    let dir = corpus_dir();
    if !dir.is_dir() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("corpus not found at {}", dir.display());
        }
        println!("corpus not found at {}", dir.display());
        return;
    }

    let mut results: BTreeMap<String, Outcome> = BTreeMap::new();
    let mut panicked = Vec::new();
    for (rel, path) in mails(&dir) {
        let raw = std::fs::read(&path).unwrap_or_else(|e| panic!("reading {rel}: {e}"));
        match catch_unwind(AssertUnwindSafe(|| run_one(&raw))) {
            Ok(outcome) => {
                results.insert(rel, outcome);
            }
            Err(_) => panicked.push(rel),
        }
    }
    assert!(
        panicked.is_empty(),
        "parse/classify panicked on {} file(s): {panicked:?}",
        panicked.len()
    );
    assert!(
        results.len() > 500,
        "only {} corpus files found under {}",
        results.len(),
        dir.display()
    );

    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for (parsed, class, _) in results.values() {
        *counts
            .entry(if *parsed == "ok" {
                class
            } else {
                "parse-error"
            })
            .or_default() += 1;
    }
    let summary: Vec<String> = counts.iter().map(|(k, v)| format!("{k} {v}")).collect();
    println!("corpus: {} files: {}", results.len(), summary.join(", "));
    let mut folders: BTreeMap<&str, BTreeMap<&str, usize>> = BTreeMap::new();
    for (rel, (_, class, _)) in &results {
        let folder = rel.split('/').next().unwrap_or(rel);
        let class = if *class == "-" { "parse-error" } else { class };
        *folders.entry(folder).or_default().entry(class).or_default() += 1;
    }
    for (folder, counts) in &folders {
        let counts: Vec<String> = counts.iter().map(|(k, v)| format!("{k} {v}")).collect();
        println!("  {folder}: {}", counts.join(", "));
    }
    if std::env::var("REDRESS_CORPUS_VERBOSE").is_ok_and(|v| v == "1") {
        for (rel, (parsed, class, reason)) in &results {
            println!("{rel}\t{parsed}\t{class}\t{reason}");
        }
    }

    let lines: Vec<String> = results
        .iter()
        .map(|(rel, (parsed, class, _))| format!("{rel}\t{parsed}\t{class}"))
        .collect();
    let actual = format!(
        "# path\tparse\tclassification (regenerate: REDRESS_BLESS=1 cargo test --test it corpus)\n{}\n",
        lines.join("\n")
    );
    let golden_path = repo().join(GOLDEN);
    if std::env::var("REDRESS_BLESS").is_ok_and(|v| v == "1") {
        std::fs::write(&golden_path, &actual).expect("writing golden file");
        println!("wrote {}", golden_path.display());
    } else {
        let expected = std::fs::read_to_string(&golden_path).unwrap_or_default();
        let diff = diff_lines(&expected, &actual);
        assert!(
            diff.is_empty(),
            "corpus results differ from {GOLDEN} ({} line(s); first 40 below; \
             if the change is right, rerun with REDRESS_BLESS=1):\n{}",
            diff.len(),
            diff.iter().take(40).cloned().collect::<Vec<_>>().join("\n")
        );
    }

    // Files whose answer is known from their source (see SOURCES.md).
    let known: &[(&str, &str)] = &[
        // RFC 3834 auto-replies (sisimai labels them "vacation").
        ("sisimai/maildir/bsd/rfc3834-01.eml", "auto-reply"),
        ("sisimai/maildir/bsd/rfc3834-04.eml", "auto-reply"),
        ("bounceparser/autoreply.msg", "auto-reply"),
        ("bounce_email/non_bounces/tt_1234210666.txt", "auto-reply"),
        // DSNs and NDRs, in LF, CRLF and CR-only copies.
        ("sisimai/maildir/bsd/lhost-postfix-01.eml", "bounce"),
        ("sisimai/maildir/bsd/lhost-exim-01.eml", "bounce"),
        ("sisimai/maildir/bsd/lhost-qmail-01.eml", "bounce"),
        ("sisimai/maildir/bsd/lhost-exchange2007-01.eml", "bounce"),
        ("sisimai/maildir/dos/lhost-exchange2003-01.eml", "bounce"),
        ("sisimai/maildir/mac/lhost-exchange2003-01.eml", "bounce"),
        ("sisimai/mailbox/mbox-1", "bounce"),
        ("sisimai/maildir/bsd/arf-01.eml", "bounce"),
        ("sisimai/maildir/mac/arf-01.eml", "bounce"),
        (
            "mikel-mail/multipart_report_emails/report_422.eml",
            "bounce",
        ),
        ("chatmail-core/gmx_ndn.eml", "bounce"),
        (
            "zammad/mail033-undelivered-mail-returned-to-sender.box",
            "bounce",
        ),
        ("bounce_email/bounces/undeliverable_gmail.txt", "bounce"),
        // Mailing-list mail.
        ("notmuch/lkml/cur/1354585346.000260:2,", "list"),
        ("notmuch/lkml/cur/1382298587.001724:2,", "list"),
        ("chatmail-core/mailinglist_dpd.eml", "list"),
        // Personal mail.
        ("mikel-mail/plain_emails/basic_email.eml", "human"),
        ("talon/standard_replies/gmail.eml", "human"),
        ("talon/standard_replies/thunderbird.eml", "human"),
        ("sisimai/maildir/not/is-not-bounce-01.eml", "human"),
        ("bounce_email/non_bounces/tt_1234241664.txt", "human"),
        ("zammad/mail072.box", "human"),
        // Not mail at all: an error, not a panic or a guess.
        ("rt/lorem-ipsum", "-"),
    ];
    let mut wrong = Vec::new();
    for (rel, want) in known {
        match results.get(*rel) {
            Some((_, got, _)) if got == want => {}
            Some((parsed, got, reason)) => {
                wrong.push(format!("{rel}: want {want}, got {parsed}/{got} ({reason})"))
            }
            None => wrong.push(format!("{rel}: not in the corpus")),
        }
    }
    assert!(wrong.is_empty(), "known answers:\n{}", wrong.join("\n"));
}

/// Lines that differ between the golden file and this run, keyed by path:
/// `- old` / `+ new`.
fn diff_lines(expected: &str, actual: &str) -> Vec<String> {
    let rows = |text: &str| -> BTreeMap<String, String> {
        text.lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .map(|l| {
                let key = l.split('\t').next().unwrap_or(l).to_string();
                (key, l.to_string())
            })
            .collect()
    };
    let (old, new) = (rows(expected), rows(actual));
    let mut keys: Vec<&String> = old.keys().chain(new.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut out = Vec::new();
    for key in keys {
        match (old.get(key), new.get(key)) {
            (Some(a), Some(b)) if a == b => {}
            (a, b) => {
                if let Some(a) = a {
                    out.push(format!("- {a}"));
                }
                if let Some(b) = b {
                    out.push(format!("+ {b}"));
                }
            }
        }
    }
    out
}

/// The whole intake pipeline (parse, classify, match, decide, commit) on
/// every corpus mail, into a real SQLite store, no servers: no panic, no
/// error, robots never open a case or get a letter.
#[test]
fn corpus_goes_through_the_whole_intake_pipeline() {
    use redress::adapters::db::Store;
    use redress::service::intake::{process, Arrival, Processed};
    let dir = corpus_dir();
    if !dir.is_dir() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "corpus not found at {}",
            dir.display()
        );
        println!("corpus not found at {}", dir.display());
        return;
    }
    let golden = std::fs::read_to_string(repo().join(GOLDEN)).expect("golden file");
    let expected: BTreeMap<&str, &str> = golden
        .lines()
        .filter_map(|l| {
            let mut f = l.split('\t');
            Some((f.next()?, f.nth(1)?))
        })
        .collect();
    let tmp = tempfile::tempdir().expect("tempdir");
    let store_path = tmp.path().join("corpus.sqlite");
    let env = vec![(
        "REDRESS_STORE_PATH".to_string(),
        store_path.display().to_string(),
    )];
    let cfg = redress::config::parse_str(
        &crate::support::example_config(),
        "config.example.toml",
        &env,
    )
    .expect("config");
    let mut store = Store::open(&store_path).expect("store");
    let desk = redress::service::Desk::new(cfg, &mut store).expect("desk");
    let now = "2026-11-23T10:00:00Z".parse().expect("now");
    let (mut opened, mut joined, mut robots, mut duplicates, mut quarantined) = (0, 0, 0, 0, 0);
    for (rel, path) in mails(&dir) {
        let raw = std::fs::read(&path).expect("read");
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            process(&mut store, &desk, &raw, &Arrival::default(), now)
        }))
        .unwrap_or_else(|_| panic!("{rel}: intake panicked"))
        .unwrap_or_else(|e| panic!("{rel}: intake failed: {e:#}"));
        let class = expected.get(rel.as_str()).copied().unwrap_or("?");
        match outcome {
            Processed::Opened { acknowledged, .. } => {
                // A robot on weak evidence alone (a subject phrase) opens a
                // case for QC to look at, but is never acknowledged.
                assert!(
                    class == "human" || !acknowledged,
                    "{rel} is {class} and was acknowledged"
                );
                opened += 1;
            }
            // The test desk's staff addresses are not in the corpus.
            Processed::Joined { .. } | Processed::TakenFurther { .. } | Processed::Staff { .. } => {
                joined += 1
            }
            Processed::Robot { .. } => {
                assert!(
                    !matches!(class, "human" | "?"),
                    "{rel} handled as a robot but is {class}"
                );
                robots += 1;
            }
            Processed::Duplicate => duplicates += 1,
            Processed::Quarantined { reason } => {
                if std::env::var_os("REDRESS_CORPUS_VERBOSE").is_some() {
                    println!("quarantined {rel}: {reason}");
                }
                quarantined += 1;
            }
        }
    }
    println!(
        "corpus through intake: {opened} new cases, {joined} joined a case, {robots} robots recorded, {duplicates} duplicates, {quarantined} quarantined"
    );
    assert!(
        opened > 100 && robots > 100,
        "opened {opened}, robots {robots}"
    );
    // No letter ever goes to an address that only sent robot mail.
    let robot_letters: i64 = store
        .conn()
        .query_row(
            "SELECT COUNT(*) FROM outbox o WHERE o.auto_reply = 1 AND NOT EXISTS (
                 SELECT 1 FROM messages m WHERE m.classification = 'human'
                   AND (m.from_address = o.recipient OR m.reply_to = o.recipient))",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(robot_letters, 0, "an automatic reply went to a robot");
}
