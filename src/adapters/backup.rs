//! Backups of the store, taken while the daemon runs, and the way back.
//!
//! - A backup is SQLite's online backup of one read snapshot: in WAL mode a
//!   reader never blocks the daemon's writes, so the copy is made in one
//!   step (a copy made in several steps restarts from the beginning each
//!   time another process commits, which under steady mail could be for
//!   ever). It holds every transaction committed before it began, and none
//!   half.
//! - The copy is written to a temporary file beside the target, checked
//!   (`PRAGMA integrity_check`), made a single self-contained file (journal
//!   mode DELETE), fsynced, and only then renamed into place: a backup file
//!   that exists is complete. An existing file is replaced only on request.
//! - A restore checks the backup first, refuses while a daemon may use the
//!   store, never deletes the current store (it is moved aside with a
//!   timestamped name, with its `-wal` and `-shm`), and puts the backup in
//!   place the same careful way.

use crate::adapters::db::{Store, SCHEMA_VERSION};
use crate::adapters::health;
use anyhow::{bail, Context as _};
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What a store file holds, as a backup or restore reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreFacts {
    pub bytes: u64,
    pub schema_version: i64,
    pub cases: i64,
    pub messages: i64,
}

/// What `backup` did.
#[derive(Debug, Clone)]
pub struct BackupReport {
    pub path: PathBuf,
    pub facts: StoreFacts,
    pub replaced: bool,
}

/// What `restore` did.
#[derive(Debug, Clone)]
pub struct RestoreReport {
    pub store: PathBuf,
    /// The files of the store that was there, moved aside (main file first).
    pub moved_aside: Vec<PathBuf>,
    pub facts: StoreFacts,
}

/// How long a backup waits for a moment to begin its read (SQLite's busy
/// timeout; in WAL mode a reader waits only during WAL recovery).
const BUSY: Duration = Duration::from_secs(10);

/// Opens an existing store file without creating one and without migrating.
fn open_existing(path: &Path) -> anyhow::Result<Connection> {
    if !path.is_file() {
        bail!("there is no store at {}", path.display());
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("Opening {}", path.display()))?;
    conn.busy_timeout(BUSY)?;
    Ok(conn)
}

/// A file beside `target` to write before renaming onto it.
fn temp_beside(target: &Path) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "redress".into());
    target.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

/// Removes a temporary store file and the journal SQLite may leave beside it.
fn remove_temp(temp: &Path) {
    for suffix in ["", "-journal", "-wal", "-shm"] {
        let mut p = temp.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
}

/// `path` with `suffix` appended to its file name (`x.sqlite-wal`).
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(suffix);
    PathBuf::from(p)
}

/// fsyncs a file, then the directory holding it (so a rename is durable).
fn sync_file_and_dir(file: &Path) -> anyhow::Result<()> {
    std::fs::File::open(file)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("Syncing {}", file.display()))?;
    sync_dir(file)
}

fn sync_dir(file: &Path) -> anyhow::Result<()> {
    let dir = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("Syncing the directory {}", dir.display()))
}

/// Checks a store file: integrity, a schema this redress knows, and reads
/// what it holds.
pub fn inspect(path: &Path) -> anyhow::Result<StoreFacts> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("Opening {}", path.display()))?;
    conn.busy_timeout(BUSY)?;
    let integrity: Vec<String> = {
        let mut stmt = conn
            .prepare("PRAGMA integrity_check")
            .with_context(|| format!("{} is not an SQLite database", path.display()))?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        rows.collect::<Result<_, _>>()
            .with_context(|| format!("Checking {}", path.display()))?
    };
    if integrity != ["ok"] {
        bail!(
            "{} fails SQLite's integrity check: {}",
            path.display(),
            integrity
                .iter()
                .take(5)
                .cloned()
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    let schema_version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if schema_version < 1 {
        bail!("{} is not a redress store (no schema)", path.display());
    }
    if schema_version > SCHEMA_VERSION {
        bail!(
            "{} has schema version {schema_version}, newer than this redress knows ({SCHEMA_VERSION}): use the redress that wrote it",
            path.display()
        );
    }
    let count = |table: &str| -> anyhow::Result<i64> {
        conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .with_context(|| format!("{} is not a redress store ({table})", path.display()))
    };
    let facts = StoreFacts {
        bytes: std::fs::metadata(path)?.len(),
        schema_version,
        cases: count("cases")?,
        messages: count("messages")?,
    };
    Ok(facts)
}

/// Writes a consistent copy of the store at `store` to `dest` (see the
/// module header). Refuses to replace an existing `dest` unless `force`.
pub fn backup(store: &Path, dest: &Path, force: bool) -> anyhow::Result<BackupReport> {
    let exists = dest.exists();
    if exists && !force {
        bail!(
            "{} exists: choose another name, or pass --force to replace it",
            dest.display()
        );
    }
    if exists && same_file(store, dest) {
        bail!("{} is the store itself", dest.display());
    }
    if dest.is_dir() {
        bail!("{} is a directory: name the backup file", dest.display());
    }
    let src = open_existing(store)?;
    let temp = temp_beside(dest);
    remove_temp(&temp);
    let result = (|| -> anyhow::Result<StoreFacts> {
        {
            // Created for the owner only before a byte of the store is in it.
            {
                use std::os::unix::fs::OpenOptionsExt as _;
                std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&temp)
                    .with_context(|| format!("Creating {}", temp.display()))?;
            }
            let mut dst =
                Connection::open(&temp).with_context(|| format!("Creating {}", temp.display()))?;
            copy_snapshot(&src, &mut dst)?;
            // One self-contained file: no -wal beside the backup.
            let mode: String = dst.query_row("PRAGMA journal_mode = DELETE", [], |r| r.get(0))?;
            if !mode.eq_ignore_ascii_case("delete") {
                bail!("the copy stayed in journal mode {mode}");
            }
        }
        let facts = inspect(&temp).context("Checking the copy")?;
        // Complainants' mail and the token secret: for the owner's eyes only.
        set_mode(&temp, 0o600)?;
        sync_file_and_dir(&temp)?;
        Ok(facts)
    })();
    let facts = match result {
        Ok(f) => f,
        Err(e) => {
            remove_temp(&temp);
            return Err(e.context(format!(
                "Backing up {} to {}",
                store.display(),
                dest.display()
            )));
        }
    };
    if let Err(e) = std::fs::rename(&temp, dest) {
        remove_temp(&temp);
        return Err(e).with_context(|| format!("Renaming the copy to {}", dest.display()));
    }
    sync_dir(dest)?;
    Ok(BackupReport {
        path: dest.to_path_buf(),
        facts,
        replaced: exists,
    })
}

/// Copies the source's current snapshot into `dst` in one step, waiting
/// out a busy source (a WAL recovery by another process).
fn copy_snapshot(src: &Connection, dst: &mut Connection) -> anyhow::Result<()> {
    use rusqlite::backup::{Backup, StepResult};
    let backup = Backup::new(src, dst).context("Starting the online backup")?;
    let deadline = std::time::Instant::now() + BUSY;
    loop {
        match backup.step(-1).context("Copying the store")? {
            StepResult::Done => return Ok(()),
            StepResult::More => {}
            StepResult::Busy | StepResult::Locked => {
                if std::time::Instant::now() > deadline {
                    bail!("the store stayed locked for {} s", BUSY.as_secs());
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            _ => {}
        }
    }
}

fn set_mode(path: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("Setting the permissions of {}", path.display()))
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Puts the backup `from` in place of the store at `store` (see the module
/// header). `now` names the moved-aside files and marks the restored
/// store's daemon record stopped.
pub fn restore(store: &Path, from: &Path, now: DateTime<Utc>) -> anyhow::Result<RestoreReport> {
    if same_file(store, from) {
        bail!("{} is the store itself", from.display());
    }
    let checked =
        inspect(from).with_context(|| format!("Checking the backup {}", from.display()))?;
    let mut moved_aside = Vec::new();
    if store.exists() {
        refuse_if_running(store, now)?;
        // Fold the WAL into the file so the store moved aside is one file
        // (its -wal and -shm, if any remain, go along with it).
        if let Ok(conn) = open_existing(store) {
            let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        }
        let aside = aside_name(store, now);
        for suffix in ["", "-wal", "-shm"] {
            let from_path = with_suffix(store, suffix);
            if from_path.exists() {
                let to = with_suffix(&aside, suffix);
                std::fs::rename(&from_path, &to).with_context(|| {
                    format!("Moving {} aside to {}", from_path.display(), to.display())
                })?;
                moved_aside.push(to);
            }
        }
        sync_dir(store)?;
    }
    if let Some(dir) = store.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("Creating the store's directory {}", dir.display()))?;
    }
    // The restored file gets the owner and mode of the store it replaces
    // (restore usually runs as root, the daemon as its own user).
    let like = moved_aside.first().and_then(|p| std::fs::metadata(p).ok());
    let temp = temp_beside(store);
    remove_temp(&temp);
    let copied = (|| -> anyhow::Result<()> {
        std::fs::copy(from, &temp)
            .with_context(|| format!("Copying {} to {}", from.display(), temp.display()))?;
        match &like {
            Some(meta) => {
                use std::os::unix::fs::MetadataExt as _;
                set_mode(&temp, meta.mode() & 0o7777)?;
                // Only root may give a file away; otherwise it is ours already.
                let _ = std::os::unix::fs::chown(&temp, Some(meta.uid()), Some(meta.gid()));
            }
            None => set_mode(&temp, 0o600)?,
        }
        sync_file_and_dir(&temp)?;
        std::fs::rename(&temp, store)
            .with_context(|| format!("Renaming the copy to {}", store.display()))?;
        sync_dir(store)
    })();
    if let Err(e) = copied {
        remove_temp(&temp);
        // Put the old store back where it was.
        // Each file aside goes back under its own name (a -shm without a
        // -wal must not come back as the -wal).
        for aside in &moved_aside {
            let name = aside.to_string_lossy();
            let suffix = ["-wal", "-shm"]
                .into_iter()
                .find(|s| name.ends_with(s))
                .unwrap_or("");
            let _ = std::fs::rename(aside, with_suffix(store, suffix));
        }
        return Err(e);
    }
    // The restored store is brought to this redress's schema, and its
    // daemon record (copied with the backup) no longer claims a heartbeat.
    let opened = Store::open(store)?;
    health::daemon_stopped(
        opened.conn(),
        None,
        now,
        &format!("the store was restored from {}", from.display()),
    )?;
    drop(opened);
    let facts = StoreFacts {
        bytes: std::fs::metadata(store)?.len(),
        ..checked
    };
    Ok(RestoreReport {
        store: store.to_path_buf(),
        moved_aside,
        facts,
    })
}

/// Fails when a daemon may be using the store.
fn refuse_if_running(store: &Path, now: DateTime<Utc>) -> anyhow::Result<()> {
    let conn = open_existing(store)?;
    let has_table: bool = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'daemon'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .map(|n| n > 0)?;
    if !has_table {
        return Ok(());
    }
    let record = health::daemon_record(&conn)?;
    let state = health::judge_daemon(record.as_ref(), now);
    if state.may_be_running() {
        let (pid, host) = record
            .map(|r| (r.pid, r.host))
            .unwrap_or((0, String::new()));
        bail!(
            "the daemon is {} on this store (pid {pid} on {host}): stop it first (systemctl stop redress), then restore",
            state.as_str()
        );
    }
    Ok(())
}

/// `redress.sqlite.before-restore-20261123T100000Z` (with `-2`, `-3` ... if
/// taken).
fn aside_name(store: &Path, now: DateTime<Utc>) -> PathBuf {
    let base = with_suffix(
        store,
        &format!(".before-restore-{}", now.format("%Y%m%dT%H%M%SZ")),
    );
    let mut candidate = base.clone();
    let mut n = 2;
    while candidate.exists() || with_suffix(&candidate, "-wal").exists() {
        candidate = with_suffix(&base, &format!("-{n}"));
        n += 1;
    }
    candidate
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::db;

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().expect("instant")
    }

    fn add_case(store: &mut Store, email: &str) -> String {
        db::test_case(store, email, "informal", utc("2026-11-23T10:00:00Z")).1
    }

    #[test]
    fn a_backup_is_a_checked_single_file_and_is_not_overwritten_by_default() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.sqlite");
        let mut store = Store::open(&path).expect("open");
        add_case(&mut store, "a@example.net");
        // The store stays open (as the daemon's would), WAL and all.
        let dest = dir.path().join("b.sqlite");
        let report = backup(&path, &dest, false).expect("backup");
        assert_eq!(report.facts.cases, 1);
        assert_eq!(report.facts.schema_version, SCHEMA_VERSION);
        assert!(!report.replaced);
        assert!(!with_suffix(&dest, "-wal").exists());
        let copy = Connection::open(&dest).expect("open copy");
        let mode: String = copy
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .expect("mode");
        assert_eq!(mode, "delete");
        drop(copy);
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&dest).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "a backup is private");
        }
        let err = backup(&path, &dest, false).expect_err("exists");
        assert!(format!("{err:#}").contains("--force"), "{err:#}");
        add_case(&mut store, "b@example.net");
        let report = backup(&path, &dest, true).expect("forced");
        assert!(report.replaced);
        assert_eq!(report.facts.cases, 2);
        // Nothing temporary is left behind.
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("tmp"))
            .collect();
        assert!(names.is_empty(), "{names:?}");
        let err = backup(
            &dir.path().join("none.sqlite"),
            &dir.path().join("x"),
            false,
        )
        .expect_err("no store");
        assert!(format!("{err:#}").contains("no store"), "{err:#}");
    }

    #[test]
    fn a_restore_moves_the_store_aside_and_refuses_bad_backups() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.sqlite");
        let mut store = Store::open(&path).expect("open");
        let first = add_case(&mut store, "a@example.net");
        let dest = dir.path().join("b.sqlite");
        backup(&path, &dest, false).expect("backup");
        let second = add_case(&mut store, "b@example.net");
        drop(store);

        // Not a database: refused, nothing moved.
        let junk = dir.path().join("junk.sqlite");
        std::fs::write(&junk, b"not a database at all, really not").expect("write");
        let err = restore(&path, &junk, utc("2026-11-24T09:00:00Z")).expect_err("junk");
        assert!(format!("{err:#}").contains("junk.sqlite"), "{err:#}");
        assert!(Store::open(&path)
            .expect("still there")
            .case(&second)
            .expect("q")
            .is_some());

        let now = utc("2026-11-24T09:00:00Z");
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        }
        let report = restore(&path, &dest, now).expect("restore");
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o640, "the restored store keeps the old mode");
        }
        assert_eq!(report.facts.cases, 1);
        let aside = dir.path().join("s.sqlite.before-restore-20261124T090000Z");
        assert_eq!(report.moved_aside.first(), Some(&aside));
        let restored = Store::open(&path).expect("open");
        assert!(restored.case(&first).expect("q").is_some());
        assert!(restored.case(&second).expect("q").is_none());
        let record = health::daemon_record(restored.conn()).expect("record");
        assert!(record.is_none(), "no daemon ever ran on it");
        drop(restored);
        // The old store is intact beside it.
        let old = Store::open(&aside).expect("aside");
        assert!(old.case(&second).expect("q").is_some());
        drop(old);
        // A second restore in the same second does not clobber the first aside.
        let report = restore(&path, &dest, now).expect("again");
        assert_eq!(
            report.moved_aside.first(),
            Some(
                &dir.path()
                    .join("s.sqlite.before-restore-20261124T090000Z-2")
            )
        );
    }

    #[test]
    fn a_restore_onto_a_new_machine_creates_the_store() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.sqlite");
        let mut store = Store::open(&path).expect("open");
        let first = add_case(&mut store, "a@example.net");
        drop(store);
        let dest = dir.path().join("b.sqlite");
        backup(&path, &dest, false).expect("backup");
        let fresh = dir.path().join("var/lib/redress/redress.sqlite");
        let report = restore(&fresh, &dest, utc("2026-11-24T09:00:00Z")).expect("restore");
        assert!(report.moved_aside.is_empty());
        let restored = Store::open(&fresh).expect("open");
        assert!(restored.case(&first).expect("q").is_some());
    }

    #[test]
    fn a_backup_from_a_newer_redress_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.sqlite");
        let store = Store::open(&path).expect("open");
        store
            .conn()
            .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .expect("bump");
        drop(store);
        let err = inspect(&path).expect_err("newer");
        assert!(format!("{err:#}").contains("newer"), "{err:#}");
    }
}
