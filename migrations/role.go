package migrations

import (
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// roleLockID serialises concurrent EnsureAppRole calls (CREATE ROLE is not
// idempotent on its own). Distinct from goose's lock id.
const roleLockID int64 = 7_031_205_117

// scramIterations matches Postgres' default scram_iterations.
const scramIterations = 4096

// ValidateRoleName reports whether name is acceptable as APP_DB_ROLE.
func ValidateRoleName(name string) error {
	switch {
	case name == "":
		return errors.New("role name is empty")
	case len(name) > 63:
		return errors.New("role name is longer than 63 bytes")
	case strings.ContainsRune(name, 0):
		return errors.New("role name contains a NUL byte")
	case strings.HasPrefix(strings.ToLower(name), "pg_"):
		return errors.New(`role names starting with "pg_" are reserved`)
	case strings.EqualFold(name, "public"):
		return errors.New(`"public" is not a role`)
	}
	return nil
}

// EnsureAppRole makes role a LOGIN role with password and grants it only
// what the service needs: USAGE on the current schema, SELECT, INSERT,
// UPDATE and DELETE on the application's tables and USAGE, SELECT on their
// sequences. goose's version table is excluded (and revoked). It is
// idempotent and rotates the password on every call. Run it after Up, as the
// owner of the tables (with CREATEROLE, or as a superuser).
//
// The password never travels in clear text: it is sent as a SCRAM-SHA-256
// verifier computed here, so it cannot show up in the server's statement log.
func EnsureAppRole(ctx context.Context, db *sql.DB, role, password string) (err error) {
	if err := ValidateRoleName(role); err != nil {
		return fmt.Errorf("APP_DB_ROLE: %w", err)
	}
	if password == "" {
		return errors.New("APP_DB_PASSWORD: must be set when APP_DB_ROLE is set")
	}
	verifier, err := scramVerifier(password)
	if err != nil {
		return err
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("app role: begin: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	if _, err = tx.ExecContext(ctx, "SELECT pg_advisory_xact_lock($1)", roleLockID); err != nil {
		return fmt.Errorf("app role: lock: %w", err)
	}
	var me string
	if err = tx.QueryRowContext(ctx, "SELECT current_user").Scan(&me); err != nil {
		return fmt.Errorf("app role: current_user: %w", err)
	}
	if me == role {
		return fmt.Errorf("APP_DB_ROLE: %q is the role running the migrations; use a separate role for the service", role)
	}
	ident := pgx.Identifier{role}.Sanitize()
	var exists, super bool
	err = tx.QueryRowContext(ctx,
		"SELECT count(*) > 0, coalesce(bool_or(rolsuper), false) FROM pg_roles WHERE rolname = $1", role).Scan(&exists, &super)
	if err != nil {
		return fmt.Errorf("app role: lookup: %w", err)
	}
	if super {
		return fmt.Errorf("APP_DB_ROLE: %q is a superuser; refusing to use it as the application role", role)
	}
	stmt := "ALTER ROLE " + ident + " WITH LOGIN PASSWORD " + quoteLiteral(verifier)
	if !exists {
		stmt = "CREATE ROLE " + ident + " WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION PASSWORD " + quoteLiteral(verifier)
	}
	if _, err = tx.ExecContext(ctx, stmt); err != nil {
		return fmt.Errorf("app role: create/alter role %s: %w", ident, err)
	}

	var schema, dbname string
	if err = tx.QueryRowContext(ctx, "SELECT current_schema(), current_database()").Scan(&schema, &dbname); err != nil {
		return fmt.Errorf("app role: schema: %w", err)
	}
	schemaIdent := pgx.Identifier{schema}.Sanitize()
	rows, err := tx.QueryContext(ctx, `
		SELECT c.relname, c.relkind = 'S'
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'S')
		ORDER BY c.relname`, schema)
	if err != nil {
		return fmt.Errorf("app role: list tables: %w", err)
	}
	type rel struct {
		name string
		seq  bool
	}
	var rels []rel
	for rows.Next() {
		var r rel
		if err = rows.Scan(&r.name, &r.seq); err != nil {
			rows.Close()
			return fmt.Errorf("app role: list tables: %w", err)
		}
		rels = append(rels, r)
	}
	if err = rows.Err(); err != nil {
		return fmt.Errorf("app role: list tables: %w", err)
	}
	stmts := []string{
		"GRANT CONNECT ON DATABASE " + pgx.Identifier{dbname}.Sanitize() + " TO " + ident,
		"GRANT USAGE ON SCHEMA " + schemaIdent + " TO " + ident,
		"REVOKE CREATE ON SCHEMA " + schemaIdent + " FROM " + ident,
	}
	for _, r := range rels {
		q := pgx.Identifier{schema, r.name}.Sanitize()
		switch {
		case strings.HasPrefix(r.name, VersionTable):
			// goose_db_version and its id sequence: migrators only.
			stmts = append(stmts, "REVOKE ALL ON "+q+" FROM "+ident)
		case r.seq:
			stmts = append(stmts, "GRANT USAGE, SELECT ON SEQUENCE "+q+" TO "+ident)
		default:
			stmts = append(stmts, "GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE "+q+" TO "+ident)
		}
	}
	for _, s := range stmts {
		if _, err = tx.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("app role: %s: %w", s, err)
		}
	}
	if err = tx.Commit(); err != nil {
		return fmt.Errorf("app role: commit: %w", err)
	}
	return nil
}

// quoteLiteral quotes s as a standard SQL string literal.
func quoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// scramVerifier computes the SCRAM-SHA-256 secret Postgres stores in
// pg_authid (RFC 5802/7677), in the format CREATE/ALTER ROLE ... PASSWORD
// accepts as already encrypted.
func scramVerifier(password string) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("app role: salt: %w", err)
	}
	salted, err := pbkdf2.Key(sha256.New, password, salt, scramIterations, sha256.Size)
	if err != nil {
		return "", fmt.Errorf("app role: pbkdf2: %w", err)
	}
	clientKey := hmacSHA256(salted, "Client Key")
	storedKey := sha256.Sum256(clientKey)
	serverKey := hmacSHA256(salted, "Server Key")
	b64 := base64.StdEncoding.EncodeToString
	return fmt.Sprintf("SCRAM-SHA-256$%d:%s$%s:%s", scramIterations, b64(salt), b64(storedKey[:]), b64(serverKey)), nil
}

func hmacSHA256(key []byte, msg string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}
