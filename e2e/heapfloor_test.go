//go:build e2e

package e2e_test

import (
	"bufio"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// gogcOf reads go_gc_gogc_percent from a gateway's /metrics.
func gogcOf(t *testing.T, metricsAddr string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 8<<20))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_gc_gogc_percent "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	t.Fatal("no go_gc_gogc_percent in /metrics")
	return 0
}

// TestHeapFloorOfTheBinary: the demo gateway, with its defaults, lets its
// small heap grow to the 64 MiB floor (GOGC well above Go's 100, as the
// README's configuration table says, on the metric it names), and GOGC
// in the environment or -gc-heap-floor-mib 0 leave Go's collector alone.
func TestHeapFloorOfTheBinary(t *testing.T) {
	metricsOf := func(s *server) string {
		t.Helper()
		rec, ok := s.findLog(func(r logRecord) bool { return r.Msg == "serving metrics" })
		if !ok {
			t.Fatal(`no "serving metrics" log line`)
		}
		return rec.Addr
	}
	floor := startServer(t, "-metrics-addr", "127.0.0.1:0")
	m := metricsOf(floor)
	if rec, ok := floor.findLog(func(r logRecord) bool { return r.Msg == "serving heygen.v1.AvatarsService" }); !ok || rec.GCHeapFloorMiB != 64 {
		t.Errorf("the serving line says gc_heap_floor_mib %d, want the default 64", rec.GCHeapFloorMiB)
	}
	var p float64
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		// The collector runs by itself as the demo crawls; the tuner sets
		// GOGC after each collection.
		if p = gogcOf(t, m); p > 300 {
			break
		}
	}
	if p <= 300 {
		t.Errorf("the demo gateway's GOGC is %v with the default heap floor, want it raised well above 100 (its live heap is a few MB)", p)
	}

	for _, c := range []struct {
		name  string
		env   []string
		flags []string
	}{
		{"GOGC set", append(hermeticEnv(), "GOGC=100"), []string{"-demo", "-metrics-addr", "127.0.0.1:0"}},
		{"floor 0", hermeticEnv(), []string{"-demo", "-metrics-addr", "127.0.0.1:0", "-gc-heap-floor-mib", "0"}},
	} {
		s := startGateway(t, c.env, c.flags...)
		time.Sleep(time.Second) // collections happen while it crawls
		if p := gogcOf(t, metricsOf(s)); p != 100 {
			t.Errorf("%s: GOGC is %v, want Go's default 100", c.name, p)
		}
		if rec, ok := s.findLog(func(r logRecord) bool { return r.Msg == "serving heygen.v1.AvatarsService" }); ok && rec.GCHeapFloorMiB != 0 {
			t.Errorf("%s: the serving line says gc_heap_floor_mib %d, want 0", c.name, rec.GCHeapFloorMiB)
		}
	}
}
