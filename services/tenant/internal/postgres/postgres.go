// Package postgres is the tenant service's storage: its embedded migrations, its SQL, and the
// Store that runs every operation as one owner transaction (pkg/database), so that row-level
// security is under every statement and each state change commits together with the event
// that announces it (pkg/events outbox). The only statements that run without an owner are
// calls to the three reviewed SECURITY DEFINER functions that find an owner from a key
// (DefinerFunctions).
package postgres

import (
	"embed"
	"io/fs"

	"github.com/forgeapps/backbone/pkg/database"
	"github.com/forgeapps/backbone/pkg/events"
)

// Schema is the tenant service's schema.
const Schema = "tenant"

// SourceName is the name of the service's own migration source.
const SourceName = "tenant"

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Sources lists the migration sources of the schema in order: the events outbox and inbox,
// then the service's own.
func Sources() []database.Source {
	sub, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		// The directory is embedded at build time; fs.Sub fails only for an invalid name.
		panic("tenant: embedded migrations: " + err.Error())
	}
	return []database.Source{
		{Name: events.MigrationSourceName, FS: events.Migrations()},
		{Name: SourceName, FS: sub},
	}
}

// The service's reviewed SECURITY DEFINER functions: the only ways to reach a row before its
// owner is known. Each takes one key and returns only the owner (and a session's ID and
// expiry).
const (
	FuncIdentityOwner       = "identity_owner"
	FuncSessionAuthenticate = "session_authenticate"
	FuncAccountResolveEmail = "account_resolve_email"
)

// DefinerFunctions is the posture allowlist of the schema: the outbox relay's functions and
// the service's own.
func DefinerFunctions() []string {
	return append(events.SecurityDefinerFunctions(),
		FuncIdentityOwner, FuncSessionAuthenticate, FuncAccountResolveEmail)
}

// Posture is what the start-up check holds the schema to.
func Posture() database.Posture {
	return database.Posture{Schema: Schema, DefinerFunctions: DefinerFunctions()}
}
