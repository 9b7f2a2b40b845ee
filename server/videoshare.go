package server

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"strconv"
	"time"

	"google.golang.org/protobuf/proto"

	heygenv1 "github.com/heygen-grpc/heygen-grpc/gen/heygen/v1"
)

// sharedOpTimeout bounds the fleet-store calls of a create: a slow store
// must not slow creates, which then fall back to this replica's memory.
const sharedOpTimeout = 200 * time.Millisecond

// sharedLedger is the createLedger of a fleet: what each request_id was
// first used for is in the shared store, so the same request_id is the same
// video on every replica. It keeps a copy in this replica's memory and uses
// that alone while the store cannot be asked.
type sharedLedger struct {
	store SharedStore
	local *memoryLedger
	ttl   time.Duration
}

// sharedRequest is a request_id's record in the store.
type sharedRequest struct {
	Fingerprint string `json:"fp"`
}

func (l *sharedLedger) remember(ctx context.Context, key string, fp [32]byte) (ledgerEntry, error) {
	entry, _ := l.local.remember(ctx, key, fp)
	if !l.store.Up() {
		return entry, nil
	}
	sctx, cancel := context.WithTimeout(ctx, sharedOpTimeout)
	defer cancel()
	rec, _ := json.Marshal(sharedRequest{Fingerprint: hex.EncodeToString(fp[:])})
	cur, stored, err := l.store.SetValueIfAbsent(sctx, "videos:request:"+key, rec, l.ttl)
	if err != nil || stored {
		return entry, nil // the store could not be asked: this replica's memory answers
	}
	var sr sharedRequest
	if json.Unmarshal(cur, &sr) != nil {
		return entry, nil
	}
	b, derr := hex.DecodeString(sr.Fingerprint)
	if derr != nil || len(b) != len(fp) {
		return entry, nil
	}
	out := ledgerEntry{}
	copy(out.fingerprint[:], b)
	if v, found, err := l.store.GetValue(sctx, "videos:made:"+key); err == nil && found {
		var video heygenv1.Video
		if proto.Unmarshal(v, &video) == nil {
			out.video = &video
		}
	}
	return out, nil
}

func (l *sharedLedger) made(ctx context.Context, key string, v *heygenv1.Video) error {
	_ = l.local.made(ctx, key, v)
	if !l.store.Up() {
		return nil
	}
	b, err := proto.Marshal(v)
	if err != nil {
		return nil // the local record stands; the others will ask HeyGen, which replays
	}
	sctx, cancel := context.WithTimeout(ctx, sharedOpTimeout)
	defer cancel()
	_ = l.store.SetValue(sctx, "videos:made:"+key, b, l.ttl)
	return nil
}

// sharedCooldown is the createCooldown of a fleet: when HeyGen tells one
// replica to hold creates, every replica holds them. It keeps the hold in
// memory too, which alone answers while the store cannot be asked.
type sharedCooldown struct {
	store SharedStore
	local memoryCooldown
	now   func() time.Time
}

const cooldownName = "videos:cooldown"

func (c *sharedCooldown) until() time.Time {
	local := c.local.until()
	if !c.store.Up() {
		return local
	}
	ctx, cancel := context.WithTimeout(context.Background(), sharedOpTimeout)
	defer cancel()
	v, found, err := c.store.GetValue(ctx, cooldownName)
	if err != nil || !found {
		return local
	}
	n, err := strconv.ParseInt(string(v), 10, 64)
	if err != nil {
		return local
	}
	if shared := time.Unix(0, n); shared.After(local) {
		return shared
	}
	return local
}

func (c *sharedCooldown) hold(t time.Time) {
	c.local.hold(t)
	ttl := t.Sub(c.now())
	if ttl <= 0 || !c.store.Up() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), sharedOpTimeout)
	defer cancel()
	// The later of two holds wins: a shorter one never cuts a longer one.
	if v, found, err := c.store.GetValue(ctx, cooldownName); err == nil && found {
		if n, err := strconv.ParseInt(string(v), 10, 64); err == nil && n >= t.UnixNano() {
			return
		}
	}
	_ = c.store.SetValue(ctx, cooldownName, []byte(strconv.FormatInt(t.UnixNano(), 10)), ttl)
}
