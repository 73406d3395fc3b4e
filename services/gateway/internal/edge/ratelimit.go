package edge

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// limiter is a set of token buckets keyed by client address or tenant, bounded in size so
// that a flood of distinct keys (spoofed IPv6 sources, many tenants) cannot grow it forever.
type limiter struct {
	rate  rate.Limit
	burst int
	max   int
	now   func() time.Time

	mu      sync.Mutex
	buckets map[string]*rate.Limiter
}

func newLimiter(perSecond float64, burst, maxKeys int, now func() time.Time) *limiter {
	return &limiter{rate: rate.Limit(perSecond), burst: burst, max: maxKeys, now: now, buckets: map[string]*rate.Limiter{}}
}

// allow takes one token for key; when there is none it says how long until there is.
func (l *limiter) allow(key string) (ok bool, retryAfter time.Duration) {
	now := l.now()
	l.mu.Lock()
	b := l.buckets[key]
	if b == nil {
		if len(l.buckets) >= l.max {
			l.evictLocked(now)
		}
		b = rate.NewLimiter(l.rate, l.burst)
		l.buckets[key] = b
	}
	l.mu.Unlock()
	res := b.ReserveN(now, 1)
	if !res.OK() {
		return false, time.Second
	}
	if d := res.DelayFrom(now); d > 0 {
		// Refused requests do not consume the future: give the token back.
		res.CancelAt(now)
		return false, d
	}
	return true, 0
}

// evictLocked drops full buckets (their keys have been idle long enough to refill, so
// forgetting them changes nothing), then arbitrary ones if it must.
func (l *limiter) evictLocked(now time.Time) {
	for k, b := range l.buckets {
		if b.TokensAt(now) >= float64(l.burst) {
			delete(l.buckets, k)
		}
	}
	for k := range l.buckets {
		if len(l.buckets) < l.max {
			return
		}
		delete(l.buckets, k)
	}
}
