package postgres

// The service's SQL. Every statement on a tenant table carries owner_id = $1 itself: RLS is
// the net under the code, not the only filter.

const accountColumns = `owner_id, email, display_name, notification_email, plan, home_region, status, created_at, updated_at`

const (
	// sqlSelectAccount is the owner-scoped read of one account (also the benchmarked read).
	sqlSelectAccount = `SELECT ` + accountColumns + ` FROM accounts WHERE owner_id = $1`

	sqlSelectAccountForUpdate = `SELECT ` + accountColumns + ` FROM accounts WHERE owner_id = $1 FOR UPDATE`

	sqlInsertAccount = `INSERT INTO accounts (owner_id, email, plan, home_region, status, created_at, updated_at)
		VALUES ($1, $2, $3, $4, 'active', $5, $5)`

	sqlInsertIdentity = `INSERT INTO identities (owner_id, issuer, subject, created_at) VALUES ($1, $2, $3, $4)`

	sqlInsertBalance = `INSERT INTO credit_balances (owner_id, balance, last_seq, updated_at) VALUES ($1, 0, 0, $2)`

	sqlInsertDirectory = `INSERT INTO region_directory (owner_id, home_region) VALUES ($1, $2)`

	sqlUpdateEmail = `UPDATE accounts SET email = $2, updated_at = $3 WHERE owner_id = $1`

	sqlUpdateAccount = `UPDATE accounts
		SET display_name = coalesce($2, display_name),
		    notification_email = coalesce($3, notification_email),
		    updated_at = $4
		WHERE owner_id = $1
		RETURNING ` + accountColumns

	sqlUpdatePlan = `UPDATE accounts SET plan = $2, updated_at = $3 WHERE owner_id = $1 RETURNING ` + accountColumns

	sqlUpdateStatus = `UPDATE accounts SET status = $2, updated_at = $3 WHERE owner_id = $1`

	sqlSelectStatusRegion = `SELECT status, home_region FROM accounts WHERE owner_id = $1`

	sqlSelectActivePlan = `SELECT plan FROM accounts WHERE owner_id = $1 AND status = 'active'`

	sqlDirectoryHome = `SELECT home_region FROM region_directory WHERE owner_id = $1`
)

const (
	sqlIdentityOwner = `SELECT identity_owner($1, $2)`

	sqlSessionAuthenticate = `SELECT owner_id, session_id, expires_at FROM session_authenticate($1, $2)`

	sqlResolveEmail = `SELECT account_resolve_email($1)`
)

const (
	sqlInsertSession = `INSERT INTO sessions (owner_id, id, token_hash, user_agent, created_at, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6)`

	// sqlListSessions lists the live sessions, newest first, at most 200 (a person has a
	// handful; a runaway client must not make the answer unbounded).
	sqlListSessions = `SELECT id, created_at, expires_at, user_agent FROM sessions
		WHERE owner_id = $1 AND revoked_at IS NULL AND expires_at > $2
		ORDER BY created_at DESC, id
		LIMIT 200`

	sqlRevokeSession = `UPDATE sessions SET revoked_at = $3
		WHERE owner_id = $1 AND id = $2 AND revoked_at IS NULL AND expires_at > $3
		RETURNING id`

	sqlRevokeAllSessions = `UPDATE sessions SET revoked_at = $2
		WHERE owner_id = $1 AND revoked_at IS NULL AND expires_at > $2
		RETURNING id`
)

const entryColumns = `id, seq, amount, reason, balance_after, created_at`

const (
	// sqlLockBalance takes the tenant's ledger lock: every ledger write of one tenant runs
	// after the previous one committed, so the balance it reads is the balance it changes.
	sqlLockBalance = `SELECT b.balance, a.status FROM credit_balances b JOIN accounts a ON a.owner_id = b.owner_id
		WHERE b.owner_id = $1 AND a.owner_id = $1
		FOR UPDATE OF b`

	sqlEntryByKey = `SELECT ` + entryColumns + ` FROM credit_entries WHERE owner_id = $1 AND idempotency_key = $2`

	sqlApplyToBalance = `UPDATE credit_balances SET balance = balance + $2, last_seq = last_seq + 1, updated_at = $3
		WHERE owner_id = $1
		RETURNING balance, last_seq`

	sqlInsertEntry = `INSERT INTO credit_entries (owner_id, id, seq, amount, reason, idempotency_key, balance_after, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`

	sqlSelectBalance = `SELECT balance FROM credit_balances WHERE owner_id = $1`

	// sqlEntriesBefore pages newest first: $2 = 0 is the first page.
	sqlEntriesBefore = `SELECT ` + entryColumns + ` FROM credit_entries
		WHERE owner_id = $1 AND ($2::bigint = 0 OR seq < $2)
		ORDER BY seq DESC
		LIMIT $3`

	// sqlEntriesAfter pages oldest first (the export).
	sqlEntriesAfter = `SELECT ` + entryColumns + ` FROM credit_entries
		WHERE owner_id = $1 AND seq > $2
		ORDER BY seq
		LIMIT $3`
)

// The purge deletes children before parents, a bounded number of rows per statement.
const (
	sqlPurgeSessions = `DELETE FROM sessions WHERE owner_id = $1 AND id IN
		(SELECT id FROM sessions WHERE owner_id = $1 LIMIT $2)`
	sqlPurgeEntries = `DELETE FROM credit_entries WHERE owner_id = $1 AND id IN
		(SELECT id FROM credit_entries WHERE owner_id = $1 LIMIT $2)`
	sqlPurgeIdentities = `DELETE FROM identities WHERE owner_id = $1 AND (issuer, subject) IN
		(SELECT issuer, subject FROM identities WHERE owner_id = $1 LIMIT $2)`
	sqlPurgeInbox = `DELETE FROM inbox WHERE owner_id = $1 AND (consumer, event_id) IN
		(SELECT consumer, event_id FROM inbox WHERE owner_id = $1 LIMIT $2)`
	sqlPurgeDeadLetters = `DELETE FROM event_dead_letters WHERE owner_id = $1 AND (stream, consumer, stream_seq) IN
		(SELECT stream, consumer, stream_seq FROM event_dead_letters WHERE owner_id = $1 LIMIT $2)`
	sqlPurgeBalance   = `DELETE FROM credit_balances WHERE owner_id = $1`
	sqlPurgeAccount   = `DELETE FROM accounts WHERE owner_id = $1`
	sqlPurgeDirectory = `DELETE FROM region_directory WHERE owner_id = $1`
)
