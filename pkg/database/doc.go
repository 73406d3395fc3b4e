// Package database is the only way a service reaches its PostgreSQL data. It exists so that
// the storage rules of the design (row-level security as the net under every query, one owner
// per transaction, nothing left behind on a pooled connection) are written once and proven
// once, instead of being re-implemented, slightly differently, by every service.
//
// # Roles
//
// Each service has its own database with one schema named after the service, and two roles:
// a migration role that owns every object, has BYPASSRLS and runs migrations and pg_dump-based
// backups; and a runtime role (LOGIN, NOSUPERUSER, NOBYPASSRLS, owning nothing) that services
// run as. [Bootstrap] creates them for development and tests; [Migrate] applies embedded goose
// migrations as the migration role; [Open] opens the runtime pool; [CheckPosture] refuses to
// let a service start when the catalog breaks a rule.
//
// # Service migrations
//
// A service's migrations are goose SQL files embedded in the service and passed to [Migrate]
// as its last [Source]. They run with search_path set to the service schema and name no
// schema. The platform source, applied first, provides forge_tenant_table:
//
//	-- +goose Up
//	CREATE TABLE apps (
//	    owner_id uuid NOT NULL,
//	    id uuid NOT NULL,
//	    name bytea NOT NULL,
//	    PRIMARY KEY (owner_id, id)
//	);
//	CALL forge_tenant_table('apps');
//
// # The owner transaction
//
// Tenant data is reached only through [DB.Tx] (or [DB.QueryRow] for a single statement). Both
// set app.owner_id with set_config('app.owner_id', $1, true): transaction-local, never per
// session, so the setting ends with the transaction and a pooled connection cannot carry one
// tenant into another's request. Every path, [DB.SystemTx] included, sets the owner (or the
// empty "no owner") transaction-locally before its first statement, in the same round trip, so
// no statement this package sends ever runs under a value left by an earlier request. Unset
// means no rows.
//
// Round trips (pgx pipelines a batch with one Sync; counted by tracing the client's socket
// writes: 1000 QueryRow calls make 1000 writes, 1000 one-statement Tx calls 2000, 1000
// two-statement Tx calls 3000):
//
//   - [DB.Tx]: BEGIN, set_config and fn's first statement travel as one batch (one round trip;
//     a first Exec without arguments, a CopyFrom, or a first statement carrying a pgx query
//     option sends BEGIN+set_config alone first, because pgx runs those outside a batch). Each
//     further statement is one round trip, and COMMIT plus a check that app.owner_id did not
//     outlive the transaction is one more. A one-statement transaction costs 2 round trips; a
//     fn that runs nothing costs none.
//   - [DB.QueryRow]: set_config and the statement in one batch, which PostgreSQL runs as one
//     implicit transaction, so the setting dies with it: 1 round trip.
//   - A statement seen for the first time on a connection costs one extra round trip while pgx
//     prepares and caches it.
//
// # Connection hygiene
//
// The prelude that sets the owner first reads what app.owner_id held. A value there means
// something set it for the session (a defect: the repository forbids session-level
// settings): the request fails with ErrOwnerLeaked and the connection is closed, never
// reused. The statements sent in the same batch have already run, under the request's own
// owner (the transaction-local value overrides the session's), but a Tx is rolled back and
// QueryRow's transaction is read-only, so they leave nothing behind. COMMIT travels with a
// read of app.owner_id, so a session-level value set inside fn is caught before the
// connection goes back (the transaction has committed by then; the error reports the defect). A connection given back inside a transaction, busy with unread
// results, or broken is closed instead of returned to the pool.
package database
