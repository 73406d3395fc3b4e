package auth

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	tenantv1 "github.com/forgeapps/backbone/pkg/gen/forge/tenant/v1"
	"github.com/forgeapps/backbone/pkg/owner"
)

// testFeed is a feed a test switches by hand.
type testFeed struct {
	mu    sync.Mutex
	epoch uint64
	live  bool
}

func (f *testFeed) State() (uint64, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.epoch, f.live
}

func (f *testFeed) set(epoch uint64, live bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.epoch, f.live = epoch, live
}

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func principal(sessionID string) Principal {
	return Principal{Owner: owner.Owner{ID: owner.New(), HomeRegion: owner.USEast}, SessionID: sessionID,
		Status: tenantv1.AccountStatus_ACCOUNT_STATUS_ACTIVE}
}

func TestCache(t *testing.T) {
	type env struct {
		c    *Cache
		feed *testFeed
		clk  *clock
	}
	setup := func(ttl time.Duration, size int) env {
		feed := &testFeed{live: true}
		clk := &clock{now: time.Unix(1_800_000_000, 0)}
		return env{c: NewCache(CacheConfig{TTL: ttl, MaxSize: size, Feed: feed, Now: clk.Now}), feed: feed, clk: clk}
	}
	k1, k2 := keyOf(KindSession, "token-1"), keyOf(KindSession, "token-2")
	tests := []struct {
		name string
		run  func(t *testing.T, e env)
	}{
		{name: "hit within the TTL, miss after", run: func(t *testing.T, e env) {
			p := principal("s1")
			e.c.Put(k1, p, time.Time{}, e.c.Begin())
			got, ok := e.c.Get(k1)
			require.True(t, ok)
			require.Equal(t, p, got)
			e.clk.advance(5 * time.Second)
			_, ok = e.c.Get(k1)
			require.False(t, ok)
		}},
		{name: "never past the credential's own expiry", run: func(t *testing.T, e env) {
			e.c.Put(k1, principal("s1"), e.clk.Now().Add(time.Second), e.c.Begin())
			e.clk.advance(time.Second)
			_, ok := e.c.Get(k1)
			require.False(t, ok)
		}},
		{name: "drop a session", run: func(t *testing.T, e env) {
			e.c.Put(k1, principal("s1"), time.Time{}, e.c.Begin())
			e.c.Put(k2, principal("s2"), time.Time{}, e.c.Begin())
			e.c.DropSession("s1")
			_, ok := e.c.Get(k1)
			require.False(t, ok)
			_, ok = e.c.Get(k2)
			require.True(t, ok, "other sessions stay")
		}},
		{name: "drop an owner", run: func(t *testing.T, e env) {
			p1, p2 := principal("s1"), principal("s2")
			p2.Owner = p1.Owner
			e.c.Put(k1, p1, time.Time{}, e.c.Begin())
			e.c.Put(k2, p2, time.Time{}, e.c.Begin())
			e.c.DropOwner(p1.Owner.ID)
			require.Zero(t, e.c.Len())
		}},
		{name: "an answer fetched across a revocation is not stored", run: func(t *testing.T, e env) {
			ticket := e.c.Begin()
			e.c.DropSession("s1") // the revocation lands while Authenticate is in flight
			e.c.Put(k1, principal("s1"), time.Time{}, ticket)
			_, ok := e.c.Get(k1)
			require.False(t, ok)
		}},
		{name: "nothing is served while the feed is down", run: func(t *testing.T, e env) {
			e.c.Put(k1, principal("s1"), time.Time{}, e.c.Begin())
			e.feed.set(0, false)
			_, ok := e.c.Get(k1)
			require.False(t, ok)
			e.c.Put(k2, principal("s2"), time.Time{}, e.c.Begin())
			e.feed.set(0, true)
			_, ok = e.c.Get(k2)
			require.False(t, ok, "nothing is stored while the feed is down")
		}},
		{name: "entries from before a feed disruption are not served", run: func(t *testing.T, e env) {
			e.c.Put(k1, principal("s1"), time.Time{}, e.c.Begin())
			e.feed.set(1, true)
			_, ok := e.c.Get(k1)
			require.False(t, ok)
		}},
		{name: "an answer fetched across a disruption is not stored", run: func(t *testing.T, e env) {
			ticket := e.c.Begin()
			e.feed.set(1, true)
			e.c.Put(k1, principal("s1"), time.Time{}, ticket)
			_, ok := e.c.Get(k1)
			require.False(t, ok)
		}},
		{name: "bounded size", run: func(t *testing.T, e env) {
			for i := range 50 {
				e.c.Put(keyOf(KindSession, string(rune('a'+i))), principal(""), time.Time{}, e.c.Begin())
			}
			require.LessOrEqual(t, e.c.Len(), 10)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.run(t, setup(5*time.Second, 10)) })
	}
	t.Run("zero TTL stores nothing", func(t *testing.T) {
		e := setup(0, 10)
		e.c.Put(k1, principal("s1"), time.Time{}, e.c.Begin())
		_, ok := e.c.Get(k1)
		require.False(t, ok)
	})
}

func TestCredentialKeysDoNotHoldTheToken(t *testing.T) {
	k := keyOf(KindSession, "fgs_secret")
	require.NotContains(t, string(k[:]), "secret")
	require.NotEqual(t, keyOf(KindIDToken, "x"), keyOf(KindSession, "x"), "kinds are keyed apart")
}
