package grpcapi_test

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/forgeapps/backbone/pkg/events"
	appsv1 "github.com/forgeapps/backbone/pkg/gen/forge/apps/v1"
	tenantv1 "github.com/forgeapps/backbone/pkg/gen/forge/tenant/v1"
	"github.com/forgeapps/backbone/pkg/owner"
	"github.com/forgeapps/backbone/pkg/testkit/grpctest"
	"github.com/forgeapps/backbone/pkg/testkit/pgtest"
	"github.com/forgeapps/backbone/pkg/testkit/stacktest"
	"github.com/forgeapps/backbone/pkg/workload"

	"github.com/forgeapps/backbone/services/apps/internal/apps"
	"github.com/forgeapps/backbone/services/apps/internal/blobstore"
	"github.com/forgeapps/backbone/services/apps/internal/grpcapi"
	"github.com/forgeapps/backbone/services/apps/internal/postgres"
	"github.com/forgeapps/backbone/services/apps/internal/tenant"
	"github.com/forgeapps/backbone/services/apps/internal/vault"
)

// plainCrypto is the baseline of the benchmarks: the same service, the same code path, with
// the vault round trip replaced by no encryption at all. It exists only here.
type plainCrypto struct{}

func (plainCrypto) Encrypt(_ context.Context, _ owner.ID, _ apps.Purpose, items []apps.CryptoItem) ([][]byte, uint32, error) {
	out := make([][]byte, len(items))
	for i, it := range items {
		out[i] = it.Data
	}
	return out, 1, nil
}

func (plainCrypto) Decrypt(_ context.Context, _ owner.ID, _ apps.Purpose, items []apps.CryptoItem) ([][]byte, error) {
	out := make([][]byte, len(items))
	for i, it := range items {
		out[i] = it.Data
	}
	return out, nil
}

func (plainCrypto) SealObjects(_ context.Context, _ owner.ID, _ apps.Purpose, items []apps.CryptoItem) ([]apps.SealedObject, uint32, error) {
	out := make([]apps.SealedObject, len(items))
	for i, it := range items {
		out[i] = apps.SealedObject{Data: it.Data, WrappedKey: []byte{0}}
	}
	return out, 1, nil
}

func (plainCrypto) OpenObjects(ctx context.Context, _ owner.ID, _ apps.Purpose, items []apps.ObjectItem,
	fetch func(context.Context, int) ([]byte, error)) ([][]byte, error) {
	out := make([][]byte, len(items))
	for i := range items {
		data, err := fetch(ctx, i)
		if err != nil {
			return nil, err
		}
		out[i] = data
	}
	return out, nil
}

// benchEnv is one database, one bucket, the real vault and tenant, and two apps servers over
// them: one sealing through the vault, one storing plaintext.
type benchEnv struct {
	blobs         *blobstore.Store
	vault         *vault.Client
	sealed, plain clients
	// owner uses the sealing server, plainOwner the plaintext one (their rows must not mix:
	// the sealing server cannot open plaintext rows).
	owner, plainOwner owner.ID
}

func newBenchEnv(b *testing.B) *benchEnv {
	b.Helper()
	st := stacktest.Start(b, stacktest.Options{Services: []string{workload.SecretsVault, workload.Tenant}})
	pg := pgtest.New(b, pgtest.Spec{Schema: postgres.Schema, Sources: postgres.Sources()})
	blobs, err := blobstore.Open(context.Background(), "file://"+b.TempDir())
	require.NoError(b, err)
	b.Cleanup(func() { _ = blobs.Close() })
	outbox, err := events.NewOutbox(events.OutboxConfig{Region: owner.USEast})
	require.NoError(b, err)
	vc := vault.New(st.Dial(b, workload.SecretsVault, workload.Apps), owner.USEast)
	tc := tenant.New(st.Dial(b, workload.Tenant, workload.Apps), owner.USEast)
	pki := grpctest.NewPKI(b)
	serve := func(c apps.Crypto) clients {
		svc, err := apps.New(apps.Config{Store: postgres.NewStore(pg.DB, outbox, owner.USEast), Crypto: c, Blobs: blobs,
			Secrets: vc, Registry: vc, Tenants: tc, Region: owner.USEast, Logger: slog.New(slog.DiscardHandler)})
		require.NoError(b, err)
		addr := pki.Start(b, grpctest.Server{Name: workload.Apps, Table: grpcapi.Table(), Register: grpcapi.New(svc).Register})
		return newClients(pki.Dial(b, addr, workload.Gateway, workload.Apps))
	}
	signIn := tenantv1.NewSessionServiceClient(st.Dial(b, workload.Tenant, workload.Gateway))
	newOwner := func() owner.ID {
		resp, err := signIn.SignIn(context.Background(), &tenantv1.SignInRequest{Identity: &tenantv1.VerifiedIdentity{
			Issuer: "https://idp.example.com", Subject: uuid.NewString(), Email: uuid.NewString() + "@example.com", EmailVerified: true}})
		require.NoError(b, err)
		return owner.MustParse(resp.GetAccount().GetOwnerId())
	}
	return &benchEnv{blobs: blobs, vault: vc, sealed: serve(vc), plain: serve(plainCrypto{}), owner: newOwner(), plainOwner: newOwner()}
}

// BenchmarkListApps lists a page of 50 apps through gRPC: names and descriptions decrypted in
// one vault call ("vault"), against the same page, same code, stored without encryption
// ("plaintext"). Target: vault within 2x of plaintext.
//
//	go test -run '^$' -bench ListApps -benchtime 300x ./internal/grpcapi/
func BenchmarkListApps(b *testing.B) {
	e := newBenchEnv(b)
	variants := []struct {
		name string
		c    clients
		ctx  context.Context
	}{
		{"vault", e.sealed, grpctest.AsOwner(context.Background(), e.owner)},
		{"plaintext", e.plain, grpctest.AsOwner(context.Background(), e.plainOwner)},
	}
	for _, v := range variants {
		ctx := v.ctx
		for i := range 50 {
			_, err := v.c.apps.CreateApp(ctx, &appsv1.CreateAppRequest{Name: fmt.Sprintf("%s app number %02d", v.name, i),
				Description: "A small generated web app that shows the weather, the news and a todo list, number " + fmt.Sprint(i)})
			require.NoError(b, err)
		}
	}
	for _, v := range variants {
		ctx := v.ctx
		b.Run(v.name, func(b *testing.B) {
			for range 20 { // warm connections and prepared statements
				_, err := v.c.apps.ListApps(ctx, &appsv1.ListAppsRequest{PageSize: 50})
				require.NoError(b, err)
			}
			b.ResetTimer()
			for range b.N {
				resp, err := v.c.apps.ListApps(ctx, &appsv1.ListAppsRequest{PageSize: 50})
				if err != nil || len(resp.GetApps()) != 50 {
					b.Fatalf("list: %v (%d apps)", err, len(resp.GetApps()))
				}
			}
		})
	}
}

// BenchmarkVersionFile1MiB stores and reads back a 1 MiB version file. "blob" is the baseline,
// a plain object-storage round trip (write, read); "storage+envelope" is what apps does around
// it (a data key from the vault, seal here, write; read while the vault unwraps the key, open
// here); "storage+vault-whole" is the earlier design, for comparison (the megabyte sealed and
// opened by the vault); "grpc+vault" and "grpc+plaintext" are the whole CreateVersion +
// GetVersionFile through the apps API with and without encryption. Target: within 1.5x of
// the plain round trip.
//
//	go test -run '^$' -bench VersionFile1MiB -benchtime 100x ./internal/grpcapi/
func BenchmarkVersionFile1MiB(b *testing.B) {
	e := newBenchEnv(b)
	ctx := grpctest.AsOwner(context.Background(), e.owner)
	content := make([]byte, 1<<20)
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789(){};= \n"
	for i := range content {
		content[i] = alphabet[rand.IntN(len(alphabet))]
	}
	files := []*appsv1.File{{Path: "app.js", Content: content}}
	appOf := func(ctx context.Context, c clients) string {
		a, err := c.apps.CreateApp(ctx, &appsv1.CreateAppRequest{Name: "bench"})
		require.NoError(b, err)
		return a.GetApp().GetAppId()
	}
	b.Run("blob", func(b *testing.B) {
		key := e.owner.String() + "/bench/blob"
		b.SetBytes(int64(len(content)))
		for range b.N {
			if err := e.blobs.Put(ctx, key, content); err != nil {
				b.Fatal(err)
			}
			if _, err := e.blobs.Get(ctx, key); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("storage+envelope", func(b *testing.B) {
		key := e.owner.String() + "/bench/envelope"
		item := apps.CryptoItem{Binding: apps.Binding{Object: "version/bench/1/app.js", Field: "content"}, Data: content}
		b.SetBytes(int64(len(content)))
		for range b.N {
			sealed, _, err := e.vault.SealObjects(ctx, e.owner, apps.PurposeAppContent, []apps.CryptoItem{item})
			if err != nil {
				b.Fatal(err)
			}
			if err := e.blobs.Put(ctx, key, sealed[0].Data); err != nil {
				b.Fatal(err)
			}
			pts, err := e.vault.OpenObjects(ctx, e.owner, apps.PurposeAppContent,
				[]apps.ObjectItem{{Binding: item.Binding, WrappedKey: sealed[0].WrappedKey}},
				func(ctx context.Context, _ int) ([]byte, error) { return e.blobs.Get(ctx, key) })
			if err != nil || len(pts[0]) != len(content) {
				b.Fatalf("open: %v", err)
			}
		}
	})
	b.Run("storage+vault-whole", func(b *testing.B) {
		key := e.owner.String() + "/bench/sealed"
		item := apps.CryptoItem{Binding: apps.Binding{Object: "version/bench/1/app.js", Field: "content"}, Data: content}
		b.SetBytes(int64(len(content)))
		for range b.N {
			cts, _, err := e.vault.Encrypt(ctx, e.owner, apps.PurposeAppContent, []apps.CryptoItem{item})
			if err != nil {
				b.Fatal(err)
			}
			if err := e.blobs.Put(ctx, key, cts[0]); err != nil {
				b.Fatal(err)
			}
			ct, err := e.blobs.Get(ctx, key)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := e.vault.Decrypt(ctx, e.owner, apps.PurposeAppContent, []apps.CryptoItem{{Binding: item.Binding, Data: ct}}); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, v := range []struct {
		name string
		c    clients
		ctx  context.Context
	}{{"grpc+vault", e.sealed, ctx}, {"grpc+plaintext", e.plain, grpctest.AsOwner(context.Background(), e.plainOwner)}} {
		ctx := v.ctx
		b.Run(v.name, func(b *testing.B) {
			app := appOf(ctx, v.c)
			b.SetBytes(int64(len(content)))
			for range b.N {
				resp, err := v.c.versions.CreateVersion(ctx, &appsv1.CreateVersionRequest{AppId: app, Files: files})
				if err != nil {
					b.Fatal(err)
				}
				f, err := v.c.versions.GetVersionFile(ctx, &appsv1.GetVersionFileRequest{AppId: app,
					Version: resp.GetVersion().GetVersion(), Path: "app.js"})
				if err != nil || len(f.GetFile().GetContent()) != len(content) {
					b.Fatalf("read back: %v", err)
				}
			}
		})
	}
}
