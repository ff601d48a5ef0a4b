-- The list endpoint reads newest first with keyset pagination:
--   ORDER BY created_at DESC, id DESC, WHERE (created_at, id) < ($1, $2).
-- +goose Up
CREATE INDEX notes_created_at_id_idx ON notes (created_at DESC, id DESC);

-- +goose Down
DROP INDEX notes_created_at_id_idx;
