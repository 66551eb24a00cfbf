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
        MailStack::start_with(&[])
    }

    /// Starts one with extra `scripts/mailstack start` options (e.g.
    /// `--oauth2-introspection-url URL`).
    pub fn start_with(options: &[&str]) -> MailStack {
        let dir = tempfile::Builder::new()
            .prefix("redress-mailstack-")
            .tempdir()
            .expect("tempdir");
        let out = Command::new(repo().join("scripts/mailstack"))
            .args(["start", "--dir"])
            .arg(dir.path())
            .args(options)
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

impl MailStack {
    /// Stops or starts one daemon of the stack: "stop-imap", "start-imap",
    /// "stop-smtp", "start-smtp".
    pub fn service(&self, action: &str) {
        let out = Command::new(repo().join("scripts/mailstack"))
            .args([action, "--dir"])
            .arg(self.path())
            .output()
            .expect("running scripts/mailstack");
        assert!(out.status.success(), "mailstack {action}: {}", stderr(&out));
    }

    /// Hands a message to the MTA over SMTP (a minimal blocking client: the
    /// tests deliver as a complainant's server would).
    pub fn deliver(&self, from: &str, to: &str, raw: &[u8]) {
        deliver_to(self.smtp_port, from, to, raw);
    }

    /// Every message delivered to `address`, oldest first (read from the
    /// Maildir the stack delivers into).
    pub fn mailbox(&self, address: &str) -> Vec<String> {
        let (user, domain) = address.split_once('@').expect("address");
        let base = self
            .path()
            .join("mail")
            .join(domain)
            .join(user)
            .join("Maildir");
        let mut files: Vec<(std::time::SystemTime, String)> = Vec::new();
        let mut dirs = vec![base.clone()];
        while let Some(dir) = dirs.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in entries.flatten() {
                let p = e.path();
                if p.is_dir() {
                    dirs.push(p);
                } else if p
                    .parent()
                    .and_then(|d| d.file_name())
                    .is_some_and(|n| n == "new" || n == "cur")
                {
                    if let (Ok(meta), Ok(text)) = (e.metadata(), std::fs::read(&p)) {
                        files.push((
                            meta.modified().unwrap_or(std::time::UNIX_EPOCH),
                            String::from_utf8_lossy(&text).into_owned(),
                        ));
                    }
                }
            }
        }
        files.sort_by_key(|(t, _)| *t);
        files.into_iter().map(|(_, t)| t).collect()
    }

    /// Waits until `address` holds at least `n` messages matching `pred`.
    pub fn wait_for(
        &self,
        address: &str,
        n: usize,
        secs: u64,
        pred: impl Fn(&str) -> bool,
    ) -> Vec<String> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            let got: Vec<String> = self
                .mailbox(address)
                .into_iter()
                .filter(|m| pred(m))
                .collect();
            if got.len() >= n {
                return got;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{address} got {} of {n} expected messages in {secs} s",
                got.len()
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

/// Hands a message to the MTA listening on `port`.
pub fn deliver_to(port: u16, from: &str, to: &str, raw: &[u8]) {
    use std::io::{BufRead, BufReader, Write};
    let stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("SMTP connect");
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .ok();
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut w = stream;
    let expect = |code: &str, reader: &mut BufReader<std::net::TcpStream>| loop {
        let mut line = String::new();
        reader.read_line(&mut line).expect("SMTP read");
        assert!(line.starts_with(code), "SMTP wanted {code}, got {line:?}");
        if line.as_bytes().get(3) != Some(&b'-') {
            break;
        }
    };
    expect("220", &mut reader);
    for (cmd, code) in [
        ("EHLO tests.example\r\n".to_string(), "250"),
        (format!("MAIL FROM:<{from}>\r\n"), "250"),
        (format!("RCPT TO:<{to}>\r\n"), "250"),
        ("DATA\r\n".to_string(), "354"),
    ] {
        w.write_all(cmd.as_bytes()).expect("SMTP write");
        expect(code, &mut reader);
    }
    let text = String::from_utf8_lossy(raw).replace("\r\n", "\n");
    for line in text.lines() {
        let line = if line.starts_with('.') {
            format!(".{line}")
        } else {
            line.to_string()
        };
        w.write_all(line.as_bytes()).expect("write");
        w.write_all(b"\r\n").expect("write");
    }
    w.write_all(b".\r\n").expect("write");
    expect("250", &mut reader);
    w.write_all(b"QUIT\r\n").ok();
}

/// Puts a message straight into a mailbox over IMAP (APPEND), as when the
/// MTA is down.
pub fn append(stack: &MailStack, user: &str, raw: &[u8]) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let store = stack.path().join("unused.sqlite");
        let env = stack.env(user, &store);
        let cfg = redress::config::parse_str(&example_config(), "t", &env).expect("config");
        let mut session = redress::adapters::imap::connect(&cfg.imap, cfg.imap_port())
            .await
            .expect("login");
        session
            .append("INBOX", None, None, raw)
            .await
            .expect("APPEND");
        session.logout().await.ok();
    });
}

/// Sends SIGTERM (through the shell's builtin `kill`, so no procps is
/// needed); true when it was delivered.
pub fn sigterm(pid: u32) -> bool {
    Command::new("sh")
        .args(["-c", &format!("kill -TERM {pid}")])
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// A running `redress run` against a stack, killed on drop.
pub struct Daemon {
    pub child: std::process::Child,
    pub log: PathBuf,
}

impl Daemon {
    /// Starts the daemon with the example config pointed at `stack`.
    pub fn start(stack: &MailStack, store: &Path, extra: &[(&str, &str)]) -> Daemon {
        Daemon::start_with(stack, &repo().join("config.example.toml"), store, extra)
    }

    /// Starts the daemon with the config file `config` pointed at `stack`.
    pub fn start_with(
        stack: &MailStack,
        config: &Path,
        store: &Path,
        extra: &[(&str, &str)],
    ) -> Daemon {
        static STARTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = STARTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let log = stack.path().join(format!("daemon-{n}.log"));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_redress"));
        cmd.args(["run", "--config"]).arg(config);
        for (k, _) in std::env::vars() {
            if k.starts_with("REDRESS_") {
                cmd.env_remove(k);
            }
        }
        let mut env = stack.env("complaints@opp.example", store);
        env.retain(|(k, _)| !extra.iter().any(|(e, _)| e == k));
        cmd.envs(env);
        cmd.env("RUST_LOG", "info");
        cmd.envs(extra.iter().copied());
        let file = std::fs::File::create(&log).expect("log file");
        // JOURNAL_STREAM=stderr: as systemd sets it, the log file's device
        // and inode.
        if extra.contains(&("JOURNAL_STREAM", "stderr")) {
            use std::os::unix::fs::MetadataExt as _;
            let meta = file.metadata().expect("log file metadata");
            cmd.env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()));
        }
        cmd.stderr(file);
        let child = cmd.spawn().expect("spawning redress run");
        Daemon { child, log }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log has a line containing `text`.
    pub fn wait_log(&self, text: &str, secs: u64) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        while !self.log().contains(text) {
            assert!(
                std::time::Instant::now() < deadline,
                "no {text:?} in the daemon's log within {secs} s:\n{}",
                self.log()
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    /// Sends a signal (by name: HUP, TERM ...) through the shell's `kill`.
    pub fn signal(&self, name: &str) {
        let ok = Command::new("sh")
            .args(["-c", &format!("kill -{name} {}", self.child.id())])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "kill -{name} failed");
    }

    /// SIGKILL, no goodbye.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait; returns whether it exited cleanly.
    pub fn stop(mut self) -> bool {
        let _ = sigterm(self.child.id());
        self.child.wait().map(|s| s.success()).unwrap_or(false)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain complaint as a complainant's mail client writes it.
pub fn complaint(
    from_name: &str,
    from: &str,
    subject: &str,
    message_id: &str,
    extra_headers: &str,
    body: &str,
) -> Vec<u8> {
    format!(
        "From: {from_name} <{from}>\r\nTo: complaints@opp.example\r\nSubject: {subject}\r\nMessage-ID: <{message_id}>\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n{extra_headers}\r\n{body}"
    )
    .into_bytes()
}

/// A header's value in a raw message (first occurrence, unfolded).
pub fn header<'a>(raw: &'a str, name: &str) -> Option<&'a str> {
    raw.lines()
        .take_while(|l| !l.is_empty())
        .find(|l| {
            l.len() > name.len()
                && l[..name.len()].eq_ignore_ascii_case(name)
                && l.as_bytes()[name.len()] == b':'
        })
        .map(|l| l[name.len() + 1..].trim())
}

/// The case reference in a subject ("... [OPP-2026-0001]").
pub fn reference_in(subject: &str) -> String {
    let start = subject.find("[OPP-").expect("a reference in the subject") + 1;
    let end = subject[start..].find(']').expect("closing bracket") + start;
    subject[start..end].to_string()
}

/// Polls the store until `check` holds.
pub fn wait_store(
    store: &Path,
    secs: u64,
    what: &str,
    check: impl Fn(&redress::adapters::db::Store) -> bool,
) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Ok(s) = redress::adapters::db::Store::open(store) {
            if check(&s) {
                return;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

pub fn count(store: &redress::adapters::db::Store, sql: &str) -> i64 {
    store
        .conn()
        .query_row(sql, [], |r| r.get(0))
        .expect("count")
}

/// A letter's text as one line: quoted-printable soft breaks undone and
/// line ends as spaces, for `contains` checks on wrapped text.
pub fn flat(raw: &str) -> String {
    raw.replace("=\r\n", "")
        .replace("=\n", "")
        .replace("=3D", "=")
        .replace("\r\n", "\n")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}
