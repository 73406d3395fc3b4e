package events

import (
	"embed"
	"io/fs"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// MigrationSourceName is the name to register Migrations under in database.Migrate.
const MigrationSourceName = "events"

// Migrations is the goose SQL migration set of the outbox, inbox and event_dead_letters
// tables and their functions, to be applied after the platform source and before the service's own (it calls
// the platform's forge_tenant_table). The files sit at the root of the returned FS.
func Migrations() fs.FS {
	sub, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		// The directory is embedded at build time; fs.Sub fails only for an invalid name.
		panic("events: embedded migrations: " + err.Error())
	}
	return sub
}

// Names of the SECURITY DEFINER functions of the events source. A service lists them in its
// posture allowlist: they are the reviewed narrow paths by which the runtime role reads and
// deletes outbox rows across tenants (the relay), and keeps a dead letter that names no owner
// (RecordDeadLetter), under the nil UUID no tenant transaction can see.
const (
	FuncOutboxClaim       = "outbox_claim"
	FuncOutboxDelete      = "outbox_delete"
	FuncDeadLetterUnowned = "dead_letter_unowned"
)

// SecurityDefinerFunctions lists FuncOutboxClaim, FuncOutboxDelete and
// FuncDeadLetterUnowned, for posture allowlists.
func SecurityDefinerFunctions() []string {
	return []string{FuncOutboxClaim, FuncOutboxDelete, FuncDeadLetterUnowned}
}
