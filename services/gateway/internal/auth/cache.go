package auth

import (
	"crypto/sha256"
	"sync"
	"time"

	"github.com/forgeapps/backbone/pkg/owner"
)

// Feed is the revocation feed the cache relies on (the tenant.sessions.revoked consumer of
// this replica). The cache serves entries only while the feed is live, and only entries
// stored during the feed's current epoch: an event missed while the feed was down can
// therefore never leave a revoked session in the cache.
type Feed interface {
	// State returns the feed's epoch (it changes whenever events may have been missed: a
	// reconnect, a restarted consumer) and whether it is live now.
	State() (epoch uint64, live bool)
}

// Cache keeps Authenticate answers for a few seconds. Keys are SHA-256 digests of the
// credential, so the cache never holds a token. Revocations drop entries synchronously
// (DropSession, DropOwner); an answer fetched while a drop happened is not stored, so a
// revocation racing an Authenticate call cannot be undone by it.
//
// The zero TTL turns the cache off (every request asks the tenant service).
type Cache struct {
	ttl  time.Duration
	max  int
	now  func() time.Time
	feed Feed

	mu        sync.Mutex
	entries   map[cacheKey]*cacheEntry
	bySession map[string]cacheKey
	byOwner   map[owner.ID]map[cacheKey]struct{}
	// drops counts drops; Begin records it and Put refuses to store when it moved.
	drops uint64
}

type cacheKey [sha256.Size]byte

type cacheEntry struct {
	p         Principal
	expires   time.Time
	feedEpoch uint64
}

// CacheConfig configures a Cache.
type CacheConfig struct {
	TTL     time.Duration
	MaxSize int
	// Feed is required when TTL > 0.
	Feed Feed
	// Now is the clock; nil is time.Now.
	Now func() time.Time
}

// NewCache returns a cache; a TTL of 0 or a nil feed returns a cache that stores nothing.
func NewCache(cfg CacheConfig) *Cache {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Feed == nil {
		cfg.TTL = 0
	}
	return &Cache{
		ttl:       cfg.TTL,
		max:       max(cfg.MaxSize, 1),
		now:       cfg.Now,
		feed:      cfg.Feed,
		entries:   map[cacheKey]*cacheEntry{},
		bySession: map[string]cacheKey{},
		byOwner:   map[owner.ID]map[cacheKey]struct{}{},
	}
}

func keyOf(kind Kind, value string) cacheKey {
	h := sha256.New()
	h.Write([]byte{byte(kind)})
	h.Write([]byte(value))
	var k cacheKey
	h.Sum(k[:0])
	return k
}

// Ticket is taken before asking the tenant service and handed to Put with the answer.
type Ticket struct {
	drops     uint64
	feedEpoch uint64
	live      bool
}

// Begin returns the ticket for one lookup.
func (c *Cache) Begin() Ticket {
	if c.ttl == 0 {
		return Ticket{}
	}
	epoch, live := c.feed.State()
	c.mu.Lock()
	defer c.mu.Unlock()
	return Ticket{drops: c.drops, feedEpoch: epoch, live: live}
}

// Get returns the cached principal of a credential.
func (c *Cache) Get(k cacheKey) (Principal, bool) {
	if c.ttl == 0 {
		return Principal{}, false
	}
	epoch, live := c.feed.State()
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[k]
	if !ok {
		return Principal{}, false
	}
	if !live || e.feedEpoch != epoch || !c.now().Before(e.expires) {
		c.removeLocked(k, e)
		return Principal{}, false
	}
	return e.p, true
}

// Put stores p until min(now+TTL, notAfter), unless a drop or a feed change happened since
// the ticket was taken.
func (c *Cache) Put(k cacheKey, p Principal, notAfter time.Time, t Ticket) {
	if c.ttl == 0 || !t.live {
		return
	}
	epoch, live := c.feed.State()
	if !live || epoch != t.feedEpoch {
		return
	}
	now := c.now()
	expires := now.Add(c.ttl)
	if !notAfter.IsZero() && notAfter.Before(expires) {
		expires = notAfter
	}
	if !now.Before(expires) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.drops != t.drops {
		return
	}
	if old, ok := c.entries[k]; ok {
		c.removeLocked(k, old)
	}
	if len(c.entries) >= c.max {
		c.evictLocked(now)
	}
	c.entries[k] = &cacheEntry{p: p, expires: expires, feedEpoch: t.feedEpoch}
	if p.SessionID != "" {
		c.bySession[p.SessionID] = k
	}
	keys := c.byOwner[p.Owner.ID]
	if keys == nil {
		keys = map[cacheKey]struct{}{}
		c.byOwner[p.Owner.ID] = keys
	}
	keys[k] = struct{}{}
}

// DropSession forgets a session (it was revoked).
func (c *Cache) DropSession(sessionID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.drops++
	if k, ok := c.bySession[sessionID]; ok {
		if e, ok := c.entries[k]; ok {
			c.removeLocked(k, e)
		}
		delete(c.bySession, sessionID)
	}
}

// DropOwner forgets every credential of a tenant (all its sessions were revoked, or its
// status changed).
func (c *Cache) DropOwner(id owner.ID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.drops++
	for k := range c.byOwner[id] {
		if e, ok := c.entries[k]; ok {
			c.removeLocked(k, e)
		}
	}
	delete(c.byOwner, id)
}

// Len is the number of entries (for tests and metrics).
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

func (c *Cache) removeLocked(k cacheKey, e *cacheEntry) {
	delete(c.entries, k)
	if e.p.SessionID != "" && c.bySession[e.p.SessionID] == k {
		delete(c.bySession, e.p.SessionID)
	}
	if keys := c.byOwner[e.p.Owner.ID]; keys != nil {
		delete(keys, k)
		if len(keys) == 0 {
			delete(c.byOwner, e.p.Owner.ID)
		}
	}
}

// evictLocked makes room: expired entries first, then arbitrary ones (map order), which only
// costs the evicted credentials one more Authenticate call.
func (c *Cache) evictLocked(now time.Time) {
	for k, e := range c.entries {
		if !now.Before(e.expires) {
			c.removeLocked(k, e)
		}
	}
	for k, e := range c.entries {
		if len(c.entries) < c.max {
			return
		}
		c.removeLocked(k, e)
	}
}
