package main

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"
)

type tookValuer struct{}

func (tookValuer) LogValue() slog.Value { return slog.DurationValue(1500 * time.Millisecond) }

// TestReadableDurationsHandler checks the log handler every line goes
// through: durations anywhere in a line (its attributes, the logger's,
// groups, LogValuers) read as Go prints them, and a line without one is
// written byte for byte as slog's own handler writes it.
func TestReadableDurationsHandler(t *testing.T) {
	at := time.Date(2026, 12, 1, 2, 3, 4, 5_000_000, time.UTC)
	for _, format := range []string{"json", "text"} {
		t.Run(format, func(t *testing.T) {
			var got, plain bytes.Buffer
			log := newLogger(&config{logFormat: format, logLevel: slog.LevelDebug}, &got)
			var ref slog.Handler = slog.NewJSONHandler(&plain, &slog.HandlerOptions{Level: slog.LevelDebug})
			if format == "text" {
				ref = slog.NewTextHandler(&plain, &slog.HandlerOptions{Level: slog.LevelDebug})
			}

			// A line without a duration: the same bytes as slog's handler.
			r := slog.NewRecord(at, slog.LevelInfo, "finished call", 0)
			r.AddAttrs(slog.String("grpc.code", "OK"), slog.Int64("heygen.attempts", 2), slog.Bool("cached", true))
			if err := log.Handler().Handle(context.Background(), r); err != nil {
				t.Fatal(err)
			}
			if err := ref.Handle(context.Background(), r); err != nil {
				t.Fatal(err)
			}
			if got.String() != plain.String() {
				t.Fatalf("a line without durations changed:\n got %s\nwant %s", got.String(), plain.String())
			}

			got.Reset()
			log.With("retry_after", 2*time.Second).WithGroup("crawl").Warn("slow",
				"took", 505*time.Millisecond, slog.Group("page", "wait", time.Minute+30*time.Second), "valuer", tookValuer{}, "n", 3)
			line := got.String()
			for _, want := range []string{"2s", "505ms", "1m30s", "1.5s"} {
				if !strings.Contains(line, want) {
					t.Errorf("%s: no %q in %s", format, want, line)
				}
			}
			for _, nanos := range []string{"2000000000", "505000000", "90000000000", "1500000000"} {
				if strings.Contains(line, nanos) {
					t.Errorf("%s: a duration in nanoseconds (%s) in %s", format, nanos, line)
				}
			}
		})
	}
}
