//! The man pages in `dist/man/` (installed by the Debian package) are the
//! clap definitions rendered by `clap_mangen`, so they say what `--help`
//! says: `redress.1` and one `redress-COMMAND.1` per subcommand.
//!
//! Invariant: the committed pages equal a fresh rendering. When the CLI
//! changes, this test fails; `REDRESS_BLESS=1 cargo test --bin redress
//! man_pages` rewrites them (and removes pages of commands that are gone).

use clap::CommandFactory as _;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn committed_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("dist/man")
}

/// Every `*.1` file of a directory, by name.
fn pages_in(dir: &Path) -> BTreeMap<String, String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return BTreeMap::new();
    };
    entries
        .map(|e| e.expect("listing man pages").path())
        .filter(|p| p.extension().is_some_and(|x| x == "1"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (
                name,
                std::fs::read_to_string(&p).expect("reading a man page"),
            )
        })
        .collect()
}

fn render() -> BTreeMap<String, String> {
    let dir = tempfile::tempdir().unwrap();
    clap_mangen::generate_to(super::Cli::command(), dir.path()).unwrap();
    pages_in(dir.path())
}

#[test]
fn committed_man_pages_match_the_cli() {
    let fresh = render();
    assert!(fresh.contains_key("redress.1"), "{:?}", fresh.keys());
    assert!(fresh.contains_key("redress-check.1"), "{:?}", fresh.keys());
    assert!(
        fresh["redress.1"].contains("redress\\-run(1)"),
        "the main page lists the subcommands' pages"
    );
    let dir = committed_dir();
    if std::env::var("REDRESS_BLESS").is_ok_and(|v| v == "1") {
        std::fs::create_dir_all(&dir).unwrap();
        for old in pages_in(&dir).keys() {
            std::fs::remove_file(dir.join(old)).unwrap();
        }
        for (name, text) in &fresh {
            std::fs::write(dir.join(name), text).unwrap();
        }
    }
    let committed = pages_in(&dir);
    let names = |m: &BTreeMap<String, String>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(
        names(&committed),
        names(&fresh),
        "dist/man/ is out of date with the CLI: run REDRESS_BLESS=1 cargo test --bin redress man_pages"
    );
    for (name, text) in &fresh {
        assert!(
            committed[name] == *text,
            "dist/man/{name} is out of date with the CLI: run REDRESS_BLESS=1 cargo test --bin redress man_pages"
        );
    }
}
