// Package loadstat summarises a closed-loop load run (bench/restload,
// bench/grpcload) into the JSON report scripts/bench.sh reads.
package loadstat

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/heygen-grpc/heygen-grpc/bench/internal/procstat"
)

// Report is a load generator's JSON output. Latencies are in milliseconds
// and cover the calls that succeeded.
type Report struct {
	// Target is what was loaded: a URL, or an address and a method.
	Target string `json:"target"`
	// Concurrency is the number of concurrent callers.
	Concurrency int `json:"concurrency"`
	// Requests is every call made; OK and Errors split it.
	Requests int `json:"requests"`
	OK       int `json:"ok"`
	Errors   int `json:"errors"`
	// ErrorKinds counts the errors by their text.
	ErrorKinds map[string]int `json:"error_kinds,omitempty"`
	// ElapsedS is the duration of the run in seconds; RPS is OK / ElapsedS.
	ElapsedS float64 `json:"elapsed_s"`
	RPS      float64 `json:"rps"`
	// Latencies of the successful calls, in milliseconds.
	MeanMS float64 `json:"mean_ms"`
	MinMS  float64 `json:"min_ms"`
	P50MS  float64 `json:"p50_ms"`
	P90MS  float64 `json:"p90_ms"`
	P99MS  float64 `json:"p99_ms"`
	MaxMS  float64 `json:"max_ms"`
	// Bytes is the total size of the responses received.
	Bytes int64 `json:"bytes"`
	// CPU is what the server (when its pid was given), this client and the
	// whole machine used over the measured calls.
	CPU *procstat.Usage `json:"cpu,omitempty"`
	// Segments is the number of segments the calls were made in, when they
	// alternated with those to another server (Versus: its report).
	Segments int     `json:"segments,omitempty"`
	Versus   *Report `json:"versus,omitempty"`
}

// Recorder collects call outcomes from many goroutines.
type Recorder struct {
	mu    sync.Mutex
	lat   []time.Duration
	errs  map[string]int
	bytes int64
}

// NewRecorder returns a recorder sized for about n calls.
func NewRecorder(n int) *Recorder {
	return &Recorder{lat: make([]time.Duration, 0, n), errs: map[string]int{}}
}

// Add records one call: its latency, response size and error (nil: OK).
// Errors are grouped by their text, which should be short and stable.
func (r *Recorder) Add(d time.Duration, size int64, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.bytes += size
	if err != nil {
		r.errs[err.Error()]++
		return
	}
	r.lat = append(r.lat, d)
}

// Report summarises the calls recorded over elapsed.
func (r *Recorder) Report(target string, concurrency int, elapsed time.Duration) Report {
	r.mu.Lock()
	defer r.mu.Unlock()
	rep := Report{Target: target, Concurrency: concurrency, OK: len(r.lat), ElapsedS: elapsed.Seconds(), Bytes: r.bytes}
	for _, n := range r.errs {
		rep.Errors += n
	}
	rep.Requests = rep.OK + rep.Errors
	if rep.Errors > 0 {
		rep.ErrorKinds = r.errs
	}
	if rep.OK == 0 {
		return rep
	}
	lat := slices.Clone(r.lat)
	slices.Sort(lat)
	var sum time.Duration
	for _, d := range lat {
		sum += d
	}
	rep.RPS = float64(rep.OK) / elapsed.Seconds()
	rep.MeanMS = ms(sum / time.Duration(len(lat)))
	rep.MinMS, rep.MaxMS = ms(lat[0]), ms(lat[len(lat)-1])
	rep.P50MS, rep.P90MS, rep.P99MS = ms(percentile(lat, 50)), ms(percentile(lat, 90)), ms(percentile(lat, 99))
	return rep
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// percentile is the nearest-rank percentile of sorted durations.
func percentile(sorted []time.Duration, p int) time.Duration {
	i := (len(sorted)*p + 99) / 100 // ceil(n*p/100), 1-based
	return sorted[min(max(i, 1), len(sorted))-1]
}

// Write prints a one-line summary to stderr and the JSON report to path
// (stdout when path is empty).
func Write(prog string, rep Report, path string) error {
	fmt.Fprintf(os.Stderr, "%s: %d calls (%d errors) in %.1fs: %.1f/s, p50 %.2f ms, p99 %.2f ms\n",
		prog, rep.Requests, rep.Errors, rep.ElapsedS, rep.RPS, rep.P50MS, rep.P99MS)
	var w io.Writer = os.Stdout
	if path != "" {
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		defer func() { _ = f.Close() }()
		w = f
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}
