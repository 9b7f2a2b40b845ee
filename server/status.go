package server

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"
	"google.golang.org/protobuf/types/known/durationpb"

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

// invalidField returns a requestError for one field.
func invalidField(field, reason string) error {
	return &requestError{violations: []fieldViolation{{field, reason}}}
}

// errPanic is what the recovery interceptor returns for a panic.
var errPanic = errors.New("internal error")

// toStatus is the one place where errors become gRPC statuses. Every status
// it returns carries exactly one ErrorInfo (plus BadRequest for invalid
// fields and RetryInfo when HeyGen said when to retry); it never returns
// UNKNOWN, and no message holds the API key, an upstream URL or body.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	var (
		reqErr   *requestError
		valErr   *heygen.ValidationError
		hgErr    *heygen.Error
		offErr   *catalogueDisabledError
		staleErr *staleError
		authErr  *authError
		rateErr  *rateLimitError
		loadErr  *overloadError
		limErr   *heygen.LimitError
	)
	switch {
	case errors.As(err, &reqErr):
		return invalidArgument(reqErr)
	case errors.As(err, &valErr):
		return invalidArgument(&requestError{violations: []fieldViolation{{valErr.Field, valErr.Reason}}})
	case errors.Is(err, context.DeadlineExceeded):
		return withDetails(status.New(codes.DeadlineExceeded, "the call's deadline passed before HeyGen answered"),
			gatewayInfo(ReasonDeadlineExceeded, nil))
	case errors.Is(err, context.Canceled):
		return withDetails(status.New(codes.Canceled, "the call was cancelled"), gatewayInfo(ReasonCancelled, nil))
	case errors.As(err, &authErr):
		return withDetails(status.New(codes.Unauthenticated, authErr.Error()), gatewayInfo(ReasonCallerUnauthenticated, nil))
	case errors.As(err, &rateErr):
		return withDetails(status.New(codes.ResourceExhausted, rateErr.Error()),
			gatewayInfo(ReasonCallerRateLimited, map[string]string{"caller": rateErr.caller}),
			&errdetails.QuotaFailure{Violations: []*errdetails.QuotaFailure_Violation{{
				Subject: rateErr.caller, Description: fmt.Sprintf("%g requests per second, burst %d", rateErr.limit.PerSecond, rateErr.limit.Burst),
			}}},
			&errdetails.RetryInfo{RetryDelay: durationpb.New(rateErr.delay)})
	case errors.As(err, &loadErr):
		return withDetails(status.New(codes.ResourceExhausted, loadErr.Error()), gatewayInfo(ReasonOverloaded, nil))
	case errors.As(err, &limErr) && limErr.Reason == heygen.LimitCircuitOpen:
		return withDetails(status.New(codes.Unavailable, "HeyGen has been failing; the gateway is not calling it for now (circuit breaker open); retry after the delay in RetryInfo"),
			gatewayInfo(ReasonCircuitOpen, nil), &errdetails.RetryInfo{RetryDelay: durationpb.New(limErr.RetryAfter)})
	case errors.As(err, &limErr):
		return withDetails(status.New(codes.ResourceExhausted, "the gateway is at its limit of concurrent HeyGen calls; retry with backoff"),
			gatewayInfo(ReasonHeyGenConcurrency, nil))
	case errors.As(err, &offErr):
		return withDetails(status.New(codes.FailedPrecondition, offErr.Error()),
			gatewayInfo(ReasonCatalogueDisabled, map[string]string{"fields": strings.Join(offErr.fields, ",")}))
	case errors.As(err, &hgErr):
		return heygenStatus(hgErr)
	case errors.As(err, &staleErr):
		return withDetails(status.New(codes.Unavailable, "the avatar catalogue is too old to serve and refreshing it keeps failing; retry later"),
			gatewayInfo(ReasonCatalogueStale, nil))
	}
	if st, ok := status.FromError(err); ok && st.Code() != codes.Unknown && st.Code() != codes.OK {
		return err // already a status from grpc-go itself
	}
	return withDetails(status.New(codes.Internal, "internal error in the gateway; its logs have the details"),
		gatewayInfo(ReasonInternal, nil))
}

func invalidArgument(e *requestError) error {
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

func heygenStatus(e *heygen.Error) error {
	m, ok := reasonOf[e.Kind]
	if !ok {
		m = reasonOf[heygen.KindBadResponse]
	}
	msg := m.summary
	if e.Message != "" && e.Kind != heygen.KindBadResponse {
		msg += ": " + e.Message
	} else if e.Kind == heygen.KindBadResponse && e.Message != "" {
		msg += " (" + e.Message + ")"
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
	if e.Err != nil && e.HTTPStatus == 0 {
		md["cause"] = e.Err.Error()
	}
	details := []protoadapt.MessageV1{
		&errdetails.ErrorInfo{Reason: m.reason, Domain: HeyGenDomain, Metadata: md},
	}
	if e.HasRetryAfter && (e.Kind == heygen.KindRateLimited || e.Kind == heygen.KindUnavailable) {
		details = append(details, &errdetails.RetryInfo{RetryDelay: durationpb.New(e.RetryAfter)})
	}
	return withDetails(status.New(m.code, msg), details...)
}

func gatewayInfo(reason string, md map[string]string) *errdetails.ErrorInfo {
	return &errdetails.ErrorInfo{Reason: reason, Domain: GatewayDomain, Metadata: md}
}

// withDetails attaches details, falling back to the bare status (which
// still has the right code and message) if they cannot be marshalled.
func withDetails(st *status.Status, details ...protoadapt.MessageV1) error {
	withD, err := st.WithDetails(details...)
	if err != nil {
		return st.Err()
	}
	return withD.Err()
}
