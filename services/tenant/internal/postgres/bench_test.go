package postgres

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/forgeapps/backbone/pkg/database"
)

// BenchmarkOwnerScopedRead measures the owner-scoped read behind GetAccount through the
// database path every request takes (the runtime role, RLS forced, app.owner_id set in the
// same round trip by database.DB.QueryRow) against the same indexed query run by the
// migration role, which owns the table and bypasses RLS, with no owner setting at all. Both
// run in one process against one database of 10,000 tenants; each reports its p50 and p99
// per read and their ratio (the target: rls p50 within 1.2x of baseline p50). ns/op
// covers one read of each kind.
//
//	go test -run '^$' -bench OwnerScopedRead -benchtime 5000x ./internal/postgres/
func BenchmarkOwnerScopedRead(b *testing.B) {
	env, store := newEnv(b, database.Options{MaxConns: 2})
	ctx := context.Background()
	res := signUp(b, store, "bench")
	id := res.Account.OwnerID
	// Other tenants fill the table, so the read goes through the primary key index as in
	// production rather than scanning a table of one row.
	_, err := env.Migrator.Exec(ctx, `
		insert into accounts (owner_id, email, plan, home_region, status, created_at, updated_at)
		select gen_random_uuid(), 'user' || g || '@example.com', 'free', 'us-east', 'active', now(), now()
		from generate_series(1, 10000) g`)
	require.NoError(b, err)
	_, err = env.Migrator.Exec(ctx, `analyze accounts`)
	require.NoError(b, err)

	var plan string
	require.NoError(b, env.Migrator.QueryRow(ctx, `explain (format text) `+sqlSelectAccount, id.String()).Scan(&plan))
	require.Contains(b, plan, "Index Scan", "the read uses the primary key index")

	rls := func() error {
		_, err := store.GetAccount(ctx, id)
		return err
	}
	baseline := func() error {
		_, err := scanAccount(env.Migrator.QueryRow(ctx, sqlSelectAccount, id))
		return err
	}
	// Warm both paths (connections, prepared statements) before anything is timed.
	for range 200 {
		require.NoError(b, rls())
		require.NoError(b, baseline())
	}
	// The two reads alternate in one loop (which goes first alternates too), so that both see
	// the same load on this shared machine; each keeps its own latency samples.
	rlsSamples := make([]time.Duration, 0, b.N)
	baseSamples := make([]time.Duration, 0, b.N)
	timed := func(read func() error, into *[]time.Duration) {
		start := time.Now()
		if err := read(); err != nil {
			b.Fatal(err)
		}
		*into = append(*into, time.Since(start))
	}
	b.ResetTimer()
	for i := range b.N {
		if i%2 == 0 {
			timed(rls, &rlsSamples)
			timed(baseline, &baseSamples)
		} else {
			timed(baseline, &baseSamples)
			timed(rls, &rlsSamples)
		}
	}
	b.StopTimer()
	p := func(samples []time.Duration, q int) float64 {
		slices.Sort(samples)
		return float64(samples[len(samples)*q/100].Nanoseconds())
	}
	rlsP50, baseP50 := p(rlsSamples, 50), p(baseSamples, 50)
	b.ReportMetric(rlsP50, "rls-p50-ns")
	b.ReportMetric(baseP50, "baseline-p50-ns")
	b.ReportMetric(p(rlsSamples, 99), "rls-p99-ns")
	b.ReportMetric(p(baseSamples, 99), "baseline-p99-ns")
	b.ReportMetric(rlsP50/baseP50, "p50-ratio")
}
