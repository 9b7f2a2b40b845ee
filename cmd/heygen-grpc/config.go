package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/joho/godotenv"

	"github.com/heygen-grpc/heygen-grpc/heygen"
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
}

// configError is a bad setting: the binary prints it on one line and exits 2.
type configError struct{ msg string }

func (e *configError) Error() string { return e.msg }

func configErrorf(format string, args ...any) error {
	return &configError{msg: fmt.Sprintf(format, args...)}
}

// errHelp means -h was asked for: usage is printed and the exit is 0.
var errHelp = flag.ErrHelp

const defaultEnvFile = ".env"

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
	dur(&c.catalogueRefresh, "catalogue-refresh-interval", "CATALOGUE_REFRESH_INTERVAL", server.DefaultRefreshInterval, "time between catalogue crawls (±10% jitter)")
	dur(&c.catalogueMaxAge, "catalogue-max-staleness", "CATALOGUE_MAX_STALENESS", server.DefaultMaxStaleness, "how long the last good catalogue keeps serving while refreshes fail")
	dur(&c.catalogueTimeout, "catalogue-crawl-timeout", "CATALOGUE_CRAWL_TIMEOUT", server.DefaultCrawlTimeout, "timeout of one whole catalogue crawl")
	dur(&c.shutdownTimeout, "shutdown-timeout", "SHUTDOWN_TIMEOUT", 15*time.Second, "how long graceful stop waits for calls in flight before cancelling them")

	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(usageOut, "Usage: heygen-grpc [flags]\n\nThe HeyGen API key is read from HEYGEN_API_KEY (environment or .env file), never from a flag.\n\nFlags:")
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
	c.maxResponseBytes = int64(maxBytes)
	if err := c.logLevel.UnmarshalText([]byte(logLevel)); err != nil {
		return nil, configErrorf("invalid -log-level %q: want debug, info, warn or error", logLevel)
	}
	return c, c.validate()
}

func (c *config) validate() error {
	if !c.demo && c.apiKey == "" {
		return configErrorf("HEYGEN_API_KEY is not set: put the HeyGen API key in the environment or a .env file (or run with -demo to use the built-in fake HeyGen)")
	}
	if _, err := heygen.ParseBaseURL(c.baseURL); err != nil {
		return configErrorf("invalid -heygen-base-url: %s", strings.TrimPrefix(err.Error(), "heygen: "))
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
		{"-catalogue-crawl-timeout", c.catalogueTimeout},
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
