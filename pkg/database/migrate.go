package database

import (
	"context"
	"embed"
	"fmt"
	"io/fs"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
)

// Source is one ordered set of goose SQL migrations, with the files at the root of FS (use
// fs.Sub on an embed.FS whose files sit in a folder). Name keys the source's own goose version
// table, so sources version independently: [a-z_][a-z0-9_]*.
type Source struct {
	Name string
	FS   fs.FS
}

// Migrations says what [Migrate] applies, and to which schema.
type Migrations struct {
	// Schema is the service schema; migrations run with search_path set to it, so their SQL
	// names no schema.
	Schema string
	// RuntimeRole receives USAGE on the schema and, through default privileges, SELECT,
	// INSERT, UPDATE and DELETE on every table the migration role creates there.
	RuntimeRole string
	// Sources are applied in order after the platform source (PlatformSourceName): shared
	// sources such as the events outbox first, the service's own last.
	Sources []Source
}

// PlatformSourceName is the name of the source Migrate always applies first. It provides, in
// the service schema:
//
//   - CALL forge_tenant_table('<table>'): for a table with owner_id uuid NOT NULL and an index
//     (its primary key, usually) leading with owner_id, ENABLE and FORCE row-level security,
//     create the owner policy forge_owner and attach the owner_id immutability trigger.
//   - forge_owner_id_immutable(): that trigger's function (SQLSTATE 23001 on any change).
const PlatformSourceName = "platform"

// The trigger and policy names forge_tenant_table creates, which CheckPosture looks for.
const (
	ownerPolicyName     = "forge_owner"
	immutableTriggerFn  = "forge_owner_id_immutable"
	migrationsSuffix    = "_migrations"
	advisoryLockPrefix  = "forge.migrate."
	platformMigrationFS = "platform"
)

//go:embed platform/*.sql
var platformFiles embed.FS

// MigrationsSchema is the bookkeeping schema holding the goose version tables of a service
// schema (one table per source). It is outside the service schema, owned by the migration
// role, and the runtime role has no USAGE on it.
func MigrationsSchema(schema string) string { return schema + migrationsSuffix }

func platformSource() (Source, error) {
	sub, err := fs.Sub(platformFiles, platformMigrationFS)
	if err != nil {
		return Source{}, fmt.Errorf("database: platform migrations: %w", err)
	}
	return Source{Name: PlatformSourceName, FS: sub}, nil
}

func (m Migrations) validate() error {
	if err := validSchema(m.Schema); err != nil {
		return err
	}
	if err := validName("runtime role", m.RuntimeRole); err != nil {
		return err
	}
	seen := map[string]bool{PlatformSourceName: true}
	for _, s := range m.Sources {
		if !simpleIdent.MatchString(s.Name) || len(s.Name) > 63 {
			return fmt.Errorf("database: migration source %q: want [a-z_][a-z0-9_]*", s.Name)
		}
		if seen[s.Name] {
			return fmt.Errorf("database: migration source %q: name used twice (or reserved)", s.Name)
		}
		if s.FS == nil {
			return fmt.Errorf("database: migration source %q: no FS", s.Name)
		}
		seen[s.Name] = true
	}
	return nil
}

// Migrate applies the platform source and then m.Sources, in order, as the role of
// migrationURL (the migration role). Before the sources it ensures the service schema and the
// bookkeeping schema exist, grants the runtime role USAGE on the service schema, and sets the
// migration role's default privileges: tables it creates in the schema grant SELECT, INSERT,
// UPDATE and DELETE to the runtime role (never TRUNCATE, REFERENCES or TRIGGER), sequences
// USAGE and SELECT, and functions grant EXECUTE to the runtime role and not to PUBLIC.
//
// A session advisory lock keyed by the schema serialises concurrent runs (two replicas
// starting at once); goose's version tables make a second run a no-op.
func Migrate(ctx context.Context, migrationURL string, m Migrations) error {
	if err := m.validate(); err != nil {
		return err
	}
	platform, err := platformSource()
	if err != nil {
		return err
	}
	cfg, err := pgx.ParseConfig(migrationURL)
	if err != nil {
		return fmt.Errorf("database: migrate: parse URL: %w", err)
	}
	// Every connection of the migration run resolves unqualified names in the service schema
	// only, so migrations are schema-agnostic. This is the migration role's session, not the
	// runtime pool's; it carries no owner.
	cfg.RuntimeParams["search_path"] = m.Schema

	lockConn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("database: migrate: connect: %w", err)
	}
	defer lockConn.Close(context.WithoutCancel(ctx))
	if _, err := lockConn.Exec(ctx, `select pg_advisory_lock(hashtextextended($1, 0))`, advisoryLockPrefix+m.Schema); err != nil {
		return fmt.Errorf("database: migrate: lock: %w", err)
	}
	defer func() {
		// Closing the connection would release the lock too; unlocking keeps it tidy.
		_, _ = lockConn.Exec(context.WithoutCancel(ctx), `select pg_advisory_unlock(hashtextextended($1, 0))`, advisoryLockPrefix+m.Schema)
	}()

	if err := prepareSchema(ctx, lockConn, m); err != nil {
		return err
	}

	sqlDB := stdlib.OpenDB(*cfg)
	defer sqlDB.Close()
	for _, src := range append([]Source{platform}, m.Sources...) {
		p, err := goose.NewProvider(goose.DialectPostgres, sqlDB, src.FS,
			goose.WithTableName(MigrationsSchema(m.Schema)+"."+src.Name),
			goose.WithDisableGlobalRegistry(true),
		)
		if err != nil {
			return fmt.Errorf("database: migrate: source %s: %w", src.Name, err)
		}
		if _, err := p.Up(ctx); err != nil {
			return fmt.Errorf("database: migrate: source %s: %w", src.Name, err)
		}
	}
	return nil
}

func prepareSchema(ctx context.Context, conn *pgx.Conn, m Migrations) error {
	schema := pgx.Identifier{m.Schema}.Sanitize()
	books := pgx.Identifier{MigrationsSchema(m.Schema)}.Sanitize()
	rt := pgx.Identifier{m.RuntimeRole}.Sanitize()
	stmts := []string{
		"CREATE SCHEMA IF NOT EXISTS " + schema,
		"CREATE SCHEMA IF NOT EXISTS " + books,
		"REVOKE ALL ON SCHEMA " + books + " FROM PUBLIC",
		"GRANT USAGE ON SCHEMA " + schema + " TO " + rt,
		"ALTER DEFAULT PRIVILEGES IN SCHEMA " + schema + " GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO " + rt,
		"ALTER DEFAULT PRIVILEGES IN SCHEMA " + schema + " GRANT USAGE, SELECT ON SEQUENCES TO " + rt,
		// PostgreSQL grants EXECUTE to PUBLIC by default, and a per-schema default can only
		// add to the global one, so the revoke is global for the migration role.
		"ALTER DEFAULT PRIVILEGES REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC",
		"ALTER DEFAULT PRIVILEGES IN SCHEMA " + schema + " GRANT EXECUTE ON FUNCTIONS TO " + rt,
	}
	err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		for _, s := range stmts {
			if _, err := tx.Exec(ctx, s); err != nil {
				return fmt.Errorf("%s: %w", s, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("database: migrate: prepare schema: %w", err)
	}
	return nil
}
