//! `src/core/` stays pure: no I/O crates, no file or network access, no
//! clock reads. This test fails the suite if anyone crosses the line.

use crate::support::repo;

const FORBIDDEN: &[&str] = &[
    "tokio",
    "rusqlite",
    "lettre",
    "async_imap",
    "mail_parser",
    "handlebars",
    "reqwest",
    "std::fs",
    "std::net",
    "std::process",
    "std::env",
    "Utc::now",
    "Local::now",
    "SystemTime::now",
    "Instant::now",
    "crate::adapters",
    "crate::runtime",
    "crate::clock",
];

#[test]
fn core_imports_no_io_crate_and_reads_no_clock() {
    let dir = repo().join("src/core");
    let mut files = 0;
    let mut offences = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("src/core") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        files += 1;
        let text = std::fs::read_to_string(&path).expect("read");
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            for word in FORBIDDEN {
                let hit = code.match_indices(word).any(|(i, _)| {
                    let before = code[..i].chars().next_back();
                    let after = code[i + word.len()..].chars().next();
                    let boundary =
                        |c: Option<char>| c.is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
                    boundary(before) && (boundary(after) || word.contains("::"))
                });
                if hit {
                    offences.push(format!(
                        "{}:{}: {word}: {}",
                        path.display(),
                        n + 1,
                        line.trim()
                    ));
                }
            }
        }
    }
    assert!(
        files >= 4,
        "expected the core modules under {}",
        dir.display()
    );
    assert!(
        offences.is_empty(),
        "src/core must stay pure:\n{}",
        offences.join("\n")
    );
}
