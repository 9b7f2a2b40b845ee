package procstat

import (
	"os"
	"testing"
	"time"
)

// spin burns about d of CPU time on this goroutine.
func spin(d time.Duration) {
	start := SelfCPU()
	x := 0
	for SelfCPU()-start < d {
		for i := range 100_000 {
			x += i
		}
	}
	_ = x
}

// TestReadsThisProcess: the CPU time /proc reports for this process grows
// by the CPU it burns, as getrusage says, and its memory reads back.
func TestReadsThisProcess(t *testing.T) {
	s0, err := Take(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	spin(300 * time.Millisecond)
	s1, err := Take(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	u := Since(s0, s1)
	if u.ServerS < 0.25 || u.ServerS > u.ClientS+0.05 || u.ClientS < 0.3 || u.MachineS < 0.25 {
		t.Errorf("after 0.3 s of CPU: /proc says %.2f s, getrusage %.2f s, the machine %.2f s busy", u.ServerS, u.ClientS, u.MachineS)
	}
	r0, err := ProcRuntime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	spin(100 * time.Millisecond)
	r1, err := ProcRuntime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if d := r1 - r0; d < 90*time.Millisecond || d > 400*time.Millisecond {
		t.Errorf("after 0.1 s of CPU the threads' run time grew by %v", d)
	}
	rss, hwm, err := Memory(os.Getpid())
	if err != nil || rss <= 0 || hwm < rss {
		t.Errorf("memory: rss %d, hwm %d, %v", rss, hwm, err)
	}
	if _, err := ProcCPU(-1); err == nil {
		t.Error("ProcCPU of no process succeeded")
	}
}
