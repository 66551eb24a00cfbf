//! Intake benchmark against the local mail stack (not a test: run it with
//! `cargo bench --bench intake`, as root, and put the figures in
//! BENCHMARKS.md).
//!
//! (a) Latency from SMTP delivery of a complaint to its acknowledgement
//!     arriving in the complainant's mailbox, p50/p99 over N complaints sent
//!     one after another (target p99 < 1 s). Dovecot's own IDLE notify
//!     interval (about 0.5 s) is part of every figure.
//! (b) Drain time of a backlog of M mails APPENDed before the daemon starts,
//!     next to a bare IMAP FETCH of the same mails (target: within 2x).
//!
//! (c) The intake pipeline alone, no servers: the daemon's own share.
//! (d) The floor: only the SQLite writes the order of work asks for
//!     each new case (raw mail with its dedupe check, the case, its
//!     participant, one audit event, three outbox rows, two deadlines, the
//!     mail marked done, a checkpoint per batch), with nothing parsed,
//!     decided or rendered: what no implementation on this store can go
//!     under.
//!
//! Sizes: REDRESS_BENCH_LATENCY (default 200), REDRESS_BENCH_BACKLOG
//! (default 10000); REDRESS_BENCH_ONLY=pipeline|latency|drain|floor runs one part;
//! REDRESS_BENCH_BATCH=N runs (c) with one batch size only;
//! REDRESS_BENCH_DRAIN_RUNS (default 3) drains of the same backlog, median
//! reported.

#[path = "../tests/it/support.rs"]
#[allow(dead_code)]
mod support;

use futures::TryStreamExt as _;
use redress::adapters::db::Store;
use std::time::{Duration, Instant};
use support::{complaint, Daemon, MailStack};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn latency(n: usize) {
    let stack = MailStack::start();
    let store = stack.path().join("redress.sqlite");
    let daemon = Daemon::start(&stack, &store, &[("RUST_LOG", "warn")]);
    // Warm up: the first login and template rendering.
    stack.deliver(
        "warm@example.net",
        "complaints@opp.example",
        &complaint(
            "W",
            "warm@example.net",
            "warm up",
            "warm@example.net",
            "",
            "x\r\n",
        ),
    );
    stack.wait_for("warm@example.net", 1, 30, |m| {
        m.contains("We have received")
    });
    let mut times = Vec::with_capacity(n);
    for i in 0..n {
        let who = format!("lat{i}@example.net");
        let raw = complaint(
            "L",
            &who,
            &format!("Latency {i}"),
            &format!("lat-{i}@example.net"),
            "",
            "Late.\r\n",
        );
        let t0 = Instant::now();
        stack.deliver(&who, "complaints@opp.example", &raw);
        loop {
            if stack
                .mailbox(&who)
                .iter()
                .any(|m| m.contains("We have received"))
            {
                break;
            }
            assert!(t0.elapsed() < Duration::from_secs(30), "no ack for {who}");
            std::thread::sleep(Duration::from_millis(2));
        }
        times.push(t0.elapsed());
    }
    times.sort();
    println!(
        "latency (SMTP delivery -> ack in mailbox), {n} complaints: p50 {:.0} ms, p90 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        percentile(&times, 0.5).as_secs_f64() * 1000.0,
        percentile(&times, 0.9).as_secs_f64() * 1000.0,
        percentile(&times, 0.99).as_secs_f64() * 1000.0,
        times.last().map(|t| t.as_secs_f64() * 1000.0).unwrap_or(0.0)
    );
    daemon.stop();
}

fn drain(m: usize) {
    let stack = MailStack::start();
    let store = stack.path().join("unused.sqlite");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let env = stack.env("complaints@opp.example", &store);
    let cfg =
        redress::config::parse_str(&support::example_config(), "bench", &env).expect("config");
    let t0 = Instant::now();
    rt.block_on(async {
        let mut s = redress::adapters::imap::connect(&cfg.imap, cfg.imap_port())
            .await
            .expect("login");
        for i in 0..m {
            let who = format!("b{i}@example.net");
            let raw = complaint(
                "B",
                &who,
                &format!("Backlog {i}"),
                &format!("backlog-{i}@example.net"),
                "",
                "Waiting.\r\n",
            );
            s.append("INBOX", None, None, &raw).await.expect("APPEND");
        }
        s.logout().await.ok();
    });
    println!("appended {m} mails in {:.1} s", t0.elapsed().as_secs_f64());
    // Several drains of the same backlog (the machine is shared and the
    // figures move): each with a fresh store, after the flags of the last
    // one were taken off, next to a bare FETCH just before it.
    let runs = env_usize("REDRESS_BENCH_DRAIN_RUNS", 3).max(1);
    let mut drains = Vec::new();
    let mut fetches = Vec::new();
    let mut stores = Vec::new();
    for run in 0..runs {
        let fetch = rt.block_on(async {
            let mut s = redress::adapters::imap::connect(&cfg.imap, cfg.imap_port())
                .await
                .expect("login");
            s.select("INBOX").await.expect("select");
            if run > 0 {
                let _: Vec<_> = s
                    .uid_store("1:*", "-FLAGS.SILENT ($Redress-Done \\Seen)")
                    .await
                    .expect("store")
                    .try_collect()
                    .await
                    .expect("store");
            }
            let t = Instant::now();
            let all: Vec<_> = s
                .uid_fetch("1:*", "(UID BODY.PEEK[])")
                .await
                .expect("fetch")
                .try_collect()
                .await
                .expect("fetch");
            let took = t.elapsed();
            assert_eq!(all.len(), m);
            s.logout().await.ok();
            took
        });
        let store = stack.path().join(format!("redress-{run}.sqlite"));
        let (took, stored) = drain_once(&stack, &store, m);
        println!(
            "drain {}/{runs} of {m} mails (daemon start -> all committed): {:.2} s ({:.0} mails/s); bare IMAP FETCH of the same: {:.2} s; ratio {:.1}x; (all raw mail stored after {:.2} s)",
            run + 1,
            took.as_secs_f64(),
            m as f64 / took.as_secs_f64(),
            fetch.as_secs_f64(),
            took.as_secs_f64() / fetch.as_secs_f64(),
            stored.as_secs_f64()
        );
        stores.push(stored);
        drains.push(took);
        fetches.push(fetch);
    }
    drains.sort();
    fetches.sort();
    stores.sort();
    let (took, fetch) = (percentile(&drains, 0.5), percentile(&fetches, 0.5));
    println!(
        "drain of {m} mails, median of {runs}: {:.2} s ({:.0} mails/s), range {:.2}-{:.2} s; bare IMAP FETCH median {:.2} s; ratio of medians {:.1}x",
        took.as_secs_f64(),
        m as f64 / took.as_secs_f64(),
        drains[0].as_secs_f64(),
        drains[drains.len() - 1].as_secs_f64(),
        fetch.as_secs_f64(),
        took.as_secs_f64() / fetch.as_secs_f64()
    );
    println!(
        "  (every raw mail stored, decisions still under way: median {:.2} s)",
        percentile(&stores, 0.5).as_secs_f64()
    );
}

/// Starts the daemon on a new store and waits until it has committed `m`
/// mails; returns the time from its start to then, and to when the raw
/// bytes of all `m` were stored (decisions still under way).
fn drain_once(stack: &MailStack, store: &std::path::Path, m: usize) -> (Duration, Duration) {
    let t1 = Instant::now();
    let mut daemon = Daemon::start(stack, store, &[("RUST_LOG", "warn")]);
    // One connection, polled every 10 ms; the count reads small indexes
    // only, so the polling takes little from the daemon.
    let mut reader: Option<Store> = None;
    let mut all_stored = None;
    loop {
        if reader.is_none() && store.exists() {
            reader = Store::open(store).ok();
        }
        if let Some(s) = &reader {
            let (stored, unprocessed): (i64, i64) = s
                .conn()
                .query_row(
                    "SELECT (SELECT COUNT(*) FROM messages), (SELECT COUNT(*) FROM messages WHERE processed_at IS NULL)",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .unwrap_or((0, 0));
            if stored as usize >= m && all_stored.is_none() {
                all_stored = Some(t1.elapsed());
            }
            if (stored - unprocessed) as usize >= m {
                break;
            }
        }
        if let Ok(Some(status)) = daemon.child.try_wait() {
            panic!("the daemon exited ({status}):\n{}", daemon.log());
        }
        assert!(
            t1.elapsed() < Duration::from_secs(3600),
            "drain did not finish"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let took = t1.elapsed();
    daemon.stop();
    (took, all_stored.unwrap_or(took))
}

/// (c) The intake pipeline alone (parse, classify, match, decide, commit,
/// render and queue three letters) into a real SQLite file, no servers: the
/// daemon's own share of the drain. Run as the daemon runs it (batches of
/// 200, as fetched), and mail by mail for comparison.
fn pipeline(m: usize) {
    use redress::service::intake::{process, process_batch, Arrival, Incoming};
    let mails: Vec<Vec<u8>> = (0..m)
        .map(|i| {
            let who = format!("p{i}@example.net");
            complaint(
                "P",
                &who,
                &format!("Pipeline {i}"),
                &format!("pipe-{i}@example.net"),
                "",
                "Waiting.\r\n",
            )
        })
        .collect();
    let now = "2026-11-23T10:00:00Z".parse().expect("now");
    // REDRESS_BENCH_BATCH picks one batch size (e.g. for a profile).
    let sizes = match std::env::var("REDRESS_BENCH_BATCH")
        .ok()
        .and_then(|b| b.parse().ok())
    {
        Some(b) => vec![b],
        None => vec![200, 1],
    };
    for batch in sizes {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("bench.sqlite");
        let env = vec![("REDRESS_STORE_PATH".to_string(), path.display().to_string())];
        let cfg =
            redress::config::parse_str(&support::example_config(), "bench", &env).expect("config");
        let mut store = Store::open(&path).expect("store");
        let desk = redress::service::Desk::new(cfg, &mut store).expect("desk");
        let t = Instant::now();
        if batch == 1 {
            for raw in &mails {
                process(&mut store, &desk, raw, &Arrival::default(), now).expect("process");
            }
        } else {
            for chunk in mails.chunks(batch) {
                let incoming: Vec<Incoming> = chunk
                    .iter()
                    .map(|raw| Incoming {
                        raw,
                        arrival: Arrival::default(),
                    })
                    .collect();
                let outcome = process_batch(&mut store, &desk, &incoming, now);
                assert!(outcome.error.is_none(), "{:?}", outcome.error);
                assert_eq!(outcome.done.len(), chunk.len());
            }
        }
        let took = t.elapsed();
        println!(
            "intake pipeline alone, {m} complaints in batches of {batch} (each: a case, 3 letters queued): {:.2} s ({:.0} mails/s, {:.0} us each)",
            took.as_secs_f64(),
            m as f64 / took.as_secs_f64(),
            took.as_secs_f64() * 1e6 / m as f64
        );
    }
}

/// (d): `m` new cases written as bare SQL on a store opened as the daemon
/// opens it, in transactions of 200 as the daemon batches a fetch; the
/// letters' rows hold `letter` bytes each.
fn floor_once(m: usize, letter: usize) -> Duration {
    use rusqlite::params;
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut store = Store::open(&tmp.path().join("floor.sqlite")).expect("store");
    let raw = complaint(
        "F",
        "f@example.net",
        "Floor",
        "floor@example.net",
        "",
        "Waiting.\r\n",
    );
    let letter = vec![b'x'; letter];
    let t = Instant::now();
    let mut i = 0;
    while i < m {
        let tx = store.transaction().expect("tx");
        for _ in 0..200.min(m - i) {
            let mid = format!("floor-{i}@example.net");
            let who = format!("f{i}@example.net");
            let dup: Option<i64> = tx
                .prepare_cached("SELECT id FROM messages WHERE message_id = ?1")
                .and_then(|mut s| s.query_row([&mid], |r| r.get(0)))
                .ok();
            assert!(dup.is_none());
            let run = |sql: &str, p: &[&dyn rusqlite::ToSql]| {
                tx.prepare_cached(sql)
                    .and_then(|mut s| s.execute(p))
                    .expect(sql);
            };
            run(
                "INSERT INTO messages (direction, message_id, raw, raw_sha256, received_at, \
                 folder, uidvalidity, uid) VALUES ('in', ?1, ?2, 'sha', 'now', 'INBOX', 1, ?3)",
                params![mid, raw, i],
            );
            let msg = tx.last_insert_rowid();
            let seq: i64 = tx
                .prepare_cached("SELECT COALESCE(MAX(seq), 0) + 1 FROM cases WHERE year = 2026")
                .and_then(|mut s| s.query_row([], |r| r.get(0)))
                .expect("seq");
            run(
                "INSERT INTO cases (reference, year, seq, stage, complainant_email, received_at, \
                 stage_opened_at, target_date, created_at, updated_at) \
                 VALUES (?1, 2026, ?2, 'informal', ?3, 'now', 'now', 'then', 'now', 'now')",
                params![format!("OPP-2026-{seq:04}"), seq, who],
            );
            let case = tx.last_insert_rowid();
            run(
                "INSERT INTO participants (case_id, address, role) VALUES (?1, ?2, 'complainant')",
                params![case, who],
            );
            run(
                "INSERT INTO events (case_id, at, actor, kind) VALUES (?1, 'now', 'intake', 'case-opened')",
                params![case],
            );
            for k in 0..3 {
                run(
                    "INSERT INTO outbox (case_id, kind, message_id, recipient, raw, created_at, \
                     next_attempt_at) VALUES (?1, 'letter', ?2, ?3, ?4, 'now', 'now')",
                    params![case, format!("{i}.{k}@opp.example"), who, letter],
                );
            }
            for k in ["acknowledgement", "response"] {
                run(
                    "INSERT INTO deadlines (case_id, kind, due_at) VALUES (?1, ?2, 'then')",
                    params![case, k],
                );
            }
            run(
                "UPDATE messages SET case_id = ?1, processed_at = 'now' WHERE id = ?2",
                params![case, msg],
            );
            i += 1;
        }
        tx.execute(
            "INSERT OR REPLACE INTO imap_checkpoints VALUES ('INBOX', 1, ?1, 'now')",
            [i as i64],
        )
        .expect("checkpoint");
        tx.commit().expect("commit");
    }
    t.elapsed()
}

fn floor(m: usize) {
    // The size of the letters the daemon really queues for a complaint.
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("sizes.sqlite");
    let env = vec![("REDRESS_STORE_PATH".to_string(), path.display().to_string())];
    let cfg =
        redress::config::parse_str(&support::example_config(), "bench", &env).expect("config");
    let mut store = Store::open(&path).expect("store");
    let desk = redress::service::Desk::new(cfg, &mut store).expect("desk");
    let raw = complaint(
        "S",
        "s@example.net",
        "Size",
        "size@example.net",
        "",
        "Waiting.\r\n",
    );
    let incoming = [redress::service::intake::Incoming {
        raw: &raw,
        arrival: Default::default(),
    }];
    let now = "2026-11-23T10:00:00Z".parse().expect("now");
    redress::service::intake::process_batch(&mut store, &desk, &incoming, now);
    let rendered: f64 = store
        .conn()
        .query_row("SELECT AVG(LENGTH(raw)) FROM outbox", [], |r| r.get(0))
        .expect("letter size");
    for (letter, what) in [
        (0, "letters as empty rows (rendered later)"),
        (rendered as usize, "letters rendered, as queued today"),
    ] {
        let mut runs: Vec<Duration> = (0..3).map(|_| floor_once(m, letter)).collect();
        runs.sort();
        println!(
            "floor: {m} new cases as bare SQL, {what}, {letter} B each: median of 3 {:.2} s ({:.0} us a case), range {:.2}-{:.2} s",
            runs[1].as_secs_f64(),
            runs[1].as_secs_f64() * 1e6 / m as f64,
            runs[0].as_secs_f64(),
            runs[2].as_secs_f64()
        );
    }
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing
    // useful: only run when asked to bench.
    if !std::env::args().any(|a| a == "--bench") {
        println!("intake benchmark: run with `cargo bench --bench intake`");
        return;
    }
    let only = std::env::var("REDRESS_BENCH_ONLY").unwrap_or_default();
    if only.is_empty() || only == "pipeline" {
        pipeline(env_usize("REDRESS_BENCH_BACKLOG", 10_000));
    }
    if only.is_empty() || only == "floor" {
        floor(env_usize("REDRESS_BENCH_BACKLOG", 10_000));
    }
    if only.is_empty() || only == "latency" {
        latency(env_usize("REDRESS_BENCH_LATENCY", 200));
    }
    if only.is_empty() || only == "drain" {
        drain(env_usize("REDRESS_BENCH_BACKLOG", 10_000));
    }
}
