// Command benchtool is the gateway's benchmark driver: it builds the
// binaries, starts and stops every process, runs the loads, reads the CPU
// and memory of the processes from /proc, runs the Go benchmarks and
// profiles, and writes bench/RESULTS.md. scripts/bench.sh builds and runs
// it.
//
//	benchtool run [-parts cpu,direct,cold,memory,gobench,profile] [-rounds 3] [-out bench/RESULTS.md]
//	benchtool report -results DIR/results.json [-out bench/RESULTS.md]
//
// `run -h` lists every setting. Everything runs on this machine over
// loopback; every address must be a loopback address.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: benchtool run [flags] | report -results FILE [-out FILE] (see the package documentation)")
		os.Exit(2)
	}
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "run":
		err = runCmd(args)
	case "report":
		err = reportCmd(args)
	default:
		err = fmt.Errorf("unknown command %q: want run or report", cmd)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchtool: "+err.Error())
		os.Exit(1)
	}
}

// allParts are the parts of a run, in the order they run.
var allParts = []string{"cpu", "direct", "cold", "memory", "gobench", "profile"}

func runCmd(args []string) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	o := defaultOptions()
	parts := fs.String("parts", strings.Join(allParts, ","), "parts to run, comma-separated: "+strings.Join(allParts, ", "))
	fs.StringVar(&o.out, "out", o.out, "report to write (parts not run are left out of it)")
	fs.IntVar(&o.rounds, "rounds", o.rounds, "gateway/reference rounds per RPC and configuration, each measured interleaved")
	fs.Float64Var(&o.scale, "scale", o.scale, "multiplies the number of calls of each CPU measurement")
	fs.IntVar(&o.concurrency, "c", o.concurrency, "concurrent callers of the CPU measurements")
	fs.IntVar(&o.connections, "connections", o.connections, "connections of the CPU measurements")
	fs.IntVar(&o.throughputCallers, "throughput-c", o.throughputCallers, "concurrent callers of the throughput measurement (cached ListAvatars calls/s)")
	fs.IntVar(&o.throughputConnections, "throughput-connections", o.throughputConnections, "connections of the throughput measurement")
	fs.DurationVar(&o.latency, "latency", o.latency, "HeyGen latency of the cold-start and direct parts")
	fs.DurationVar(&o.quietWait, "quiet-wait", o.quietWait, "longest wait for other processes to calm down before a measurement")
	fs.IntVar(&o.gobenchCount, "gobench-count", o.gobenchCount, "go test -count of the Go benchmarks")
	fs.BoolVar(&o.keep, "keep", false, "keep the logs, profiles and raw results (the directory is printed)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	o.parts = map[string]bool{}
	for _, p := range strings.Split(*parts, ",") {
		p = strings.TrimSpace(p)
		if !slices.Contains(allParts, p) {
			return fmt.Errorf("unknown part %q: want %s", p, strings.Join(allParts, ", "))
		}
		o.parts[p] = true
	}
	if o.rounds < 1 || o.scale <= 0 || o.concurrency < 1 || o.connections < 1 || o.connections > o.concurrency ||
		o.throughputConnections < 1 || o.throughputConnections > o.throughputCallers {
		return errors.New("want -rounds >= 1, -scale > 0, 1 <= -connections <= -c, 1 <= -throughput-connections <= -throughput-c")
	}
	return run(o)
}

func reportCmd(args []string) error {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	in := fs.String("results", "", "results.json of a run (kept with -keep)")
	out := fs.String("out", "bench/RESULTS.md", "report to write")
	if err := fs.Parse(args); err != nil {
		return err
	}
	b, err := os.ReadFile(*in)
	if err != nil {
		return err
	}
	var r Results
	if err := json.Unmarshal(b, &r); err != nil {
		return fmt.Errorf("%s: %w", *in, err)
	}
	return writeReport(&r, *out)
}

// logf prints progress to stderr with the time since the run started.
var runStart = time.Now()

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[bench %4.0fs] %s\n", time.Since(runStart).Seconds(), fmt.Sprintf(format, args...))
}
