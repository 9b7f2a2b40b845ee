package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// The report keeps, across runs, whatever a person wrote between these
// markers in the previous report (the analysis of the profile and what
// changed since).
const (
	notesBegin = "<!-- notes:begin (kept across runs: edit freely between these markers) -->"
	notesEnd   = "<!-- notes:end -->"
)

// Goals of the issue.
const (
	goalRatio  = 0.8
	goalRSSMiB = 100.0
)

// ghzResult is the part of ghz's JSON report used here (times in ns).
type ghzResult struct {
	Count      int64            `json:"count"`
	Total      int64            `json:"total"`
	Average    int64            `json:"average"`
	Fastest    int64            `json:"fastest"`
	Slowest    int64            `json:"slowest"`
	RPS        float64          `json:"rps"`
	Errors     map[string]int   `json:"errorDistribution"`
	Statuses   map[string]int64 `json:"statusCodeDistribution"`
	LatencyDst []struct {
		Percentage int   `json:"percentage"`
		Latency    int64 `json:"latency"`
	} `json:"latencyDistribution"`
	Options struct {
		Concurrency int `json:"concurrency"`
		Connections int `json:"connections"`
		CPUs        int `json:"CPUs"`
	} `json:"options"`
}

// result is one load run, from ghz or grpcload, normalised.
type result struct {
	client      string // "ghz" or "grpcload"
	count, errs int64
	errKinds    map[string]int
	rps         float64
	elapsed     time.Duration // the load generator's own measure of the run
	p50, p90    float64       // ms
	p99         float64
	fastest     float64
	slowest     float64
	concurrency int
}

func fromGhz(g *ghzResult) result {
	r := result{client: "ghz", count: g.Count, errs: g.Count - g.Statuses["OK"], errKinds: g.Errors, rps: g.RPS,
		elapsed: time.Duration(g.Total), fastest: ms(g.Fastest), slowest: ms(g.Slowest), concurrency: g.Options.Concurrency,
		p50: math.NaN(), p90: math.NaN(), p99: math.NaN()}
	for _, l := range g.LatencyDst {
		switch l.Percentage {
		case 50:
			r.p50 = ms(l.Latency)
		case 90:
			r.p90 = ms(l.Latency)
		case 99:
			r.p99 = ms(l.Latency)
		}
	}
	return r
}

func fromLoad(l *loadReport) result {
	return result{client: "grpcload", count: int64(l.Requests), errs: int64(l.Errors), errKinds: l.ErrorKinds, rps: l.RPS,
		elapsed: time.Duration(l.ElapsedS * float64(time.Second)), p50: l.P50MS, p90: l.P90MS, p99: l.P99MS,
		fastest: l.MinMS, slowest: l.MaxMS, concurrency: l.Concurrency}
}

func ms(ns int64) float64 { return float64(ns) / 1e6 }

// cpuSample is what scripts/bench.sh records around one load run.
type cpuSample struct {
	serverTicks, busyTicks, clkTck int64
	wall                           time.Duration
	clientCPU                      time.Duration // from bash `times`
	load1Before, load1After        string
}

// measurement is one load run with its CPU accounting.
type measurement struct {
	name string
	res  result
	cpu  cpuSample
}

// serverCPU returns the server's CPU time over the run.
func (m *measurement) serverCPU() time.Duration {
	return time.Duration(m.cpu.serverTicks) * time.Second / time.Duration(max(m.cpu.clkTck, 1))
}

// serverCores is the server's mean CPU use, in cores.
func (m *measurement) serverCores() float64 { return m.serverCPU().Seconds() / m.cpu.wall.Seconds() }

// clientCores is the load generator's mean CPU use, in cores.
func (m *measurement) clientCores() float64 { return m.cpu.clientCPU.Seconds() / m.cpu.wall.Seconds() }

// otherCores is the CPU the rest of the machine used over the run, in
// cores: everything busy minus the server and the load generator.
func (m *measurement) otherCores() float64 {
	busy := float64(m.cpu.busyTicks) / float64(max(m.cpu.clkTck, 1))
	return max(0, busy-m.serverCPU().Seconds()-m.cpu.clientCPU.Seconds()) / m.cpu.wall.Seconds()
}

// cpuPerCall is the server's CPU time per call, in µs.
func (m *measurement) cpuPerCall() float64 {
	if m.res.count == 0 {
		return math.NaN()
	}
	return float64(m.serverCPU().Microseconds()) / float64(m.res.count)
}

// loadReport is bench/internal/loadstat.Report (restload, grpcload).
type loadReport struct {
	Requests    int            `json:"requests"`
	OK          int            `json:"ok"`
	Errors      int            `json:"errors"`
	ErrorKinds  map[string]int `json:"error_kinds"`
	ElapsedS    float64        `json:"elapsed_s"`
	RPS         float64        `json:"rps"`
	P50MS       float64        `json:"p50_ms"`
	P90MS       float64        `json:"p90_ms"`
	P99MS       float64        `json:"p99_ms"`
	MeanMS      float64        `json:"mean_ms"`
	MinMS       float64        `json:"min_ms"`
	MaxMS       float64        `json:"max_ms"`
	Concurrency int            `json:"concurrency"`
	Bytes       int64          `json:"bytes"`
}

// fakeStats is bench/fakeheygen's /_fake/stats.
type fakeStats struct {
	Total      int            `json:"total"`
	Paths      map[string]int `json:"paths"`
	Other      int            `json:"other"`
	LatencyMS  float64        `json:"latency_ms"`
	CrawlCalls map[string]int `json:"crawl_calls"`
	Catalogue  struct {
		Seed          int64 `json:"seed"`
		Groups        int   `json:"groups"`
		Looks         int   `json:"looks"`
		PublicGroups  int   `json:"public_groups"`
		PrivateGroups int   `json:"private_groups"`
		PublicLooks   int   `json:"public_looks"`
		PrivateLooks  int   `json:"private_looks"`
		PageLimit     int   `json:"page_limit"`
	} `json:"catalogue"`
}

// refreshLine is the gateway's "catalogue refreshed" log line.
type refreshLine struct {
	Msg         string `json:"msg"`
	Avatars     int    `json:"avatars"`
	Groups      int    `json:"groups"`
	HeyGenCalls int    `json:"heygen_calls"`
	Took        int64  `json:"took"` // ns (slog's JSON encoding of a Duration)
}

// goBench is one benchmark's results over -count runs.
type goBench struct {
	name    string
	nsPerOp []float64
	metrics map[string][]float64 // unit -> values (B/op, allocs/op, custom)
	units   []string             // in order of first appearance
}

type reportData struct {
	dir   string
	meta  map[string]string
	meas  map[string]*measurement
	warns []string
}

func reportCmd(args []string) error {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	dir := fs.String("dir", "", "results directory written by scripts/bench.sh")
	out := fs.String("out", "bench/RESULTS.md", "markdown file to write")
	if err := fs.Parse(args); err != nil {
		return err
	}
	d := &reportData{dir: *dir, meas: map[string]*measurement{}}
	var err error
	if d.meta, err = readEnv(filepath.Join(*dir, "meta.env")); err != nil {
		return err
	}
	notes := defaultNotes
	if old, err := os.ReadFile(*out); err == nil {
		if n, ok := extractNotes(string(old)); ok {
			notes = n
		}
	}
	md, err := d.render(notes)
	if err != nil {
		return err
	}
	return os.WriteFile(*out, []byte(md), 0o644) //nolint:gosec // a report under version control
}

func readEnv(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	for line := range strings.Lines(string(b)) {
		k, v, ok := strings.Cut(strings.TrimRight(line, "\n"), "=")
		if ok {
			m[k] = v
		}
	}
	return m, nil
}

func extractNotes(md string) (string, bool) {
	i := strings.Index(md, notesBegin)
	j := strings.Index(md, notesEnd)
	if i < 0 || j < i {
		return "", false
	}
	return strings.Trim(md[i+len(notesBegin):j], "\n"), true
}

const defaultNotes = `_No analysis yet: after a run, write here what the profile shows and what changed since the last run._`

func (d *reportData) readJSON(name string, v any) error {
	b, err := os.ReadFile(filepath.Join(d.dir, name))
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// measurement loads NAME.ghz.json or NAME.load.json, NAME.cpu and
// NAME.times.
func (d *reportData) measurement(name string) (*measurement, error) {
	if m, ok := d.meas[name]; ok {
		return m, nil
	}
	m := &measurement{name: name}
	var g ghzResult
	var l loadReport
	if err := d.readJSON(name+".ghz.json", &g); err == nil {
		m.res = fromGhz(&g)
	} else if err := d.readJSON(name+".load.json", &l); err == nil {
		m.res = fromLoad(&l)
	} else {
		return nil, fmt.Errorf("%s: no ghz or grpcload report: %w", name, err)
	}
	env, err := readEnv(filepath.Join(d.dir, name+".cpu"))
	if err != nil {
		return nil, err
	}
	num := func(k string) int64 { n, _ := strconv.ParseInt(env[k], 10, 64); return n }
	m.cpu = cpuSample{serverTicks: num("server_ticks"), busyTicks: num("busy_ticks"), clkTck: num("clk_tck"),
		wall: time.Duration(num("wall_ns")), load1Before: env["load1_before"], load1After: env["load1_after"]}
	if b, err := os.ReadFile(filepath.Join(d.dir, name+".times")); err == nil {
		m.cpu.clientCPU = parseTimes(string(b))
	}
	if m.res.errs > 0 {
		d.warns = append(d.warns, fmt.Sprintf("%s: %d of %d calls failed: %v", name, m.res.errs, m.res.count, m.res.errKinds))
	}
	d.meas[name] = m
	return m, nil
}

var timesRE = regexp.MustCompile(`(\d+)m([\d.]+)s`)

// parseTimes sums the children's user and system time from bash `times`
// (its second line).
func parseTimes(s string) time.Duration {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) < 2 {
		return 0
	}
	var total time.Duration
	for _, m := range timesRE.FindAllStringSubmatch(lines[1], -1) {
		mins, _ := strconv.Atoi(m[1])
		secs, _ := strconv.ParseFloat(m[2], 64)
		total += time.Duration(mins)*time.Minute + time.Duration(secs*float64(time.Second))
	}
	return total
}

// refreshes returns the gateway's "catalogue refreshed" lines from a log.
func (d *reportData) refreshes(name string) []refreshLine {
	b, err := os.ReadFile(filepath.Join(d.dir, name))
	if err != nil {
		return nil
	}
	var out []refreshLine
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if !bytes.Contains(sc.Bytes(), []byte(`"catalogue refreshed"`)) {
			continue
		}
		var r refreshLine
		if json.Unmarshal(sc.Bytes(), &r) == nil && r.Msg == "catalogue refreshed" {
			out = append(out, r)
		}
	}
	return out
}

// md helpers.
type table struct {
	head []string
	rows [][]string
}

func (t *table) add(cells ...string) { t.rows = append(t.rows, cells) }

func (t *table) String() string {
	var b strings.Builder
	b.WriteString("| " + strings.Join(t.head, " | ") + " |\n|")
	for range t.head {
		b.WriteString(" --- |")
	}
	b.WriteString("\n")
	for _, r := range t.rows {
		b.WriteString("| " + strings.Join(r, " | ") + " |\n")
	}
	return b.String()
}

func f0(v float64) string { return fmtNum(v, 0) }
func f1(v float64) string { return fmtNum(v, 1) }
func f2(v float64) string { return fmtNum(v, 2) }

func fmtNum(v float64, prec int) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "n/a"
	}
	return strconv.FormatFloat(v, 'f', prec, 64)
}

func met(ok bool) string {
	if ok {
		return "**met**"
	}
	return "**NOT met**"
}

func (d *reportData) kibMiB(key string) float64 {
	n, err := strconv.ParseFloat(d.meta[key], 64)
	if err != nil {
		return math.NaN()
	}
	return n / 1024
}

// pooled sums a set of runs: calls per second over their combined
// duration, server CPU per call, and mean server, client and other CPU.
type pooled struct {
	rps, cpuPerCall                           float64
	serverCores, clientCores, otherCores, p50 float64
}

func pool(ms []*measurement) pooled {
	var n int64
	var elapsed, cpu, wall time.Duration
	var p pooled
	for _, x := range ms {
		n += x.res.count
		elapsed += x.res.elapsed
		cpu += x.serverCPU()
		wall += x.cpu.wall
		p.clientCores += x.cpu.clientCPU.Seconds()
		p.otherCores += x.otherCores() * x.cpu.wall.Seconds()
		p.p50 += x.res.p50 / float64(len(ms))
	}
	p.rps = float64(n) / elapsed.Seconds()
	p.cpuPerCall = float64(cpu.Microseconds()) / float64(n)
	p.serverCores = cpu.Seconds() / wall.Seconds()
	p.clientCores /= wall.Seconds()
	p.otherCores /= wall.Seconds()
	return p
}

// bottleneck says what limited a gateway run: the server, the client or
// neither (something else on the machine took the CPU).
func bottleneck(p pooled) string {
	switch {
	case p.serverCores >= 0.85:
		return "server-bound"
	case p.clientCores >= 0.85:
		return "client-bound"
	case p.otherCores >= 0.3:
		return "machine busy"
	}
	return "neither saturated"
}

func (d *reportData) render(notes string) (string, error) {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	m := d.meta
	rounds, _ := strconv.Atoi(m["rounds"])

	// Load everything first, so that a missing file fails the report.
	type series struct{ gw, bare []*measurement }
	list := map[string]*series{"ghz": {}, "load": {}}
	for _, client := range []string{"ghz", "load"} {
		for r := 1; r <= rounds; r++ {
			g, err := d.measurement(fmt.Sprintf("%s-list-gw-r%d", client, r))
			if err != nil {
				return "", err
			}
			bm, err := d.measurement(fmt.Sprintf("%s-list-bare-r%d", client, r))
			if err != nil {
				return "", err
			}
			list[client].gw = append(list[client].gw, g)
			list[client].bare = append(list[client].bare, bm)
		}
	}
	for _, n := range []string{"ghz-health-gw", "ghz-health-bare", "load-health-gw", "load-health-bare", "cold", "gwrest", "rss"} {
		if _, err := d.measurement(n); err != nil {
			return "", err
		}
	}
	var rest loadReport
	if err := d.readJSON("rest.json", &rest); err != nil {
		return "", err
	}
	var stCold, stRest0, stRest1, stGw0, stGw1 fakeStats
	for name, v := range map[string]*fakeStats{"stats-cold.json": &stCold,
		"stats-rest-before.json": &stRest0, "stats-rest-after.json": &stRest1,
		"stats-gwrest-before.json": &stGw0, "stats-gwrest-after.json": &stGw1} {
		if err := d.readJSON(name, v); err != nil {
			return "", err
		}
	}
	benches, benchOrder, err := parseGoBench(filepath.Join(d.dir, "gobench.txt"))
	if err != nil {
		return "", err
	}

	pg := map[string][2]pooled{}
	for c, s := range list {
		pg[c] = [2]pooled{pool(s.gw), pool(s.bare)}
	}
	ratio := func(c string) float64 { return pg[c][0].rps / pg[c][1].rps }
	effic := func(c string) float64 { return pg[c][1].cpuPerCall / pg[c][0].cpuPerCall }

	crawlExpected := stCold.CrawlCalls["/v3/avatars/looks"] + stCold.CrawlCalls["/v3/avatars"]
	crawlObserved := stCold.Paths["/v3/avatars/looks"] + stCold.Paths["/v3/avatars"]
	g1Ref := d.refreshes("gw1.log")
	g2Ref := d.refreshes("gw2.log")
	hwm := d.kibMiB("gw2_vmhwm_kib")
	cold := d.meas["cold"]
	lat := m["latency"]

	w("# Benchmark results\n\n")
	dirty := ""
	if m["worktree_dirty"] == "yes" {
		dirty = ", with uncommitted changes in the work tree"
	}
	w("Written by `./scripts/bench.sh` on **%s**, commit `%s` (%s)%s, in %s s. The script's header says what it "+
		"measures and how; everything above the notes block at the end is regenerated by each run.\n\n",
		m["date"], m["commit"], m["commit_subject"], dirty, m["elapsed_s"])

	w("## Machine\n\n")
	mt := &table{head: []string{"", ""}}
	mt.add("CPUs (nproc)", m["nproc"])
	mt.add("CPU model", m["cpu_model"])
	mt.add("Memory", f1(d.kibMiB("mem_total_kib")/1024)+" GiB")
	mt.add("Kernel", m["kernel"])
	mt.add("OS", m["os"])
	mt.add("Go", m["go_version"])
	mt.add("ghz", m["ghz_version"])
	mt.add("Placement", m["placement"])
	mt.add("Load average (1 min) at start / end", m["load1_start"]+" / "+m["load1_end"])
	mt.add("Waited for a quiet machine", m["quiet_start_wait_s"]+" s at the start (other processes then used "+m["quiet_start_busy_pct"]+
		"% of a core); "+m["quiet_total_wait_s"]+" s in all, with the waits before each round of part 1")
	w("%s\n", mt)
	w("Client and server share the machine's %s cores. \"Other\" CPU in the tables is what the rest of the machine "+
		"used during that measurement (all busy CPU time minus the server's and the load generator's): well above 0 "+
		"means something else was running and the numbers are pessimistic.\n\n", m["nproc"])

	w("## Goals\n\n")
	gt := &table{head: []string{"Goal", "Target", "Measured", "Result"}}
	// A throughput ratio says something about the server only when the
	// server was the bottleneck.
	verdict := func(c string, ok bool) string {
		if bn := bottleneck(pg[c][0]); bn != "server-bound" {
			return met(ok) + " (inconclusive: " + bn + ")"
		}
		return met(ok)
	}
	gt.add("Cached ListAvatars throughput, gateway / bare grpc-go, with grpcload", fmt.Sprintf("≥ %.1f", goalRatio),
		f2(ratio("load"))+" ("+bottleneck(pg["load"][0])+")", verdict("load", ratio("load") >= goalRatio))
	gt.add("Same with ghz, as the issue specifies", fmt.Sprintf("≥ %.1f", goalRatio),
		f2(ratio("ghz"))+" ("+bottleneck(pg["ghz"][0])+")", verdict("ghz", ratio("ghz") >= goalRatio))
	gt.add("Server CPU per ListAvatars call, bare / gateway (grpcload; independent of the bottleneck)", fmt.Sprintf("≥ %.1f", goalRatio),
		f2(effic("load"))+" ("+f1(pg["load"][1].cpuPerCall)+" / "+f1(pg["load"][0].cpuPerCall)+" µs)", met(effic("load") >= goalRatio))
	gt.add(fmt.Sprintf("%s cold callers against a fresh gateway: HeyGen list calls", m["cold_callers"]),
		fmt.Sprintf("one crawl = %d", crawlExpected), strconv.Itoa(crawlObserved), met(crawlObserved == crawlExpected && len(g2Ref) == 1))
	gt.add(fmt.Sprintf("Gateway peak RSS (VmHWM) under %s callers for %s", m["rss_callers"], m["rss_duration"]),
		fmt.Sprintf("< %.0f MiB", goalRSSMiB), f1(hwm)+" MiB", met(hwm < goalRSSMiB))
	allOK := len(d.warns) == 0 && rest.Errors == 0
	errText := "0 errors"
	if !allOK {
		errText = "errors (see below)"
	}
	gt.add("Every benchmark call answered OK", "0 errors", errText, met(allOK))
	w("%s\n", gt)
	for _, warn := range d.warns {
		w("- ⚠ %s\n", warn)
	}
	if rest.Errors > 0 {
		w("- ⚠ restload: %d of %d requests failed: %v\n", rest.Errors, rest.Requests, rest.ErrorKinds)
	}
	if len(d.warns) > 0 || rest.Errors > 0 {
		w("\n")
	}

	// 1.
	w("## 1. Cached ListAvatars: gateway versus a bare grpc-go server\n\n")
	w("ListAvatars `{\"page_size\":%s}` (the first page of the %s-avatar catalogue, %s bytes), %s callers over %s connections, "+
		"%s rounds alternating gateway and bare, each run about %s after a %s warm-up. The bare server (`bench/bareserver`: "+
		"default grpc-go server, no interceptors, no lookup, standard health service) returns the very response the gateway "+
		"gave it at startup. The gateway runs its production configuration: interceptor chain, one JSON log line per call at "+
		"info level (written to a file), catalogue lookup.\n\n",
		m["page_size"], intMul(m["groups"], m["looks_per_group"]), d.meta["response_bytes"], m["concurrency"], m["connections"], m["rounds"],
		m["duration"], m["warmup"])
	w("Two clients, both on the client CPU: **ghz** %s (`--cpus 1`, `-n` set from the warm-up's rate so that no call is cut "+
		"off at the end) as the issue asks, and **grpcload** (`bench/grpcload`), a light Go client that sends a pre-encoded "+
		"request and does not decode responses. ghz decodes every 50-avatar response into a dynamic message, which costs it "+
		"several times the server's CPU per call, so with one core each ghz saturates first and cannot tell a fast server from "+
		"a slow one; grpcload leaves the server as the bottleneck.\n\n", m["ghz_version"])
	t1 := &table{head: []string{"Client", "Server", "RPC", "Round", "Calls", "Errors", "Calls/s", "p50 ms", "p90 ms", "p99 ms",
		"Server CPU (cores)", "Server CPU µs/call", "Client CPU (cores)", "Other CPU (cores)"}}
	row := func(server, rpc, round string, x *measurement) {
		t1.add(x.res.client, server, rpc, round, strconv.FormatInt(x.res.count, 10), strconv.FormatInt(x.res.errs, 10), f0(x.res.rps),
			f2(x.res.p50), f2(x.res.p90), f2(x.res.p99), f2(x.serverCores()), f1(x.cpuPerCall()), f2(x.clientCores()), f2(x.otherCores()))
	}
	for _, c := range []string{"load", "ghz"} {
		for i := range list[c].gw {
			row("gateway", "ListAvatars", strconv.Itoa(i+1), list[c].gw[i])
			row("bare", "ListAvatars", strconv.Itoa(i+1), list[c].bare[i])
		}
	}
	for _, c := range []string{"load", "ghz"} {
		row("gateway", "Health/Check", "1", d.meas[c+"-health-gw"])
		row("bare", "Health/Check", "1", d.meas[c+"-health-bare"])
	}
	w("%s\n", t1)
	rt := &table{head: []string{"Pooled over the rounds", "grpcload: gateway", "bare", "gateway / bare", "ghz: gateway", "bare", "gateway / bare"}}
	two := func(label string, f func(p pooled) float64, fmtf func(float64) string, ratioText func(g, b float64) string) {
		cells := []string{label}
		for _, c := range []string{"load", "ghz"} {
			g, bb := f(pg[c][0]), f(pg[c][1])
			cells = append(cells, fmtf(g), fmtf(bb), ratioText(g, bb))
		}
		rt.add(cells...)
	}
	two("ListAvatars calls/s", func(p pooled) float64 { return p.rps }, f0, func(g, b float64) string { return "**" + f2(g/b) + "**" })
	two("ListAvatars p50 (ms, mean of rounds)", func(p pooled) float64 { return p.p50 }, f2, func(g, b float64) string { return f2(g/b) + "×" })
	two("Server CPU per ListAvatars call (µs)", func(p pooled) float64 { return p.cpuPerCall }, f1,
		func(g, b float64) string { return f2(g/b) + "× (efficiency " + f2(b/g) + ")" })
	two("Server CPU (cores)", func(p pooled) float64 { return p.serverCores }, f2, func(_, _ float64) string { return "" })
	two("Client CPU (cores)", func(p pooled) float64 { return p.clientCores }, f2, func(_, _ float64) string { return "" })
	cells := []string{"Health/Check calls/s"}
	for _, c := range []string{"load", "ghz"} {
		hg, hb := d.meas[c+"-health-gw"], d.meas[c+"-health-bare"]
		cells = append(cells, f0(hg.res.rps), f0(hb.res.rps), f2(hg.res.rps/hb.res.rps))
	}
	rt.add(cells...)
	w("%s\n", rt)
	w("Distance from the limit: with the server as the bottleneck (grpcload, gateway %s) the gateway serves **%s** of the bare "+
		"server's ListAvatars throughput (goal ≥ %.1f: %s); per call it spends %s× the bare server's CPU (efficiency %s). "+
		"With ghz (gateway %s) the ratio is %s.\n\n",
		bottleneck(pg["load"][0]), f2(ratio("load")), goalRatio, met(ratio("load") >= goalRatio),
		f2(1/effic("load")), f2(effic("load")), bottleneck(pg["ghz"][0]), f2(ratio("ghz")))

	// 2.
	w("## 2. The same page: through the gateway versus straight from HeyGen\n\n")
	w("The fake HeyGen (`bench/fakeheygen`) adds %s to every response, like HeyGen's own latency. REST: `bench/restload` "+
		"GETs `/v3/avatars/looks?limit=%s` (the equivalent HeyGen page; JSON decoded and checked for %s items) %s times, "+
		"%d at a time. Gateway: ghz ListAvatars page_size %s at the same concurrency for about %s, answered from the catalogue.\n\n",
		lat, m["page_size"], m["page_size"], m["rest_requests"], rest.Concurrency, m["page_size"], m["duration"])
	gr := d.meas["gwrest"]
	upRest := (stRest1.Paths["/v3/avatars/looks"] + stRest1.Paths["/v3/avatars"]) - (stRest0.Paths["/v3/avatars/looks"] + stRest0.Paths["/v3/avatars"])
	upGw := (stGw1.Paths["/v3/avatars/looks"] + stGw1.Paths["/v3/avatars"]) - (stGw0.Paths["/v3/avatars/looks"] + stGw0.Paths["/v3/avatars"])
	t2 := &table{head: []string{"Path", "Concurrency", "Calls", "Errors", "Calls/s", "p50 ms", "p90 ms", "p99 ms", "HeyGen list calls"}}
	t2.add("direct REST to HeyGen (fake, "+lat+")", strconv.Itoa(rest.Concurrency), strconv.Itoa(rest.Requests), strconv.Itoa(rest.Errors),
		f1(rest.RPS), f1(rest.P50MS), f1(rest.P90MS), f1(rest.P99MS), strconv.Itoa(upRest))
	t2.add("gateway ListAvatars (catalogue), ghz", strconv.Itoa(gr.res.concurrency), strconv.FormatInt(gr.res.count, 10), strconv.FormatInt(gr.res.errs, 10),
		f0(gr.res.rps), f2(gr.res.p50), f2(gr.res.p90), f2(gr.res.p99), strconv.Itoa(upGw))
	w("%s\n", t2)
	w("p50: %s ms from HeyGen directly, %s ms through the gateway: a caller saves **%s ms** per page (%s× faster). "+
		"p99: %s ms versus %s ms. HeyGen sees no call from the gateway (%d list calls during its run, against one per REST call); "+
		"at the same concurrency the gateway answers %s× as many calls per second.\n\n",
		f1(rest.P50MS), f2(gr.res.p50), f1(rest.P50MS-gr.res.p50), f0(rest.P50MS/gr.res.p50), f1(rest.P99MS), f2(gr.res.p99),
		upGw, f0(gr.res.rps/rest.RPS))

	// 3.
	w("## 3. Cold callers: one crawl, however many callers\n\n")
	w("A fresh gateway (HeyGen latency %s) gets %s concurrent ListAvatars calls as soon as it serves (ghz `-c %s -n %s`, "+
		"10 connections). They all wait for the one crawl under way; the fake HeyGen counts every request it receives.\n\n",
		lat, m["cold_callers"], m["cold_callers"], m["cold_callers"])
	t3 := &table{head: []string{"HeyGen path", "Expected (one crawl)", "Observed"}}
	t3.add("`/v3/avatars/looks` (look pages, public and private)", strconv.Itoa(stCold.CrawlCalls["/v3/avatars/looks"]), strconv.Itoa(stCold.Paths["/v3/avatars/looks"]))
	t3.add("`/v3/avatars` (group pages, public and private)", strconv.Itoa(stCold.CrawlCalls["/v3/avatars"]), strconv.Itoa(stCold.Paths["/v3/avatars"]))
	t3.add("**all list calls**", "**"+strconv.Itoa(crawlExpected)+"**", "**"+strconv.Itoa(crawlObserved)+"**")
	t3.add("`/v3/users/me` (the health probe, not part of the crawl)", "1 at start, then 1 per 30 s", strconv.Itoa(stCold.Paths["/v3/users/me"]))
	t3.add("anything else", "0", strconv.Itoa(stCold.Other))
	w("%s\n", t3)
	w("Catalogue: %d looks (%d public, %d private) and %d groups (%d public, %d private), %d per page. ",
		stCold.Catalogue.Looks, stCold.Catalogue.PublicLooks, stCold.Catalogue.PrivateLooks,
		stCold.Catalogue.Groups, stCold.Catalogue.PublicGroups, stCold.Catalogue.PrivateGroups, stCold.Catalogue.PageLimit)
	w("The gateway logged %d `catalogue refreshed` line(s)%s. The %d callers: %d OK, %d failed; latency fastest %s ms, "+
		"p50 %s ms, slowest %s ms (each waited for the crawl). Result: %s.\n\n",
		len(g2Ref), refreshSuffix(g2Ref), cold.res.count, cold.res.count-cold.res.errs, cold.res.errs, f0(cold.res.fastest),
		f0(cold.res.p50), f0(cold.res.slowest), met(crawlObserved == crawlExpected && len(g2Ref) == 1))

	// 4.
	w("## 4. The 5,000-avatar catalogue: crawl, memory\n\n")
	t4 := &table{head: []string{"Measure", "Value", "How"}}
	if len(g1Ref) > 0 {
		t4.add("Crawl and index, HeyGen without latency", f0(ms(g1Ref[0].Took))+" ms",
			fmt.Sprintf("gateway log `catalogue refreshed` (gateway on one core): %d avatars, %d groups, %d HeyGen calls", g1Ref[0].Avatars, g1Ref[0].Groups, g1Ref[0].HeyGenCalls))
	}
	if len(g2Ref) > 0 {
		t4.add("Crawl and index, HeyGen latency "+lat, f0(ms(g2Ref[0].Took))+" ms",
			fmt.Sprintf("same, %d HeyGen calls: four lists at once, the pages of each one after another", g2Ref[0].HeyGenCalls))
	}
	if bc := findBench(benches, "BenchmarkCrawl"); bc != nil {
		t4.add("Crawl and index in process (BenchmarkCrawl, median)", f1(median(bc.nsPerOp)/1e6)+" ms", "in-process fake HeyGen, loopback HTTP, no latency, unpinned")
		if v := bc.metrics["retained-MiB"]; len(v) > 0 {
			t4.add("**Snapshot memory** (live heap the catalogue keeps)", "**"+f2(median(v))+" MiB**",
				"BenchmarkCrawl: live heap after GC with the crawled catalogue installed, minus before")
		}
	}
	if bs := findBench(benches, "BenchmarkBuildSnapshot"); bs != nil {
		t4.add("buildSnapshot alone (BenchmarkBuildSnapshot, median)", f1(median(bs.nsPerOp)/1e6)+" ms",
			f2(median(bs.metrics["B/op"])/(1<<20))+" MiB allocated per build")
	}
	t4.add("Gateway RSS, idle after its first crawl", f1(d.kibMiB("gw1_rss_idle_kib"))+" MiB", "VmRSS, gateway of part 1")
	t4.add("Gateway peak RSS after the part 1 loads", f1(d.kibMiB("gw1_vmhwm_kib"))+" MiB", "VmHWM, gateway of part 1 ("+m["concurrency"]+" callers)")
	t4.add("Gateway RSS before the sustained load", f1(d.kibMiB("gw2_rss_before_load_kib"))+" MiB", "VmRSS, the fresh gateway of parts 2-4")
	rs := d.meas["rss"]
	t4.add(fmt.Sprintf("**Gateway peak RSS**, %s callers for about %s", m["rss_callers"], m["rss_duration"]), "**"+f1(hwm)+" MiB**",
		fmt.Sprintf("VmHWM, lifetime peak (crawl and every load included); the load: ghz, %s calls/s, p99 %s ms, %d errors; goal < %.0f MiB: %s",
			f0(rs.res.rps), f2(rs.res.p99), rs.res.errs, goalRSSMiB, met(hwm < goalRSSMiB)))
	t4.add("Gateway RSS after the sustained load", f1(d.kibMiB("gw2_rss_after_load_kib"))+" MiB", "VmRSS")
	w("%s\n", t4)

	// 5.
	w("## 5. Go benchmarks (`server/bench_test.go`)\n\n")
	w("`go test -run '^$' -bench . -benchmem -count %s -benchtime %s ./server/`, unpinned, every server stopped; median of "+
		"the %s runs and their range. Input: `heygentest.GenerateCatalogue(20241125, 100, 50)` (5,000 looks) decoded into the "+
		"HeyGen client's types. `SnapshotList` is the filter alone, `ListAvatarsHandler` the whole handler without gRPC "+
		"(validation, filter fingerprint, page tokens). Cases: `no-filter` first page; `selective-group` one group's 50 looks "+
		"(the whole list is scanned); `selective-private-female-photo`; `query` \"sweater\"; `tag` \"holiday\"; "+
		"`deep-page-token` the page after the 4,500th avatar, reached with a page token. `ListAvatarsRPC` is the real server "+
		"over loopback TCP with 8 callers (client not decoding), ns/op per call with client and server sharing the 2 cores.\n\n",
		m["gobench_count"], m["gobench_time"], m["gobench_count"])
	t5 := &table{head: []string{"Benchmark", "ns/op (median)", "range", "B/op", "allocs/op", "other"}}
	for _, name := range benchOrder {
		bn := benches[name]
		lo, hi := slices.Min(bn.nsPerOp), slices.Max(bn.nsPerOp)
		var other []string
		for _, u := range bn.units {
			if u == "B/op" || u == "allocs/op" {
				continue
			}
			other = append(other, fmtMetric(median(bn.metrics[u]))+" "+u)
		}
		t5.add("`"+name+"`", fmtMetric(median(bn.nsPerOp)), fmtMetric(lo)+" – "+fmtMetric(hi),
			fmtMetric(median(bn.metrics["B/op"])), fmtMetric(median(bn.metrics["allocs/op"])), strings.Join(other, ", "))
	}
	w("%s\n", t5)

	// Profile.
	w("## Profile\n\n")
	if g3, err := d.measurement("load-list-gw3"); err == nil {
		w("### The gateway binary under load\n\n")
		w("A third gateway, default settings plus `-metrics-addr 127.0.0.1:PORT -pprof` (pprof is served on the metrics port, " +
			"so the Prometheus interceptors are on too), pinned like the others, under the same grpcload ListAvatars load; " +
			"its CPU profile is taken from `/debug/pprof/profile` in the middle of the run. It logs to a file, as in " +
			"production to a pipe.\n\n")
		t := &table{head: []string{"Gateway", "Calls/s", "p50 ms", "p99 ms", "Server CPU (cores)", "Server CPU µs/call", "Other CPU (cores)"}}
		t.add("default (part 1, grpcload, pooled)", f0(pg["load"][0].rps), f2(pg["load"][0].p50), "", f2(pg["load"][0].serverCores),
			f1(pg["load"][0].cpuPerCall), f2(pg["load"][0].otherCores))
		t.add("default + metrics + pprof", f0(g3.res.rps), f2(g3.res.p50), f2(g3.res.p99), f2(g3.serverCores()), f1(g3.cpuPerCall()), f2(g3.otherCores()))
		w("%s\n", t)
		keys, total := keyFrames(filepath.Join(d.dir, "gw3-pprof-server.txt"))
		if len(keys.rows) > 0 {
			w("Where the binary's time goes (cumulative %% of all samples in the process%s):\n\n%s\n", total, keys)
		}
		if top, err := os.ReadFile(filepath.Join(d.dir, "gw3-pprof-top.txt")); err == nil {
			w("<details><summary>pprof -top of the binary, first 30</summary>\n\n```\n%s```\n\n</details>\n\n", trimPprofHeader(string(top)))
		}
		if srv, err := os.ReadFile(filepath.Join(d.dir, "gw3-pprof-server.txt")); err == nil {
			w("<details><summary>pprof -top -cum of the binary, the server's call path only (handleStream), first 60</summary>\n\n```\n%s```\n\n</details>\n\n",
				firstLines(trimPprofHeader(string(srv)), 66))
		}
	}
	w("### The in-process benchmark\n\n")
	w("`BenchmarkListAvatarsRPC/log=info`: the real gRPC server (`server.New`, production interceptor chain, info-level " +
		"JSON logging formatted and discarded, the 5,000-avatar catalogue) over loopback TCP, 8 callers, the client not decoding " +
		"responses; client and server share the process and both cores, unpinned.\n\n" +
		"    go test -run '^$' -bench 'ListAvatarsRPC/log=info$' -benchtime 5s -cpuprofile cpu.out ./server/\n" +
		"    go tool pprof -top -cum -focus 'grpc\\.\\(\\*Server\\)\\.handleStream' server.test cpu.out\n\n")
	if pb, err := os.ReadFile(filepath.Join(d.dir, "profile-bench.txt")); err == nil {
		for line := range strings.Lines(string(pb)) {
			if strings.HasPrefix(line, "Benchmark") {
				w("Profiled run: `%s`\n\n", strings.Join(strings.Fields(line), " "))
			}
		}
	}
	keys, total := keyFrames(filepath.Join(d.dir, "pprof-server.txt"))
	if len(keys.rows) > 0 {
		w("Where the server's time goes (cumulative %% of all samples in the process%s):\n\n%s\n", total, keys)
	}
	if top, err := os.ReadFile(filepath.Join(d.dir, "pprof-top.txt")); err == nil {
		w("<details><summary>pprof -top: whole process (server, transport, client), first 30</summary>\n\n```\n%s```\n\n</details>\n\n", trimPprofHeader(string(top)))
	}
	if srv, err := os.ReadFile(filepath.Join(d.dir, "pprof-server.txt")); err == nil {
		w("<details><summary>pprof -top -cum: the server's call path only (handleStream), first 60</summary>\n\n```\n%s```\n\n</details>\n\n", firstLines(trimPprofHeader(string(srv)), 66))
	}
	w("### Analysis\n\n%s\n%s\n%s\n", notesBegin, notes, notesEnd)
	return b.String(), nil
}

func refreshSuffix(r []refreshLine) string {
	if len(r) == 0 {
		return ""
	}
	return fmt.Sprintf(" (took %s ms, %d HeyGen calls, %d avatars, %d groups)", f0(ms(r[0].Took)), r[0].HeyGenCalls, r[0].Avatars, r[0].Groups)
}

func intMul(a, b string) string {
	x, _ := strconv.Atoi(a)
	y, _ := strconv.Atoi(b)
	return strconv.Itoa(x * y)
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func fmtMetric(v float64) string {
	switch {
	case math.IsNaN(v):
		return ""
	case v >= 100:
		return strconv.FormatFloat(math.Round(v), 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
}

func findBench(m map[string]*goBench, prefix string) *goBench {
	for name, b := range m {
		if name == prefix || strings.HasPrefix(name, prefix+"-") {
			return b
		}
	}
	return nil
}

// parseGoBench reads `go test -bench` output, grouping -count runs.
func parseGoBench(path string) (map[string]*goBench, []string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	out := map[string]*goBench{}
	var order []string
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		bn, ok := out[f[0]]
		if !ok {
			bn = &goBench{name: f[0], metrics: map[string][]float64{}}
			out[f[0]] = bn
			order = append(order, f[0])
		}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			unit := f[i+1]
			if unit == "ns/op" {
				bn.nsPerOp = append(bn.nsPerOp, v)
				continue
			}
			if _, seen := bn.metrics[unit]; !seen {
				bn.units = append(bn.units, unit)
			}
			bn.metrics[unit] = append(bn.metrics[unit], v)
		}
	}
	if len(out) == 0 {
		return nil, nil, errors.New("no benchmark results in " + path)
	}
	return out, order, nil
}

// keyFrames picks, from `pprof -top -cum` of the server path, the frames
// that say where a call's time goes.
func keyFrames(path string) (*table, string) {
	t := &table{head: []string{"Frame", "cum %", "What it is"}}
	b, err := os.ReadFile(path)
	if err != nil {
		return t, ""
	}
	frames := []struct{ re, what string }{
		{`grpc\.\(\*Server\)\.handleStream$`, "one server-side call, all of it; every row below is part of it and includes what it calls"},
		{`grpc\.\(\*serverStream\)\.RecvMsg$`, "reading and decoding the request"},
		{`_AvatarsService_ListAvatars_Handler$`, "the interceptor chain and the handler"},
		{`server\.statsUnary$`, "the interceptor chain (from the outermost interceptor) and the handler"},
		{`logging\.UnaryServerInterceptor\..*func\d+$`, "the logging interceptor and everything inside it"},
		{`logging\.\(\*reporter\)\.PostCall$`, "building and writing the per-call log line"},
		{`slog\.\(\*Logger\)\.log$`, "log/slog: the JSON line itself"},
		{`server\.protectUnary\..*func\d+$|server\.interceptorChain\.protectUnary`, "caller auth, limits, in-flight accounting and everything inside them"},
		{`server\.\(\*avatarsServer\)\.ListAvatars$`, "the ListAvatars handler"},
		{`server\.\(\*avatarsServer\)\.listAvatarsFromCatalogue$`, "the catalogue lookup (filter, fingerprint, token)"},
		{`server\.\(\*Snapshot\)\.listAvatars$`, "the snapshot filter"},
		{`server\.filterFingerprint$`, "the filter fingerprint (sha256)"},
		{`server\.\(\*avatarFilter\)\.canonical$`, "the canonical filter string (fmt.Sprintf)"},
		{`server\.encodePageToken$`, "the next page token (sha256 + base64)"},
		{`server\.checkFilterText$`, "free-text filter checks"},
		{`server\.\(\*avatarsServer\)\.setSource$`, "the freshness response headers"},
		{`grpc\.\(\*serverStream\)\.SendMsg$`, "sending the response: encoding and queueing the frames"},
		{`encoding/proto\.\(\*codecV2\)\.Marshal$|encoding/proto\.codecV2\.Marshal$`, "protobuf encoding of the response"},
		{`proto\.MarshalOptions\.size$`, "of which the size pass"},
		{`impl\.\(\*MessageInfo\)\.marshalAppendPointer$`, "of which the marshal pass"},
		{`runtime\.newstack$`, "goroutine stack growth (a new goroutine per call)"},
		{`runtime\.mallocgc$`, "memory allocation (within all of the above)"},
	}
	var total string
	lines := strings.Split(string(b), "\n")
	for _, l := range lines {
		if strings.HasPrefix(l, "Showing nodes accounting for") {
			total = "; " + strings.TrimSpace(l)
			break
		}
	}
	for _, fr := range frames {
		re := regexp.MustCompile(fr.re)
		for _, l := range lines {
			f := strings.Fields(l)
			if len(f) < 6 || !re.MatchString(f[len(f)-1]) {
				continue
			}
			t.add("`"+f[len(f)-1]+"`", f[4], fr.what)
			break
		}
	}
	return t, total
}

func trimPprofHeader(s string) string {
	var out []string
	for line := range strings.Lines(s) {
		if strings.HasPrefix(line, "File:") || strings.HasPrefix(line, "Build ID:") || strings.HasPrefix(line, "Time:") {
			continue
		}
		out = append(out, line)
	}
	return strings.Join(out, "")
}

func firstLines(s string, n int) string {
	lines := strings.SplitAfter(s, "\n")
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, "")
}
