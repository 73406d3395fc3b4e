package lifecycle

import (
	"slices"
)

// Store is one place that can hold data of a tenant. The purge of a tenant is complete only
// when every store of the registry has reported (a PurgeStoreCompleted event, or for
// data-lifecycle's own stores, its own transaction).
type Store struct {
	// Name is how the store reports itself (PurgeStoreCompleted.store).
	Name string
	// Service is the service that owns the store and purges it.
	Service string
	// Schema and Tables name the Postgres tables the store covers (empty for object storage).
	// A test reads every service's migrations and fails when a table with an owner_id column
	// is covered by no store here, so a new table cannot be forgotten by the purge.
	Schema string
	Tables []string
	// Objects says the store is object storage (app files and references, export archives).
	Objects bool
	// Retained lists tables of the store that deliberately keep a row of the tenant after
	// the purge, with why: what they hold is no content of the tenant (a tombstone, the
	// deletion record behind the receipt and the certificate). The scan after a purge allows
	// exactly these and nothing else.
	Retained map[string]string
}

// The stores data-lifecycle purges itself.
const (
	StoreLifecycle         = "data-lifecycle"
	StoreLifecycleArchives = "data-lifecycle.archives"
)

// eventTables are the tables pkg/events adds to every schema that emits or consumes events:
// each service's purge deletes the owner's inbox and dead letters (events.PurgeInbox,
// events.PurgeDeadLetters) and its outbox rows leave with the relay.
var eventTables = []string{"outbox", "inbox", "event_dead_letters"}

// Registry is the single list of stores every purge waits for. Store names are what each
// service reports in PurgeStoreCompleted.store.
func Registry() []Store {
	return []Store{
		{
			Name: "tenant", Service: "tenant", Schema: "tenant",
			Tables: append([]string{"accounts", "identities", "sessions", "credit_balances", "credit_entries",
				"region_directory"}, eventTables...),
		},
		{
			// apps purges its rows and its objects (app files, references) and reports both
			// counts in one report.
			Name: "apps", Service: "apps", Schema: "apps", Objects: true,
			Tables: append([]string{"owner_state", "apps", "prompts", "prompt_reads", "app_references", "versions",
				"version_files", "share_links", "collaborators", "listings", "listing_files"}, eventTables...),
		},
		{
			Name: "secrets-vault", Service: "secrets-vault", Schema: "vault",
			Tables: append([]string{"keyrings", "tenant_keys", "registered_apps", "secrets", "audit_log"}, eventTables...),
			Retained: map[string]string{
				"keyrings": "the shred tombstone: which key versions were destroyed, no key material; it stops a purged tenant from ever getting a fresh key",
			},
		},
		{
			Name: "sandbox-origin.postgres", Service: "sandbox-origin", Schema: "sandbox",
			Tables: append([]string{"view_tickets", "owner_status", "proxy_calls"}, eventTables...),
		},
		{
			Name: StoreLifecycle, Service: "data-lifecycle", Schema: "lifecycle",
			Tables: append([]string{"exports", "export_links", "deletions", "purge_stores"}, eventTables...),
			Retained: map[string]string{
				"deletions":    "the deletion record: owner ID, times, state, receipt hash and the signed certificate; the owner ID is kept to re-run the purge after a backup restore (the deletion ledger)",
				"purge_stores": "what each store reported (counts, key versions destroyed): the certificate's evidence",
			},
		},
		{Name: StoreLifecycleArchives, Service: "data-lifecycle", Objects: true},
	}
}

// StoreNames lists the registry's store names, sorted.
func StoreNames() []string {
	var out []string
	for _, s := range Registry() {
		out = append(out, s.Name)
	}
	slices.Sort(out)
	return out
}

// KnownStore reports whether name is on the registry.
func KnownStore(name string) bool { return slices.Contains(StoreNames(), name) }
