// Package procstat reads what the benchmark measures about processes from
// Linux's /proc: CPU time (user + system) of a process, of this process
// and of the whole machine, and a process's memory (VmRSS, VmHWM).
package procstat

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTick is USER_HZ, the unit of /proc's CPU times: 100 on every Linux
// architecture Go supports (the kernel exports it as a constant ABI).
const clockTick = 100

func ticks(n uint64) time.Duration {
	return time.Duration(min(n, math.MaxInt64/uint64(time.Second))) * time.Second / clockTick
}

// ProcCPU returns the user + system CPU time pid has used so far (all its
// threads), to 10 ms.
func ProcCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces and parentheses: the
	// fields after it start after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command field", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// After the name: state(3) ... utime(14) stime(15), so f[11], f[12].
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	u, err1 := strconv.ParseUint(f[11], 10, 64)
	s, err2 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return ticks(u + s), nil
}

// ProcRuntime returns the time pid's threads have run on a CPU (user and
// system together), to the nanosecond: the sum of the run times in their
// /proc/PID/task/TID/schedstat. Unlike ProcCPU it does not count threads
// that have exited (a Go program's rarely do), but it is exact enough to
// measure a fraction of a second.
func ProcRuntime(pid int) (time.Duration, error) {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	var sum time.Duration
	for _, t := range tasks {
		b, err := os.ReadFile(dir + "/" + t.Name() + "/schedstat")
		if errors.Is(err, os.ErrNotExist) {
			continue // the thread exited since the listing
		}
		if err != nil {
			return 0, err
		}
		run, _, _ := strings.Cut(string(b), " ")
		ns, err := strconv.ParseInt(run, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s/%s/schedstat: %w", dir, t.Name(), err)
		}
		sum += time.Duration(ns)
	}
	return sum, nil
}

// SelfCPU returns this process's user + system CPU time.
func SelfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// MachineBusy returns the CPU time all CPUs have spent busy (neither idle
// nor waiting for I/O) since boot.
func MachineBusy() (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, errors.New("/proc/stat: no cpu line")
	}
	var busy uint64
	// user nice system idle iowait irq softirq steal: all but idle, iowait.
	for _, i := range []int{1, 2, 3, 6, 7, 8} {
		v, err := strconv.ParseUint(f[i], 10, 64)
		if err != nil {
			return 0, err
		}
		busy += v
	}
	return ticks(busy), nil
}

// Memory returns a process's resident set size and its peak (VmRSS,
// VmHWM), in bytes.
func Memory(pid int) (rss, hwm int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for line := range strings.Lines(string(b)) {
		k, v, ok := strings.Cut(line, ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc/%d/status %s: %w", pid, k, err)
		}
		if k == "VmRSS" {
			rss = kb << 10
		} else {
			hwm = kb << 10
		}
	}
	return rss, hwm, nil
}

// Sample is the CPU times at one moment.
type Sample struct {
	At      time.Time
	Server  time.Duration // the measured process
	Self    time.Duration // this process
	Machine time.Duration // every CPU
}

// Take samples the CPU times of pid (0: none), this process and the machine.
func Take(pid int) (Sample, error) {
	s := Sample{At: time.Now(), Self: SelfCPU()}
	var err error
	if pid > 0 {
		if s.Server, err = ProcCPU(pid); err != nil {
			return s, err
		}
	}
	s.Machine, err = MachineBusy()
	return s, err
}

// Usage is what was used between two samples, in CPU seconds.
type Usage struct {
	WallS    float64 `json:"wall_s"`
	ServerS  float64 `json:"server_cpu_s"`
	ClientS  float64 `json:"client_cpu_s"`
	MachineS float64 `json:"machine_busy_s"`
}

// Since returns the usage from s0 to s1.
func Since(s0, s1 Sample) Usage {
	return Usage{WallS: s1.At.Sub(s0.At).Seconds(), ServerS: (s1.Server - s0.Server).Seconds(),
		ClientS: (s1.Self - s0.Self).Seconds(), MachineS: (s1.Machine - s0.Machine).Seconds()}
}

// OtherCores is the CPU the rest of the machine used, in cores: busy time
// minus the server's and the client's, over the wall time.
func (u Usage) OtherCores() float64 {
	if u.WallS <= 0 {
		return 0
	}
	return max(0, u.MachineS-u.ServerS-u.ClientS) / u.WallS
}
