package fleet

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// GetValue returns the value stored under name; found is false when no
// replica stored one (or it expired).
func (s *Store) GetValue(ctx context.Context, name string) (v []byte, found bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, s.op)
	defer cancel()
	b, err := s.rdb.Get(ctx, s.key("value", name)).Bytes()
	s.observe(err)
	switch {
	case errors.Is(err, redis.Nil):
		return nil, false, nil
	case err != nil:
		return nil, false, fmt.Errorf("get shared %s: %w", name, err)
	}
	return b, true, nil
}

// SetValue stores v under name for ttl.
func (s *Store) SetValue(ctx context.Context, name string, v []byte, ttl time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, s.op)
	defer cancel()
	err := s.rdb.Set(ctx, s.key("value", name), v, ttl).Err()
	s.observe(err)
	if err != nil {
		return fmt.Errorf("set shared %s: %w", name, err)
	}
	return nil
}

// SetValueIfAbsent stores v under name for ttl unless a value is there,
// and returns the value that is there afterwards (v when it was stored).
func (s *Store) SetValueIfAbsent(ctx context.Context, name string, v []byte, ttl time.Duration) (current []byte, stored bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, s.op)
	defer cancel()
	key := s.key("value", name)
	res, err := s.rdb.SetArgs(ctx, key, v, redis.SetArgs{Mode: "NX", TTL: ttl, Get: true}).Result()
	s.observe(err)
	switch {
	case errors.Is(err, redis.Nil): // nothing was there: stored
		return v, true, nil
	case err != nil:
		return nil, false, fmt.Errorf("set shared %s: %w", name, err)
	}
	return []byte(res), false, nil
}

// usageKeep bounds how long fleet usage counts live without a write.
const usageKeep = 30 * 24 * time.Hour

// AddUsage adds counts to caller's fleet-wide usage.
func (s *Store) AddUsage(ctx context.Context, caller string, counts map[string]int64) error {
	if len(counts) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*s.op)
	defer cancel()
	key := s.key("usage", caller)
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for field, n := range counts {
			p.HIncrBy(ctx, key, field, n)
		}
		p.Expire(ctx, key, usageKeep)
		p.SAdd(ctx, s.key("usage-callers"), caller)
		p.Expire(ctx, s.key("usage-callers"), usageKeep)
		return nil
	})
	s.observe(err)
	if err != nil {
		return fmt.Errorf("add usage: %w", err)
	}
	return nil
}

// Usage returns the fleet's usage counts of the given callers, or of every
// caller when all is set.
func (s *Store) Usage(ctx context.Context, all bool, callers ...string) (map[string]map[string]int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*s.op)
	defer cancel()
	if all {
		names, err := s.rdb.SMembers(ctx, s.key("usage-callers")).Result()
		s.observe(err)
		if err != nil {
			return nil, fmt.Errorf("usage callers: %w", err)
		}
		callers = names
	}
	cmds := make([]*redis.MapStringStringCmd, len(callers))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, c := range callers {
			cmds[i] = p.HGetAll(ctx, s.key("usage", c))
		}
		return nil
	})
	s.observe(err)
	if err != nil {
		return nil, fmt.Errorf("usage: %w", err)
	}
	out := make(map[string]map[string]int64, len(callers))
	for i, c := range callers {
		m := map[string]int64{}
		for f, v := range cmds[i].Val() {
			var n int64
			if _, err := fmt.Sscan(v, &n); err == nil {
				m[f] = n
			}
		}
		if len(m) > 0 {
			out[c] = m
		}
	}
	return out, nil
}
