package events

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"time"
)

// outage logs a dependency failure once when it starts and once when it ends, however many
// retries happen in between, so a NATS or Postgres restart does not flood the log.
type outage struct {
	log   *slog.Logger
	what  string // the failing thing, a constant ("nats publish", "postgres claim")
	since time.Time
	fails int
}

// fail records one failed attempt; only the first of an outage is logged.
func (o *outage) fail(ctx context.Context, err error) {
	if o.fails == 0 {
		o.since = time.Now()
		o.log.WarnContext(ctx, "events: dependency unavailable, retrying", "what", o.what, "error", err)
	} else {
		o.log.DebugContext(ctx, "events: retry failed", "what", o.what, "attempt", o.fails+1, "error", err)
	}
	o.fails++
}

// ok records a success; it logs the end of an outage if one was running.
func (o *outage) ok(ctx context.Context) {
	if o.fails > 0 {
		o.log.InfoContext(ctx, "events: dependency recovered", "what", o.what,
			"failed_attempts", o.fails, "down_for", time.Since(o.since).Round(time.Millisecond))
	}
	o.fails = 0
}

// backoff is a capped exponential delay with jitter for retrying after transient errors.
type backoff struct {
	min, max time.Duration
	cur      time.Duration
}

// next returns the next delay: doubled each time up to max, with up to 25% jitter taken off
// so replicas that failed together do not retry in lockstep.
func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = b.min
	} else {
		b.cur = min(b.cur*2, b.max)
	}
	jitter := time.Duration(rand.Int64N(int64(b.cur)/4 + 1))
	return b.cur - jitter
}

func (b *backoff) reset() { b.cur = 0 }

// sleepCtx waits d or until ctx ends; it reports whether the wait completed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
