-- redress store, version 2: the daemon's liveness record.
--
-- One row (id = 1), written by `redress run`: who runs on this store, its
-- heartbeat (refreshed every few seconds), its last successful IMAP round
-- trip, and a clean stop mark. `redress status`, `redress restore` and the
-- metrics read it; nothing else depends on it.
CREATE TABLE daemon (
    id                 INTEGER PRIMARY KEY CHECK (id = 1),
    pid                INTEGER NOT NULL,
    host               TEXT    NOT NULL DEFAULT '',
    -- The kernel's boot id: a pid from an earlier boot is not this process.
    boot_id            TEXT    NOT NULL DEFAULT '',
    version            TEXT    NOT NULL DEFAULT '',
    started_at         TEXT    NOT NULL,
    heartbeat_at       TEXT    NOT NULL,
    imap_contact_at    TEXT,
    -- Set on a clean stop; NULL while running (or after a crash).
    stopped_at         TEXT,
    stop_note          TEXT
) STRICT;
