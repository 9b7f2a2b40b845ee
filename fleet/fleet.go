// Package fleet is the state a fleet of gateway replicas shares through
// Redis: the catalogue's snapshots and the lease that decides which
// replica crawls, per-caller rate limits that hold across the fleet, and
// the fleet's size. Without it every replica works alone.
//
// Redis is reached through github.com/redis/go-redis/v9 and the rate
// limits are GCRA (github.com/go-redis/redis_rate), both well kept: a
// fleet-wide limiter is exactly what a hand-written one gets subtly wrong.
// When Redis is unreachable or slow, every operation fails fast (short
// timeouts) and its callers fall back to what a lone replica does; the
// store notices when Redis is back and sharing resumes on its own.
package fleet

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"

	"github.com/heygen-grpc/heygen-grpc/catalogue"
)

// Defaults of [Options].
const (
	DefaultPrefix      = "heygen-grpc"
	DefaultOpTimeout   = 100 * time.Millisecond
	DefaultBulkTimeout = 5 * time.Second
	// heartbeatEvery is how often a replica says it is alive, and
	// replicaTTL how long after its last heartbeat it counts in the
	// fleet's size.
	heartbeatEvery = 5 * time.Second
	replicaTTL     = 20 * time.Second
	// pingEvery is how often an unreachable Redis is tried again.
	pingEvery = time.Second
	// snapshotTTL keeps a published snapshot at most this long.
	snapshotTTL = 48 * time.Hour
)

// Options configures [Open].
type Options struct {
	// URL is redis://[user@]host:port[/db] or rediss:// for TLS. It must
	// not carry the password (URLs end up in flags, logs and `ps`).
	URL string
	// Password authenticates to Redis (from REDIS_PASSWORD or a file).
	Password string
	// Prefix starts every key (default DefaultPrefix), so several gateways
	// can share one Redis.
	Prefix string
	// OpTimeout bounds one small operation (a rate-limit check, a lease)
	// (default DefaultOpTimeout): a slow Redis must not slow every call.
	OpTimeout time.Duration
	// BulkTimeout bounds loading or publishing a snapshot (default
	// DefaultBulkTimeout).
	BulkTimeout time.Duration
	// Logger receives the store's state changes (default: discard).
	Logger *slog.Logger
	// OnState, if set, is called when Redis becomes reachable or not.
	OnState func(up bool)
}

// Store is a fleet's shared state. It is safe for concurrent use and
// implements catalogue.Shared.
type Store struct {
	rdb     *redis.Client
	limiter *redis_rate.Limiter
	id      string
	prefix  string
	op      time.Duration
	bulk    time.Duration
	log     *slog.Logger
	onState func(bool)

	up        atomic.Bool
	stateMu   sync.Mutex
	fleetSize atomic.Int64
}

var _ catalogue.Shared = (*Store)(nil)

// Open connects to Redis. It does not wait for Redis to answer: a
// gateway starts (and serves alone) while Redis is down.
func Open(opts Options) (*Store, error) {
	u, err := url.Parse(opts.URL)
	if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || u.Host == "" {
		return nil, fmt.Errorf("-redis-url %q: want redis://host:port[/db] or rediss://host:port[/db]", redactURL(opts.URL))
	}
	if _, has := u.User.Password(); has {
		return nil, errors.New("-redis-url must not contain the password: set REDIS_PASSWORD or -redis-password-file")
	}
	ro, err := redis.ParseURL(opts.URL)
	if err != nil {
		return nil, fmt.Errorf("-redis-url: %w", err)
	}
	if opts.Password != "" {
		ro.Password = opts.Password
	}
	if opts.OpTimeout <= 0 {
		opts.OpTimeout = DefaultOpTimeout
	}
	if opts.BulkTimeout <= 0 {
		opts.BulkTimeout = DefaultBulkTimeout
	}
	if opts.Prefix == "" {
		opts.Prefix = DefaultPrefix
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	ro.DialTimeout = 2 * opts.OpTimeout
	ro.ReadTimeout = opts.BulkTimeout
	ro.WriteTimeout = opts.BulkTimeout
	ro.MaxRetries = 0 // the callers decide: fall back, never pile up
	ro.ContextTimeoutEnabled = true
	rdb := redis.NewClient(ro)
	s := &Store{rdb: rdb, limiter: redis_rate.NewLimiter(rdb), id: replicaID(), prefix: opts.Prefix,
		op: opts.OpTimeout, bulk: opts.BulkTimeout, log: opts.Logger, onState: opts.OnState}
	s.fleetSize.Store(1)
	return s, nil
}

// redactURL drops user info from a URL for messages.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	u.User = nil
	return u.String()
}

func replicaID() string {
	host, _ := os.Hostname()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return host + "-" + hex.EncodeToString(b)
}

// ID returns this replica's id in the fleet.
func (s *Store) ID() string { return s.id }

// Close closes the connections.
func (s *Store) Close() error { return s.rdb.Close() }

// Up reports whether Redis answered the last operation.
func (s *Store) Up() bool { return s.up.Load() }

// Size returns the number of replicas seen alive recently (at least 1).
func (s *Store) Size() int { return int(max(s.fleetSize.Load(), 1)) }

// observe records whether an operation reached Redis.
func (s *Store) observe(err error) {
	up := err == nil || errors.Is(err, redis.Nil)
	s.stateMu.Lock()
	changed := s.up.Swap(up) != up
	s.stateMu.Unlock()
	if !changed {
		return
	}
	if up {
		s.log.Info("the fleet's shared store is reachable again: sharing the catalogue and rate limits with the fleet")
	} else {
		s.log.Warn("the fleet's shared store is unreachable: serving alone (local snapshot, local rate limits at the fleet's share) until it is back",
			"error", err)
	}
	if s.onState != nil {
		s.onState(up)
	}
}

// Run says this replica is alive, learns the fleet's size, and notices
// when Redis comes back, until ctx is done.
func (s *Store) Run(ctx context.Context) {
	beat := time.NewTicker(heartbeatEvery)
	defer beat.Stop()
	ping := time.NewTicker(pingEvery)
	defer ping.Stop()
	s.heartbeat(ctx)
	for {
		select {
		case <-ctx.Done():
			return
		case <-beat.C:
			s.heartbeat(ctx)
		case <-ping.C:
			if !s.Up() {
				s.heartbeat(ctx)
			}
		}
	}
}

func (s *Store) heartbeat(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 5*s.op)
	defer cancel()
	key := s.prefix + ":replicas"
	now := time.Now()
	var size *redis.IntCmd
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.ZAdd(ctx, key, redis.Z{Score: float64(now.Unix()), Member: s.id})
		p.ZRemRangeByScore(ctx, key, "-inf", strconv.FormatInt(now.Add(-replicaTTL).Unix(), 10))
		size = p.ZCard(ctx, key)
		p.Expire(ctx, key, 10*replicaTTL)
		return nil
	})
	s.observe(err)
	if err == nil {
		s.fleetSize.Store(max(size.Val(), 1))
	}
}

func (s *Store) key(parts ...string) string {
	k := s.prefix
	for _, p := range parts {
		k += ":" + p
	}
	return k
}

// Snapshots are stored as one value: 8 bytes of build time (unix nanos),
// 32 bytes of SHA-256 of the payload, then the payload.
const snapshotHeader = 8 + sha256.Size

// Load implements catalogue.Shared.
func (s *Store) Load(ctx context.Context, resource string) (time.Time, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, s.bulk)
	defer cancel()
	b, err := s.rdb.Get(ctx, s.key("catalogue", resource, "snapshot")).Bytes()
	s.observe(err)
	switch {
	case errors.Is(err, redis.Nil):
		return time.Time{}, nil, catalogue.ErrNoSharedSnapshot
	case err != nil:
		return time.Time{}, nil, fmt.Errorf("load the shared %s snapshot: %w", resource, err)
	case len(b) < snapshotHeader:
		return time.Time{}, nil, fmt.Errorf("the shared %s snapshot is %d bytes: corrupt", resource, len(b))
	}
	built := time.Unix(0, int64(binary.BigEndian.Uint64(b[:8]))) //nolint:gosec // G115: written from UnixNano below
	payload := b[snapshotHeader:]
	if sum := sha256.Sum256(payload); string(sum[:]) != string(b[8:snapshotHeader]) {
		return time.Time{}, nil, fmt.Errorf("the shared %s snapshot fails its checksum", resource)
	}
	return built, payload, nil
}

// Publish implements catalogue.Shared. An older snapshot never replaces a
// newer one.
func (s *Store) Publish(ctx context.Context, resource string, built time.Time, payload []byte) error {
	ctx, cancel := context.WithTimeout(ctx, s.bulk)
	defer cancel()
	b := make([]byte, snapshotHeader, snapshotHeader+len(payload))
	binary.BigEndian.PutUint64(b, uint64(built.UnixNano()))
	sum := sha256.Sum256(payload)
	copy(b[8:], sum[:])
	b = append(b, payload...)
	err := publishScript.Run(ctx, s.rdb, []string{s.key("catalogue", resource, "snapshot")}, b, int64(snapshotTTL/time.Millisecond)).Err()
	if errors.Is(err, redis.Nil) {
		err = nil
	}
	s.observe(err)
	if err != nil {
		return fmt.Errorf("publish the %s snapshot: %w", resource, err)
	}
	return nil
}

// publishScript sets the snapshot unless the stored one is newer: the
// first 8 bytes are the build time, big-endian, so they compare as bytes.
var publishScript = redis.NewScript(`
local cur = redis.call('GETRANGE', KEYS[1], 0, 7)
if cur ~= '' and cur > string.sub(ARGV[1], 1, 8) then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1`)

// releaseScript deletes a lease only if this replica still holds it.
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`)

// Lease implements catalogue.Shared.
func (s *Store) Lease(ctx context.Context, resource string, ttl time.Duration) (func(), bool, error) {
	key := s.key("catalogue", resource, "lease")
	lctx, cancel := context.WithTimeout(ctx, s.op)
	defer cancel()
	ok, err := s.rdb.SetNX(lctx, key, s.id, ttl).Result()
	s.observe(err)
	if err != nil {
		return nil, false, fmt.Errorf("take the %s crawl lease: %w", resource, err)
	}
	if !ok {
		return nil, false, nil
	}
	release := func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.op)
		defer cancel()
		s.observe(releaseScript.Run(rctx, s.rdb, []string{key}, s.id).Err())
	}
	return release, true, nil
}

// Allow takes one call from caller's fleet-wide budget of perSecond calls
// a second with the given burst (GCRA). An error means Redis could not be
// asked: the caller falls back to a local limit (see LocalShare).
func (s *Store) Allow(ctx context.Context, caller string, perSecond float64, burst int) (allowed bool, retryAfter time.Duration, err error) {
	ctx, cancel := context.WithTimeout(ctx, s.op)
	defer cancel()
	res, err := s.limiter.Allow(ctx, s.key("rate", caller), gcraLimit(perSecond, burst))
	s.observe(err)
	if err != nil {
		return false, 0, fmt.Errorf("fleet rate limit: %w", err)
	}
	return res.Allowed > 0, max(res.RetryAfter, 0), nil
}

// gcraLimit expresses a rate in calls a second as redis_rate's whole
// number of calls per period, choosing the period so the rate stays exact
// enough for fractional rates.
func gcraLimit(perSecond float64, burst int) redis_rate.Limit {
	period := time.Second
	for _, p := range []time.Duration{time.Second, time.Minute, time.Hour} {
		period = p
		if perSecond*p.Seconds() >= 100 {
			break
		}
	}
	rate := int(math.Max(1, math.Round(perSecond*period.Seconds())))
	return redis_rate.Limit{Rate: rate, Burst: max(burst, 1), Period: period}
}
