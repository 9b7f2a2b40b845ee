package server

import (
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
)

// connLimiter bounds open connections. Past the bound a new connection is
// accepted and closed at once, so the client learns straight away instead
// of waiting in the kernel's backlog (golang.org/x/net/netutil's
// LimitListener blocks Accept instead, which is why it is not used here).
type connLimiter struct {
	max     int
	metrics *Metrics
	log     *slog.Logger
	active  atomic.Int64
	logged  sampler
}

func (c *connLimiter) wrap(lis net.Listener) net.Listener {
	if c == nil || c.max <= 0 {
		return lis
	}
	return &limitedListener{Listener: lis, c: c}
}

type limitedListener struct {
	net.Listener
	c *connLimiter
}

// Accept returns the next connection within the bound, closing those past it.
func (l *limitedListener) Accept() (net.Conn, error) {
	for {
		conn, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.c.active.Add(1) <= int64(l.c.max) {
			return &countedConn{Conn: conn, c: l.c}, nil
		}
		l.c.active.Add(-1)
		_ = conn.Close()
		l.c.metrics.refusedStream("connections")
		if l.c.logged.allow() {
			l.c.log.Warn("refused a new connection: the gateway is at its bound on connections",
				"limit", l.c.max, "similar_lines_dropped", l.c.logged.dropped())
		}
	}
}

type countedConn struct {
	net.Conn
	c    *connLimiter
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() { c.c.active.Add(-1) })
	return c.Conn.Close()
}
