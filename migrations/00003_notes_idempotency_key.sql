-- Idempotency-Key for POST /api/notes (draft-ietf-httpapi-idempotency-key-header):
-- a client-chosen key stored with the note it created, so a retried POST
-- finds the note instead of creating a second one.
--
-- Expand-only: the column is nullable without a default, so the previous
-- release (which names its columns in every INSERT, SELECT and COPY) keeps
-- working against this schema and simply stores NULL; NULLs are outside
-- the partial unique index and pass the CHECK. Nothing is renamed or dropped.
--
-- Cost: ADD COLUMN without a default only changes the catalog; the CHECK
-- and the index each scan the table once (every row is NULL) while the
-- ALTER's lock is held. lock_timeout makes the migration fail fast, instead
-- of queueing every request behind its lock, when a long transaction holds
-- the table; run it again later. On a table of many millions of rows, build
-- the index with CREATE UNIQUE INDEX CONCURRENTLY in a NO TRANSACTION file.
--
-- A key lives as long as its note: deleting the note frees the key.
-- +goose Up
SET LOCAL lock_timeout = '10s';
ALTER TABLE notes
    ADD COLUMN idempotency_key text
    CONSTRAINT notes_idempotency_key_length CHECK (length(idempotency_key) BETWEEN 1 AND 255);
CREATE UNIQUE INDEX notes_idempotency_key_idx ON notes (idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- +goose Down
DROP INDEX notes_idempotency_key_idx;
ALTER TABLE notes DROP COLUMN idempotency_key;
