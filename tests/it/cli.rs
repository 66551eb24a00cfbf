//! The command line as admins and outside checks use it.

use crate::support::{example_config, redress, repo, stderr, stdout};
use redress::adapters::db::{append_event, insert_case, NewCase, Store};

fn ok_line(args: &[&str]) -> String {
    let out = redress(args, &[]);
    assert!(out.status.success(), "{args:?} failed: {}", stderr(&out));
    stdout(&out).trim().to_string()
}

#[test]
fn calendar_commands_print_one_value_per_line() {
    let table: &[(&[&str], &str)] = &[
        (
            &[
                "calendar",
                "add-working-days",
                "--from",
                "2026-12-18",
                "--days",
                "10",
            ],
            "2027-01-06",
        ),
        (
            &[
                "calendar",
                "add-working-days",
                "--from",
                "2026-12-18",
                "--days",
                "10",
                "--nation",
                "england-and-wales",
            ],
            "2027-01-06",
        ),
        // Scotland: 2 January 2027 is a Saturday, its substitute Monday the 4th.
        (
            &[
                "calendar",
                "add-working-days",
                "--from",
                "2026-12-31",
                "--days",
                "1",
                "--nation",
                "scotland",
            ],
            "2027-01-05",
        ),
        (
            &[
                "calendar",
                "add-working-days",
                "--from",
                "2026-12-31",
                "--days",
                "1",
                "--nation",
                "northern-ireland",
            ],
            "2027-01-04",
        ),
        (
            &[
                "calendar",
                "add-working-days",
                "--from",
                "2026-11-28",
                "--days",
                "0",
            ],
            "2026-11-28",
        ),
        (
            &[
                "calendar",
                "working-days-between",
                "--from",
                "2026-12-18",
                "--to",
                "2027-01-06",
            ],
            "10",
        ),
        (
            &[
                "calendar",
                "working-days-between",
                "--from",
                "2026-11-28",
                "--to",
                "2026-11-29",
            ],
            "0",
        ),
        (
            &[
                "calendar",
                "add-months",
                "--from",
                "2027-01-31",
                "--months",
                "1",
            ],
            "2027-02-28",
        ),
        (
            &[
                "calendar",
                "add-months",
                "--from",
                "2028-01-31",
                "--months",
                "1",
            ],
            "2028-02-29",
        ),
        (
            &["calendar", "is-working-day", "--date", "2026-12-28"],
            "no (Boxing Day (substitute day))",
        ),
    ];
    for (args, expected) in table {
        assert_eq!(ok_line(args), *expected, "{args:?}");
    }
}

#[test]
fn calendar_errors_go_to_stderr_with_a_failing_exit() {
    for args in [
        &[
            "calendar",
            "add-working-days",
            "--from",
            "2026-02-30",
            "--days",
            "1",
        ][..],
        &[
            "calendar",
            "add-working-days",
            "--from",
            "18/12/2026",
            "--days",
            "1",
        ],
        &[
            "calendar",
            "add-working-days",
            "--from",
            "2026-12-18",
            "--days",
            "1",
            "--nation",
            "wales",
        ],
        &[
            "calendar",
            "working-days-between",
            "--from",
            "2026-12-18",
            "--to",
            "tomorrow",
        ],
        &[
            "calendar",
            "add-months",
            "--from",
            "2027-01-31",
            "--months",
            "-1",
        ],
    ] {
        let out = redress(args, &[]);
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(stdout(&out).is_empty(), "{args:?} printed to stdout");
        assert!(
            !stderr(&out).trim().is_empty(),
            "{args:?} said nothing on stderr"
        );
    }
    let out = redress(
        &[
            "calendar",
            "add-working-days",
            "--from",
            "2026-12-18",
            "--days",
            "1",
            "--nation",
            "wales",
        ],
        &[],
    );
    assert!(stderr(&out).contains("unknown nation"), "{}", stderr(&out));
}

#[test]
fn calendar_takes_closures_from_a_config() {
    let opal = repo().join("config.opal.example.toml");
    let opal = opal.to_str().expect("path");
    // OPAL's October half term (26-30 October 2026) is not working time.
    assert_eq!(
        ok_line(&[
            "calendar",
            "add-working-days",
            "--from",
            "2026-10-23",
            "--days",
            "1",
            "--config",
            opal
        ]),
        "2026-11-02"
    );
    assert_eq!(
        ok_line(&[
            "calendar",
            "add-working-days",
            "--from",
            "2026-10-23",
            "--days",
            "1"
        ]),
        "2026-10-26"
    );
    // --nation overrides the config's nation.
    assert_eq!(
        ok_line(&[
            "calendar",
            "add-working-days",
            "--from",
            "2026-04-02",
            "--days",
            "2",
            "--config",
            opal,
            "--nation",
            "scotland"
        ]),
        "2026-04-07"
    );
}

#[test]
fn gov_uk_bank_holidays_import_and_config_file() {
    let fixture = repo().join("tests/fixtures/bank-holidays.json");
    let out = ok_line(&[
        "calendar",
        "import-bank-holidays",
        fixture.to_str().expect("path"),
        "--nation",
        "england-and-wales",
        "--since",
        "2031",
    ]);
    assert!(out.contains("\"2031-06-10\""), "{out}");
    assert!(!out.contains("2030-01-01"), "{out}");
    // The printed block is valid TOML for the [calendar] section.
    let body: String = out
        .lines()
        .filter(|l| !l.starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    let parsed: toml::Table = body.parse().expect("TOML");
    assert_eq!(
        parsed["extra_holidays"].as_array().map(|a| a.len()),
        Some(3)
    );

    // A config naming the file counts its days as holidays.
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("c.toml");
    let text = example_config().replace(
        "# bank_holidays_file = \"/etc/redress/bank-holidays.json\"",
        &format!("bank_holidays_file = \"{}\"", fixture.display()),
    );
    std::fs::write(&cfg, text).expect("write");
    let cfg = cfg.to_str().expect("path");
    assert_eq!(
        ok_line(&[
            "calendar",
            "add-working-days",
            "--from",
            "2031-06-09",
            "--days",
            "1",
            "--config",
            cfg
        ]),
        "2031-06-11"
    );
    let bad = redress(&["calendar", "import-bank-holidays", cfg], &[]);
    assert!(!bad.status.success());
}

#[test]
fn check_accepts_both_examples() {
    for file in ["config.example.toml", "config.opal.example.toml"] {
        let path = repo().join(file);
        let out = redress(&["check", "--config", path.to_str().expect("path")], &[]);
        assert!(out.status.success(), "{file}: {}", stderr(&out));
        assert!(
            stdout(&out).contains("the config is valid"),
            "{}",
            stdout(&out)
        );
    }
}

#[test]
fn check_names_the_file_and_every_bad_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.toml");
    let text = example_config().replace("[imap]\n", "[imap]\nhots = \"x\"\n");
    std::fs::write(&path, text).expect("write");
    let p = path.to_str().expect("path");
    let out = redress(&["check", "--config", p], &[]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains(p) && err.contains("imap.hots"), "{err}");

    let good = repo().join("config.example.toml");
    let good = good.to_str().expect("path");
    let out = redress(
        &["check", "--config", good],
        &[("REDRESS_IMAP_PORT", "many"), ("REDRESS_SMTP_TLS", "none")],
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("imap.port") && err.contains("REDRESS_IMAP_PORT"),
        "{err}"
    );

    let out = redress(
        &["check", "--config", good],
        &[
            ("REDRESS_SMTP_TLS", "none"),
            ("REDRESS_STAFF_DEFAULT_DEPARTMENT", "sales"),
        ],
    );
    let err = stderr(&out);
    assert!(
        err.contains("smtp.tls") && err.contains("staff.default_department"),
        "{err}"
    );
    assert!(err.contains("2 problem"), "{err}");

    let out = redress(&["check", "--config", "/nonexistent/redress.toml"], &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("/nonexistent/redress.toml"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn password_files_and_credentials_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("redress.imap-password"),
        "s3cret-from-file\n",
    )
    .expect("write");
    let good = repo().join("config.example.toml");
    let good = good.to_str().expect("path");
    let creds = dir.path().to_str().expect("path");
    let text = example_config().replace(
        "password = \"change-me\"\n# password_file = \"$CREDENTIALS_DIRECTORY/redress.imap-password\"",
        "password_file = \"$CREDENTIALS_DIRECTORY/redress.imap-password\"",
    );
    assert_ne!(text, example_config(), "the example's password lines moved");
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, text).expect("write");
    let out = redress(
        &["check", "--config", cfg.to_str().expect("path")],
        &[("CREDENTIALS_DIRECTORY", creds)],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = redress(
        &["check", "--config", cfg.to_str().expect("path")],
        &[("CREDENTIALS_DIRECTORY", "/nonexistent")],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("imap.password_file"),
        "{}",
        stderr(&out)
    );
    let _ = good;
}

fn seeded_store(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("store.sqlite");
    let mut store = Store::open(&path).expect("open");
    let now = "2026-11-23T10:00:00Z".parse().expect("now");
    let tx = store.transaction().expect("tx");
    for (email, subject) in [
        ("alice@example.net", "Certificate is late"),
        ("bob@example.net", "Rude assessor"),
    ] {
        let (id, _) = insert_case(
            &tx,
            &NewCase {
                prefix: "OPP",
                stage: "informal",
                complainant_name: "A Person",
                complainant_email: email,
                complainant_phone: "07700 900123",
                reply_address: email,
                subject,
                department: "training",
                received_at: now,
                target_date: "2026-12-21".parse().ok(),
            },
            now,
        )
        .expect("case");
        append_event(
            &tx,
            Some(id),
            now,
            "redress",
            "opened",
            &serde_json::json!({"stage": "informal"}),
        )
        .expect("event");
    }
    tx.commit().expect("commit");
    path
}

#[test]
fn cases_list_and_show_json() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = seeded_store(dir.path());
    let cfg = repo().join("config.example.toml");
    let env = [("REDRESS_STORE_PATH", store.to_str().expect("path"))];
    let out = redress(
        &[
            "cases",
            "list",
            "--config",
            cfg.to_str().expect("path"),
            "--format",
            "json",
        ],
        &env,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let list = list.as_array().expect("array");
    assert_eq!(list.len(), 2);
    for case in list {
        for key in [
            "reference",
            "stage",
            "status",
            "complainant_email",
            "received_at",
            "target_date",
        ] {
            assert!(case.get(key).is_some(), "{key} missing in {case}");
        }
        assert_eq!(case["status"], "open");
        assert_eq!(case["target_date"], "2026-12-21");
    }
    let refs: Vec<&str> = list
        .iter()
        .filter_map(|c| c["reference"].as_str())
        .collect();
    assert!(
        refs.contains(&"OPP-2026-0001") && refs.contains(&"OPP-2026-0002"),
        "{refs:?}"
    );

    let out = redress(
        &[
            "cases",
            "list",
            "--config",
            cfg.to_str().expect("path"),
            "--format",
            "json",
            "--status",
            "closed",
        ],
        &env,
    );
    let none: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(none, serde_json::json!([]));
    let out = redress(
        &[
            "cases",
            "list",
            "--config",
            cfg.to_str().expect("path"),
            "--status",
            "sleeping",
        ],
        &env,
    );
    assert!(!out.status.success());

    let out = redress(
        &[
            "cases",
            "show",
            "OPP-2026-0002",
            "--config",
            cfg.to_str().expect("path"),
            "--format",
            "json",
        ],
        &env,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let case: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(case["reference"], "OPP-2026-0002");
    assert!(case["messages"].is_array());
    assert_eq!(case["events"][0]["kind"], "opened");

    let out = redress(
        &["cases", "list", "--config", cfg.to_str().expect("path")],
        &env,
    );
    assert!(stdout(&out).contains("OPP-2026-0001"), "{}", stdout(&out));
    let out = redress(
        &[
            "cases",
            "show",
            "OPP-2026-0099",
            "--config",
            cfg.to_str().expect("path"),
        ],
        &env,
    );
    assert!(!out.status.success());
}

#[test]
fn run_opens_the_store_and_stops_on_sigterm_without_leaking_secrets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("state/redress.sqlite");
    let cfg = repo().join("config.example.toml");
    let secret = "pa55-never-in-logs";
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_redress"))
        .args(["run", "--config", cfg.to_str().expect("path")])
        .env("REDRESS_STORE_PATH", &store)
        .env("REDRESS_IMAP_PASSWORD", secret)
        // Nothing listens on port 1: the daemon retries, and stays on loopback.
        .env("REDRESS_IMAP_HOST", "127.0.0.1")
        .env("REDRESS_IMAP_PORT", "1")
        .env("REDRESS_IMAP_TLS", "none")
        .env("REDRESS_SMTP_HOST", "127.0.0.1")
        .env("REDRESS_SMTP_PORT", "1")
        .env("REDRESS_SMTP_TLS", "none")
        .env("RUST_LOG", "trace")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !store.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the store was never created"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(crate::support::sigterm(child.id()), "kill -TERM");
    let out = child.wait_with_output().expect("wait");
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("redress started") && err.contains("stopped"),
        "{err}"
    );
    assert!(!err.contains(secret), "a secret reached the log:\n{err}");
    // The store is real and migrated.
    let s = Store::open(&store).expect("reopen");
    assert!(s.version().expect("version") >= 1);
}

#[test]
fn check_reports_a_broken_template_before_anything_is_sent() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("acknowledgement.html.hbs"),
        "<p>{{#each}}</p>",
    )
    .expect("write");
    let cfg = repo().join("config.example.toml");
    let tdir = dir.path().to_str().expect("path");
    let out = redress(
        &["check", "--config", cfg.to_str().expect("path")],
        &[("REDRESS_TEMPLATES_DIR", tdir)],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("acknowledgement.html.hbs"),
        "{}",
        stderr(&out)
    );
}
