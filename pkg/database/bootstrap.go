package database

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Spec names what one service owns in PostgreSQL: its database, its schema and its two roles.
type Spec struct {
	// Database is the service's own database.
	Database string
	// Schema is the service's schema, named after the service ("tenant", "apps", ...).
	Schema string
	// MigrationRole owns every object, has BYPASSRLS and runs migrations and backups.
	MigrationRole string
	// RuntimeRole is what the service runs as: no ownership, no BYPASSRLS, not a superuser.
	RuntimeRole string
}

// maxSchemaLen leaves room for the bookkeeping schema's suffix within PostgreSQL's 63 bytes.
const maxSchemaLen = 63 - len(migrationsSuffix)

// simpleIdent is what a schema or migration source name may look like: goose writes its
// version table names into SQL unquoted, so they must never need quoting.
var simpleIdent = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)

func validSchema(s string) error {
	if !simpleIdent.MatchString(s) || len(s) > maxSchemaLen {
		return fmt.Errorf("database: schema %q: want [a-z_][a-z0-9_]*, at most %d bytes", s, maxSchemaLen)
	}
	return nil
}

func validName(kind, s string) error {
	if s == "" || len(s) > 63 {
		return fmt.Errorf("database: %s %q: want 1 to 63 bytes", kind, s)
	}
	return nil
}

func (s Spec) validate() error {
	if err := validName("database", s.Database); err != nil {
		return err
	}
	if err := validSchema(s.Schema); err != nil {
		return err
	}
	if err := validName("migration role", s.MigrationRole); err != nil {
		return err
	}
	if err := validName("runtime role", s.RuntimeRole); err != nil {
		return err
	}
	if s.MigrationRole == s.RuntimeRole {
		return errors.New("database: the migration role and the runtime role must differ")
	}
	return nil
}

// URLs derives the migration and runtime roles' connection URLs from the administrator's URL
// (same host, port and options; the spec's database; the role as user, without a password).
// It serves development and tests, where the server trusts local roles; production URLs come
// from configuration.
func (s Spec) URLs(adminURL string) (migrationURL, runtimeURL string, err error) {
	if err := s.validate(); err != nil {
		return "", "", err
	}
	u, err := url.Parse(adminURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", "", errors.New("database: admin URL: want postgres://user@host:port/db")
	}
	with := func(role string) string {
		c := *u
		c.User = url.User(role)
		c.Path = "/" + s.Database
		c.RawPath = ""
		return c.String()
	}
	return with(s.MigrationRole), with(s.RuntimeRole), nil
}

// Role attributes. The runtime role inherits nothing worth having: it is made a member of no
// role, and Bootstrap revokes membership in the migration role if someone granted it.
const (
	migrationRoleAttrs = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION BYPASSRLS"
	runtimeRoleAttrs   = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"
)

// Bootstrap creates, idempotently, the service's two roles, its database (owned by the
// migration role, CONNECT revoked from PUBLIC and granted to the runtime role) and its schema
// (owned by the migration role). Existing roles get their attributes reset to the rules, so a
// runtime role someone made BYPASSRLS is repaired. It runs as a superuser (creating a
// BYPASSRLS role needs one): the development launcher and tests call it; production
// provisions the same shape with its own tooling.
func Bootstrap(ctx context.Context, adminURL string, spec Spec) error {
	if err := spec.validate(); err != nil {
		return err
	}
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return fmt.Errorf("database: bootstrap: connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))

	if err := ensureRole(ctx, conn, spec.MigrationRole, migrationRoleAttrs); err != nil {
		return err
	}
	if err := ensureRole(ctx, conn, spec.RuntimeRole, runtimeRoleAttrs); err != nil {
		return err
	}
	mig := pgx.Identifier{spec.MigrationRole}.Sanitize()
	rt := pgx.Identifier{spec.RuntimeRole}.Sanitize()
	db := pgx.Identifier{spec.Database}.Sanitize()

	var member bool
	if err := conn.QueryRow(ctx,
		`select pg_has_role($1, $2, 'MEMBER')`, spec.RuntimeRole, spec.MigrationRole).Scan(&member); err != nil {
		return fmt.Errorf("database: bootstrap: role membership: %w", err)
	}
	if member {
		if _, err := conn.Exec(ctx, "REVOKE "+mig+" FROM "+rt); err != nil {
			return fmt.Errorf("database: bootstrap: revoke membership: %w", err)
		}
	}

	var exists bool
	if err := conn.QueryRow(ctx,
		`select exists(select 1 from pg_database where datname = $1)`, spec.Database).Scan(&exists); err != nil {
		return fmt.Errorf("database: bootstrap: look up database: %w", err)
	}
	if !exists {
		// CREATE DATABASE cannot run in a transaction block and has no IF NOT EXISTS; a
		// concurrent creator shows up as duplicate_database.
		_, err := conn.Exec(ctx, "CREATE DATABASE "+db+" OWNER "+mig)
		var pgErr *pgconn.PgError
		if err != nil && !(errors.As(err, &pgErr) && pgErr.Code == "42P04") {
			return fmt.Errorf("database: bootstrap: create database: %w", err)
		}
	}
	for _, stmt := range []string{
		// Only the service's own roles reach its database; no one gets TEMP by default.
		"REVOKE ALL ON DATABASE " + db + " FROM PUBLIC",
		"GRANT CONNECT ON DATABASE " + db + " TO " + rt,
	} {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("database: bootstrap: %s: %w", stmt, err)
		}
	}

	cfg := conn.Config().Copy()
	cfg.Database = spec.Database
	dbConn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("database: bootstrap: connect to %s: %w", spec.Database, err)
	}
	defer dbConn.Close(context.WithoutCancel(ctx))
	stmt := "CREATE SCHEMA IF NOT EXISTS " + pgx.Identifier{spec.Schema}.Sanitize() + " AUTHORIZATION " + mig
	if _, err := dbConn.Exec(ctx, stmt); err != nil {
		return fmt.Errorf("database: bootstrap: create schema: %w", err)
	}
	return nil
}

func ensureRole(ctx context.Context, conn *pgx.Conn, name, attrs string) error {
	role := pgx.Identifier{name}.Sanitize()
	var exists bool
	if err := conn.QueryRow(ctx, `select exists(select 1 from pg_roles where rolname = $1)`, name).Scan(&exists); err != nil {
		return fmt.Errorf("database: bootstrap: look up role %s: %w", name, err)
	}
	if !exists {
		_, err := conn.Exec(ctx, "CREATE ROLE "+role+" WITH "+attrs)
		if err == nil {
			return nil
		}
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "42710" { // duplicate_object: created concurrently
			return fmt.Errorf("database: bootstrap: create role %s: %w", name, err)
		}
	}
	if _, err := conn.Exec(ctx, "ALTER ROLE "+role+" WITH "+attrs); err != nil {
		return fmt.Errorf("database: bootstrap: alter role %s: %w", name, err)
	}
	return nil
}

// Drop removes what Bootstrap created: the database (disconnecting its sessions) and both
// roles. Tests and throwaway stacks call it on cleanup; nothing in production does.
func Drop(ctx context.Context, adminURL string, spec Spec) error {
	if err := spec.validate(); err != nil {
		return err
	}
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return fmt.Errorf("database: drop: connect: %w", err)
	}
	defer func() { _ = conn.Close(context.WithoutCancel(ctx)) }()
	for _, stmt := range []string{
		"DROP DATABASE IF EXISTS " + pgx.Identifier{spec.Database}.Sanitize() + " WITH (FORCE)",
		"DROP ROLE IF EXISTS " + pgx.Identifier{spec.RuntimeRole}.Sanitize(),
		"DROP ROLE IF EXISTS " + pgx.Identifier{spec.MigrationRole}.Sanitize(),
	} {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("database: drop: %s: %w", stmt, err)
		}
	}
	return nil
}
