package server

import (
	"runtime"
	"runtime/metrics"
	"testing"
	"time"
)

// gogcPercent reads the collector's GOGC setting.
func gogcPercent(t *testing.T) uint64 {
	t.Helper()
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// TestHeapFloorPercent: GOGC lets the live heap grow to the floor, never
// below Go's default nor above 10000.
func TestHeapFloorPercent(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		floor, live uint64
		want        int
	}{
		{64 * mib, 4 * mib, 1500}, {64 * mib, 8 * mib, 700}, {64 * mib, 31 * mib, 106},
		{64 * mib, 32 * mib, 100}, {64 * mib, 60 * mib, 100}, {64 * mib, 0, 100}, {64 * mib, 1024, 10000},
	} {
		if got := heapFloorPercent(c.floor, c.live); got != c.want {
			t.Errorf("floor %d, live %d: GOGC %d, want %d", c.floor, c.live, got, c.want)
		}
	}
}

// heapInUse reads the bytes of the heap's spans in use.
func heapInUse() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// TestHeapFloor: under the floor the collector waits for the heap to reach
// it (GOGC set from the heap in use after a collection), the returned
// function puts Go's default back, and GOGC in the environment or a floor
// of 0 leave the collector alone.
func TestHeapFloor(t *testing.T) {
	before := gogcPercent(t) // 100 unless GOGC is set
	for _, off := range []struct {
		floor int
		gogc  string
	}{{0, ""}, {1 << 10, "100"}} {
		restore := SetHeapFloor(off.floor, off.gogc)
		runtime.GC()
		time.Sleep(50 * time.Millisecond) // the tuner runs after a collection
		if p := gogcPercent(t); p != before {
			t.Errorf("floor %d, GOGC=%q: GOGC became %d, want the collector left alone (%d)", off.floor, off.gogc, p, before)
		}
		restore()
	}

	// A floor four times the heap in use: GOGC about 300 or more.
	floor := 4*heapInUse() + 64<<20
	restore := SetHeapFloor(int(floor>>20), "")
	var p uint64
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		runtime.GC()
		if p = gogcPercent(t); p >= 250 {
			break
		}
	}
	if p < 250 || p < before {
		t.Errorf("with a floor of %d MiB over %d MiB in use GOGC is %d, want it raised to about (floor - in use) / in use", floor>>20, heapInUse()>>20, p)
	}
	restore()
	if p := gogcPercent(t); p != before {
		t.Errorf("after restore GOGC is %d, want %d as before", p, before)
	}
}
