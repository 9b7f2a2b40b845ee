package server

import (
	"math"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"
)

// DefaultHeapFloorMiB is the heap size, in MiB, the gateway lets the Go
// heap reach between garbage collections (see SetHeapFloor).
const DefaultHeapFloorMiB = 64

// heapFloorMaxPercent caps GOGC under the floor: a live heap of 1% of the
// floor is collected when it reaches the floor.
const heapFloorMaxPercent = 10000

var heapFloor struct {
	sync.Mutex
	tuner *heapTuner // nil: off
	prev  int        // GOGC before the first tuner: what restore puts back
}

// SetHeapFloor lets the Go heap grow to floorMiB MiB between collections,
// and collects as Go does by default (GOGC=100: when the heap has
// doubled) once the live heap is past half of it. It returns a function
// that stops the tuning and puts the collector's setting from before any
// floor back (the last floor set in a process wins; restoring an earlier
// one does nothing).
// A floor of 0 leaves the collector alone, and so does GOGC in the
// environment (gogc is its value, "" when unset): the operator's choice
// wins.
//
// Why: a cached call allocates a few KB, and with Go's default a small
// heap (the demo's, 4 MB live) is collected every few hundred calls. Each
// collection marks the live heap and sweeps it, partly in the idle time
// the calls leave; measured interleaved with a bare grpc-go server, that
// was about 7 µs of a 33 µs GetAvatar, and 3.5 µs of the gateway's 7.5 µs
// over the bare server, whose live heap is a quarter of the gateway's.
// With a floor of 64 MiB collections are several times rarer, for at most
// the floor in memory. Heaps past half the floor (a catalogue of 50,000
// looks) are collected as before, so their peak is unchanged.
//
// After every collection GOGC is set to (floor - live) / live, between 100
// and 10000, from the heap the collection found live
// (/gc/heap/live:bytes). This is the GOGC tuner Uber described, hooked on
// the collector by a finalizer re-armed each cycle. bytedance/gopkg's
// gctuner does the same but tunes from the heap's spans in use, which
// right after a collection still hold everything not yet swept: it set
// GOGC to 147 for the production benchmark's 8 MB live heap, a goal of
// 21 MB instead of 64.
func SetHeapFloor(floorMiB int, gogc string) (restore func()) {
	if floorMiB <= 0 || floorMiB > 1<<30 || gogc != "" {
		return func() {}
	}
	heapFloor.Lock()
	defer heapFloor.Unlock()
	if heapFloor.tuner != nil { // one tuner a process: the last floor wins
		heapFloor.tuner.stopped.Store(true)
	} else {
		prev := []metrics.Sample{{Name: "/gc/gogc:percent"}}
		metrics.Read(prev)
		heapFloor.prev = 100
		if p := prev[0].Value.Uint64(); p <= math.MaxInt32 {
			heapFloor.prev = int(p)
		}
	}
	t := &heapTuner{floor: uint64(floorMiB) << 20}
	heapFloor.tuner = t
	t.arm()
	return func() {
		heapFloor.Lock()
		defer heapFloor.Unlock()
		if heapFloor.tuner != t {
			return
		}
		heapFloor.tuner = nil
		t.stopped.Store(true)
		debug.SetGCPercent(heapFloor.prev)
	}
}

// heapTuner sets GOGC after every collection while it is not stopped.
type heapTuner struct {
	floor   uint64
	stopped atomic.Bool
	live    [1]metrics.Sample
}

// tunerCycle is garbage as soon as it is made: its finalizer runs after
// the next collection, tunes, and arms the next one.
type tunerCycle struct{ t *heapTuner }

func (t *heapTuner) arm() {
	c := &tunerCycle{t: t}
	runtime.SetFinalizer(c, func(c *tunerCycle) {
		if !c.t.stopped.Load() {
			c.t.tune()
			c.t.arm()
		}
	})
}

// tune sets GOGC from the heap the last collection found live.
func (t *heapTuner) tune() {
	t.live[0].Name = "/gc/heap/live:bytes"
	metrics.Read(t.live[:])
	heapFloor.Lock() // not after the restore
	defer heapFloor.Unlock()
	if !t.stopped.Load() {
		debug.SetGCPercent(heapFloorPercent(t.floor, t.live[0].Value.Uint64()))
	}
}

// heapFloorPercent is the GOGC that lets a live heap grow to floor bytes,
// between 100 (Go's default) and heapFloorMaxPercent.
func heapFloorPercent(floor, live uint64) int {
	if live == 0 || live >= floor/2 {
		return 100
	}
	return int(min(uint64(heapFloorMaxPercent), (floor-live)*100/live))
}
