// Package postgres is the apps service's storage: its embedded migrations, its SQL, and the
// Store that runs every operation in one owner transaction (pkg/database), so that row-level
// security is under every statement and each state change commits together with the event
// that announces it (pkg/events outbox). The only statements that run outside an owner's
// transaction are the reviewed cross-tenant paths: the SECURITY DEFINER functions listed in
// DefinerFunctions, and reads of the Discover listings under their declared public policy.
package postgres

import (
	"embed"
	"io/fs"

	"github.com/forgeapps/backbone/pkg/database"
	"github.com/forgeapps/backbone/pkg/events"
)

// Schema is the apps service's schema.
const Schema = "apps"

// SourceName is the name of the service's own migration source.
const SourceName = "apps"

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Sources lists the migration sources of the schema in order: the events outbox and inbox,
// then the service's own.
func Sources() []database.Source {
	sub, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		// The directory is embedded at build time; fs.Sub fails only for an invalid name.
		panic("apps: embedded migrations: " + err.Error())
	}
	return []database.Source{
		{Name: events.MigrationSourceName, FS: events.Migrations()},
		{Name: SourceName, FS: sub},
	}
}

// The reviewed SECURITY DEFINER functions: the only paths from one tenant's request to
// another tenant's rows. Each answers one narrow question and nothing for a disabled owner.
const (
	// FuncCollaboratorAccess: (viewer, app) -> (owner, role).
	FuncCollaboratorAccess = "collaborator_access"
	// FuncSharedApps: the apps shared with a viewer, a page at a time.
	FuncSharedApps = "shared_apps"
	// FuncShareLinkOwner: (app, token hash) -> (owner, expiry) of a live link.
	FuncShareLinkOwner = "share_link_owner"
	// FuncAppOwner: app -> owner, for the sandbox origin.
	FuncAppOwner = "app_owner"
	// FuncPurgePromptReads: the only deletion of the append-only prompt audit, for a disabled
	// owner's purge.
	FuncPurgePromptReads = "purge_prompt_reads"
)

// DefinerFunctions is the posture allowlist of the schema.
func DefinerFunctions() []string {
	return append(events.SecurityDefinerFunctions(),
		FuncCollaboratorAccess, FuncSharedApps, FuncShareLinkOwner, FuncAppOwner, FuncPurgePromptReads)
}

// ExtraPolicies are the reviewed policies beyond the owner policy: Discover listings (and
// their file lists) are readable by anyone; they hold only what the owner published.
func ExtraPolicies() []database.TablePolicy {
	return []database.TablePolicy{
		{Table: "listings", Policy: "listings_public_read"},
		{Table: "listing_files", Policy: "listing_files_public_read"},
	}
}

// Posture is what the start-up check holds the schema to.
func Posture() database.Posture {
	return database.Posture{Schema: Schema, DefinerFunctions: DefinerFunctions(), ExtraPolicies: ExtraPolicies()}
}
