package main

// Results is everything a run measured; the report is written from it
// (and can be rewritten from its JSON with `benchtool report`).
type Results struct {
	Meta        Meta       `json:"meta"`
	PartSeconds []PartTime `json:"part_seconds"`
	CPU         []CPURun   `json:"cpu,omitempty"`
	// HeapFloor: GetAvatar on the demo gateway against the same gateway
	// without the heap floor, interleaved, in every round of the CPU part.
	HeapFloor []CPURun `json:"heap_floor,omitempty"`
	// LogFile: GetAvatar on the production gateway (its log into a pipe)
	// against the same gateway with its log written straight to a file,
	// interleaved, in every round of the CPU part.
	LogFile []CPURun `json:"log_file,omitempty"`
	// Throughput: cached ListAvatars on the gateway and the reference,
	// interleaved, with throughputCallers in flight, in every round of
	// the CPU part.
	Throughput  []CPURun     `json:"throughput,omitempty"`
	Reference   []string     `json:"reference,omitempty"` // the reference servers' startup lines
	Direct      *Direct      `json:"direct,omitempty"`
	Cold        []ColdRun    `json:"cold,omitempty"`
	Memory      *Memory      `json:"memory,omitempty"`
	GoBench     []GoBench    `json:"gobench,omitempty"`
	Profiles    []Profile    `json:"profiles,omitempty"`
	Warnings    []string     `json:"warnings,omitempty"`
	GoBenchCmd  string       `json:"gobench_cmd,omitempty"`
	ColdCatalog []ColdCatalg `json:"cold_catalogues,omitempty"`
}

// Meta describes the run and the machine.
type Meta struct {
	Date        string   `json:"date"`
	Commit      string   `json:"commit"`
	Subject     string   `json:"subject"`
	Dirty       bool     `json:"dirty"`
	CPUs        int      `json:"cpus"`
	GOMAXPROCS  int      `json:"gomaxprocs"`
	CPUModel    string   `json:"cpu_model"`
	Kernel      string   `json:"kernel"`
	GoVersion   string   `json:"go_version"`
	Placement   string   `json:"placement"`
	Load1Start  string   `json:"load1_start"`
	Load1End    string   `json:"load1_end"`
	QuietWaitS  float64  `json:"quiet_wait_s"`
	WallSeconds float64  `json:"wall_seconds"`
	Parts       []string `json:"parts"`
	Rounds      int      `json:"rounds"`
	Concurrency int      `json:"concurrency"`
	Connections int      `json:"connections"`
	// ThroughputCallers and ThroughputConnections load the throughput
	// measurement.
	ThroughputCallers     int     `json:"throughput_callers,omitempty"`
	ThroughputConnections int     `json:"throughput_connections,omitempty"`
	LatencyMS             float64 `json:"latency_ms"`
}

// PartTime is how long a part took.
type PartTime struct {
	Part    string  `json:"part"`
	Seconds float64 `json:"seconds"`
}

// CPURun is one fixed-size load against one server.
type CPURun struct {
	Config string  `json:"config"` // demo, production
	RPC    string  `json:"rpc"`    // list, get, voices, health
	Server string  `json:"server"` // gateway, reference
	Round  int     `json:"round"`
	First  bool    `json:"first"` // took the round's first segment
	Calls  int     `json:"calls"`
	Errors int     `json:"errors"`
	RPS    float64 `json:"rps"`
	P50MS  float64 `json:"p50_ms"`
	P99MS  float64 `json:"p99_ms"`
	WallS  float64 `json:"wall_s"`
	// CPU seconds over the measured calls.
	ServerS  float64 `json:"server_cpu_s"`
	ClientS  float64 `json:"client_cpu_s"`
	MachineS float64 `json:"machine_busy_s"`
	// QuietWaitS and QuietOther: the wait for a quiet machine before the
	// round and the other load that remained.
	QuietOther float64 `json:"quiet_other_cores"`
}

// MicrosPerCall is the server's CPU time per call.
func (c CPURun) MicrosPerCall() float64 { return c.ServerS * 1e6 / float64(max(c.Calls, 1)) }

// OtherCores is what the rest of the machine used during the run.
func (c CPURun) OtherCores() float64 {
	if c.WallS <= 0 {
		return 0
	}
	return max(0, c.MachineS-c.ServerS-c.ClientS) / c.WallS
}

// ServerCores is the server's mean CPU use.
func (c CPURun) ServerCores() float64 { return c.ServerS / max(c.WallS, 1e-9) }

// Direct compares the same page from HeyGen directly and through the
// gateway.
type Direct struct {
	LatencyMS   float64 `json:"latency_ms"`
	Concurrency int     `json:"concurrency"`
	RestCalls   int     `json:"rest_calls"`
	RestErrors  int     `json:"rest_errors"`
	RestRPS     float64 `json:"rest_rps"`
	RestP50     float64 `json:"rest_p50_ms"`
	RestP99     float64 `json:"rest_p99_ms"`
	GwCalls     int     `json:"gw_calls"`
	GwErrors    int     `json:"gw_errors"`
	GwRPS       float64 `json:"gw_rps"`
	GwP50       float64 `json:"gw_p50_ms"`
	GwP99       float64 `json:"gw_p99_ms"`
	// HeyGenCalls is what the fake received during the gateway's run.
	HeyGenCalls int `json:"heygen_calls"`
}

// ColdCatalg describes a cold-start catalogue.
type ColdCatalg struct {
	Name         string `json:"name"`
	Looks        int    `json:"looks"`
	Groups       int    `json:"groups"`
	Voices       int    `json:"voices"`
	ClonedVoices int    `json:"cloned_voices"`
}

// ColdRun is one fresh gateway against a slow HeyGen.
type ColdRun struct {
	Catalogue string `json:"catalogue"`
	Variant   string `json:"variant"`
	Flags     string `json:"flags"`
	// Seconds from the process's start.
	FirstListS float64 `json:"first_list_s"` // first ListAvatars answered
	FirstGetS  float64 `json:"first_get_s"`  // first GetAvatar answered
	ReadyS     float64 `json:"ready_s"`      // heygen-grpc.ready SERVING
	SnapshotS  float64 `json:"snapshot_s"`   // every resource holds a snapshot (its first crawl logged)
	// CatalogueHealthS is when heygen-grpc.catalogue was seen SERVING.
	CatalogueHealthS float64 `json:"catalogue_health_s"`
	VerifiedS        float64 `json:"verified_s"`   // the last crawl of the cold start ended (log)
	FirstSrc         string  `json:"first_source"` // x-heygen-source of the first answer
	// HeyGen calls until the cold start settled, by kind, and the most in
	// flight at once.
	Calls       map[string]int `json:"calls"`
	TotalCalls  int            `json:"total_calls"`
	MaxInFlight int            `json:"max_in_flight"`
	// Refreshes are the gateway's "catalogue refreshed" log lines.
	Refreshes []Refresh `json:"refreshes"`
	// Storm: concurrent cold callers, when this run had them.
	StormCallers int     `json:"storm_callers,omitempty"`
	StormErrors  int     `json:"storm_errors,omitempty"`
	StormP50S    float64 `json:"storm_p50_s,omitempty"`
	StormMaxS    float64 `json:"storm_max_s,omitempty"`
	Error        string  `json:"error,omitempty"`
}

// Refresh is one "catalogue refreshed" log line.
type Refresh struct {
	Resource string  `json:"resource"`
	Crawl    string  `json:"crawl"`
	Items    int     `json:"items"`
	Calls    int     `json:"heygen_calls"`
	TookMS   int64   `json:"took_ms"`
	AtS      float64 `json:"at_s"` // seconds after the process started
}

// Memory is the 50k-look catalogue's memory.
type Memory struct {
	Looks, Groups, Voices int
	Callers               int     `json:"callers"`
	DurationS             float64 `json:"duration_s"`
	RSSIdleMiB            float64 `json:"rss_idle_mib"`
	HWMAfterCrawlMiB      float64 `json:"hwm_after_crawl_mib"`
	HWMMiB                float64 `json:"hwm_mib"`
	RSSAfterMiB           float64 `json:"rss_after_mib"`
	RPS                   float64 `json:"rps"`
	P99MS                 float64 `json:"p99_ms"`
	Errors                int     `json:"errors"`
	CrawlS                float64 `json:"crawl_s"`
}

// GoBench is one Go benchmark over -count runs.
type GoBench struct {
	Pkg     string               `json:"pkg"`
	Name    string               `json:"name"`
	NsPerOp []float64            `json:"ns_per_op"`
	Metrics map[string][]float64 `json:"metrics"`
	Units   []string             `json:"units"`
}

// Profile is a CPU profile of the gateway binary under a load.
type Profile struct {
	Name     string  `json:"name"`
	RPS      float64 `json:"rps"`
	MicrosPC float64 `json:"us_per_call"`
	Top      string  `json:"top"`     // pprof -top, first lines
	TopCum   string  `json:"top_cum"` // pprof -top -cum of the call path
}
