-- redress store, version 1.
-- Times are RFC 3339 UTC text (e.g. 2026-11-23T10:00:00Z); dates are ISO
-- local dates in the configured time zone (e.g. 2026-12-21).

-- One row per case.
CREATE TABLE cases (
    id                 INTEGER PRIMARY KEY,
    reference          TEXT    NOT NULL UNIQUE,
    year               INTEGER NOT NULL,
    seq                INTEGER NOT NULL,
    stage              TEXT    NOT NULL,
    status             TEXT    NOT NULL DEFAULT 'open'
                       CHECK (status IN ('open', 'on-hold', 'resolved', 'closed')),
    complainant_name   TEXT    NOT NULL DEFAULT '',
    complainant_email  TEXT    NOT NULL,
    complainant_phone  TEXT    NOT NULL DEFAULT '',
    -- Where letters go: the complaint's Reply-To, else its From.
    reply_address      TEXT    NOT NULL DEFAULT '',
    subject            TEXT    NOT NULL DEFAULT '',
    department         TEXT    NOT NULL DEFAULT '',
    received_at        TEXT    NOT NULL,
    stage_opened_at    TEXT    NOT NULL,
    acknowledged_at    TEXT,
    target_date        TEXT,
    hold_since         TEXT,
    hold_reason        TEXT,
    hold_until         TEXT,
    escalation_rung    INTEGER NOT NULL DEFAULT 0,
    outcome            TEXT,
    resolved_at        TEXT,
    created_at         TEXT    NOT NULL,
    updated_at         TEXT    NOT NULL,
    UNIQUE (year, seq)
) STRICT;

CREATE INDEX cases_status ON cases (status);
CREATE INDEX cases_complainant ON cases (complainant_email);

-- Every message in or out, raw bytes kept. A message that could not be
-- handled has a quarantine reason and no case.
CREATE TABLE messages (
    id                 INTEGER PRIMARY KEY,
    case_id            INTEGER REFERENCES cases (id),
    direction          TEXT    NOT NULL CHECK (direction IN ('in', 'out')),
    message_id         TEXT    NOT NULL UNIQUE,
    in_reply_to        TEXT    NOT NULL DEFAULT '',
    refs               TEXT    NOT NULL DEFAULT '',
    from_address       TEXT    NOT NULL DEFAULT '',
    from_name          TEXT    NOT NULL DEFAULT '',
    reply_to           TEXT    NOT NULL DEFAULT '',
    to_addresses       TEXT    NOT NULL DEFAULT '',
    cc_addresses       TEXT    NOT NULL DEFAULT '',
    subject            TEXT    NOT NULL DEFAULT '',
    sent_date          TEXT,
    body_text          TEXT    NOT NULL DEFAULT '',
    -- How intake classified it: complaint, reply, auto-reply, bounce, list, staff...
    classification     TEXT    NOT NULL DEFAULT '',
    quarantine_reason  TEXT,
    folder             TEXT    NOT NULL DEFAULT '',
    uidvalidity        INTEGER,
    uid                INTEGER,
    raw                BLOB    NOT NULL,
    -- SHA-256 of raw: the same Message-ID with other bytes is another mail.
    raw_sha256         TEXT    NOT NULL DEFAULT '',
    -- A Message-ID was missing and made from a hash of the raw bytes.
    synthetic_id       INTEGER NOT NULL DEFAULT 0,
    received_at        TEXT    NOT NULL,
    -- Set when intake has committed its decision on this message.
    processed_at       TEXT
) STRICT;

CREATE INDEX messages_case ON messages (case_id);
CREATE INDEX messages_unprocessed ON messages (id) WHERE processed_at IS NULL;

CREATE TABLE attachments (
    id                 INTEGER PRIMARY KEY,
    message_id         INTEGER NOT NULL REFERENCES messages (id),
    filename           TEXT    NOT NULL DEFAULT '',
    content_type       TEXT    NOT NULL DEFAULT '',
    size               INTEGER NOT NULL,
    oversize           INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE INDEX attachments_message ON attachments (message_id);

-- Everyone on a case: the complainant, staff, others copied in.
CREATE TABLE participants (
    case_id            INTEGER NOT NULL REFERENCES cases (id),
    address            TEXT    NOT NULL,
    name               TEXT    NOT NULL DEFAULT '',
    role               TEXT    NOT NULL,
    PRIMARY KEY (case_id, address)
) STRICT;

-- The audit log: who did what when. Append-only (triggers below).
CREATE TABLE events (
    id                 INTEGER PRIMARY KEY,
    case_id            INTEGER REFERENCES cases (id),
    at                 TEXT    NOT NULL,
    actor              TEXT    NOT NULL,
    kind               TEXT    NOT NULL,
    detail             TEXT    NOT NULL DEFAULT '{}'
) STRICT;

CREATE INDEX events_case ON events (case_id);
CREATE INDEX events_kind_actor ON events (kind, actor, at);

CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;

CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;

-- Every timer of every case. A deadline is done when fired or cancelled.
CREATE TABLE deadlines (
    id                 INTEGER PRIMARY KEY,
    case_id            INTEGER NOT NULL REFERENCES cases (id),
    kind               TEXT    NOT NULL,
    due_at             TEXT    NOT NULL,
    fired_at           TEXT,
    cancelled_at       TEXT
) STRICT;

CREATE INDEX deadlines_due ON deadlines (due_at) WHERE fired_at IS NULL AND cancelled_at IS NULL;
CREATE UNIQUE INDEX deadlines_one_live ON deadlines (case_id, kind) WHERE fired_at IS NULL AND cancelled_at IS NULL;

-- Mail waiting to go or gone. The Message-ID is fixed when the row is
-- queued, so a retry sends the same message.
CREATE TABLE outbox (
    id                 INTEGER PRIMARY KEY,
    case_id            INTEGER REFERENCES cases (id),
    kind               TEXT    NOT NULL,
    message_id         TEXT    NOT NULL UNIQUE,
    recipient          TEXT    NOT NULL,
    -- An automatic reply to a complainant: counts towards the per-sender cap.
    auto_reply         INTEGER NOT NULL DEFAULT 0,
    subject            TEXT    NOT NULL DEFAULT '',
    raw                BLOB    NOT NULL,
    created_at         TEXT    NOT NULL,
    attempts           INTEGER NOT NULL DEFAULT 0,
    next_attempt_at    TEXT    NOT NULL,
    last_error         TEXT,
    sent_at            TEXT,
    failed_at          TEXT
) STRICT;

CREATE INDEX outbox_recipient ON outbox (recipient, created_at);
CREATE INDEX outbox_case ON outbox (case_id);
CREATE INDEX outbox_pending ON outbox (next_attempt_at) WHERE sent_at IS NULL AND failed_at IS NULL;

-- How far intake has read each folder.
CREATE TABLE imap_checkpoints (
    folder             TEXT    PRIMARY KEY,
    uidvalidity        INTEGER NOT NULL,
    last_uid           INTEGER NOT NULL,
    updated_at         TEXT    NOT NULL
) STRICT;

-- Small facts of the store itself (e.g. the generated HMAC secret).
CREATE TABLE settings (
    name               TEXT    PRIMARY KEY,
    value              TEXT    NOT NULL
) STRICT;
