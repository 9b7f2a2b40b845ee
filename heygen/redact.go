package heygen

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"unicode"
	"unicode/utf8"
)

// Redacted replaces an API key wherever HeyGen (or anything between) echoes it.
const Redacted = "[REDACTED]"

// maxRememberedKeys is how many past keys are still redacted after a
// rotation: a response to a call made with the old key can arrive after it.
const maxRememberedKeys = 4

// keyRing holds the key in use and the last few it replaced.
type keyRing struct {
	mu  sync.Mutex
	all atomic.Pointer[[]string] // current first
}

func (k *keyRing) set(key string) {
	if key == "" {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	next := []string{key}
	if old := k.all.Load(); old != nil {
		for _, o := range *old {
			if o != key && len(next) < maxRememberedKeys {
				next = append(next, o)
			}
		}
	}
	k.all.Store(&next)
}

func (k *keyRing) current() string {
	if all := k.all.Load(); all != nil {
		return (*all)[0]
	}
	return ""
}

// redact is the one redaction step: every string that came from upstream
// passes through it before it becomes an error, a detail, metadata or a
// log field, and before it is cut to length (so a key that straddles the
// cut is still removed whole).
func (k *keyRing) redact(s string) string {
	all := k.all.Load()
	if all == nil {
		return s
	}
	for _, key := range *all {
		if strings.Contains(s, key) {
			s = strings.ReplaceAll(s, key, Redacted)
		}
	}
	return s
}

// cleanField makes upstream text safe to show and log: redacted first,
// then valid UTF-8 with no control characters (C0 or C1: no terminal
// escapes), then cut to at most n bytes on a character boundary.
func cleanField(s string, n int, redact func(string) string) string {
	return truncate(cleanText(s, redact), n)
}

// cleanText is cleanField without the cut.
func cleanText(s string, redact func(string) string) string {
	if redact != nil {
		s = redact(s)
	}
	s = strings.ToValidUTF8(s, "\uFFFD")
	if strings.IndexFunc(s, unicode.IsControl) >= 0 {
		s = strings.Map(func(r rune) rune {
			if unicode.IsControl(r) {
				return ' '
			}
			return r
		}, s)
	}
	return strings.TrimSpace(s)
}

// truncate cuts s to at most n bytes without splitting a UTF-8 sequence,
// and makes it valid UTF-8 (protobuf strings must be).
func truncate(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// redactedError carries a transport error whose text has been redacted;
// errors.Is and errors.As still see the original underneath, except an
// attempt's timeout (see errAttemptTimedOut).
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// errAttemptTimedOut stands in for an attempt's own timeout underneath an
// [*Error]: the context error itself would make errors.Is report the
// caller's deadline, which has not passed (Do returns the caller's context
// error before making an *Error).
var errAttemptTimedOut = errors.New("attempt timed out")

func redactError(err error, redact func(string) string) error {
	if err == nil {
		return nil
	}
	inner := err
	if errors.Is(err, context.DeadlineExceeded) {
		inner = errAttemptTimedOut
	}
	return &redactedError{msg: cleanField(err.Error(), 512, redact), err: inner}
}

// Transport causes: what a caller is told about a failure to reach HeyGen.
// They never carry an address, a URL or upstream text.
const (
	CauseRefused   = "connection refused"
	CauseReset     = "connection reset"
	CauseTimeout   = "timeout"
	CauseTLS       = "tls"
	CauseDNS       = "dns"
	CauseProtocol  = "protocol error"
	CauseTransport = "transport error"
)

// TransportCause classifies a failure to reach HeyGen as one of the Cause
// constants.
func TransportCause(err error) string {
	var (
		dnsErr   *net.DNSError
		recErr   tls.RecordHeaderError
		verErr   *tls.CertificateVerificationError
		alertErr tls.AlertError
		authErr  x509.UnknownAuthorityError
		hostErr  x509.HostnameError
		invErr   x509.CertificateInvalidError
		netErr   net.Error
	)
	switch {
	case err == nil:
		return ""
	case errors.As(err, &dnsErr):
		return CauseDNS
	case errors.Is(err, syscall.ECONNREFUSED):
		return CauseRefused
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ECONNABORTED),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return CauseReset
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return CauseTimeout
	case errors.As(err, &recErr), errors.As(err, &verErr), errors.As(err, &alertErr), errors.As(err, &authErr),
		errors.As(err, &hostErr), errors.As(err, &invErr), strings.Contains(err.Error(), "tls:"):
		return CauseTLS
	case strings.Contains(err.Error(), "malformed HTTP"), strings.Contains(err.Error(), "http2:"):
		return CauseProtocol
	case strings.Contains(err.Error(), "connection reset"), strings.Contains(err.Error(), "server closed"):
		return CauseReset
	}
	return CauseTransport
}
