package grpcapi_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	appsv1 "github.com/forgeapps/backbone/pkg/gen/forge/apps/v1"
	tenantv1 "github.com/forgeapps/backbone/pkg/gen/forge/tenant/v1"
	vaultv1 "github.com/forgeapps/backbone/pkg/gen/forge/vault/v1"
	"github.com/forgeapps/backbone/pkg/testkit/grpctest"
	"github.com/forgeapps/backbone/pkg/workload"
)

// storedObject is where a sealed object is stored: its object key and its wrapped data key.
type storedObject struct {
	key     string
	wrapped []byte
}

func (e *env) objectBytes(key string) []byte {
	e.t.Helper()
	b, err := os.ReadFile(filepath.Join(e.blobDir, filepath.FromSlash(key)))
	require.NoError(e.t, err)
	return b
}

func (e *env) writeObject(key string, b []byte) {
	e.t.Helper()
	require.NoError(e.t, os.WriteFile(filepath.Join(e.blobDir, filepath.FromSlash(key)), b, 0o600))
}

// testEnvelope: version files and reference contents are sealed by apps under a fresh data key
// per object, which only the vault unwraps (bound to owner, object and field). A changed or
// moved object, or a wrapped key moved to another object or tenant, does not open; after the
// owner's keys are shredded nothing opens, though every stored byte is still there.
func testEnvelope(t *testing.T, e *env) {
	alice, bob := e.signUp("alice", tenantv1.Plan_PLAN_FREE), e.signUp("bob", tenantv1.Plan_PLAN_FREE)
	f, g := e.makeApp(alice, "Envelope"), e.makeApp(bob, "Other")
	ctx := as(t, alice)
	notes, err := e.gateway.refs.UploadReference(ctx, &appsv1.UploadReferenceRequest{AppId: f.app, Filename: "notes.txt",
		ContentType: "text/plain", Content: []byte("alice's private notes")})
	require.NoError(t, err)
	ref2 := notes.GetReference().GetReferenceId()

	files := map[string]storedObject{}
	rows, err := e.pg.Migrator.Query(ctxT(t), `select path, object_key, wrapped_key, key_version from version_files
		where owner_id = $1 and app_id = $2 and version = 1`, alice.id, f.app)
	require.NoError(t, err)
	for rows.Next() {
		var (
			path string
			o    storedObject
			ver  int64
		)
		require.NoError(t, rows.Scan(&path, &o.key, &o.wrapped, &ver))
		require.EqualValues(t, 1, ver)
		files[path] = o
	}
	require.NoError(t, rows.Err())
	require.Len(t, files, 2)
	refOf := func(owner any, id string) storedObject {
		var o storedObject
		require.NoError(t, e.pg.Migrator.QueryRow(ctxT(t), `select object_key, wrapped_key from app_references where owner_id = $1 and id = $2`,
			owner, id).Scan(&o.key, &o.wrapped))
		return o
	}
	refs := map[string]storedObject{"sketch": refOf(alice.id, f.reference), "notes": refOf(alice.id, ref2)}
	bobRef := refOf(bob.id, g.reference)

	t.Run("stored form", func(t *testing.T) {
		seen := map[string]bool{}
		for name, o := range map[string]storedObject{"index": files["index.html"], "app.js": files["assets/app.js"],
			"sketch": refs["sketch"], "notes": refs["notes"]} {
			require.Len(t, o.wrapped, 32+33, "%s: a 32-byte key sealed in the vault's ciphertext format", name)
			require.EqualValues(t, 1, o.wrapped[0], name)
			require.False(t, seen[string(o.wrapped)], "%s: one data key per object", name)
			seen[string(o.wrapped)] = true
			require.Equal(t, []byte{'e', 1}, e.objectBytes(o.key)[:2], "%s: the envelope header", name)
		}
		require.False(t, bytes.Contains(e.objectBytes(refs["notes"].key), []byte("private notes")))
		require.Empty(t, e.grepStored("alice's private notes"))

		keys := vaultv1.NewKeyServiceClient(e.st.Dial(t, workload.SecretsVault, workload.Gateway))
		audit, err := keys.ListAudit(grpctest.AsOwner(ctxT(t), alice.id), &vaultv1.ListAuditRequest{PageSize: 100})
		require.NoError(t, err)
		actions := map[string]int{}
		for _, en := range audit.GetEntries() {
			actions[en.GetAction()] += int(en.GetItems())
		}
		require.Equal(t, 4, actions["crypto.generate_data_key"], "one key per file and reference")
	})

	readFile := func() error {
		_, err := e.gateway.versions.GetVersionFile(ctx, &appsv1.GetVersionFileRequest{AppId: f.app, Version: 1, Path: "index.html"})
		return err
	}
	readRef := func() error {
		_, err := e.gateway.refs.GetReference(ctx, &appsv1.GetReferenceRequest{AppId: f.app, ReferenceId: f.reference})
		return err
	}
	setRefRow := func(owner any, id string, o storedObject) {
		_, err := e.pg.Migrator.Exec(ctxT(t), `update app_references set object_key = $3, wrapped_key = $4 where owner_id = $1 and id = $2`,
			owner, id, o.key, o.wrapped)
		require.NoError(t, err)
	}
	index, script, sketch, notesObj := files["index.html"], files["assets/app.js"], refs["sketch"], refs["notes"]
	original := map[string][]byte{}
	for _, o := range []storedObject{index, script, sketch, notesObj, bobRef} {
		original[o.key] = e.objectBytes(o.key)
	}
	flipped := func(b []byte, i int) []byte {
		c := bytes.Clone(b)
		c[i] ^= 1
		return c
	}
	cases := []struct {
		name    string
		read    func() error
		tamper  func()
		restore func()
	}{
		{"a changed byte of the object", readFile,
			func() { e.writeObject(index.key, flipped(original[index.key], len(original[index.key])-1)) },
			func() { e.writeObject(index.key, original[index.key]) }},
		{"a changed nonce", readFile,
			func() { e.writeObject(index.key, flipped(original[index.key], 3)) },
			func() { e.writeObject(index.key, original[index.key]) }},
		{"another file's object", readFile,
			func() { e.writeObject(index.key, original[script.key]) },
			func() { e.writeObject(index.key, original[index.key]) }},
		{"another reference's wrapped key", readRef,
			func() { setRefRow(alice.id, f.reference, storedObject{key: sketch.key, wrapped: notesObj.wrapped}) },
			func() { setRefRow(alice.id, f.reference, sketch) }},
		{"another reference's object and wrapped key", readRef,
			func() { setRefRow(alice.id, f.reference, storedObject{key: notesObj.key, wrapped: notesObj.wrapped}) },
			func() { setRefRow(alice.id, f.reference, sketch) }},
		{"a changed wrapped key", readRef,
			func() {
				setRefRow(alice.id, f.reference, storedObject{key: sketch.key, wrapped: flipped(sketch.wrapped, 40)})
			},
			func() { setRefRow(alice.id, f.reference, sketch) }},
		{"another tenant's object and wrapped key", func() error {
			_, err := e.gateway.refs.GetReference(as(t, bob), &appsv1.GetReferenceRequest{AppId: g.app, ReferenceId: g.reference})
			return err
		},
			func() {
				e.writeObject(bobRef.key, original[sketch.key])
				setRefRow(bob.id, g.reference, storedObject{key: bobRef.key, wrapped: sketch.wrapped})
			},
			func() { e.writeObject(bobRef.key, original[bobRef.key]); setRefRow(bob.id, g.reference, bobRef) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			require.NoError(t, c.read())
			c.tamper()
			requireCode(t, codes.Internal, c.read(), "does not open")
			c.restore()
			require.NoError(t, c.read())
		})
	}

	t.Run("after the shred", func(t *testing.T) {
		crypto := vaultv1.NewCryptoServiceClient(e.st.Dial(t, workload.SecretsVault, workload.Apps))
		unwrapIndex := func() error {
			sum := sha256.Sum256([]byte("index.html"))
			_, err := crypto.DecryptDataKey(grpctest.AsOwner(ctxT(t), alice.id), &vaultv1.DecryptDataKeyRequest{
				Purpose: vaultv1.Purpose_PURPOSE_APP_CONTENT, Items: []*vaultv1.WrappedDataKey{{
					Binding: &vaultv1.Binding{Object: "version/" + f.app + "/1/" + hex.EncodeToString(sum[:]), Field: "content"},
					Wrapped: index.wrapped}}})
			return err
		}
		require.NoError(t, unwrapIndex(), "the binding apps uses")
		lifecycle := vaultv1.NewKeyServiceClient(e.st.Dial(t, workload.SecretsVault, workload.DataLifecycle))
		_, err := lifecycle.ShredTenant(ctxT(t), &vaultv1.ShredTenantRequest{OwnerId: alice.id.String()})
		require.NoError(t, err)
		requireCode(t, codes.FailedPrecondition, readFile())
		requireCode(t, codes.FailedPrecondition, readRef())
		// Everything is still stored (as in a backup), and nothing opens it: not even the
		// vault, asked directly for the data key.
		require.Equal(t, original[index.key], e.objectBytes(index.key))
		var stillWrapped []byte
		require.NoError(t, e.pg.Migrator.QueryRow(ctxT(t), `select wrapped_key from version_files where owner_id = $1 and object_key = $2`,
			alice.id, index.key).Scan(&stillWrapped))
		require.Equal(t, index.wrapped, stillWrapped)
		requireCode(t, codes.FailedPrecondition, unwrapIndex())
		// bob is untouched.
		_, err = e.gateway.refs.GetReference(as(t, bob), &appsv1.GetReferenceRequest{AppId: g.app, ReferenceId: g.reference})
		require.NoError(t, err)
	})
}
