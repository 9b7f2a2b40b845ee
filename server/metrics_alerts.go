package server

import (
	"regexp"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// alertMetrics are the series the alerts and the dashboard in
// deploy/monitoring need that the health service and the logs alone
// carried: HeyGen's state as the prober sees it (a health name is not a
// metric), and failed RPCs by their ErrorInfo reason (the code alone does
// not tell a rate-limited caller from HeyGen rate-limiting the gateway).
type alertMetrics struct {
	upstreamState *prometheus.GaugeVec
	rpcErrors     *prometheus.CounterVec
}

// upstreamStates are every value of heygen_upstream_state's state label.
var upstreamStates = []upstreamState{upstreamUnknown, upstreamOK, upstreamKeyRejected, upstreamUnreachable}

// ReasonUnspecified is the reason label of a failed RPC whose status has
// no ErrorInfo: it failed before the gateway's handlers ran (a request that
// did not decode, a deadline that passed first).
const ReasonUnspecified = "UNSPECIFIED"

// reasonLabel guards the label against a reason that is not one of ours:
// every reason the gateway sets is an upper-case constant.
var reasonLabel = regexp.MustCompile(`^[A-Z][A-Z0-9_]{0,63}$`)

func newAlertMetrics(reg *prometheus.Registry) alertMetrics {
	a := alertMetrics{
		upstreamState: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "heygen_upstream_state",
			Help: "1 for HeyGen's state as the background probe sees it: unknown (no probe answered yet), ok, key_rejected, unreachable.",
		}, []string{"state"}),
		rpcErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "heygen_grpc_errors_total",
			Help: "RPCs that ended with an error, by method, code and google.rpc.ErrorInfo reason (" + ReasonUnspecified + " when the status has none).",
		}, []string{"grpc_service", "grpc_method", "grpc_code", "reason"}),
	}
	for _, s := range upstreamStates {
		a.upstreamState.WithLabelValues(s.String()).Set(0)
	}
	a.upstreamState.WithLabelValues(upstreamUnknown.String()).Set(1)
	reg.MustRegister(a.upstreamState, a.rpcErrors)
	return a
}

// setUpstreamState records the prober's view of HeyGen.
func (m *Metrics) setUpstreamState(state upstreamState) {
	if m == nil {
		return
	}
	for _, s := range upstreamStates {
		v := 0.0
		if s == state {
			v = 1
		}
		m.upstreamState.WithLabelValues(s.String()).Set(v)
	}
}

// rpcFailed counts a failed RPC by its ErrorInfo reason.
func (m *Metrics) rpcFailed(l *methodLabels, err error) {
	if m == nil || err == nil {
		return
	}
	st := status.Convert(err)
	if st.Code() == codes.OK {
		return
	}
	reason := ReasonUnspecified
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && reasonLabel.MatchString(info.GetReason()) {
			reason = info.GetReason()
			break
		}
	}
	m.rpcErrors.WithLabelValues(l.service, l.method, st.Code().String(), reason).Inc()
}
