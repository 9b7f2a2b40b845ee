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
			return &countedConn{Conn: conn, c: l.c, remote: newPeerAddr(conn.RemoteAddr())}, nil
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
	c      *connLimiter
	once   sync.Once
	remote net.Addr
}

// RemoteAddr returns the remote address, formatted once (see peerAddr).
func (c *countedConn) RemoteAddr() net.Addr { return c.remote }

// peerAddr is a connection's remote address with its text formatted once:
// grpc-go gives it to every call of the connection (peer.Peer.Addr), and
// every call's log line prints it.
type peerAddr struct {
	net.Addr
	text string
	// token is the last bearer token the connection presented that the
	// callers file accepted (Authenticator).
	token atomic.Pointer[tokenMemo]
}

func newPeerAddr(a net.Addr) net.Addr {
	if a == nil {
		return nil
	}
	return &peerAddr{Addr: a, text: a.String()}
}

func (a *peerAddr) String() string { return a.text }

// Unwrap returns the address as the connection gave it.
func (a *peerAddr) Unwrap() net.Addr { return a.Addr }

func (c *countedConn) Close() error {
	c.once.Do(func() { c.c.active.Add(-1) })
	return c.Conn.Close()
}
