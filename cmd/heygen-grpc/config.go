package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"net"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/joho/godotenv"

	"github.com/heygen-grpc/heygen-grpc/catalogue"
	"github.com/heygen-grpc/heygen-grpc/heygen"
	"github.com/heygen-grpc/heygen-grpc/internal/fakeheygen"
	"github.com/heygen-grpc/heygen-grpc/server"
)

// config is everything the binary can be told. Every setting is a flag
// whose default comes from an environment variable (real environment
// first, then the .env file), except the API key, which is never a flag:
// flags show in `ps` and shell history.
type config struct {
	addr             string
	apiKey           string
	baseURL          string
	demo             bool
	envFile          string
	attemptTimeout   time.Duration
	rpcTimeout       time.Duration
	retryAttempts    int
	retryBaseDelay   time.Duration
	retryMaxDelay    time.Duration
	maxResponseBytes int64
	probeInterval    time.Duration
	probeTimeout     time.Duration
	probeFailures    int
	logLevel         slog.Level
	logFormat        string
	reflection       bool
	drainDelay       time.Duration
	shutdownTimeout  time.Duration
	catalogue        bool
	catalogueRefresh time.Duration
	catalogueMaxAge  time.Duration
	catalogueTimeout time.Duration

	apiKeyFile     string
	reloadInterval time.Duration
	callersFile    string
	tlsCert        string
	tlsKey         string
	tlsClientCA    string
	mtlsIdentity   bool
	rateLimit      server.Limit
	rateLimits     map[string]server.Limit
	maxInFlight    int

	maxConnections       int
	maxConcurrentStreams int
	maxStreams           int
	maxWatchStreams      int
	maxHeaderBytes       int
	maxRecvMsgBytes      int
	catalogueMaxPages    int
	catalogueMaxItems    int
	crawlConcurrency     int
	coldPassThrough      int
	splitCrawl           bool
	notFoundTTL          time.Duration
	voiceEngines         []string
	redisURL             string
	redisPassword        string
	redisPasswordFile    string
	heygenMaxConc        int
	breakerFailures      int
	breakerOpenFor       time.Duration
	retryBudget          float64
	metricsAddr          string
	pprof                bool
	otlpEndpoint         string
	heapFloorMiB         int

	accountCacheTTL     time.Duration
	lowBalanceThreshold float64
	adminCallers        []string
	demoBillingType     string

	videoCreateLimit     server.Limit
	videoCreateLimits    map[string]server.Limit
	videoCreateMaxConc   int
	videoPollInterval    time.Duration
	videoPollMaxInterval time.Duration
	videoHeartbeat       time.Duration
	videoMaxWatches      int
	videoMaxWatchesPer   int
}

// configError is a bad setting: the binary prints it on one line and exits 2.
type configError struct{ msg string }

func (e *configError) Error() string { return e.msg }

func configErrorf(format string, args ...any) error {
	return &configError{msg: fmt.Sprintf(format, args...)}
}

// usageHeader comes before the flags in `heygen-grpc -h`. Help texts must
// not use back quotes: the flag package would take the quoted text as the
// flag's value name.
const usageHeader = `Usage:
  heygen-grpc [flags]                   serve the gateway (flags below)
  heygen-grpc new-token CALLER-NAME     make a bearer token for a caller, and its callers-file line
  heygen-grpc hash-token < TOKEN-FILE   print the callers-file hash of an existing token (from stdin)

The HeyGen API key is read from HEYGEN_API_KEY (environment or .env file) or from
the file HEYGEN_API_KEY_FILE names, never from a flag.

Flags:
`

// errHelp means -h was asked for: usage is printed and the exit is 0.
var errHelp = flag.ErrHelp

const defaultEnvFile = ".env"

var engineName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// parseConfig reads flags from args with defaults from getenv and the .env
// file. The .env file is the one named by -env-file (or ENV_FILE), else
// ./.env if it exists; variables already in the real environment win.
func parseConfig(args []string, getenv func(string) string, usageOut io.Writer) (*config, error) {
	envFile, explicit := findEnvFile(args, getenv)
	dotenv := map[string]string{}
	if envFile != "" {
		m, err := godotenv.Read(envFile)
		switch {
		case err == nil:
			dotenv = m
		case errors.Is(err, os.ErrNotExist) && !explicit:
		default:
			return nil, configErrorf("cannot read env file %s: %v", envFile, unwrapPathError(err))
		}
	}
	lookup := func(name string) string {
		if v := getenv(name); v != "" {
			return v
		}
		return dotenv[name]
	}

	c := &config{envFile: envFile}
	fs := flag.NewFlagSet("heygen-grpc", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	envErrs := map[string]error{} // by flag name
	str := func(p *string, name, env, def, usage string) {
		v := lookup(env)
		if v == "" {
			v = def
		}
		fs.StringVar(p, name, v, usage+" (env "+env+")")
	}
	dur := func(p *time.Duration, name, env string, def time.Duration, usage string) {
		v := def
		if s := lookup(env); s != "" {
			d, err := time.ParseDuration(s)
			if err != nil {
				envErrs[name] = (configErrorf("invalid %s %q: want a duration such as 500ms or 30s", env, s))
			}
			v = d
		}
		fs.DurationVar(p, name, v, usage+" (env "+env+")")
	}
	integer := func(p *int, name, env string, def int, usage string) {
		v := def
		if s := lookup(env); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil {
				envErrs[name] = (configErrorf("invalid %s %q: want an integer", env, s))
			}
			v = n
		}
		fs.IntVar(p, name, v, usage+" (env "+env+")")
	}
	boolean := func(p *bool, name, env string, def bool, usage string) {
		v := def
		if s := lookup(env); s != "" {
			b, err := strconv.ParseBool(s)
			if err != nil {
				envErrs[name] = (configErrorf("invalid %s %q: want true or false (or 1 or 0)", env, s))
			}
			v = b
		}
		fs.BoolVar(p, name, v, usage+" (env "+env+")")
	}

	var logLevel string
	var maxBytes int
	fs.StringVar(new(string), "env-file", envFile, "read settings from this .env file; default ./.env when present (env ENV_FILE)")
	str(&c.addr, "addr", "GRPC_ADDR", ":50051", "gRPC listen address")
	str(&c.baseURL, "heygen-base-url", "HEYGEN_BASE_URL", heygen.DefaultBaseURL, "HeyGen API base URL")
	boolean(&c.demo, "demo", "HEYGEN_DEMO", false, "serve a built-in fake HeyGen with a sample catalogue: no key, no network")
	dur(&c.attemptTimeout, "heygen-attempt-timeout", "HEYGEN_ATTEMPT_TIMEOUT", heygen.DefaultAttemptTimeout, "timeout of one HTTP attempt to HeyGen, body included")
	dur(&c.rpcTimeout, "rpc-timeout", "RPC_DEFAULT_TIMEOUT", 30*time.Second, "deadline applied to RPCs that arrive without one")
	integer(&c.retryAttempts, "heygen-retry-attempts", "HEYGEN_RETRY_ATTEMPTS", heygen.DefaultMaxAttempts, "most HTTP attempts per HeyGen call, the first included (1 disables retries)")
	dur(&c.retryBaseDelay, "heygen-retry-base-delay", "HEYGEN_RETRY_BASE_DELAY", heygen.DefaultBaseDelay, "backoff ceiling before the first retry, doubled per retry (full jitter)")
	dur(&c.retryMaxDelay, "heygen-retry-max-delay", "HEYGEN_RETRY_MAX_DELAY", heygen.DefaultMaxDelay, "cap on any retry wait, Retry-After included")
	integer(&maxBytes, "heygen-max-response-bytes", "HEYGEN_MAX_RESPONSE_BYTES", heygen.DefaultMaxResponseBytes, "largest HeyGen response body accepted")
	dur(&c.probeInterval, "health-probe-interval", "HEALTH_PROBE_INTERVAL", 30*time.Second, "how often HeyGen is probed (GET /v3/users/me) for the health service")
	dur(&c.probeTimeout, "health-probe-timeout", "HEALTH_PROBE_TIMEOUT", 10*time.Second, "timeout of one health probe")
	integer(&c.probeFailures, "health-probe-failures", "HEALTH_PROBE_FAILURES", 3, "consecutive unreachable probes before AvatarsService is NOT_SERVING")
	str(&logLevel, "log-level", "LOG_LEVEL", "info", "log level: debug, info, warn or error")
	str(&c.logFormat, "log-format", "LOG_FORMAT", "json", "log format: json or text")
	boolean(&c.reflection, "reflection", "GRPC_REFLECTION", true, "serve gRPC server reflection (v1 and v1alpha)")
	dur(&c.drainDelay, "shutdown-drain-delay", "SHUTDOWN_DRAIN_DELAY", 0, "on SIGTERM, wait this long after health goes NOT_SERVING before refusing new calls")
	boolean(&c.catalogue, "catalogue", "CATALOGUE_ENABLED", true, "answer list and get calls from an in-memory catalogue refreshed in the background; false passes every call through to HeyGen")
	dur(&c.catalogueRefresh, "catalogue-refresh-interval", "CATALOGUE_REFRESH_INTERVAL", catalogue.DefaultRefreshInterval, "time between catalogue crawls (±10% jitter)")
	dur(&c.catalogueMaxAge, "catalogue-max-staleness", "CATALOGUE_MAX_STALENESS", catalogue.DefaultMaxStaleness, "how long the last good catalogue keeps serving while refreshes fail")
	dur(&c.catalogueTimeout, "catalogue-crawl-timeout", "CATALOGUE_CRAWL_TIMEOUT", catalogue.DefaultCrawlTimeout, "timeout of one whole catalogue crawl")
	integer(&c.catalogueMaxPages, "catalogue-max-pages", "CATALOGUE_MAX_PAGES", catalogue.DefaultMaxPages, "most pages of one list in one crawl; past it the crawl fails and the last snapshot keeps serving")
	integer(&c.catalogueMaxItems, "catalogue-max-items", "CATALOGUE_MAX_ITEMS", catalogue.DefaultMaxItems, "most items of one resource in one crawl; past it the crawl fails and the last snapshot keeps serving")
	str(&c.redisURL, "redis-url", "REDIS_URL", "", "share state with the other replicas through this Redis (redis://host:port[/db], rediss:// for TLS; no password in it): one crawl per refresh for the fleet, fleet-wide rate limits; empty: this replica works alone")
	str(&c.redisPasswordFile, "redis-password-file", "REDIS_PASSWORD_FILE", "", "read the Redis password from this file (or set REDIS_PASSWORD); never a flag value")
	integer(&c.crawlConcurrency, "catalogue-crawl-concurrency", "CATALOGUE_CRAWL_CONCURRENCY", catalogue.DefaultCrawlConcurrency, "most HeyGen calls the catalogue's crawls make at once, every resource together")
	integer(&c.coldPassThrough, "catalogue-cold-passthrough", "CATALOGUE_COLD_PASSTHROUGH", catalogue.DefaultColdPassThrough, "while a replica's first crawl runs, answer its callers from HeyGen with at most this many calls at once (0: callers wait for the crawl)")
	boolean(&c.splitCrawl, "catalogue-split-crawl", "CATALOGUE_SPLIT_CRAWL", true, "fill a cold catalogue with a crawl split by HeyGen's filters (looks by group or type, voices by gender), then check it at once with a full crawl")
	var voiceEngines string
	str(&voiceEngines, "voice-engines", "VOICE_ENGINES", strings.Join(catalogue.DefaultVoiceEngines, ","), "speech engines whose voices the catalogue indexes for ListVoices' engine filter (comma-separated)")
	dur(&c.notFoundTTL, "catalogue-not-found-ttl", "CATALOGUE_NOT_FOUND_TTL", catalogue.DefaultNotFoundTTL, "how long an id HeyGen does not have is answered NOT_FOUND without asking HeyGen again")
	str(&c.apiKeyFile, "heygen-api-key-file", "HEYGEN_API_KEY_FILE", "", "read the HeyGen API key from this file (a Kubernetes secret mount), re-read when it changes; instead of HEYGEN_API_KEY")
	dur(&c.reloadInterval, "reload-interval", "RELOAD_INTERVAL", 10*time.Second, "how often the key file, callers file and TLS files are checked for changes")
	str(&c.callersFile, "callers-file", "CALLERS_FILE", "", "require bearer tokens: file of lines \"caller-name: sha256:<hex>\" (see the new-token command); reloaded on change")
	str(&c.tlsCert, "tls-cert", "TLS_CERT_FILE", "", "serve TLS with this PEM certificate (chain); reloaded on change")
	str(&c.tlsKey, "tls-key", "TLS_KEY_FILE", "", "PEM private key for -tls-cert")
	str(&c.tlsClientCA, "tls-client-ca", "TLS_CLIENT_CA_FILE", "", "require client certificates signed by these PEM CAs (mutual TLS)")
	boolean(&c.mtlsIdentity, "mtls-caller-identity", "MTLS_CALLER_IDENTITY", false, "name callers after their client certificate (URI SAN, DNS SAN or CN) when no callers file is set")
	var rateLimit, rateLimits string
	str(&rateLimit, "caller-rate-limit", "CALLER_RATE_LIMIT", "0", "default per-caller limit as rps[:burst]; 0 disables")
	str(&rateLimits, "caller-rate-limits", "CALLER_RATE_LIMITS", "", "per-caller overrides: name=rps:burst,name=rps:burst")
	integer(&c.maxInFlight, "max-in-flight", "MAX_IN_FLIGHT", 1024, "AvatarsService calls in flight before new ones are refused (RESOURCE_EXHAUSTED); 0 disables")
	integer(&c.maxConnections, "max-connections", "MAX_CONNECTIONS", server.DefaultMaxConnections, "open connections before new ones are closed at once")
	integer(&c.maxConcurrentStreams, "max-concurrent-streams", "MAX_CONCURRENT_STREAMS", server.DefaultMaxConcurrentStreams, "streams per HTTP/2 connection before the transport refuses new ones")
	integer(&c.maxStreams, "max-streams", "MAX_STREAMS", server.DefaultMaxStreams, "streams across all connections (health Watch apart) before new ones get RESOURCE_EXHAUSTED")
	integer(&c.maxWatchStreams, "max-watch-streams", "MAX_WATCH_STREAMS", server.DefaultMaxWatchStreams, "health Watch streams before new ones get RESOURCE_EXHAUSTED")
	integer(&c.maxHeaderBytes, "max-header-bytes", "MAX_HEADER_BYTES", server.DefaultMaxHeaderBytes, "largest request header list (metadata) accepted")
	integer(&c.maxRecvMsgBytes, "max-request-bytes", "MAX_REQUEST_BYTES", server.DefaultMaxRecvMsgBytes, "largest request message accepted")
	integer(&c.heygenMaxConc, "heygen-max-concurrent", "HEYGEN_MAX_CONCURRENT", 64, "concurrent HTTP attempts to HeyGen before callers are refused; 0 disables")
	integer(&c.breakerFailures, "heygen-breaker-failures", "HEYGEN_BREAKER_FAILURES", 5, "consecutive HeyGen failures (5xx, transport, timeout) that open the circuit breaker; 0 disables it")
	dur(&c.breakerOpenFor, "heygen-breaker-open-for", "HEYGEN_BREAKER_OPEN_FOR", 30*time.Second, "how long the breaker stays open before one probe call")
	var budget string
	str(&budget, "heygen-retry-budget", "HEYGEN_RETRY_BUDGET", "0.1", "most retries as a fraction of HeyGen calls over a 10 s window; 0 disables retries' budget")
	str(&c.metricsAddr, "metrics-addr", "METRICS_ADDR", "", "serve Prometheus metrics on this address at /metrics (e.g. 127.0.0.1:9090); empty disables")
	boolean(&c.pprof, "pprof", "PPROF_ENABLED", false, "serve net/http/pprof on the metrics address")
	integer(&c.heapFloorMiB, "gc-heap-floor-mib", "GC_HEAP_FLOOR_MIB", server.DefaultHeapFloorMiB, "let the Go heap grow to this many MiB between garbage collections (past half of it, Go's default GOGC=100 applies); 0, or GOGC in the environment, leaves Go's collector alone")
	str(&c.otlpEndpoint, "otlp-endpoint", "OTEL_EXPORTER_OTLP_ENDPOINT", "", "export OpenTelemetry traces over OTLP/gRPC to this endpoint (host:port or URL); empty disables tracing")
	dur(&c.accountCacheTTL, "account-cache-ttl", "ACCOUNT_CACHE_TTL", server.DefaultAccountCacheTTL, "how long GetAccount answers from its last reading of the account (the health probe also refreshes it)")
	var lowBalance, adminCallers string
	str(&lowBalance, "low-balance-threshold", "LOW_BALANCE_THRESHOLD", "0", "warn, set heygen_account_low_balance and report heygen-grpc.credit NOT_SERVING when the account's balance is below this, in its own unit (dollars or credits); 0 disables")
	str(&adminCallers, "admin-callers", "ADMIN_CALLERS", "", "callers (comma-separated names) that may ask GetUsage for every caller's usage")
	str(&c.demoBillingType, "demo-billing-type", "DEMO_BILLING_TYPE", fakeheygen.BillingWallet, "the demo account's billing: wallet, subscription or usage_based")
	dur(&c.shutdownTimeout, "shutdown-timeout", "SHUTDOWN_TIMEOUT", 15*time.Second, "how long graceful stop waits for calls in flight before cancelling them")
	var videoCreateLimit, videoCreateLimits string
	str(&videoCreateLimit, "video-create-rate-limit", "VIDEO_CREATE_RATE_LIMIT", "1:5", "per-caller limit on CreateVideo as rps[:burst], on top of -caller-rate-limit; 0 disables")
	str(&videoCreateLimits, "video-create-rate-limits", "VIDEO_CREATE_RATE_LIMITS", "", "per-caller overrides of -video-create-rate-limit: name=rps:burst,...")
	integer(&c.videoCreateMaxConc, "video-create-max-concurrent", "VIDEO_CREATE_MAX_CONCURRENT", server.DefaultMaxConcurrentCreates, "CreateVideo calls in flight to HeyGen before new ones are refused (RESOURCE_EXHAUSTED); 0 disables")
	dur(&c.videoPollInterval, "video-poll-interval", "VIDEO_POLL_INTERVAL", server.DefaultPollInterval, "shortest time between two status polls of a watched video (WatchVideo)")
	dur(&c.videoPollMaxInterval, "video-poll-max-interval", "VIDEO_POLL_MAX_INTERVAL", server.DefaultMaxPollInterval, "longest time between two status polls of a watched video, reached as a render grows long")
	dur(&c.videoHeartbeat, "video-watch-heartbeat", "VIDEO_WATCH_HEARTBEAT", server.DefaultWatchHeartbeat, "how often a WatchVideo stream repeats the video's state while nothing changes (keeps proxies from cutting it as idle)")
	integer(&c.videoMaxWatches, "video-max-watches", "VIDEO_MAX_WATCHES", server.DefaultMaxWatches, "open WatchVideo streams before new ones get RESOURCE_EXHAUSTED; 0 disables")
	integer(&c.videoMaxWatchesPer, "video-max-watches-per-caller", "VIDEO_MAX_WATCHES_PER_CALLER", server.DefaultMaxWatchesPerCaller, "one caller's open WatchVideo streams before its new ones get RESOURCE_EXHAUSTED; 0 disables")

	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(usageOut, usageHeader)
			fs.SetOutput(usageOut)
			fs.PrintDefaults()
			return nil, errHelp
		}
		return nil, &configError{msg: firstLine(err.Error())}
	}
	if fs.NArg() > 0 {
		return nil, configErrorf("unexpected argument %q: settings are flags, such as -addr :50051", fs.Arg(0))
	}
	// An env value that did not parse matters only if no flag replaced it.
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for _, name := range slices.Sorted(maps.Keys(envErrs)) {
		if !set[name] {
			return nil, envErrs[name]
		}
	}

	c.apiKey = strings.TrimSpace(lookup("HEYGEN_API_KEY"))
	c.redisPassword = lookup("REDIS_PASSWORD")
	c.maxResponseBytes = int64(maxBytes)
	var err error
	if c.rateLimit, err = server.ParseLimit(rateLimit); err != nil {
		return nil, configErrorf("invalid -caller-rate-limit: %v", err)
	}
	if c.rateLimits, err = server.ParseRateLimits(rateLimits); err != nil {
		return nil, configErrorf("invalid -caller-rate-limits: %v", err)
	}
	if c.videoCreateLimit, err = server.ParseLimit(videoCreateLimit); err != nil {
		return nil, configErrorf("invalid -video-create-rate-limit: %v", err)
	}
	if c.videoCreateLimits, err = server.ParseRateLimits(videoCreateLimits); err != nil {
		return nil, configErrorf("invalid -video-create-rate-limits: %v", err)
	}
	if c.retryBudget, err = strconv.ParseFloat(budget, 64); err != nil || c.retryBudget < 0 || c.retryBudget > 1 {
		return nil, configErrorf("invalid -heygen-retry-budget %q: want a fraction between 0 and 1", budget)
	}
	if c.lowBalanceThreshold, err = strconv.ParseFloat(strings.TrimSpace(lowBalance), 64); err != nil || c.lowBalanceThreshold < 0 ||
		math.IsInf(c.lowBalanceThreshold, 0) || math.IsNaN(c.lowBalanceThreshold) {
		return nil, configErrorf("invalid -low-balance-threshold %q: want a number of dollars or credits, 0 or more (0 disables)", lowBalance)
	}
	if c.adminCallers, err = server.ParseAdminCallers(adminCallers); err != nil {
		return nil, configErrorf("invalid -admin-callers: %v", err)
	}
	for _, e := range strings.Split(voiceEngines, ",") {
		if e = strings.TrimSpace(e); e != "" {
			if !engineName.MatchString(e) {
				return nil, configErrorf("invalid -voice-engines %q: engine names are letters, digits, '_' or '-'", voiceEngines)
			}
			c.voiceEngines = append(c.voiceEngines, e)
		}
	}
	if err := c.logLevel.UnmarshalText([]byte(logLevel)); err != nil {
		return nil, configErrorf("invalid -log-level %q: want debug, info, warn or error", logLevel)
	}
	return c, c.validate()
}

func (c *config) validate() error {
	switch {
	case c.apiKey != "" && c.apiKeyFile != "":
		return configErrorf("both HEYGEN_API_KEY and HEYGEN_API_KEY_FILE are set: keep only one")
	case !c.demo && c.apiKey == "" && c.apiKeyFile == "":
		return configErrorf("HEYGEN_API_KEY is not set: put the HeyGen API key in the environment or a .env file, or its path in HEYGEN_API_KEY_FILE (or run with -demo to use the built-in fake HeyGen)")
	case (c.tlsCert == "") != (c.tlsKey == ""):
		return configErrorf("-tls-cert and -tls-key go together: set both or neither")
	case c.tlsClientCA != "" && c.tlsCert == "":
		return configErrorf("-tls-client-ca needs -tls-cert and -tls-key: mutual TLS is TLS first")
	case c.mtlsIdentity && c.tlsClientCA == "":
		return configErrorf("-mtls-caller-identity needs -tls-client-ca")
	case c.redisPassword != "" && c.redisPasswordFile != "":
		return configErrorf("both REDIS_PASSWORD and -redis-password-file are set: keep only one")
	case (c.redisPassword != "" || c.redisPasswordFile != "") && c.redisURL == "":
		return configErrorf("a Redis password is set but -redis-url is not")
	case c.pprof && c.metricsAddr == "":
		return configErrorf("-pprof needs -metrics-addr: pprof is served on the metrics port")
	case c.demoBillingType != fakeheygen.BillingWallet && c.demoBillingType != fakeheygen.BillingSubscription && c.demoBillingType != fakeheygen.BillingUsageBased:
		return configErrorf("invalid -demo-billing-type %q: want wallet, subscription or usage_based", c.demoBillingType)
	case c.maxInFlight < 0 || c.heygenMaxConc < 0 || c.breakerFailures < 0 || c.coldPassThrough < 0:
		return configErrorf("-max-in-flight, -heygen-max-concurrent, -heygen-breaker-failures and -catalogue-cold-passthrough must not be negative")
	case c.videoCreateMaxConc < 0 || c.videoMaxWatches < 0 || c.videoMaxWatchesPer < 0:
		return configErrorf("-video-create-max-concurrent, -video-max-watches and -video-max-watches-per-caller must not be negative (0 disables)")
	case c.heapFloorMiB < 0 || c.heapFloorMiB > 1<<20:
		return configErrorf("invalid -gc-heap-floor-mib %d: must be between 0 (off) and %d", c.heapFloorMiB, 1<<20)
	case c.videoPollMaxInterval < c.videoPollInterval:
		return configErrorf("invalid -video-poll-max-interval %s: must not be below -video-poll-interval %s", c.videoPollMaxInterval, c.videoPollInterval)
	}
	bounds := []struct {
		name   string
		v, max int
	}{
		{"-max-connections", c.maxConnections, 1 << 20}, {"-max-concurrent-streams", c.maxConcurrentStreams, 1 << 20},
		{"-max-streams", c.maxStreams, 1 << 24}, {"-max-watch-streams", c.maxWatchStreams, 1 << 24},
		{"-max-header-bytes", c.maxHeaderBytes, 16 << 20}, {"-max-request-bytes", c.maxRecvMsgBytes, 64 << 20},
		{"-catalogue-max-pages", c.catalogueMaxPages, 1 << 30}, {"-catalogue-max-items", c.catalogueMaxItems, 1 << 30},
		{"-catalogue-crawl-concurrency", c.crawlConcurrency, 1024},
	}
	for _, b := range bounds {
		if b.v < 1 || b.v > b.max {
			return configErrorf("invalid %s %d: must be between 1 and %d", b.name, b.v, b.max)
		}
	}
	if err := checkAddr("-addr", c.addr); err != nil {
		return err
	}
	if c.metricsAddr != "" {
		if err := checkAddr("-metrics-addr", c.metricsAddr); err != nil {
			return err
		}
	}
	if _, err := heygen.ParseBaseURL(c.baseURL); err != nil {
		return configErrorf("invalid -heygen-base-url: %v", err)
	}
	if c.logFormat != "json" && c.logFormat != "text" {
		return configErrorf("invalid -log-format %q: want json or text", c.logFormat)
	}
	positive := []struct {
		name string
		d    time.Duration
	}{
		{"-heygen-attempt-timeout", c.attemptTimeout}, {"-rpc-timeout", c.rpcTimeout},
		{"-heygen-retry-base-delay", c.retryBaseDelay}, {"-heygen-retry-max-delay", c.retryMaxDelay},
		{"-health-probe-interval", c.probeInterval}, {"-health-probe-timeout", c.probeTimeout},
		{"-shutdown-timeout", c.shutdownTimeout},
		{"-catalogue-refresh-interval", c.catalogueRefresh}, {"-catalogue-max-staleness", c.catalogueMaxAge},
		{"-catalogue-crawl-timeout", c.catalogueTimeout}, {"-reload-interval", c.reloadInterval},
		{"-heygen-breaker-open-for", c.breakerOpenFor}, {"-catalogue-not-found-ttl", c.notFoundTTL},
		{"-account-cache-ttl", c.accountCacheTTL},
		{"-video-poll-interval", c.videoPollInterval}, {"-video-poll-max-interval", c.videoPollMaxInterval},
		{"-video-watch-heartbeat", c.videoHeartbeat},
	}
	for _, p := range positive {
		if p.d <= 0 {
			return configErrorf("invalid %s %s: must be positive", p.name, p.d)
		}
	}
	switch {
	case c.drainDelay < 0:
		return configErrorf("invalid -shutdown-drain-delay %s: must not be negative", c.drainDelay)
	case c.retryAttempts < 1 || c.retryAttempts > 10:
		return configErrorf("invalid -heygen-retry-attempts %d: must be between 1 and 10", c.retryAttempts)
	case c.probeFailures < 1:
		return configErrorf("invalid -health-probe-failures %d: must be at least 1", c.probeFailures)
	case c.maxResponseBytes < 1024:
		return configErrorf("invalid -heygen-max-response-bytes %d: must be at least 1024", c.maxResponseBytes)
	case c.retryBaseDelay > c.retryMaxDelay:
		return configErrorf("invalid -heygen-retry-base-delay %s: must not exceed -heygen-retry-max-delay %s", c.retryBaseDelay, c.retryMaxDelay)
	}
	return nil
}

// checkAddr validates a listen address as host:port with a numeric port.
func checkAddr(flagName, addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return configErrorf("invalid %s %q: want host:port or :port, such as :50051", flagName, addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return configErrorf("invalid %s %q: the port must be a number from 0 to 65535", flagName, addr)
	}
	return nil
}

// findEnvFile finds -env-file in args (either dash form, = or separate
// value) or ENV_FILE, before the flags are parsed, since the file supplies
// the other flags' defaults.
func findEnvFile(args []string, getenv func(string) string) (path string, explicit bool) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			break
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || name != "env-file" {
			continue
		}
		if !hasValue && i+1 < len(args) {
			value = args[i+1]
		}
		return value, true
	}
	if v := getenv("ENV_FILE"); v != "" {
		return v, true
	}
	return defaultEnvFile, false
}

func unwrapPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
