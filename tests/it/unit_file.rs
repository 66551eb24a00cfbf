//! `dist/redress.service`, the systemd unit the Debian package installs:
//! what the issue asks of it, `systemd-analyze verify` (syntax, the
//! binary it starts) and `systemd-analyze security` (exposure below 2.0,
//! the figure the README reports). Needs `systemd-analyze` (Debian's
//! `systemd` package; `scripts/package-test install` puts it there): the
//! checks that run it skip without it, except under `CI=true`, where a
//! missing tool is a failure.
//!
//! The whole package (build, install, `redress check` on the installed
//! config, purge) is tested by `scripts/package-test`, as root.

use crate::support::{example_config, redress, repo, stderr, stdout};
use std::path::{Path, PathBuf};
use std::process::Command;

fn unit_text() -> String {
    std::fs::read_to_string(repo().join("dist/redress.service")).expect("dist/redress.service")
}

/// The `[Service]` settings named `key`, in order.
fn settings(unit: &str, key: &str) -> Vec<String> {
    unit.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .map(str::to_string)
        .collect()
}

fn one(unit: &str, key: &str) -> String {
    let v = settings(unit, key);
    assert_eq!(v.len(), 1, "{key}= should be set once, found {v:?}");
    v[0].clone()
}

/// `systemd-analyze`, or None (checks skipped) when it is missing outside CI.
fn systemd_analyze() -> Option<PathBuf> {
    let found = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file());
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "systemd-analyze is missing and CI=true (scripts/package-test install puts it there)"
        );
        println!("systemd-analyze not found (outside CI): the unit was not verified");
    }
    found
}

/// A copy of the unit, named redress.service, that starts the binary under
/// test instead of /usr/bin/redress (not installed here).
fn unit_for_built_binary(dir: &Path) -> PathBuf {
    let text = unit_text().replace("/usr/bin/redress", env!("CARGO_BIN_EXE_redress"));
    let path = dir.join("redress.service");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn the_unit_says_what_the_issue_asks() {
    let unit = unit_text();
    assert_eq!(one(&unit, "Type"), "notify");
    assert_eq!(one(&unit, "NotifyAccess"), "main");
    assert_eq!(
        one(&unit, "ExecStart"),
        "/usr/bin/redress run --config /etc/redress/config.toml"
    );
    assert_eq!(one(&unit, "ExecReload"), "/bin/kill -HUP $MAINPID");
    // The daemon pings at half of WATCHDOG_USEC and stops within 20 s.
    let watchdog: u32 = one(&unit, "WatchdogSec").parse().unwrap();
    assert!((20..=300).contains(&watchdog), "WatchdogSec={watchdog}");
    let stop: u32 = one(&unit, "TimeoutStopSec").parse().unwrap();
    assert!((25..=60).contains(&stop), "TimeoutStopSec={stop}");
    assert_eq!(one(&unit, "DynamicUser"), "yes");
    assert_eq!(one(&unit, "StateDirectory"), "redress");
    assert_eq!(one(&unit, "ConfigurationDirectory"), "redress");
    for (key, value) in [
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("NoNewPrivileges", "yes"),
        ("RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6"),
        ("CapabilityBoundingSet", ""),
        ("MemoryDenyWriteExecute", "yes"),
    ] {
        assert_eq!(one(&unit, key), value, "{key}=");
    }
    assert!(settings(&unit, "SystemCallFilter").contains(&"@system-service".to_string()));
    // Every secret the config can read from a file comes in as a credential
    // looked up by name in the credstore (a missing one does not stop the
    // service from starting; an absolute path that is missing would).
    let creds = settings(&unit, "LoadCredential");
    for name in [
        "redress.imap-password",
        "redress.smtp-password",
        "redress.token-secret",
    ] {
        assert!(creds.contains(&name.to_string()), "{name} in {creds:?}");
    }
    assert!(
        creds.iter().all(|c| !c.contains('/')),
        "credentials are looked up by name, not by path: {creds:?}"
    );
    assert_eq!(one(&unit, "WantedBy"), "multi-user.target");
}

#[test]
fn the_example_config_keeps_the_store_in_the_state_directory() {
    // StateDirectory=redress is the only place the service may write.
    assert!(
        example_config().contains("path = \"/var/lib/redress/redress.sqlite\""),
        "config.example.toml's [store] path must be under /var/lib/redress"
    );
}

#[test]
fn the_units_command_line_is_one_the_binary_takes() {
    // Not a usage error (exit 2): the arguments parse, and the config is
    // the one thing missing.
    let o = redress(
        &["run", "--config", "/nonexistent/redress/config.toml"],
        &[],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("/nonexistent/redress/config.toml"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn passwords_come_from_the_credentials_directory_as_the_readme_says() {
    // The README's recipe: secrets in /etc/credstore/redress.*, the config
    // pointing at $CREDENTIALS_DIRECTORY/redress.*, and
    // `CREDENTIALS_DIRECTORY=/etc/credstore redress check` to try it by hand.
    let store = tempfile::tempdir().unwrap();
    std::fs::write(store.path().join("redress.imap-password"), "imap-secret\n").unwrap();
    std::fs::write(store.path().join("redress.smtp-password"), "smtp-secret\n").unwrap();
    let config = example_config()
        .replacen(
            "password = \"change-me\"",
            "password_file = \"$CREDENTIALS_DIRECTORY/redress.imap-password\"",
            1,
        )
        .replacen(
            "password = \"change-me\"",
            "password_file = \"$CREDENTIALS_DIRECTORY/redress.smtp-password\"",
            1,
        );
    assert!(!config.contains("password = \"change-me\""));
    let path = store.path().join("config.toml");
    std::fs::write(&path, config).unwrap();
    let path = path.to_str().unwrap();
    let dir = store.path().to_str().unwrap();
    let o = redress(
        &["check", "--config", path],
        &[("CREDENTIALS_DIRECTORY", dir)],
    );
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(!stdout(&o).contains("imap-secret") && !stderr(&o).contains("imap-secret"));
    // Without the credential the check names the key and the file.
    std::fs::remove_file(store.path().join("redress.imap-password")).unwrap();
    let o = redress(
        &["check", "--config", path],
        &[("CREDENTIALS_DIRECTORY", dir)],
    );
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("imap.password_file") && stderr(&o).contains("redress.imap-password"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn systemd_analyze_verify_passes() {
    let Some(tool) = systemd_analyze() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let unit = unit_for_built_binary(dir.path());
    // --man=no: the man page is not installed here (scripts/package-test
    // verifies the installed unit with it).
    let o = Command::new(tool)
        .args(["verify", "--man=no"])
        .arg(&unit)
        .output()
        .unwrap();
    let err = stderr(&o);
    assert!(o.status.success(), "systemd-analyze verify: {err}");
    assert!(
        !err.contains("redress.service"),
        "systemd-analyze verify warns about the unit: {err}"
    );
}

/// `systemd-analyze security --offline=yes` on the unit: the overall
/// exposure, e.g. 1.0.
fn exposure(tool: &Path, unit: &Path) -> (f64, String) {
    let o = Command::new(tool)
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(unit)
        .output()
        .unwrap();
    let out = stdout(&o);
    assert!(
        o.status.success(),
        "systemd-analyze security: {out}{}",
        stderr(&o)
    );
    let line = out
        .lines()
        .find(|l| l.contains("Overall exposure level for redress.service:"))
        .unwrap_or_else(|| panic!("no overall exposure in: {out}"))
        .to_string();
    let figure = line
        .split(':')
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no figure in {line:?}"));
    (figure, line)
}

#[test]
fn exposure_is_ok_and_the_readme_reports_it() {
    let Some(tool) = systemd_analyze() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let unit = unit_for_built_binary(dir.path());
    let (figure, line) = exposure(&tool, &unit);
    assert!(figure < 2.0, "exposure {figure} is not below 2.0: {line}");
    assert!(line.contains("OK"), "{line}");
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let reported = format!("Overall exposure level for redress.service: {figure:.1} OK");
    assert!(
        readme.contains(&reported),
        "the README should report {reported:?} (what systemd-analyze says now)"
    );
}
