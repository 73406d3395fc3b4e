package vault

import (
	"crypto/cipher"
	"sync"
	"time"

	"github.com/forgeapps/backbone/pkg/owner"
)

// keyset is one tenant's unwrapped keys as cached: the versions that still decrypt, and which
// one encrypts. It is immutable once cached; a change replaces or drops it.
type keyset struct {
	current    uint32
	minDecrypt uint32
	aeads      map[uint32]cipher.AEAD
	bufs       *aadBuffers
	// loaded is when the keys were cached; expiry drops them when the TTL ends.
	loaded time.Time
	expiry *time.Timer
}

// keyCache holds unwrapped tenant keys in memory, at most max tenants, each for at most ttl
// (a runtime timer drops each entry when its time is up, so a hit reads no clock).
// It is what makes a decrypt cost little more than the cipher itself. Entries are dropped at
// once when a tenant's keys are shredded, rotated or retired in this process; other replicas
// are kept honest by the audit insert of every use, which checks the stored policy (see
// Store.RecordUse), so a stale entry can never outlive a shred in effect.
//
// Go cannot promise to scrub an AES key schedule from memory: dropping the entry makes it
// unreachable, and the raw key bytes are cleared as soon as the AEAD is built.
type keyCache struct {
	max int
	ttl time.Duration
	now func() time.Time
	// fake is set when the clock is injected (tests): timers do not follow it, so a hit
	// checks the entry's age against it instead.
	fake bool

	// m maps owner.ID to *keyset. Reads are lock-free (sync.Map), which keeps a cache hit
	// cheap next to the cipher; every write holds mu, so n and gen stay exact.
	m  sync.Map
	mu sync.Mutex
	n  int
	// gen counts drops: a load that started before a drop must not cache what it read, or a
	// shred racing a load would leave the shredded keys cached.
	gen uint64
}

func newKeyCache(max int, ttl time.Duration, now func() time.Time) *keyCache {
	c := &keyCache{max: max, ttl: ttl, now: now, fake: now != nil}
	if now == nil {
		c.now = time.Now
	}
	return c
}

func (c *keyCache) get(o owner.ID) (*keyset, bool) {
	v, ok := c.m.Load(o)
	if !ok {
		return nil, false
	}
	ks := v.(*keyset)
	if c.fake && c.now().Sub(ks.loaded) >= c.ttl {
		return nil, false
	}
	return ks, true
}

// generation returns the drop counter, to pass to put.
func (c *keyCache) generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

// put caches ks unless a drop happened since gen was read.
func (c *keyCache) put(o owner.ID, ks *keyset, gen uint64) {
	if c.max <= 0 || c.ttl <= 0 {
		return
	}
	now := c.now()
	ks.loaded = now
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return
	}
	if prev, ok := c.m.Load(o); ok {
		stop(prev.(*keyset))
	} else {
		if c.n >= c.max {
			c.evictLocked(now)
		}
		c.n++
	}
	c.m.Store(o, ks)
	if !c.fake {
		ks.expiry = time.AfterFunc(c.ttl, func() { c.expire(o, ks) })
	}
}

// expire drops ks if it is still o's entry.
func (c *keyCache) expire(o owner.ID, ks *keyset) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m.CompareAndDelete(o, ks) {
		c.n--
	}
}

func stop(ks *keyset) {
	if ks.expiry != nil {
		ks.expiry.Stop()
	}
}

// evictLocked drops expired entries, or else the one closest to expiry (the oldest loaded).
func (c *keyCache) evictLocked(now time.Time) {
	var (
		oldest   owner.ID
		earliest time.Time
		found    bool
	)
	c.m.Range(func(k, v any) bool {
		o, ks := k.(owner.ID), v.(*keyset)
		if now.Sub(ks.loaded) >= c.ttl {
			c.m.Delete(o)
			stop(ks)
			c.n--
			return true
		}
		if !found || ks.loaded.Before(earliest) {
			oldest, earliest, found = o, ks.loaded, true
		}
		return true
	})
	if c.n >= c.max && found {
		if v, ok := c.m.LoadAndDelete(oldest); ok {
			stop(v.(*keyset))
		}
		c.n--
	}
}

func (c *keyCache) drop(o owner.ID) {
	c.mu.Lock()
	if v, ok := c.m.LoadAndDelete(o); ok {
		stop(v.(*keyset))
		c.n--
	}
	c.gen++
	c.mu.Unlock()
}

func (c *keyCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}
