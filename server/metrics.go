package server

import (
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/heygen-grpc/heygen-grpc/heygen"
)

// latencyBuckets reach 60 s: a HeyGen call with retries and Retry-After
// waits can take that long, and a histogram that stops at 10 s would hide it.
var latencyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 20, 30, 60, 120}

// Metrics are the gateway's Prometheus metrics, on their own registry.
// No label ever carries an id from a request, a token or the key: callers
// are names from the operator's callers file, HeyGen endpoints are route
// templates.
type Metrics struct {
	reg  *prometheus.Registry
	grpc *grpcprom.ServerMetrics

	callerRPCs     *prometheus.CounterVec
	rateLimited    *prometheus.CounterVec
	shed           *prometheus.CounterVec
	heygenRequests *prometheus.CounterVec
	heygenLatency  *prometheus.HistogramVec
	heygenRetries  *prometheus.CounterVec
	heygenRefused  *prometheus.CounterVec
	breakerState   *prometheus.GaugeVec

	catalogueBuilt     atomic.Int64 // unix nanos of the serving snapshot
	catalogueAvatars   prometheus.Gauge
	catalogueGroups    prometheus.Gauge
	catalogueRefreshes *prometheus.CounterVec
	catalogueReads     *prometheus.CounterVec
}

// NewMetrics creates and registers every metric, plus the Go runtime and
// process collectors.
func NewMetrics() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		grpc: grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram(
			grpcprom.WithHistogramBuckets(latencyBuckets))),
		callerRPCs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "heygen_grpc_caller_rpcs_total", Help: "RPCs handled, by caller, method and code.",
		}, []string{"caller", "grpc_method", "grpc_code"}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "heygen_grpc_rate_limited_total", Help: "RPCs refused because the caller was over its rate limit.",
		}, []string{"caller"}),
		shed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "heygen_grpc_shed_total", Help: "RPCs refused because the gateway was at its bound on RPCs in flight.",
		}, []string{"grpc_method"}),
		heygenRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "heygen_upstream_requests_total", Help: "HTTP attempts to HeyGen, by endpoint template and HTTP status (\"error\" when no response).",
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
		catalogueAvatars: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "heygen_catalogue_avatars", Help: "Avatars in the serving catalogue snapshot.",
		}),
		catalogueGroups: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "heygen_catalogue_groups", Help: "Avatar groups in the serving catalogue snapshot.",
		}),
		catalogueRefreshes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "heygen_catalogue_refreshes_total", Help: "Catalogue crawls, by result (ok, error).",
		}, []string{"result"}),
		catalogueReads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "heygen_catalogue_reads_total", Help: "Answers by source: catalogue-fresh (hit), catalogue-stale, heygen (miss or pass-through).",
		}, []string{"source"}),
	}
	for _, s := range []string{"closed", "open", "half-open"} {
		m.breakerState.WithLabelValues(s).Set(0)
	}
	m.breakerState.WithLabelValues("closed").Set(1)
	age := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "heygen_catalogue_age_seconds", Help: "Age of the serving catalogue snapshot (0 before the first).",
	}, func() float64 {
		if b := m.catalogueBuilt.Load(); b != 0 {
			return time.Since(time.Unix(0, b)).Seconds()
		}
		return 0
	})
	m.reg.MustRegister(m.grpc, m.callerRPCs, m.rateLimited, m.shed, m.heygenRequests, m.heygenLatency,
		m.heygenRetries, m.heygenRefused, m.breakerState, m.catalogueAvatars, m.catalogueGroups,
		m.catalogueRefreshes, m.catalogueReads, age,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Registry returns the registry, to add more collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

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

func (m *Metrics) catalogueRefreshed(err error, snap *Snapshot) {
	if m == nil {
		return
	}
	if err != nil {
		m.catalogueRefreshes.WithLabelValues("error").Inc()
	} else {
		m.catalogueRefreshes.WithLabelValues("ok").Inc()
	}
	if snap != nil {
		m.catalogueBuilt.Store(snap.Built.UnixNano())
		a, g := snap.Len()
		m.catalogueAvatars.Set(float64(a))
		m.catalogueGroups.Set(float64(g))
	}
}

func (m *Metrics) catalogueRead(src Source) {
	if m != nil {
		m.catalogueReads.WithLabelValues(string(src)).Inc()
	}
}
