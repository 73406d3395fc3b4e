package postgres

import (
	"context"
	"errors"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/forgeapps/backbone/pkg/database"
	"github.com/forgeapps/backbone/pkg/events"
	"github.com/forgeapps/backbone/pkg/owner"
	"github.com/forgeapps/backbone/pkg/testkit/pgtest"

	"github.com/forgeapps/backbone/services/tenant/internal/tenant"
)

func newEnv(tb testing.TB, opts database.Options) (*pgtest.Env, *Store) {
	tb.Helper()
	env := pgtest.New(tb, pgtest.Spec{Schema: Schema, Sources: Sources(), Options: opts})
	outbox, err := events.NewOutbox(events.OutboxConfig{Region: owner.USEast})
	require.NoError(tb, err)
	store, err := NewStore(env.DB, outbox, Options{Region: owner.USEast})
	require.NoError(tb, err)
	return env, store
}

func signUp(tb testing.TB, store *Store, subject string) SignInResult {
	tb.Helper()
	res, err := store.SignIn(context.Background(),
		tenant.Identity{Issuer: "https://idp.test", Subject: subject, Email: subject + "@example.com"}, tenant.SignUp{}, "ua")
	require.NoError(tb, err)
	return res
}

// The schema passes the start-up posture check with exactly the reviewed definer functions:
// leaving one off the allowlist fails it.
func TestPosture(t *testing.T) {
	env, _ := newEnv(t, database.Options{})
	ctx := context.Background()
	require.NoError(t, database.CheckPosture(ctx, env.DB, Posture()))

	for _, fn := range []string{FuncIdentityOwner, FuncSessionAuthenticate, FuncAccountResolveEmail} {
		p := Posture()
		p.DefinerFunctions = slices.DeleteFunc(p.DefinerFunctions, func(s string) bool { return s == fn })
		err := database.CheckPosture(ctx, env.DB, p)
		var perr *database.PostureError
		require.True(t, errors.As(err, &perr), "%s off the allowlist must fail the posture check", fn)
		require.Len(t, perr.Violations, 1)
		require.Contains(t, perr.Violations[0].Object, fn)
		require.Equal(t, database.RuleUnlistedDefiner, perr.Violations[0].Rule)
	}

	// Every table of the schema is a tenant table (the posture check holds each to it).
	rows, err := env.Migrator.Query(ctx, `select relname::text from pg_class c join pg_namespace n on n.oid = c.relnamespace
		where n.nspname = $1 and relkind = 'r' and relforcerowsecurity order by 1`, Schema)
	require.NoError(t, err)
	var forced []string
	for rows.Next() {
		var s string
		require.NoError(t, rows.Scan(&s))
		forced = append(forced, s)
	}
	require.NoError(t, rows.Err())
	want := []string{"accounts", "credit_balances", "credit_entries", "event_dead_letters", "identities", "inbox", "outbox", "region_directory", "sessions"}
	sort.Strings(want)
	require.Equal(t, want, forced)
}

// RLS is the net under the code: a statement that names tenant A's owner_id, run in tenant
// B's transaction (a bug that passes the wrong ID), reads and changes nothing of A.
func TestRLSIsTheNetUnderTheQueries(t *testing.T) {
	env, store := newEnv(t, database.Options{})
	ctx := context.Background()
	a := signUp(t, store, "a")
	b := signUp(t, store, "b")
	_, err := store.Grant(ctx, a.Account.OwnerID, tenant.GrantRequest(5, "r", "k"))
	require.NoError(t, err)
	aID := a.Account.OwnerID
	now := time.Now()

	reads := map[string][]any{
		sqlSelectAccount:      {aID},
		sqlSelectBalance:      {aID},
		sqlDirectoryHome:      {aID},
		sqlSelectStatusRegion: {aID},
		sqlEntriesBefore:      {aID, int64(0), 10},
		sqlListSessions:       {aID, now},
		sqlEntryByKey:         {aID, "k"},
	}
	writes := map[string][]any{
		sqlRevokeAllSessions: {aID, now},
		sqlUpdateStatus:      {aID, "deletion_pending", now},
		sqlUpdatePlan:        {aID, "pro", now},
		sqlApplyToBalance:    {aID, int64(100), now},
		sqlPurgeSessions:     {aID, int64(100)},
		sqlPurgeEntries:      {aID, int64(100)},
		sqlPurgeIdentities:   {aID, int64(100)},
		sqlPurgeBalance:      {aID},
		sqlPurgeAccount:      {aID},
		sqlPurgeDirectory:    {aID},
	}
	err = env.DB.Tx(ctx, b.Account.OwnerID, func(ctx context.Context, tx database.Tx) error {
		for q, args := range reads {
			rows, err := tx.Query(ctx, q, args...)
			require.NoError(t, err, q)
			n := 0
			for rows.Next() {
				n++
			}
			require.NoError(t, rows.Err(), q)
			require.Zero(t, n, "B's transaction read A's rows: %s", q)
		}
		for q, args := range writes {
			tag, err := tx.Exec(ctx, q, args...)
			require.NoError(t, err, q)
			require.Zero(t, tag.RowsAffected(), "B's transaction changed A's rows: %s", q)
		}
		return nil
	})
	require.NoError(t, err)
	acct, err := store.GetAccount(ctx, aID)
	require.NoError(t, err)
	require.Equal(t, tenant.StatusActive, acct.Status)
	bal, _, err := store.Balance(ctx, aID)
	require.NoError(t, err)
	require.EqualValues(t, 5, bal)
}

// The three SECURITY DEFINER functions are the only ownerless paths, so each is held to its
// narrow contract directly (not only through the store, whose own checks would hide a
// widened function): what each returns, and for which rows.
func TestDefinerFunctionsAreNarrow(t *testing.T) {
	env, store := newEnv(t, database.Options{})
	ctx := context.Background()
	live := signUp(t, store, "live")
	pending := signUp(t, store, "pending")
	_, err := store.DisableTenant(ctx, pending.Account.OwnerID)
	require.NoError(t, err)
	revoked := signUp(t, store, "revoked")
	require.NoError(t, store.RevokeSession(ctx, revoked.Account.OwnerID, revoked.Session.ID))
	// A session that expired a day ago by the database's clock.
	past := time.Now().Add(-tenant.DefaultSessionTTL - 24*time.Hour)
	oldStore, err := NewStore(env.DB, store.outbox, Options{Region: owner.USEast, Now: func() time.Time { return past }})
	require.NoError(t, err)
	expired := signUp(t, oldStore, "expired")

	results := map[string]string{}
	rows, err := env.Migrator.Query(ctx, `select p.proname::text, pg_get_function_result(p.oid)
		from pg_proc p join pg_namespace n on n.oid = p.pronamespace
		where n.nspname = $1 and p.prosecdef and p.proname = any($2)`, Schema,
		[]string{FuncIdentityOwner, FuncSessionAuthenticate, FuncAccountResolveEmail})
	require.NoError(t, err)
	for rows.Next() {
		var name, result string
		require.NoError(t, rows.Scan(&name, &result))
		results[name] = result
	}
	require.NoError(t, rows.Err())
	require.Equal(t, map[string]string{
		FuncIdentityOwner:       "uuid",
		FuncAccountResolveEmail: "uuid",
		FuncSessionAuthenticate: "TABLE(owner_id uuid, session_id uuid, expires_at timestamp with time zone)",
	}, results, "each function returns the owner (and a session's ID and expiry), nothing more")

	hashOf := func(r SignInResult) []byte {
		h, err := tenant.ParseSessionToken(r.Token)
		require.NoError(t, err)
		return h[:]
	}
	err = env.DB.SystemTx(ctx, func(ctx context.Context, tx database.Tx) error {
		var id *string
		require.NoError(t, tx.QueryRow(ctx, sqlIdentityOwner, "https://idp.test", "live").Scan(&id))
		require.Equal(t, live.Account.OwnerID.String(), *id)
		require.NoError(t, tx.QueryRow(ctx, sqlIdentityOwner, "https://idp.test", "nobody").Scan(&id))
		require.Nil(t, id)

		require.NoError(t, tx.QueryRow(ctx, sqlResolveEmail, "LIVE@example.com").Scan(&id))
		require.Equal(t, live.Account.OwnerID.String(), *id)
		require.NoError(t, tx.QueryRow(ctx, sqlResolveEmail, "pending@example.com").Scan(&id))
		require.Nil(t, id, "a tenant pending deletion is not resolvable")

		count := func(hash []byte, at time.Time) int {
			rows, err := tx.Query(ctx, sqlSessionAuthenticate, hash, at)
			require.NoError(t, err)
			n := 0
			for rows.Next() {
				n++
			}
			require.NoError(t, rows.Err())
			return n
		}
		now := time.Now()
		require.Equal(t, 1, count(hashOf(live), now))
		require.Zero(t, count(hashOf(revoked), now), "revoked")
		require.Zero(t, count(hashOf(pending), now), "revoked by the disable")
		require.Zero(t, count(hashOf(live), now.Add(tenant.DefaultSessionTTL+time.Second)), "expired by the caller's clock")
		require.Zero(t, count(hashOf(expired), now), "expired")
		require.Zero(t, count(hashOf(expired), past), "a caller's clock in the past cannot revive it")
		return nil
	})
	require.NoError(t, err)
}
