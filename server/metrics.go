package server

import (
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/heygen-grpc/heygen-grpc/catalogue"
	"github.com/heygen-grpc/heygen-grpc/heygen"
)

// latencyBuckets reach 120 s: a HeyGen call with retries and Retry-After
// waits can take that long, and a histogram that stops at 10 s would hide it.
var latencyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 20, 30, 60, 120}

// Metrics are the gateway's Prometheus metrics, on their own registry.
// No label ever carries an id from a request, a token or the key: callers
// are names from the operator's callers file, HeyGen endpoints are route
// templates.
//
// The RPC metrics keep go-grpc-middleware's prometheus provider's names
// and labels, and are recorded by the gateway's call recorder, the
// outermost interceptor, and for unary calls that never reach an
// interceptor (a request that does not decode, a deadline that expired
// while it was awaited) by the method wrapper (see observe.go).
type Metrics struct {
	reg *prometheus.Registry

	rpcStartedTotal *prometheus.CounterVec
	rpcHandledTotal *prometheus.CounterVec
	rpcSeconds      *prometheus.HistogramVec
	callerRPCs      *prometheus.CounterVec
	callerHeyGen    *prometheus.CounterVec
	callerVideos    *prometheus.CounterVec
	rateLimited     *prometheus.CounterVec
	shed            *prometheus.CounterVec
	refusedStreams  *prometheus.CounterVec
	rateFallbacks   prometheus.Counter

	heygenRequests *prometheus.CounterVec
	heygenLatency  *prometheus.HistogramVec
	heygenRetries  *prometheus.CounterVec
	heygenRefused  *prometheus.CounterVec
	breakerState   *prometheus.GaugeVec

	catalogueMu        sync.Mutex
	catalogueBuilt     map[string]time.Time // serving snapshot of each resource
	catalogueItems     *prometheus.GaugeVec
	catalogueRefreshes *prometheus.CounterVec
	catalogueReads     *prometheus.CounterVec
	reads              map[catalogue.Source]prometheus.Counter // catalogueReads' series, resolved once

	accountMu       sync.Mutex
	accountBalances []accountBalance // the last reading's
	accountLow      prometheus.Gauge
	watchedVideos   prometheus.Gauge
	watchStreams    prometheus.Gauge
	statusPolls     *prometheus.CounterVec
	videoFetches    *prometheus.CounterVec
	cooldownRefusal prometheus.Counter
	cooldownLeft    atomic.Pointer[func() time.Duration]

	// per method: its labels, resolved once
	methods sync.Map // full method -> *methodLabels

	alertMetrics // metrics_alerts.go
}

type methodLabels struct {
	typ, service, method string
	// The method's series, resolved once rather than hashed and looked up
	// by label values on every call (nil for unknown methods).
	started prometheus.Counter
	seconds prometheus.Observer
	handled [codes.Unauthenticated + 1]atomic.Pointer[prometheus.Counter] // by code, created on first use
	callers sync.Map                                                      // callerCode -> prometheus.Counter
}

type callerCode struct {
	caller string
	code   codes.Code
}

// NewMetrics creates and registers every metric, plus the Go runtime and
// process collectors.
func NewMetrics() *Metrics {
	m := &Metrics{
		reg:            prometheus.NewRegistry(),
		catalogueBuilt: map[string]time.Time{},
		rpcStartedTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "grpc_server_started_total", Help: "RPCs started on the server.",
		}, []string{"grpc_type", "grpc_service", "grpc_method"}),
		rpcHandledTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "grpc_server_handled_total", Help: "RPCs completed on the server, whatever their status.",
		}, []string{"grpc_type", "grpc_service", "grpc_method", "grpc_code"}),
		rpcSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "grpc_server_handling_seconds", Help: "Time from the start of an RPC to its end.", Buckets: latencyBuckets,
		}, []string{"grpc_type", "grpc_service", "grpc_method"}),
		callerRPCs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "heygen_grpc_caller_rpcs_total", Help: "RPCs handled, by caller, method and code.",
		}, []string{"caller", "grpc_method", "grpc_code"}),
		callerHeyGen: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "heygen_grpc_caller_heygen_requests_total", Help: "HTTP requests to HeyGen made on a caller's behalf (retries included), by caller.",
		}, []string{"caller"}),
		callerVideos: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "heygen_grpc_caller_videos_created_total", Help: "Videos HeyGen accepted to render, by the caller that asked.",
		}, []string{"caller"}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "heygen_grpc_rate_limited_total", Help: "RPCs refused because the caller was over its rate limit.",
		}, []string{"caller"}),
		shed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "heygen_grpc_shed_total", Help: "RPCs refused because the gateway was at its bound on RPCs in flight.",
		}, []string{"grpc_method"}),
		rateFallbacks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "heygen_grpc_rate_limit_fallbacks_total", Help: "Rate-limit checks made locally (at the replica's share of the limit) because the fleet's shared store was unreachable.",
		}),
		refusedStreams: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "heygen_grpc_refused_streams_total", Help: "New streams and connections refused before any handler ran: unauthenticated, or at a bound (streams, open_streams, health_Watch_streams, connections).",
		}, []string{"reason"}),
		heygenRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "heygen_upstream_requests_total", Help: "HTTP attempts to HeyGen, by endpoint (method and route template) and HTTP status (\"error\" when no response).",
		}, []string{"endpoint", "status"}),
		heygenLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "heygen_upstream_request_duration_seconds", Help: "Duration of HTTP attempts to HeyGen.", Buckets: latencyBuckets,
		}, []string{"endpoint"}),
		heygenRetries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "heygen_upstream_retries_total", Help: "Retries of HeyGen calls, by reason.",
		}, []string{"endpoint", "reason"}),
		heygenRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "heygen_upstream_refused_total", Help: "HeyGen attempts not sent: circuit_open, concurrency_limit, retry_budget.",
		}, []string{"endpoint", "reason"}),
		breakerState: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "heygen_upstream_circuit_breaker_state", Help: "1 for the circuit breaker's current state (closed, open, half-open).",
		}, []string{"state"}),
		catalogueItems: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "heygen_catalogue_items", Help: "Items in the serving catalogue snapshot, by resource.",
		}, []string{"resource"}),
		catalogueRefreshes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "heygen_catalogue_refreshes_total", Help: "Catalogue crawls, by resource and result (ok, heygen_error, timeout, looping_token, too_many_pages, too_many_items).",
		}, []string{"resource", "result"}),
		catalogueReads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "heygen_catalogue_reads_total", Help: "Answers by source: catalogue-fresh (hit), catalogue-stale, heygen (miss or pass-through).",
		}, []string{"source"}),
		accountLow: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "heygen_account_low_balance", Help: "1 while the HeyGen account's balance, as last read, is below -low-balance-threshold; 0 otherwise, and always with the threshold at 0.",
		}),
		watchedVideos: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "heygen_grpc_watched_videos", Help: "Renders in progress that WatchVideo callers are watching (each polled once, whatever its number of watchers).",
		}),
		watchStreams: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "heygen_grpc_watch_streams", Help: "Open WatchVideo streams.",
		}),
		statusPolls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "heygen_grpc_video_status_polls_total", Help: "Calls of GET /v3/videos/statuses by the watch poller (up to 100 videos each), by result (ok, error).",
		}, []string{"result"}),
		videoFetches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "heygen_grpc_video_fetches_total", Help: "Calls of GET /v3/videos/{video_id} by the watch poller (a watched video seen first, or changed), by result (ok, error).",
		}, []string{"result"}),
		cooldownRefusal: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "heygen_grpc_video_create_cooldown_refused_total", Help: "CreateVideo calls refused during the create cool-down that follows HeyGen's 429 on a create.",
		}),
	}
	for _, r := range []string{"ok", "error"} {
		m.statusPolls.WithLabelValues(r)
		m.videoFetches.WithLabelValues(r)
	}
	for _, s := range []string{"closed", "open", "half-open"} {
		m.breakerState.WithLabelValues(s).Set(0)
	}
	m.breakerState.WithLabelValues("closed").Set(1)
	m.reads = map[catalogue.Source]prometheus.Counter{}
	for _, src := range []catalogue.Source{catalogue.SourceFresh, catalogue.SourceStale, catalogue.SourceHeyGen} {
		m.reads[src] = m.catalogueReads.WithLabelValues(string(src))
	}
	for _, b := range []string{"unauthenticated", "streams", "open_streams", "health_Watch_streams", "connections"} {
		m.refusedStreams.WithLabelValues(b)
	}
	age := prometheus.NewDesc("heygen_catalogue_age_seconds", "Age of the serving catalogue snapshot, by resource (absent before the first).",
		[]string{"resource"}, nil)
	balance := prometheus.NewDesc("heygen_account_balance", "What the HeyGen account can still spend, as last read (by the health probe or GetAccount), by unit: "+
		"a wallet's balance (usd or credits), a subscription's premium plus add-on credits, usage-based billing's included credits left and dollars left under the spending cap.",
		[]string{"unit"}, nil)
	m.reg.MustRegister(m.accountLow, &funcCollector{desc: balance, collect: m.collectBalance})
	m.reg.MustRegister(m.rpcStartedTotal, m.rpcHandledTotal, m.rpcSeconds, m.callerRPCs, m.callerHeyGen, m.callerVideos, m.rateLimited, m.shed,
		m.refusedStreams, m.rateFallbacks, m.heygenRequests, m.heygenLatency, m.heygenRetries, m.heygenRefused, m.breakerState,
		m.catalogueItems, m.catalogueRefreshes, m.catalogueReads,
		&funcCollector{desc: age, collect: m.collectAge},
		m.watchedVideos, m.watchStreams, m.statusPolls, m.videoFetches, m.cooldownRefusal,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "heygen_grpc_video_create_cooldown_seconds", Help: "Seconds until the create cool-down ends (0 when there is none): HeyGen's Retry-After on a create, during which the gateway refuses every create.",
		}, m.cooldownSeconds),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.alertMetrics = newAlertMetrics(m.reg)
	return m
}

// funcCollector exports what collect computes at scrape time.
type funcCollector struct {
	desc    *prometheus.Desc
	collect func(desc *prometheus.Desc, ch chan<- prometheus.Metric)
}

func (c *funcCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }
func (c *funcCollector) Collect(ch chan<- prometheus.Metric) { c.collect(c.desc, ch) }

func (m *Metrics) collectAge(desc *prometheus.Desc, ch chan<- prometheus.Metric) {
	m.catalogueMu.Lock()
	defer m.catalogueMu.Unlock()
	for res, built := range m.catalogueBuilt {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, time.Since(built).Seconds(), res)
	}
}

func (m *Metrics) collectBalance(desc *prometheus.Desc, ch chan<- prometheus.Metric) {
	m.accountMu.Lock()
	defer m.accountMu.Unlock()
	for _, b := range m.accountBalances {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, b.value, b.unit)
	}
}

// accountObserved records a reading of the account: it replaces the
// balances exported (so a unit the account no longer has disappears).
func (m *Metrics) accountObserved(balances []accountBalance, low bool) {
	if m == nil {
		return
	}
	m.accountMu.Lock()
	m.accountBalances = balances
	m.accountMu.Unlock()
	v := 0.0
	if low {
		v = 1
	}
	m.accountLow.Set(v)
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Registry returns the registry, to add more collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// initialize learns every registered method's type and creates its RPC
// series with code OK, so dashboards and rate() see zeros, not nothing.
func (m *Metrics) initialize(gs *grpc.Server) {
	for full, typ := range methodTypes(gs) {
		service, method := splitMethod(full)
		l := &methodLabels{typ: typ, service: service, method: method}
		l.started = m.rpcStartedTotal.WithLabelValues(l.typ, l.service, l.method)
		ok := m.rpcHandledTotal.WithLabelValues(l.typ, l.service, l.method, codes.OK.String())
		l.handled[codes.OK].Store(&ok)
		l.seconds = m.rpcSeconds.WithLabelValues(l.typ, l.service, l.method)
		m.methods.Store(full, l)
	}
}

// methodTypes returns the type (unary, server_stream, ...) of every
// method registered on gs, by full method name.
func methodTypes(gs *grpc.Server) map[string]string {
	out := map[string]string{}
	for svc, info := range gs.GetServiceInfo() {
		for _, mi := range info.Methods {
			typ := "unary"
			switch {
			case mi.IsClientStream && mi.IsServerStream:
				typ = "bidi_stream"
			case mi.IsClientStream:
				typ = "client_stream"
			case mi.IsServerStream:
				typ = "server_stream"
			}
			out["/"+svc+"/"+mi.Name] = typ
		}
	}
	return out
}

func (m *Metrics) labels(full string) *methodLabels {
	if l, ok := m.methods.Load(full); ok {
		return l.(*methodLabels)
	}
	// An unknown method: not stored, so garbage names cannot grow the map.
	service, method := splitMethod(full)
	return &methodLabels{typ: "unary", service: service, method: method}
}

func splitMethod(full string) (service, method string) {
	full = strings.TrimPrefix(full, "/")
	if i := strings.LastIndex(full, "/"); i >= 0 {
		return full[:i], full[i+1:]
	}
	return "", full
}

// startedFor counts a call's start in a method's series.
func (m *Metrics) startedFor(l *methodLabels) {
	if l.started != nil {
		l.started.Inc()
		return
	}
	m.rpcStartedTotal.WithLabelValues(l.typ, l.service, l.method).Inc()
}

// handledFor counts a call's end in a method's series.
func (m *Metrics) handledFor(l *methodLabels, code codes.Code, d time.Duration, caller string) {
	if caller == "" {
		caller = "unauthenticated"
	}
	if l.started == nil { // an unknown method: nothing is cached for it
		m.rpcHandledTotal.WithLabelValues(l.typ, l.service, l.method, code.String()).Inc()
		m.rpcSeconds.WithLabelValues(l.typ, l.service, l.method).Observe(d.Seconds())
		if l.service != healthpb.Health_ServiceDesc.ServiceName {
			m.callerRPCs.WithLabelValues(caller, l.method, code.String()).Inc()
		}
		return
	}
	if int(code) < len(l.handled) {
		c := l.handled[code].Load()
		if c == nil {
			n := m.rpcHandledTotal.WithLabelValues(l.typ, l.service, l.method, code.String())
			c = &n
			l.handled[code].Store(c)
		}
		(*c).Inc()
	} else {
		m.rpcHandledTotal.WithLabelValues(l.typ, l.service, l.method, code.String()).Inc()
	}
	l.seconds.Observe(d.Seconds())
	if l.service != healthpb.Health_ServiceDesc.ServiceName {
		key := callerCode{caller, code}
		c, ok := l.callers.Load(key)
		if !ok {
			c, _ = l.callers.LoadOrStore(key, m.callerRPCs.WithLabelValues(caller, l.method, code.String()))
		}
		c.(prometheus.Counter).Inc()
	}
}

// callerUsed counts HeyGen requests made for caller (the same numbers as
// GetUsage's).
func (m *Metrics) callerUsed(caller string, heygenRequests int64) {
	if m != nil && heygenRequests > 0 {
		m.callerHeyGen.WithLabelValues(caller).Add(float64(heygenRequests))
	}
}

// videoCreated counts a video HeyGen accepted for caller.
func (m *Metrics) videoCreated(caller string) {
	if m != nil {
		m.callerVideos.WithLabelValues(caller).Inc()
	}
}

func (m *Metrics) rateLimitFallback() {
	if m != nil {
		m.rateFallbacks.Inc()
	}
}

// WatchFleet exports the fleet's state: whether its shared store is
// reachable, and its size.
func (m *Metrics) WatchFleet(f SharedLimiter) {
	if m == nil || f == nil {
		return
	}
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "heygen_fleet_store_up", Help: "1 while the fleet's shared store (Redis) is reachable."},
			func() float64 {
				if f.Up() {
					return 1
				}
				return 0
			}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "heygen_fleet_replicas", Help: "Replicas of the fleet seen alive recently."},
			func() float64 { return float64(f.Size()) }),
	)
}

func (m *Metrics) refusedStream(reason string) {
	if m != nil {
		m.refusedStreams.WithLabelValues(reason).Inc()
	}
}

// HeyGenObserver returns the observer to give the HeyGen client.
func (m *Metrics) HeyGenObserver() heygen.Observer { return (*upstreamObserver)(m) }

type upstreamObserver Metrics

func (o *upstreamObserver) Attempt(endpoint string, status int, d time.Duration) {
	s := "error"
	if status != 0 {
		s = strconv.Itoa(status)
	}
	o.heygenRequests.WithLabelValues(endpoint, s).Inc()
	o.heygenLatency.WithLabelValues(endpoint).Observe(d.Seconds())
}

func (o *upstreamObserver) Retry(endpoint, reason string) {
	o.heygenRetries.WithLabelValues(endpoint, reason).Inc()
}

func (o *upstreamObserver) Refused(endpoint, reason string) {
	o.heygenRefused.WithLabelValues(endpoint, reason).Inc()
}

func (o *upstreamObserver) BreakerState(state string) {
	for _, s := range []string{"closed", "open", "half-open"} {
		v := 0.0
		if s == state {
			v = 1
		}
		o.breakerState.WithLabelValues(s).Set(v)
	}
}

// Refreshed implements catalogue.Observer.
func (m *Metrics) Refreshed(resource string, r catalogue.Refresh) {
	if m == nil {
		return
	}
	m.catalogueRefreshes.WithLabelValues(resource, r.Reason).Inc()
	if !r.Built.IsZero() {
		m.catalogueMu.Lock()
		m.catalogueBuilt[resource] = r.Built
		m.catalogueMu.Unlock()
		m.catalogueItems.WithLabelValues(resource).Set(float64(r.Items))
	}
}

func (m *Metrics) catalogueRead(src catalogue.Source) {
	if m == nil {
		return
	}
	if c, ok := m.reads[src]; ok {
		c.Inc()
		return
	}
	m.catalogueReads.WithLabelValues(string(src)).Inc()
}

// watching sets the watch gauges.
func (m *Metrics) watching(videos, streams int) {
	if m != nil {
		m.watchedVideos.Set(float64(videos))
		m.watchStreams.Set(float64(streams))
	}
}

func result(err error) string {
	if err != nil {
		return "error"
	}
	return "ok"
}

// statusPolled counts a statuses call of the watch poller.
func (m *Metrics) statusPolled(err error) {
	if m != nil {
		m.statusPolls.WithLabelValues(result(err)).Inc()
	}
}

// videoFetched counts a video fetch of the watch poller.
func (m *Metrics) videoFetched(err error) {
	if m != nil {
		m.videoFetches.WithLabelValues(result(err)).Inc()
	}
}

// watchCooldown makes the cool-down gauge read left, at scrape time.
func (m *Metrics) watchCooldown(left func() time.Duration) {
	if m != nil {
		m.cooldownLeft.Store(&left)
	}
}

func (m *Metrics) cooldownSeconds() float64 {
	if f := m.cooldownLeft.Load(); f != nil {
		return max(0, (*f)().Seconds())
	}
	return 0
}

// cooldownRefused counts a create refused by the cool-down.
func (m *Metrics) cooldownRefused() {
	if m != nil {
		m.cooldownRefusal.Inc()
	}
}

// rateLimitedCall counts a call refused by one of caller's rate limits.
func (m *Metrics) rateLimitedCall(caller string) {
	if m != nil {
		m.rateLimited.WithLabelValues(caller).Inc()
	}
}
