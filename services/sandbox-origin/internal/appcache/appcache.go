// Package appcache keeps the files of the apps this replica serves, so that a page load does
// not cost a round trip to apps per file, while making sure a revoked app stops being served at
// once: entries are dropped by the invalidation events, bounded in count and bytes (least
// recently used goes first), and expire after a short TTL in case an event is ever lost.
package appcache

import (
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
	"golang.org/x/sync/singleflight"

	"github.com/forgeapps/backbone/pkg/owner"
	"github.com/forgeapps/backbone/pkg/secret"

	"github.com/forgeapps/backbone/services/sandbox-origin/internal/origin"
)

// ErrNotFound means the app is not served: it does not exist, has no version, was deleted,
// or its owner's account is being deleted. Every such case looks the same to a browser.
var ErrNotFound = errors.New("app not served")

// App is what apps says about an app to serve.
type App struct {
	ID         uuid.UUID
	Owner      owner.ID
	Visibility origin.Visibility
	Version    int32
	Files      map[string]*File
}

// File is one file of the served version.
type File struct {
	Path        string
	ContentType string
	Content     []byte
	// ETag is a strong validator derived from the content.
	ETag string
}

// NewFile builds a File, computing its ETag.
func NewFile(path, contentType string, content []byte) *File {
	sum := sha256.Sum256(content)
	return &File{Path: path, ContentType: contentType, Content: content, ETag: `"` + hex.EncodeToString(sum[:16]) + `"`}
}

// Size is the bytes an app holds in the cache.
func (a *App) Size() int64 {
	var n int64 = 256
	for p, f := range a.Files {
		n += int64(len(p)+len(f.Content)+len(f.ContentType)+len(f.ETag)) + 64
	}
	return n
}

// Source is where the cache gets what it does not hold; each call may go to another service.
type Source struct {
	// Fetch returns the app to serve, or ErrNotFound.
	Fetch func(ctx context.Context, app uuid.UUID) (*App, error)
	// CheckViewer reports whether viewer is the owner or a collaborator of app.
	CheckViewer func(ctx context.Context, app uuid.UUID, viewer owner.ID) (bool, error)
	// CheckShareToken reports whether token opens app, and until when.
	CheckShareToken func(ctx context.Context, app uuid.UUID, token secret.Value) (time.Time, bool, error)
}

// Config configures a Cache.
type Config struct {
	Source Source
	// TTL is the longest an entry is used without asking apps again; 0 means 30s.
	TTL time.Duration
	// NegativeTTL is how long "not served" is remembered (so unknown labels cannot make every
	// request a call to apps); 0 means 2s.
	NegativeTTL time.Duration
	// MaxBytes and MaxApps bound the cache; 0 means 256 MiB and 1000. An app larger than a
	// quarter of MaxBytes is served without being cached.
	MaxBytes int64
	MaxApps  int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Cache holds apps by ID.
//
// Invalidation is exact even against fills in flight: every invalidation bumps an epoch, a
// fill started under an older epoch is not stored, and requests arriving after an
// invalidation never join a fill that started before it (the singleflight key carries the
// epoch). So the first request that starts after an invalidation returns is decided on fresh
// answers from apps.
type Cache struct {
	cfg    Config
	flight singleflight.Group

	mu      sync.Mutex
	epoch   uint64
	entries map[uuid.UUID]*list.Element // of *Entry
	lru     *list.List                  // front: most recently used
	bytes   int64
}

// New returns an empty cache.
func New(cfg Config) (*Cache, error) {
	if cfg.Source.Fetch == nil || cfg.Source.CheckViewer == nil || cfg.Source.CheckShareToken == nil {
		return nil, errors.New("appcache: incomplete source")
	}
	if cfg.TTL == 0 {
		cfg.TTL = 30 * time.Second
	}
	if cfg.NegativeTTL == 0 {
		cfg.NegativeTTL = 2 * time.Second
	}
	if cfg.MaxBytes == 0 {
		cfg.MaxBytes = 256 << 20
	}
	if cfg.MaxApps == 0 {
		cfg.MaxApps = 1000
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Cache{cfg: cfg, entries: map[uuid.UUID]*list.Element{}, lru: list.New()}, nil
}

// maxMemo bounds the remembered viewer and share-token answers of one entry.
const maxMemo = 256

// Entry is one cached app (or the memory that it is not served) with the access answers apps
// gave for it. Both die with the entry, so an invalidation also forgets who was allowed.
type Entry struct {
	App   *App // nil when not served
	id    uuid.UUID
	owner owner.ID
	size  int64
	until time.Time
	src   *Source

	mu      sync.Mutex
	viewers map[owner.ID]bool
	shares  map[[32]byte]time.Time // token hash -> link expiry; zero time: refused
}

// Get returns the entry of app, filling it from the source when missing or expired. It returns
// ErrNotFound for an app that is not served.
func (c *Cache) Get(ctx context.Context, app uuid.UUID) (*Entry, error) {
	now := c.cfg.Now()
	c.mu.Lock()
	epoch := c.epoch
	if el, ok := c.entries[app]; ok {
		e := el.Value.(*Entry)
		if now.Before(e.until) {
			c.lru.MoveToFront(el)
			c.mu.Unlock()
			if e.App == nil {
				return nil, ErrNotFound
			}
			return e, nil
		}
		c.removeLocked(el)
	}
	c.mu.Unlock()

	v, err, _ := c.flight.Do(app.String()+"/"+strconv.FormatUint(epoch, 10), func() (any, error) {
		// The fill outlives a caller that gives up: others may be waiting on it.
		return c.fill(context.WithoutCancel(ctx), app, epoch)
	})
	if err != nil {
		return nil, err
	}
	e := v.(*Entry)
	if e.App == nil {
		return nil, ErrNotFound
	}
	return e, nil
}

func (c *Cache) fill(ctx context.Context, id uuid.UUID, epoch uint64) (*Entry, error) {
	a, err := c.cfg.Source.Fetch(ctx, id)
	now := c.cfg.Now()
	e := &Entry{id: id, src: &c.cfg.Source, viewers: map[owner.ID]bool{}, shares: map[[32]byte]time.Time{}}
	switch {
	case errors.Is(err, ErrNotFound):
		e.until = now.Add(c.cfg.NegativeTTL)
		e.size = 128
	case err != nil:
		return nil, err
	default:
		e.App, e.owner, e.size = a, a.Owner, a.Size()
		e.until = now.Add(c.cfg.TTL)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.epoch != epoch || e.size > c.cfg.MaxBytes/4 {
		// An invalidation ran during the fetch (the answer may predate it), or the app is too
		// big to keep: use the answer for the requests that asked, store nothing.
		return e, nil
	}
	if el, ok := c.entries[id]; ok {
		c.removeLocked(el)
	}
	c.entries[id] = c.lru.PushFront(e)
	c.bytes += e.size
	for c.lru.Len() > c.cfg.MaxApps || c.bytes > c.cfg.MaxBytes {
		c.removeLocked(c.lru.Back())
	}
	return e, nil
}

func (c *Cache) removeLocked(el *list.Element) {
	e := el.Value.(*Entry)
	c.lru.Remove(el)
	c.bytes -= e.size
	if c.entries[e.id] == el {
		delete(c.entries, e.id)
	}
}

// Invalidate forgets app.
func (c *Cache) Invalidate(app uuid.UUID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch++
	if el, ok := c.entries[app]; ok {
		c.removeLocked(el)
	}
}

// InvalidateOwner forgets every app of o (and every "not served" memory, whose owner may
// be unknown).
func (c *Cache) InvalidateOwner(o owner.ID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch++
	for el := c.lru.Front(); el != nil; {
		next := el.Next()
		if e := el.Value.(*Entry); e.App == nil || e.owner == o {
			c.removeLocked(el)
		}
		el = next
	}
}

// Flush forgets everything (after a gap in the invalidation stream).
func (c *Cache) Flush() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.epoch++
	c.entries = map[uuid.UUID]*list.Element{}
	c.lru.Init()
	c.bytes = 0
}

// Stats reports the cache's size, for tests and metrics.
func (c *Cache) Stats() (apps int, bytes int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len(), c.bytes
}

// ViewerAllowed reports whether viewer may still view the entry's app, asking apps once per
// entry lifetime.
func (e *Entry) ViewerAllowed(ctx context.Context, viewer owner.ID) (bool, error) {
	e.mu.Lock()
	ok, known := e.viewers[viewer]
	e.mu.Unlock()
	if known {
		return ok, nil
	}
	ok, err := e.src.CheckViewer(ctx, e.App.ID, viewer)
	if err != nil {
		return false, err
	}
	e.mu.Lock()
	if len(e.viewers) >= maxMemo {
		clear(e.viewers)
	}
	e.viewers[viewer] = ok
	e.mu.Unlock()
	return ok, nil
}

// ShareAllowed reports whether token still opens the entry's app at now, asking apps once
// per entry lifetime.
func (e *Entry) ShareAllowed(ctx context.Context, token secret.Value, now time.Time) (bool, time.Time, error) {
	key := sha256.Sum256([]byte(token.Reveal()))
	e.mu.Lock()
	exp, known := e.shares[key]
	e.mu.Unlock()
	if !known {
		var ok bool
		var err error
		exp, ok, err = e.src.CheckShareToken(ctx, e.App.ID, token)
		if err != nil {
			return false, time.Time{}, err
		}
		if !ok {
			exp = time.Time{}
		}
		e.mu.Lock()
		if len(e.shares) >= maxMemo {
			clear(e.shares)
		}
		e.shares[key] = exp
		e.mu.Unlock()
	}
	return !exp.IsZero() && now.Before(exp), exp, nil
}
