//! Test helpers: the built binary, example configs with overrides, and a
//! private mail stack per test.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn example_config() -> String {
    std::fs::read_to_string(repo().join("config.example.toml")).expect("config.example.toml")
}

/// Runs the `redress` binary with `args` and extra environment; the
/// caller's REDRESS_* variables are cleared so tests see only their own.
pub fn redress(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_redress"));
    cmd.args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("REDRESS_") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env.iter().copied());
    cmd.output().expect("running redress")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A private Dovecot + Postfix on loopback, stopped on drop.
pub struct MailStack {
    pub dir: tempfile::TempDir,
    pub imap_port: u16,
    pub imaps_port: u16,
    pub smtp_port: u16,
    pub password: String,
    pub ca_file: PathBuf,
}

impl MailStack {
    /// Starts one. A test that needs mail servers fails (never skips) when
    /// they cannot be started.
    pub fn start() -> MailStack {
        let dir = tempfile::Builder::new()
            .prefix("redress-mailstack-")
            .tempdir()
            .expect("tempdir");
        let out = Command::new(repo().join("scripts/mailstack"))
            .args(["start", "--dir"])
            .arg(dir.path())
            .output()
            .expect("running scripts/mailstack");
        assert!(
            out.status.success(),
            "scripts/mailstack start failed (the mail servers are needed; run as root or see README):\n{}\n{}",
            stdout(&out),
            stderr(&out)
        );
        let text = stdout(&out);
        let get = |key: &str| -> String {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{key}=")))
                .unwrap_or_else(|| panic!("{key} missing from mailstack output:\n{text}"))
                .trim()
                .trim_matches('"')
                .to_string()
        };
        MailStack {
            imap_port: get("MAILSTACK_IMAP_PORT").parse().expect("imap port"),
            imaps_port: get("MAILSTACK_IMAPS_PORT").parse().expect("imaps port"),
            smtp_port: get("MAILSTACK_SMTP_PORT").parse().expect("smtp port"),
            password: get("MAILSTACK_PASSWORD"),
            ca_file: PathBuf::from(get("MAILSTACK_CA_FILE")),
            dir,
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Environment overrides pointing the example config at this stack,
    /// logging in as `user`.
    pub fn env(&self, user: &str, store: &Path) -> Vec<(String, String)> {
        [
            ("REDRESS_IMAP_HOST", "127.0.0.1".to_string()),
            ("REDRESS_IMAP_PORT", self.imap_port.to_string()),
            ("REDRESS_IMAP_TLS", "none".to_string()),
            ("REDRESS_IMAP_USERNAME", user.to_string()),
            ("REDRESS_IMAP_PASSWORD", self.password.clone()),
            ("REDRESS_SMTP_HOST", "127.0.0.1".to_string()),
            ("REDRESS_SMTP_PORT", self.smtp_port.to_string()),
            ("REDRESS_SMTP_TLS", "none".to_string()),
            ("REDRESS_SMTP_USERNAME", user.to_string()),
            ("REDRESS_SMTP_PASSWORD", self.password.clone()),
            ("REDRESS_STORE_PATH", store.display().to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}

impl Drop for MailStack {
    fn drop(&mut self) {
        let _ = Command::new(repo().join("scripts/mailstack"))
            .args(["stop", "--dir"])
            .arg(self.dir.path())
            .output();
    }
}
