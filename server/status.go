package server

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/heygen-grpc/heygen-grpc/catalogue"
	"github.com/heygen-grpc/heygen-grpc/heygen"
)

// Error domains of the google.rpc.ErrorInfo detail every error carries.
const (
	// HeyGenDomain marks errors caused by HeyGen.
	HeyGenDomain = "api.heygen.com"
	// GatewayDomain marks errors the gateway decides itself.
	GatewayDomain = "heygen-grpc.gateway"
)

// ErrorInfo reasons in the gateway's own domain.
const (
	// ReasonInvalidRequest: a request field is invalid; nothing was sent to HeyGen.
	ReasonInvalidRequest = "INVALID_REQUEST"
	// ReasonDeadlineExceeded: the caller's deadline passed.
	ReasonDeadlineExceeded = "DEADLINE_EXCEEDED"
	// ReasonCancelled: the caller cancelled.
	ReasonCancelled = "CANCELLED"
	// ReasonInternal: the gateway itself failed (a bug; see its logs).
	ReasonInternal = "INTERNAL"
	// ReasonCallerUnauthenticated: the caller's credentials are missing or wrong.
	ReasonCallerUnauthenticated = "CALLER_UNAUTHENTICATED"
	// ReasonCallerRateLimited: the caller is over its own rate limit.
	ReasonCallerRateLimited = "CALLER_RATE_LIMITED"
	// ReasonOverloaded: the gateway is at its bound on calls in flight.
	ReasonOverloaded = "GATEWAY_OVERLOADED"
	// ReasonHeyGenConcurrency: the gateway is at its bound on concurrent
	// HeyGen calls.
	ReasonHeyGenConcurrency = "HEYGEN_CONCURRENCY_LIMIT"
	// ReasonCircuitOpen: HeyGen failed repeatedly and the gateway is not
	// calling it until the breaker's probe succeeds.
	ReasonCircuitOpen = "CIRCUIT_OPEN"
	// ReasonCatalogueDisabled: a filter needs the catalogue, which is off.
	ReasonCatalogueDisabled = "CATALOGUE_DISABLED"
	// ReasonCatalogueStale: the catalogue is past its maximum staleness and
	// no HeyGen error explains why.
	ReasonCatalogueStale = "CATALOGUE_STALE"
	// ReasonCallerNotAdmin: the caller asked for every caller's usage but
	// is not in the gateway's admin list.
	ReasonCallerNotAdmin = "CALLER_NOT_ADMIN"
	// ReasonRequestIDReused: a CreateVideo request_id was used before with
	// a different request.
	ReasonRequestIDReused = "REQUEST_ID_REUSED"
	// ReasonCreateCooldown: HeyGen rate-limited video creation and the
	// gateway holds every create until HeyGen's Retry-After has passed.
	ReasonCreateCooldown = "VIDEO_CREATE_COOLDOWN"
	// ReasonCreateConcurrency: the gateway is at its bound on video
	// creations in flight to HeyGen.
	ReasonCreateConcurrency = "VIDEO_CREATE_CONCURRENCY_LIMIT"
	// ReasonWatchLimit: the gateway is at its bound on WatchVideo streams,
	// in all or for the caller.
	ReasonWatchLimit = "WATCH_LIMIT"
	// ReasonShuttingDown: the replica is shutting down and ended the
	// stream; call again (another replica answers).
	ReasonShuttingDown = "GATEWAY_SHUTTING_DOWN"
)

// reasonOf maps each HeyGen failure kind to its gRPC code and ErrorInfo
// reason, exactly as the mapping table in the HeyGen notes says.
var reasonOf = map[heygen.Kind]struct {
	code    codes.Code
	reason  string
	summary string
}{
	heygen.KindInvalidArgument:    {codes.InvalidArgument, "HEYGEN_INVALID_ARGUMENT", "HeyGen rejected a request parameter"},
	heygen.KindKeyRejected:        {codes.Unauthenticated, "HEYGEN_API_KEY_REJECTED", "HeyGen rejected the gateway's own API key; your credentials are not the problem, the gateway's operators must fix its HEYGEN_API_KEY"},
	heygen.KindPermissionDenied:   {codes.PermissionDenied, "HEYGEN_PERMISSION_DENIED", "HeyGen does not allow the gateway's API key to do this"},
	heygen.KindNotFound:           {codes.NotFound, "HEYGEN_NOT_FOUND", "HeyGen found no such resource"},
	heygen.KindRateLimited:        {codes.ResourceExhausted, "HEYGEN_RATE_LIMITED", "HeyGen is rate-limiting the gateway; retry later"},
	heygen.KindInsufficientCredit: {codes.FailedPrecondition, "HEYGEN_INSUFFICIENT_CREDIT", "the HeyGen account has insufficient credit"},
	heygen.KindUnavailable:        {codes.Unavailable, "HEYGEN_UNAVAILABLE", "HeyGen is unavailable; retry with backoff"},
	heygen.KindBadResponse:        {codes.Internal, "HEYGEN_BAD_RESPONSE", "HeyGen sent a response the gateway cannot use"},
	heygen.KindConflict:           {codes.Aborted, "HEYGEN_CONFLICT", "HeyGen refused the change because it conflicts with the resource's current state"},
	heygen.KindPayloadTooLarge:    {codes.InvalidArgument, "HEYGEN_PAYLOAD_TOO_LARGE", "HeyGen refused the request as too large; send less"},
	heygen.KindInProgress:         {codes.Aborted, "HEYGEN_REQUEST_IN_PROGRESS", "HeyGen is still processing an earlier request with the same request_id; retry later with the same request_id"},
}

// fieldViolation is one invalid request field.
type fieldViolation struct {
	field, reason string
}

// requestError is a request the gateway refuses before calling HeyGen.
type requestError struct {
	violations []fieldViolation
}

func (e *requestError) Error() string {
	msg := "invalid request"
	for i, v := range e.violations {
		if i == 0 {
			msg += ": "
		} else {
			msg += "; "
		}
		msg += v.field + ": " + v.reason
	}
	return msg
}

// errPanic is what the recovery interceptor returns for a panic.
var errPanic = errors.New("internal error")

// deadlineSlack: a call cancelled this close to its deadline was cancelled
// by it. A client whose deadline passes resets the stream, and the reset
// reaches the server a moment before the server's own timer fires, so the
// server sees "cancelled" for what was a deadline.
const deadlineSlack = 50 * time.Millisecond

// toStatus is the one place where errors become gRPC statuses. Every status
// it returns carries exactly one ErrorInfo (plus BadRequest for invalid
// fields and RetryInfo when it is known when to retry); it never returns
// UNKNOWN, and no message or detail holds the API key, an upstream address,
// URL or body. ctx is the call's: it tells a deadline from a cancellation.
func toStatus(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) {
		if d, ok := ctx.Deadline(); ok && time.Until(d) < deadlineSlack {
			err = context.DeadlineExceeded
		}
	}
	var cold *catalogue.ColdError
	if errors.As(err, &cold) {
		// No snapshot yet and the last crawl failed: the crawl's own error,
		// and when the next crawl may run.
		return withRetry(statusOf(cold.Cause), cold.RetryAfter)
	}
	return statusOf(err).Err()
}

// statusOf maps an error to its status (see toStatus).
func statusOf(err error) *status.Status {
	var (
		reqErr   *requestError
		valErr   *heygen.ValidationError
		fieldErr *catalogue.FieldError
		hgErr    *heygen.Error
		offErr   *catalogue.DisabledError
		staleErr *catalogue.StaleError
		boundErr *catalogue.BoundError
		authErr  *authError
		rateErr  *rateLimitError
		loadErr  *overloadError
		limErr   *heygen.LimitError
		adminErr *notAdminError
		reuseErr *requestIDReusedError
		coolErr  *cooldownError
		slotsErr *createSlotsError
		watchErr *watchLimitError
	)
	switch {
	case errors.As(err, &reqErr):
		return invalidArgument(reqErr)
	case errors.As(err, &valErr):
		return invalidArgument(&requestError{violations: []fieldViolation{{valErr.Field, valErr.Reason}}})
	case errors.As(err, &fieldErr):
		return invalidArgument(&requestError{violations: []fieldViolation{{fieldErr.Field, fieldErr.Reason}}})
	case errors.Is(err, context.DeadlineExceeded):
		return withDetails(status.New(codes.DeadlineExceeded, "the call's deadline passed before HeyGen answered"),
			gatewayInfo(ReasonDeadlineExceeded, nil))
	case errors.Is(err, context.Canceled):
		return withDetails(status.New(codes.Canceled, "the call was cancelled"), gatewayInfo(ReasonCancelled, nil))
	case errors.As(err, &authErr):
		return withDetails(status.New(codes.Unauthenticated, authErr.Error()), gatewayInfo(ReasonCallerUnauthenticated, nil))
	case errors.As(err, &rateErr):
		md := map[string]string{"caller": rateErr.caller}
		if rateErr.scope != "" {
			md["limit"] = rateErr.scope
		}
		return withDetails(status.New(codes.ResourceExhausted, rateErr.Error()),
			gatewayInfo(ReasonCallerRateLimited, md),
			&errdetails.QuotaFailure{Violations: []*errdetails.QuotaFailure_Violation{{
				Subject: rateErr.caller, Description: fmt.Sprintf("%g %s per second, burst %d", rateErr.limit.PerSecond, cmp.Or(rateErr.what, "requests"), rateErr.limit.Burst),
			}}},
			&errdetails.RetryInfo{RetryDelay: durationpb.New(rateErr.delay)})
	case errors.As(err, &adminErr):
		return withDetails(status.New(codes.PermissionDenied, adminErr.Error()),
			gatewayInfo(ReasonCallerNotAdmin, map[string]string{"caller": adminErr.caller}))
	case errors.As(err, &loadErr):
		return withDetails(status.New(codes.ResourceExhausted, loadErr.Error()), gatewayInfo(ReasonOverloaded, nil))
	case errors.As(err, &limErr) && limErr.Reason == heygen.LimitCircuitOpen:
		msg := "HeyGen has been failing"
		var md map[string]string
		if limErr.LastFailure != "" {
			msg += " (last failure: " + limErr.LastFailure + ")"
			md = map[string]string{"cause": limErr.LastFailure}
		}
		return withDetails(status.New(codes.Unavailable, msg+"; the gateway is not calling it for now (circuit breaker open); retry after the delay in RetryInfo"),
			gatewayInfo(ReasonCircuitOpen, md), &errdetails.RetryInfo{RetryDelay: durationpb.New(limErr.RetryAfter)})
	case errors.As(err, &limErr):
		return withDetails(status.New(codes.ResourceExhausted, "the gateway is at its limit of concurrent HeyGen calls; retry with backoff"),
			gatewayInfo(ReasonHeyGenConcurrency, nil))
	case errors.As(err, &offErr):
		return withDetails(status.New(codes.FailedPrecondition, offErr.Error()),
			gatewayInfo(ReasonCatalogueDisabled, map[string]string{"fields": strings.Join(offErr.Fields, ",")}))
	case errors.As(err, &reuseErr):
		return withDetails(status.New(codes.FailedPrecondition, reuseErr.Error()),
			gatewayInfo(ReasonRequestIDReused, map[string]string{"field": "request_id"}),
			&errdetails.PreconditionFailure{Violations: []*errdetails.PreconditionFailure_Violation{{
				Type: "REQUEST_ID", Subject: "request_id", Description: "already used for a different request in the last 24 hours",
			}}})
	case errors.As(err, &coolErr):
		return withDetails(status.New(codes.ResourceExhausted, coolErr.Error()),
			gatewayInfo(ReasonCreateCooldown, nil), &errdetails.RetryInfo{RetryDelay: durationpb.New(coolErr.wait)})
	case errors.As(err, &slotsErr):
		return withDetails(status.New(codes.ResourceExhausted, slotsErr.Error()), gatewayInfo(ReasonCreateConcurrency, nil))
	case errors.Is(err, errShuttingDown):
		return withDetails(status.New(codes.Unavailable, err.Error()), gatewayInfo(ReasonShuttingDown, nil))
	case errors.As(err, &watchErr):
		return withDetails(status.New(codes.ResourceExhausted, watchErr.Error()),
			gatewayInfo(ReasonWatchLimit, map[string]string{"scope": watchErr.scope}))
	case errors.As(err, &hgErr):
		return heygenStatus(hgErr)
	case errors.As(err, &boundErr):
		return withDetails(status.New(codes.Internal, reasonOf[heygen.KindBadResponse].summary+" ("+boundErr.Error()+")"),
			&errdetails.ErrorInfo{Reason: reasonOf[heygen.KindBadResponse].reason, Domain: HeyGenDomain,
				Metadata: map[string]string{"crawl": boundErr.Reason}})
	case errors.As(err, &staleErr):
		return withDetails(status.New(codes.Unavailable, "the "+staleErr.Resource+" catalogue is too old to serve and refreshing it keeps failing; retry later"),
			gatewayInfo(ReasonCatalogueStale, nil))
	}
	if st, ok := status.FromError(err); ok && st.Code() != codes.Unknown && st.Code() != codes.OK {
		return st // already a status from grpc-go itself
	}
	return withDetails(status.New(codes.Internal, "internal error in the gateway; its logs have the details"),
		gatewayInfo(ReasonInternal, nil))
}

// withRetry returns st with its RetryInfo set to d (replacing any).
func withRetry(st *status.Status, d time.Duration) error {
	p := st.Proto()
	kept := p.Details[:0]
	for _, a := range p.Details {
		if a.MessageIs(&errdetails.RetryInfo{}) {
			continue
		}
		kept = append(kept, a)
	}
	p.Details = kept
	out, err := status.FromProto(p).WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(max(d, 0))})
	if err != nil {
		return status.FromProto(p).Err()
	}
	return out.Err()
}

func invalidArgument(e *requestError) *status.Status {
	br := &errdetails.BadRequest{}
	for _, v := range e.violations {
		br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{
			Field: v.field, Description: v.reason,
		})
	}
	md := map[string]string{}
	if len(e.violations) > 0 {
		md["field"] = e.violations[0].field
	}
	return withDetails(status.New(codes.InvalidArgument, e.Error()), gatewayInfo(ReasonInvalidRequest, md), br)
}

func heygenStatus(e *heygen.Error) *status.Status {
	m, ok := reasonOf[e.Kind]
	if !ok {
		m = reasonOf[heygen.KindBadResponse]
	}
	msg := m.summary
	switch {
	case e.Message != "" && e.Kind != heygen.KindBadResponse:
		msg += ": " + e.Message
	case e.Message != "":
		msg += " (" + e.Message + ")"
	case e.Cause != "":
		msg += " (" + e.Cause + ")"
	}
	if e.RequestID != "" {
		msg += " [HeyGen request id " + e.RequestID + "]"
	}
	md := map[string]string{"endpoint": e.Method + " " + e.Endpoint}
	if e.HTTPStatus != 0 {
		md["http_status"] = strconv.Itoa(e.HTTPStatus)
	}
	if e.Code != "" {
		md["heygen_code"] = e.Code
	}
	if e.RequestID != "" {
		md["heygen_request_id"] = e.RequestID
	}
	if e.Param != "" {
		md["heygen_param"] = e.Param
	}
	if e.Attempts > 0 {
		md["attempts"] = strconv.Itoa(e.Attempts)
	}
	if e.Cause != "" {
		md["cause"] = e.Cause
	}
	details := []protoadapt.MessageV1{
		&errdetails.ErrorInfo{Reason: m.reason, Domain: HeyGenDomain, Metadata: md},
	}
	if e.HasRetryAfter && (e.Kind == heygen.KindRateLimited || e.Kind == heygen.KindUnavailable || e.Kind == heygen.KindInProgress) {
		details = append(details, &errdetails.RetryInfo{RetryDelay: durationpb.New(e.RetryAfter)})
	}
	return withDetails(status.New(m.code, msg), details...)
}

func gatewayInfo(reason string, md map[string]string) *errdetails.ErrorInfo {
	return &errdetails.ErrorInfo{Reason: reason, Domain: GatewayDomain, Metadata: md}
}

// withDetails attaches details, falling back to the bare status (which
// still has the right code and message) if they cannot be marshalled.
func withDetails(st *status.Status, details ...protoadapt.MessageV1) *status.Status {
	withD, err := st.WithDetails(details...)
	if err != nil {
		return st
	}
	return withD
}
