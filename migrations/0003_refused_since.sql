-- redress store, version 3: when the mail server first refused a letter.
--
-- A letter is given up (and QC told) 48 hours after the server began to
-- refuse it, not 48 hours after it was queued: time while the server could
-- not be reached, or the daemon was stopped, does not count against it.
-- Cleared when the letter is re-addressed.

ALTER TABLE outbox ADD COLUMN refused_since TEXT;
