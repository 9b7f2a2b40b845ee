package server

import (
	"bytes"
	"context"
	"log/slog"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// TestCallLineMatchesSlog: the gateway's own encoding of the per-RPC line
// is byte for byte what slog's JSON handler writes for the same record,
// for every byte a string could hold, every integer edge, times with and
// without nanoseconds in any zone; and whatever it cannot write so, it
// leaves to slog (it reports false and writes nothing).
func TestCallLineMatchesSlog(t *testing.T) {
	slogLine := func(at time.Time, level slog.Level, msg string, attrs []slog.Attr) string {
		var buf bytes.Buffer
		r := slog.NewRecord(at, level, msg, 0)
		r.AddAttrs(attrs...)
		if err := slog.NewJSONHandler(&buf, nil).Handle(context.Background(), r); err != nil {
			t.Fatal(err)
		}
		return buf.String()
	}
	at := time.Date(2026, 12, 1, 2, 3, 4, 567891234, time.UTC)
	line := []slog.Attr{
		slog.String("caller", "svc-a"), slog.Int64("heygen.attempts", 2), slog.String("protocol", "grpc"),
		slog.String("grpc.component", "server"), slog.String("grpc.service", "heygen.v1.AvatarsService"),
		slog.String("grpc.method", "ListAvatars"), slog.String("grpc.method_type", "unary"),
		slog.String("peer.address", "[::1]:41234"), slog.String("grpc.start_time", "2026-12-01T02:03:04Z"),
		slog.String("grpc.request.deadline", "2026-12-01T02:03:14+01:00"), slog.String("grpc.code", "OK"),
		slog.String("grpc.time_ms", "0.123"),
	}
	written, left := 0, 0
	check := func(name string, at time.Time, level slog.Level, msg string, attrs []slog.Attr) {
		t.Helper()
		b, ok := appendJSONLine(nil, at, level, msg, attrs)
		want := slogLine(at, level, msg, attrs)
		if !ok {
			left++
			return
		}
		written++
		if string(b) != want {
			t.Fatalf("%s:\n got %q\nwant %q", name, b, want)
		}
	}
	mustWrite := func(name string, at time.Time, level slog.Level, msg string, attrs []slog.Attr) {
		t.Helper()
		if _, ok := appendJSONLine(nil, at, level, msg, attrs); !ok {
			t.Fatalf("%s: left to slog, want the gateway to write it", name)
		}
		check(name, at, level, msg, attrs)
	}

	// The line as every RPC writes it, at every level and in other zones.
	for _, level := range []slog.Level{slog.LevelDebug, slog.LevelInfo, slog.LevelWarn, slog.LevelError} {
		mustWrite("the line at "+level.String(), at, level, "finished call", line)
	}
	for _, loc := range []*time.Location{time.FixedZone("CET", 3600), time.FixedZone("odd", -(9*3600 + 30*60)), time.Local} {
		mustWrite("zone "+loc.String(), at.In(loc), slog.LevelInfo, "finished call", line)
	}
	for _, ns := range []int{0, 1, 10, 100000, 120000000, 999999999} {
		mustWrite("nanoseconds", time.Date(2026, 1, 2, 3, 4, 5, ns, time.UTC), slog.LevelInfo, "finished call", line)
	}
	mustWrite("a monotonic clock reading", time.Now(), slog.LevelInfo, "finished call", line)
	for _, n := range []int64{0, -1, 1, math.MaxInt64, math.MinInt64} {
		mustWrite("integer", at, slog.LevelInfo, "m", []slog.Attr{slog.Int64("n", n)})
	}
	mustWrite("no attributes", at, slog.LevelInfo, "m", nil)
	mustWrite("empty string", at, slog.LevelInfo, "", []slog.Attr{slog.String("caller", "")})

	// Every byte, in a value, a key and the message.
	for c := range 256 {
		s := "a" + string([]byte{byte(c)}) + "b"
		check("value byte", at, slog.LevelInfo, "m", []slog.Attr{slog.String("k", s)})
		check("key byte", at, slog.LevelInfo, "m", []slog.Attr{slog.String(s, "v")})
		check("message byte", at, slog.LevelInfo, s, nil)
	}
	// Random strings of runes and bytes, random integers.
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
		check("random", at, slog.LevelInfo, "finished call", []slog.Attr{slog.String("caller", sb.String()), slog.Int64("n", r.Int64())})
	}
	// What it leaves to slog.
	for name, attrs := range map[string][]slog.Attr{
		"bool": {slog.Bool("b", true)}, "float": {slog.Float64("f", 1.5)}, "duration": {slog.Duration("d", time.Second)},
		"group": {slog.Group("g", slog.Int("n", 1))}, "any": {slog.Any("a", []int{1})}, "empty key": {slog.String("", "v")},
	} {
		if _, ok := appendJSONLine(nil, at, slog.LevelInfo, "m", attrs); ok {
			t.Errorf("%s: written by the gateway, want it left to slog", name)
		}
	}
	if _, ok := appendJSONLine(nil, time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), slog.LevelInfo, "m", nil); ok {
		t.Error("a year past 9999: written by the gateway, want it left to slog")
	}
	if written < 500 || left < 500 {
		t.Fatalf("written by the gateway %d, left to slog %d: the cases do not reach both paths", written, left)
	}
}
