package server_test

import (
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/forgeapps/backbone/pkg/owner"

	"github.com/forgeapps/backbone/services/data-lifecycle/internal/lifecycle"
)

func p99(d []time.Duration) time.Duration {
	slices.Sort(d)
	return d[len(d)*99/100]
}

// BenchmarkPurge100k purges 100k rows of one tenant (data-lifecycle's own store, in bounded
// batches) and measures another tenant's read p99 during that purge against the same reads
// without it, in the same run.
func BenchmarkPurge100k(b *testing.B) {
	for range b.N {
		benchPurge(b)
	}
}

func benchPurge(b *testing.B) {
	b.StopTimer()
	h := newHarnessTB(b)
	a, other := owner.New(), owner.New()
	h.request(a)
	otherExport := h.readyExport(other)
	_, err := h.pg.Migrator.Exec(h.ctx, `INSERT INTO exports (owner_id, id, state, created_at, updated_at)
		SELECT $1, gen_random_uuid(), 'cancelled', now(), now() FROM generate_series(1, 100000)`, a)
	require.NoError(b, err)
	_, err = h.pg.Migrator.Exec(h.ctx, `ANALYZE exports`)
	require.NoError(b, err)
	h.clock.Set(t0.Add(lifecycle.PurgeDelay))
	h.tick()
	d, err := h.store.OpenDeletion(h.ctx, a)
	require.NoError(b, err)

	read := func() time.Duration {
		start := time.Now()
		_, err := h.store.GetExport(h.ctx, other, otherExport)
		require.NoError(b, err)
		return time.Since(start)
	}
	var base []time.Duration
	for range 2000 {
		base = append(base, read())
	}
	done := make(chan time.Duration)
	b.StartTimer()
	go func() {
		start := time.Now()
		require.NoError(b, h.w.PurgeOwnStores(h.ctx, a, d.ID))
		done <- time.Since(start)
	}()
	var during []time.Duration
	var took time.Duration
	for took == 0 {
		select {
		case took = <-done:
		default:
			during = append(during, read())
		}
	}
	b.StopTimer()
	defer b.StartTimer()
	var left int
	require.NoError(b, h.pg.Migrator.QueryRow(h.ctx, `SELECT count(*) FROM exports WHERE owner_id = $1`, a).Scan(&left))
	require.Zero(b, left)
	b.ReportMetric(100000/took.Seconds(), "rows/s")
	b.ReportMetric(float64(p99(base).Microseconds())/1000, "p99_read_ms_baseline")
	b.ReportMetric(float64(p99(during).Microseconds())/1000, "p99_read_ms_during_purge")
	b.ReportMetric(float64(p99(during))/float64(p99(base)), "p99_ratio")
	b.ReportMetric(float64(len(during)), "reads_during")
}
