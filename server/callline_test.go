package server

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// TestCallLineMatchesSlog: the gateway's own encoding of the per-RPC line
// is byte for byte what slog's JSON handler writes for the same record
// (callFields.attrs, which the gateway hands slog when it cannot write a
// line itself), for every byte a field could hold, every integer edge,
// times with and without nanoseconds in any zone; and whatever it cannot
// write so, it leaves to slog (it reports false and writes nothing).
func TestCallLineMatchesSlog(t *testing.T) {
	slogLine := func(at time.Time, level slog.Level, f *callFields) string {
		var buf bytes.Buffer
		r := slog.NewRecord(at, level, "finished call", 0)
		r.AddAttrs(f.attrs(nil)...)
		if err := slog.NewJSONHandler(&buf, nil).Handle(context.Background(), r); err != nil {
			t.Fatal(err)
		}
		return buf.String()
	}
	at := time.Date(2026, 12, 1, 2, 3, 4, 567891234, time.UTC)
	full := func() callFields {
		return callFields{caller: "svc-a", attempts: 2, hasAttempts: true, method: newMethodLine("heygen.v1.AvatarsService", "ListAvatars", "unary"),
			peer: "[::1]:41234", hasPeer: true, start: "2026-12-01T02:03:04Z", deadline: "2026-12-01T02:03:14+01:00", code: "NotFound",
			err: "rpc error: code = NotFound desc = no such avatar", hasErr: true, took: 123456 * time.Nanosecond}
	}
	written, left := 0, 0
	check := func(name string, at time.Time, level slog.Level, f callFields) {
		t.Helper()
		b, ok := appendCallLine(nil, at, level, &f)
		if !ok {
			left++
			if len(b) != 0 {
				t.Fatalf("%s: left to slog after writing %q", name, b)
			}
			return
		}
		written++
		if want := slogLine(at, level, &f); string(b) != want {
			t.Fatalf("%s:\n got %q\nwant %q", name, b, want)
		}
	}
	mustWrite := func(name string, at time.Time, level slog.Level, f callFields) {
		t.Helper()
		if _, ok := appendCallLine(nil, at, level, &f); !ok {
			t.Fatalf("%s: left to slog, want the gateway to write it", name)
		}
		check(name, at, level, f)
	}

	// The line as calls write it: every field, and each optional one left
	// out; at every level and in other zones.
	for _, level := range []slog.Level{slog.LevelDebug, slog.LevelInfo, slog.LevelWarn, slog.LevelError} {
		mustWrite("the line at "+level.String(), at, level, full())
	}
	for name, drop := range map[string]func(*callFields){
		"no caller":   func(f *callFields) { f.caller = "" },
		"no attempts": func(f *callFields) { f.hasAttempts = false },
		"no peer":     func(f *callFields) { f.peer, f.hasPeer = "", false },
		"no deadline": func(f *callFields) { f.deadline = "" },
		"no error":    func(f *callFields) { f.err, f.hasErr = "", false },
		"empty error": func(f *callFields) { f.err = "" },
		"a stream": func(f *callFields) {
			f.method = newMethodLine("heygen.v1.VideosService", "WatchVideo", "server_stream")
		},
	} {
		f := full()
		drop(&f)
		mustWrite(name, at, slog.LevelInfo, f)
	}
	for _, loc := range []*time.Location{time.FixedZone("CET", 3600), time.FixedZone("odd", -(9*3600 + 30*60)), time.Local} {
		mustWrite("zone "+loc.String(), at.In(loc), slog.LevelInfo, full())
	}
	for _, ns := range []int{0, 1, 10, 100000, 120000000, 999999999} {
		mustWrite("nanoseconds", time.Date(2026, 1, 2, 3, 4, 5, ns, time.UTC), slog.LevelInfo, full())
	}
	mustWrite("a monotonic clock reading", time.Now(), slog.LevelInfo, full())
	// Lines of the same second, and of the same second in other zones,
	// share the second's text: each must still be its own time.
	base := time.Date(2026, 12, 1, 23, 59, 59, 0, time.UTC)
	r0 := rand.New(rand.NewPCG(1, 9))
	for i := range 2000 {
		at := base.Add(time.Duration(r0.Int64N(int64(3 * time.Second))))
		switch i % 3 {
		case 1:
			at = at.In(time.FixedZone("CET", 3600))
		case 2:
			at = at.In(time.Local)
		}
		mustWrite("times in and across seconds", at, slog.LevelInfo, full())
	}
	for _, n := range []int64{0, -1, 1, math.MaxInt64, math.MinInt64} {
		f := full()
		f.attempts = n
		mustWrite("attempts", at, slog.LevelInfo, f)
	}
	for _, d := range []time.Duration{0, 999, time.Microsecond, 1500 * time.Microsecond, 999999 * time.Microsecond, time.Second, time.Hour, -time.Second} {
		f := full()
		f.took = d
		mustWrite("duration", at, slog.LevelInfo, f)
	}

	// Every byte, and random strings of runes and bytes, in each field that
	// varies by call and in a method's names.
	set := []func(*callFields, string){
		func(f *callFields, s string) { f.caller = s },
		func(f *callFields, s string) { f.peer = s },
		func(f *callFields, s string) { f.err = s },
		func(f *callFields, s string) { f.start = s },
		func(f *callFields, s string) { f.deadline = s },
		func(f *callFields, s string) { f.code = s },
		func(f *callFields, s string) { f.method = newMethodLine(s, "GetAvatar", "unary") },
		func(f *callFields, s string) { f.method = newMethodLine("heygen.v1.AvatarsService", s, "unary") },
	}
	for c := range 256 {
		for i, fill := range set {
			f := full()
			fill(&f, "a"+string([]byte{byte(c)})+"b")
			check(fmt.Sprintf("byte %#x in field %d", c, i), at, slog.LevelInfo, f)
		}
	}
	r := rand.New(rand.NewPCG(7, 13))
	for range 3000 {
		var sb strings.Builder
		for range r.IntN(12) {
			switch r.IntN(3) {
			case 0:
				sb.WriteByte(byte(r.IntN(256)))
			case 1:
				sb.WriteRune(rune(r.IntN(0x10ffff)))
			default:
				sb.WriteByte(byte(0x20 + r.IntN(0x5f)))
			}
		}
		f := full()
		set[r.IntN(len(set))](&f, sb.String())
		f.attempts = r.Int64()
		check("random", at, slog.LevelInfo, f)
	}
	if _, ok := appendCallLine(nil, time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), slog.LevelInfo, &callFields{method: newMethodLine("s", "m", "unary")}); ok {
		t.Error("a year past 9999: written by the gateway, want it left to slog")
	}
	if written < 500 || left < 500 {
		t.Fatalf("written by the gateway %d, left to slog %d: the cases do not reach both paths", written, left)
	}
}
