package appcache_test

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/forgeapps/backbone/pkg/owner"
	"github.com/forgeapps/backbone/pkg/secret"

	"github.com/forgeapps/backbone/services/sandbox-origin/internal/appcache"
	"github.com/forgeapps/backbone/services/sandbox-origin/internal/origin"
)

type source struct {
	mu      sync.Mutex
	fetches map[uuid.UUID]int
	owners  map[uuid.UUID]owner.ID
	size    int
	block   chan struct{} // when set, Fetch waits on it
	version atomic.Int32
}

func newSource() *source {
	return &source{fetches: map[uuid.UUID]int{}, owners: map[uuid.UUID]owner.ID{}, size: 10}
}

func (s *source) cfg() appcache.Source {
	return appcache.Source{
		Fetch: func(ctx context.Context, id uuid.UUID) (*appcache.App, error) {
			s.mu.Lock()
			s.fetches[id]++
			o, ok := s.owners[id]
			block, size := s.block, s.size
			s.mu.Unlock()
			version := s.version.Load() // the state apps answers from when asked
			if block != nil {
				<-block
			}
			if !ok {
				return nil, appcache.ErrNotFound
			}
			return &appcache.App{ID: id, Owner: o, Visibility: origin.VisibilityPublic, Version: version,
				Files: map[string]*appcache.File{"index.html": appcache.NewFile("index.html", "", []byte(strings.Repeat("a", size)))}}, nil
		},
		CheckViewer: func(context.Context, uuid.UUID, owner.ID) (bool, error) { return true, nil },
		CheckShareToken: func(context.Context, uuid.UUID, secret.Value) (time.Time, bool, error) {
			return time.Time{}, false, nil
		},
	}
}

func (s *source) add(o owner.ID) uuid.UUID {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := uuid.New()
	s.owners[id] = o
	return id
}

func (s *source) count(id uuid.UUID) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fetches[id]
}

func TestCacheBoundsAndExpiry(t *testing.T) {
	now := time.Now()
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); defer mu.Unlock(); now = now.Add(d) }
	src := newSource()
	c, err := appcache.New(appcache.Config{Source: src.cfg(), TTL: time.Minute, NegativeTTL: time.Second, MaxApps: 3, MaxBytes: 1 << 20, Now: clock})
	require.NoError(t, err)
	ctx := context.Background()
	o := owner.New()

	var ids []uuid.UUID
	for range 5 {
		id := src.add(o)
		ids = append(ids, id)
		_, err := c.Get(ctx, id)
		require.NoError(t, err)
	}
	apps, _ := c.Stats()
	require.Equal(t, 3, apps, "count bound")
	_, err = c.Get(ctx, ids[0])
	require.NoError(t, err)
	require.Equal(t, 2, src.count(ids[0]), "the least recently used was evicted")
	_, err = c.Get(ctx, ids[4])
	require.NoError(t, err)
	require.Equal(t, 1, src.count(ids[4]), "a recent one was kept")

	advance(61 * time.Second)
	_, err = c.Get(ctx, ids[4])
	require.NoError(t, err)
	require.Equal(t, 2, src.count(ids[4]), "the TTL bounds staleness")

	unknown := uuid.New()
	for range 3 {
		_, err = c.Get(ctx, unknown)
		require.ErrorIs(t, err, appcache.ErrNotFound)
	}
	require.Equal(t, 1, src.count(unknown), "not served is remembered briefly")
	advance(2 * time.Second)
	_, err = c.Get(ctx, unknown)
	require.ErrorIs(t, err, appcache.ErrNotFound)
	require.Equal(t, 2, src.count(unknown))
}

func TestCacheByteBound(t *testing.T) {
	src := newSource()
	src.size = 100 << 10
	c, err := appcache.New(appcache.Config{Source: src.cfg(), MaxBytes: 1 << 20, MaxApps: 1000})
	require.NoError(t, err)
	o := owner.New()
	for range 30 {
		_, err := c.Get(context.Background(), src.add(o))
		require.NoError(t, err)
	}
	apps, bytes := c.Stats()
	require.LessOrEqual(t, bytes, int64(1<<20))
	require.Less(t, apps, 30)

	src.size = 300 << 10 // over a quarter of the bound: served, never kept
	big := src.add(o)
	for range 2 {
		e, err := c.Get(context.Background(), big)
		require.NoError(t, err)
		require.Len(t, e.App.Files["index.html"].Content, 300<<10)
	}
	require.Equal(t, 2, src.count(big))
}

func TestCacheInvalidation(t *testing.T) {
	src := newSource()
	c, err := appcache.New(appcache.Config{Source: src.cfg()})
	require.NoError(t, err)
	ctx := context.Background()
	a, b := owner.New(), owner.New()
	a1, a2, b1 := src.add(a), src.add(a), src.add(b)
	for _, id := range []uuid.UUID{a1, a2, b1} {
		_, err := c.Get(ctx, id)
		require.NoError(t, err)
	}
	c.Invalidate(a1)
	for _, id := range []uuid.UUID{a1, a2, b1} {
		_, err := c.Get(ctx, id)
		require.NoError(t, err)
	}
	require.Equal(t, []int{2, 1, 1}, []int{src.count(a1), src.count(a2), src.count(b1)})
	c.InvalidateOwner(a)
	for _, id := range []uuid.UUID{a1, a2, b1} {
		_, err := c.Get(ctx, id)
		require.NoError(t, err)
	}
	require.Equal(t, []int{3, 2, 1}, []int{src.count(a1), src.count(a2), src.count(b1)})
	c.Flush()
	_, err = c.Get(ctx, b1)
	require.NoError(t, err)
	require.Equal(t, 2, src.count(b1))
}

// TestCacheInvalidationDuringAFill: a fetch that started before an invalidation must not be
// stored, and a request arriving after the invalidation must not share its answer.
func TestCacheInvalidationDuringAFill(t *testing.T) {
	src := newSource()
	c, err := appcache.New(appcache.Config{Source: src.cfg()})
	require.NoError(t, err)
	ctx := context.Background()
	id := src.add(owner.New())
	src.mu.Lock()
	src.block = make(chan struct{})
	block := src.block
	src.mu.Unlock()

	src.version.Store(1)
	first := make(chan *appcache.Entry)
	go func() {
		e, err := c.Get(ctx, id)
		require.NoError(t, err)
		first <- e
	}()
	require.Eventually(t, func() bool { return src.count(id) == 1 }, 5*time.Second, time.Millisecond)
	c.Invalidate(id) // the event arrives while apps is answering the old state
	src.version.Store(2)
	second := make(chan *appcache.Entry)
	go func() {
		e, err := c.Get(ctx, id)
		require.NoError(t, err)
		second <- e
	}()
	require.Eventually(t, func() bool { return src.count(id) == 2 }, 5*time.Second, time.Millisecond,
		"the request after the invalidation starts its own fetch")
	close(block)
	require.EqualValues(t, 1, (<-first).App.Version)
	require.EqualValues(t, 2, (<-second).App.Version)
	src.mu.Lock()
	src.block = nil
	src.mu.Unlock()
	e, err := c.Get(ctx, id)
	require.NoError(t, err)
	require.EqualValues(t, 2, e.App.Version, "the stale answer was never stored")
}
