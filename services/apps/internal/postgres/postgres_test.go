package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/forgeapps/backbone/pkg/database"
	"github.com/forgeapps/backbone/pkg/events"
	"github.com/forgeapps/backbone/pkg/fault"
	"github.com/forgeapps/backbone/pkg/owner"
	"github.com/forgeapps/backbone/pkg/testkit/pgtest"

	"github.com/forgeapps/backbone/services/apps/internal/apps"
)

func newEnv(tb testing.TB) (*pgtest.Env, *Store) {
	tb.Helper()
	env := pgtest.New(tb, pgtest.Spec{Schema: Schema, Sources: Sources()})
	outbox, err := events.NewOutbox(events.OutboxConfig{Region: owner.USEast})
	require.NoError(tb, err)
	return env, NewStore(env.DB, outbox, owner.USEast)
}

// insertApp stores an app row with dummy ciphertexts (the store never reads them).
func insertApp(tb testing.TB, s *Store, o owner.ID) uuid.UUID {
	tb.Helper()
	id := uuid.New()
	now := time.Now().UTC().Truncate(time.Microsecond)
	require.NoError(tb, s.Tx(context.Background(), o, func(ctx context.Context, tx apps.StoreTx) error {
		return tx.InsertApp(ctx, apps.AppRecord{ID: id, Owner: o, Name: []byte("ct"), KeyVersion: 1,
			Visibility: apps.VisibilityPrivate, Created: now, Updated: now})
	}))
	return id
}

func TestPosture(t *testing.T) {
	env, _ := newEnv(t)
	require.NoError(t, database.CheckPosture(context.Background(), env.DB, Posture()))

	// The public read policies are declared, not tolerated: without the declaration the
	// posture check refuses the schema.
	undeclared := Posture()
	undeclared.ExtraPolicies = nil
	err := database.CheckPosture(context.Background(), env.DB, undeclared)
	require.ErrorContains(t, err, "listings_public_read")
	require.ErrorContains(t, err, "listing_files_public_read")
}

func TestResolveOwnerCollaboratorStranger(t *testing.T) {
	env, s := newEnv(t)
	ctx := context.Background()
	alice, bob, carol := owner.New(), owner.New(), owner.New()
	app := insertApp(t, s, alice)

	o, role, disabled, err := s.Resolve(ctx, alice, app)
	require.NoError(t, err)
	require.False(t, disabled)
	require.Equal(t, alice, o)
	require.Equal(t, apps.RoleOwner, role)

	_, _, _, err = s.Resolve(ctx, bob, app)
	require.True(t, fault.Is(err, fault.KindNotFound))
	_, _, _, missing := s.Resolve(ctx, bob, uuid.New())
	require.Equal(t, missing.Error(), err.Error(), "a stranger's answer is the missing ID's")

	col := uuid.New()
	require.NoError(t, s.Tx(ctx, alice, func(ctx context.Context, tx apps.StoreTx) error {
		return tx.InsertCollaborator(ctx, apps.CollaboratorRecord{ID: col, AppID: app, Member: bob, Email: []byte("ct"),
			KeyVersion: 1, Role: apps.RoleEditor, Created: time.Now()})
	}))
	o, role, _, err = s.Resolve(ctx, bob, app)
	require.NoError(t, err)
	require.Equal(t, alice, o)
	require.Equal(t, apps.RoleEditor, role)
	_, _, _, err = s.Resolve(ctx, carol, app)
	require.True(t, fault.Is(err, fault.KindNotFound))

	// The collaborator reads nothing of alice's rows under its own owner: RLS holds.
	var n int
	require.NoError(t, env.DB.QueryRow(ctx, bob, `select count(*) from apps`).Scan(&n))
	require.Zero(t, n)
	require.NoError(t, env.DB.QueryRow(ctx, bob, `select count(*) from collaborators`).Scan(&n))
	require.Zero(t, n)

	// A disabled owner's app answers nobody on the cross-tenant paths.
	require.NoError(t, s.Tx(ctx, alice, func(ctx context.Context, tx apps.StoreTx) error {
		_, _, _, err := tx.Disable(ctx, time.Now())
		return err
	}))
	_, _, _, err = s.Resolve(ctx, bob, app)
	require.True(t, fault.Is(err, fault.KindNotFound))
	_, _, disabled, _ = s.Resolve(ctx, alice, app)
	require.True(t, disabled, "the disabled owner is told so")
	_, err = s.AppOwner(ctx, app)
	require.True(t, fault.Is(err, fault.KindNotFound))
	shared, err := s.SharedWithMe(ctx, bob, nil, 10)
	require.NoError(t, err)
	require.Empty(t, shared)

	require.NoError(t, s.Tx(ctx, alice, func(ctx context.Context, tx apps.StoreTx) error { return tx.Restore(ctx) }))
	_, _, _, err = s.Resolve(ctx, bob, app)
	require.NoError(t, err)
	got, err := s.AppOwner(ctx, app)
	require.NoError(t, err)
	require.Equal(t, alice, got)
	shared, err = s.SharedWithMe(ctx, bob, nil, 10)
	require.NoError(t, err)
	require.Len(t, shared, 1)
	require.Equal(t, col, shared[0].CollabID)

	// A disabled collaborator reaches nobody's app either.
	require.NoError(t, s.Tx(ctx, bob, func(ctx context.Context, tx apps.StoreTx) error {
		_, _, _, err := tx.Disable(ctx, time.Now())
		return err
	}))
	_, _, disabled, err = s.Resolve(ctx, bob, app)
	require.True(t, disabled)
	require.True(t, fault.Is(err, fault.KindNotFound))
	shared, err = s.SharedWithMe(ctx, bob, nil, 10)
	require.NoError(t, err)
	require.Empty(t, shared)
}

func TestShareLinkOwner(t *testing.T) {
	_, s := newEnv(t)
	ctx := context.Background()
	alice := owner.New()
	app := insertApp(t, s, alice)
	other := insertApp(t, s, alice)
	hash := make([]byte, 32)
	hash[0] = 1
	link := uuid.New()
	now := time.Now().UTC()
	setVisibility := func(v apps.Visibility) {
		require.NoError(t, s.Tx(ctx, alice, func(ctx context.Context, tx apps.StoreTx) error {
			a, err := tx.App(ctx, app, true)
			require.NoError(t, err)
			a.Visibility = v
			return tx.UpdateApp(ctx, a)
		}))
	}
	require.NoError(t, s.Tx(ctx, alice, func(ctx context.Context, tx apps.StoreTx) error {
		return tx.InsertShareLink(ctx, apps.ShareLinkRecord{ID: link, AppID: app, TokenHash: hash, Created: now, Expires: now.Add(time.Hour)})
	}))

	// Private: the link does not open.
	_, _, err := s.ShareLinkOwner(ctx, app, hash)
	require.True(t, fault.Is(err, fault.KindNotFound))
	setVisibility(apps.VisibilityLink)
	o, _, err := s.ShareLinkOwner(ctx, app, hash)
	require.NoError(t, err)
	require.Equal(t, alice, o)
	// Another app, another hash: nothing.
	_, _, err = s.ShareLinkOwner(ctx, other, hash)
	require.True(t, fault.Is(err, fault.KindNotFound))
	_, _, err = s.ShareLinkOwner(ctx, app, make([]byte, 32))
	require.True(t, fault.Is(err, fault.KindNotFound))
	// Revoked: nothing.
	require.NoError(t, s.Tx(ctx, alice, func(ctx context.Context, tx apps.StoreTx) error {
		return tx.RevokeShareLink(ctx, app, link, time.Now())
	}))
	_, _, err = s.ShareLinkOwner(ctx, app, hash)
	require.True(t, fault.Is(err, fault.KindNotFound))
}

func TestPromptReadsAppendOnly(t *testing.T) {
	env, s := newEnv(t)
	ctx := context.Background()
	alice := owner.New()
	app := insertApp(t, s, alice)
	require.NoError(t, s.Tx(ctx, alice, func(ctx context.Context, tx apps.StoreTx) error {
		return tx.InsertPromptRead(ctx, apps.PromptRead{ID: uuid.New(), AppID: app, Purpose: apps.ReadOwnerView,
			Reader: alice, Workload: "gateway", PromptCount: 1, Time: time.Now()})
	}))
	for _, stmt := range []string{
		`delete from prompt_reads where owner_id = $1`,
		`update prompt_reads set prompt_count = 2 where owner_id = $1`,
	} {
		err := env.DB.Tx(ctx, alice, func(ctx context.Context, tx database.Tx) error {
			_, err := tx.Exec(ctx, stmt, alice)
			return err
		})
		require.ErrorContains(t, err, "permission denied", stmt)
	}
	// The reviewed purge path refuses an owner that is not disabled ...
	n, err := s.PurgePromptReads(ctx, alice, 10)
	require.NoError(t, err)
	require.Zero(t, n)
	// ... and deletes for a disabled one.
	require.NoError(t, s.Tx(ctx, alice, func(ctx context.Context, tx apps.StoreTx) error {
		_, _, _, err := tx.Disable(ctx, time.Now())
		return err
	}))
	n, err = s.PurgePromptReads(ctx, alice, 10)
	require.NoError(t, err)
	require.EqualValues(t, 1, n)
}

func TestVersionsImmutable(t *testing.T) {
	env, s := newEnv(t)
	ctx := context.Background()
	alice := owner.New()
	app := insertApp(t, s, alice)
	require.NoError(t, s.Tx(ctx, alice, func(ctx context.Context, tx apps.StoreTx) error {
		return tx.InsertVersion(ctx, apps.VersionRecord{AppID: app, Version: 1, Author: apps.AuthorOwner, Created: time.Now(),
			Files: []apps.FileRecord{{Path: "index.html", ContentType: "text/html", Size: 1, ObjectKey: "k",
				WrappedKey: []byte("wrapped data key"), KeyVersion: 1}}})
	}))
	require.NoError(t, s.Tx(ctx, alice, func(ctx context.Context, tx apps.StoreTx) error {
		f, err := tx.VersionFile(ctx, app, 1, "index.html")
		require.NoError(t, err)
		require.Equal(t, []byte("wrapped data key"), f.WrappedKey)
		return nil
	}))
	for _, stmt := range []string{
		`update versions set author = 'builder' where owner_id = $1`,
		`update version_files set object_key = 'other' where owner_id = $1`,
		`update version_files set wrapped_key = 'other' where owner_id = $1`,
	} {
		err := env.DB.Tx(ctx, alice, func(ctx context.Context, tx database.Tx) error {
			_, err := tx.Exec(ctx, stmt, alice)
			return err
		})
		require.ErrorContains(t, err, "immutable", stmt)
	}
}

func TestListingsPublicReadOnly(t *testing.T) {
	env, s := newEnv(t)
	ctx := context.Background()
	alice, bob := owner.New(), owner.New()
	app := insertApp(t, s, alice)
	l := apps.ListingRecord{ID: uuid.New(), Owner: alice, AppID: app, Name: "n", Description: "d", Version: 1,
		Published: time.Now().UTC().Truncate(time.Microsecond),
		Files:     []apps.ListingFile{{Path: "index.html", ContentType: "text/html", Size: 1, ObjectKey: "k"}}}
	require.NoError(t, s.Tx(ctx, alice, func(ctx context.Context, tx apps.StoreTx) error {
		_, err := tx.UpsertListing(ctx, l)
		return err
	}))
	got, err := s.Listing(ctx, l.ID)
	require.NoError(t, err)
	require.Equal(t, "n", got.Name)
	require.Len(t, got.Files, 1)

	// Anyone reads a listing; nobody but its owner changes it.
	for _, stmt := range []string{
		`update listings set name = 'defaced' where id = $1`,
		`delete from listings where id = $1`,
	} {
		var affected int64
		err := env.DB.Tx(ctx, bob, func(ctx context.Context, tx database.Tx) error {
			tag, err := tx.Exec(ctx, stmt, l.ID)
			affected = tag.RowsAffected()
			return err
		})
		require.NoError(t, err)
		require.Zero(t, affected, stmt)
	}
	// Nor can another tenant insert a listing for alice.
	err = env.DB.Tx(ctx, bob, func(ctx context.Context, tx database.Tx) error {
		_, err := tx.Exec(ctx, sqlInsertListing, alice, uuid.New(), app, "x", "y", 1, time.Now())
		return err
	})
	require.ErrorContains(t, err, "row-level security")
	// The public policy covers listings only: the main tables show nothing without an owner.
	var n int
	require.NoError(t, env.DB.SystemTx(ctx, func(ctx context.Context, tx database.Tx) error {
		return tx.QueryRow(ctx, `select (select count(*) from apps) + (select count(*) from versions)`).Scan(&n)
	}))
	require.Zero(t, n)
	got, err = s.Listing(ctx, l.ID)
	require.NoError(t, err)
	require.Equal(t, "n", got.Name)
}

func TestPurgeRows(t *testing.T) {
	env, s := newEnv(t)
	ctx := context.Background()
	alice, bob := owner.New(), owner.New()
	for range 3 {
		insertApp(t, s, alice)
	}
	bobApp := insertApp(t, s, bob)
	require.NoError(t, s.Tx(ctx, alice, func(ctx context.Context, tx apps.StoreTx) error {
		_, _, _, err := tx.Disable(ctx, time.Now())
		return err
	}))
	var rounds int
	for done := false; !done; rounds++ {
		require.Less(t, rounds, 10)
		require.NoError(t, s.Tx(ctx, alice, func(ctx context.Context, tx apps.StoreTx) error {
			var err error
			_, done, err = tx.PurgeRows(ctx, 1)
			return err
		}))
	}
	require.GreaterOrEqual(t, rounds, 3, "batches are bounded")
	var n int
	require.NoError(t, env.Migrator.QueryRow(ctx, `select count(*) from apps where owner_id = $1`, alice).Scan(&n))
	require.Zero(t, n)
	require.NoError(t, env.Migrator.QueryRow(ctx, `select count(*) from owner_state where owner_id = $1`, alice).Scan(&n))
	require.Zero(t, n)
	_, _, _, err := s.Resolve(ctx, bob, bobApp)
	require.NoError(t, err, "another owner's rows stay")
}
