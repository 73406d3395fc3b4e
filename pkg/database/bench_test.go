package database_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/forgeapps/backbone/pkg/database"
	"github.com/forgeapps/backbone/pkg/owner"
)

// BenchmarkOwnerRead compares an owner-scoped, indexed single-row read through the RLS paths
// with the same query run by the table's owner (the migration role: BYPASSRLS, so no policy
// applies) outside any transaction. Each reports ns/op and its median latency (p50-ns).
// "paired" alternates the RLS read and the baseline in one loop, so that both see the same
// machine (this one is shared), and reports both medians and their ratio.
//
//	go test ./database -run '^$' -bench BenchmarkOwnerRead
func BenchmarkOwnerRead(b *testing.B) {
	env := newItemsEnv(b, database.Options{MaxConns: 1})
	ctx := b.Context()
	// 1000 tenants with 10 rows each.
	_, err := env.Migrator.Exec(ctx, `
		insert into items (owner_id, body)
		select t.o, 'body ' || g from (select gen_random_uuid() as o from generate_series(1, 1000)) t, generate_series(1, 10) g`)
	require.NoError(b, err)
	_, err = env.Migrator.Exec(ctx, `analyze items`)
	require.NoError(b, err)
	var (
		ownerText string
		id        int64
	)
	require.NoError(b, env.Migrator.QueryRow(ctx, `select owner_id::text, id from items order by id limit 1 offset 5000`).Scan(&ownerText, &id))
	o := owner.MustParse(ownerText)
	const query = `select body from items where owner_id = $1 and id = $2`

	rlsRead := func(ctx context.Context) (string, error) {
		var body string
		err := env.DB.QueryRow(ctx, o, query, o, id).Scan(&body)
		return body, err
	}
	rlsTx := func(ctx context.Context) (string, error) {
		var body string
		err := env.DB.Tx(ctx, o, func(ctx context.Context, tx database.Tx) error {
			return tx.QueryRow(ctx, query, o, id).Scan(&body)
		})
		return body, err
	}
	baseline := func(ctx context.Context) (string, error) {
		var body string
		err := env.Migrator.QueryRow(ctx, query, o, id).Scan(&body)
		return body, err
	}
	timed := func(b *testing.B, lat *[]time.Duration, read func(context.Context) (string, error)) {
		start := time.Now()
		body, err := read(ctx)
		*lat = append(*lat, time.Since(start))
		if err != nil || body == "" {
			b.Fatalf("read: %q, %v", body, err)
		}
	}
	warm := func(b *testing.B, reads ...func(context.Context) (string, error)) {
		// The statements get prepared and cached on each connection.
		for range 50 {
			for _, read := range reads {
				_, err := read(ctx)
				require.NoError(b, err)
			}
		}
	}

	for _, bm := range []struct {
		name string
		read func(context.Context) (string, error)
	}{
		{name: "rls/QueryRow", read: rlsRead},
		{name: "rls/Tx", read: rlsTx},
		{name: "owner-bypassrls/no-tx", read: baseline},
	} {
		b.Run(bm.name, func(b *testing.B) {
			warm(b, bm.read)
			lat := make([]time.Duration, 0, 1<<16)
			for b.Loop() {
				timed(b, &lat, bm.read)
			}
			b.ReportMetric(float64(p50(lat).Nanoseconds()), "p50-ns")
		})
	}
	b.Run("paired", func(b *testing.B) {
		warm(b, rlsRead, baseline)
		var rls, base []time.Duration
		odd := false
		for b.Loop() {
			odd = !odd
			if odd {
				timed(b, &rls, rlsRead)
				timed(b, &base, baseline)
			} else {
				timed(b, &base, baseline)
				timed(b, &rls, rlsRead)
			}
		}
		b.ReportMetric(float64(p50(rls).Nanoseconds()), "rls-p50-ns")
		b.ReportMetric(float64(p50(base).Nanoseconds()), "base-p50-ns")
		b.ReportMetric(float64(p50(rls))/float64(p50(base)), "p50-ratio")
	})
}

func p50(lat []time.Duration) time.Duration {
	slices.Sort(lat)
	return lat[len(lat)/2]
}
