package httpapi

import (
	"context"
	"sync"
	"time"
)

// readyCacheTTL is how long one database check answers /readyz. However
// often /readyz is asked (every replica's healthcheck, a deploy's proof, or
// anyone through the proxy), it costs the database at most one SELECT 1 per
// replica and TTL, so it cannot be used to flood the database.
const readyCacheTTL = time.Second

// readyCheck runs ping at most once per ttl: the first caller after the
// cached result expired runs it, concurrent callers wait for that one and
// share its result.
type readyCheck struct {
	ping    func(context.Context) error
	ttl     time.Duration
	timeout time.Duration

	mu  sync.Mutex
	at  time.Time // when err was found; zero before the first check
	err error
}

func (r *readyCheck) check(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.at.IsZero() && time.Since(r.at) < r.ttl {
		return r.err
	}
	// The answer is shared: a client that hangs up must not turn it into
	// context.Canceled for everyone else.
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.timeout)
	defer cancel()
	r.err = r.ping(pctx)
	r.at = time.Now()
	return r.err
}
