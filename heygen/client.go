package heygen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// DefaultBaseURL is HeyGen's API.
const DefaultBaseURL = "https://api.heygen.com"

// DefaultMaxResponseBytes caps a response body. A page of 50 looks is
// around 50 KB; HeyGen's old unpaginated list was over 2 MB.
const DefaultMaxResponseBytes = 8 << 20

// MaxNextTokenLen bounds HeyGen's next_token: HeyGen's are short opaque
// strings, and callers carry them inside their own page tokens.
const MaxNextTokenLen = 2048

// Options configures [New].
type Options struct {
	// BaseURL is HeyGen's base URL (default [DefaultBaseURL]). Only http and
	// https URLs with a host and no query, fragment or credentials are accepted.
	BaseURL string
	// APIKey is sent as X-Api-Key. Required.
	APIKey string
	// Retry is the retry policy; zero fields take defaults.
	Retry RetryPolicy
	// MaxResponseBytes caps each response body (default [DefaultMaxResponseBytes]).
	MaxResponseBytes int64
	// Transport is the base transport under the retry layer (default
	// [NewTransport]). Tests and the demo may pass their own.
	Transport http.RoundTripper
	// Logger receives retry warnings (default: discard).
	Logger *slog.Logger
	// UserAgent is sent as User-Agent (default "heygen-grpc").
	UserAgent string
	// Breaker configures the circuit breaker (on by default).
	Breaker BreakerPolicy
	// Budget bounds retries to a fraction of calls (10% by default).
	Budget RetryBudget
	// MaxConcurrent bounds HTTP attempts in flight; beyond it calls fail
	// fast with a *LimitError, except background work marked with
	// [WithQueueing], which waits. 0 means unbounded.
	MaxConcurrent int
	// Observer receives attempts, retries, refusals and breaker changes
	// (for metrics); nil observes nothing.
	Observer Observer
}

// Client calls HeyGen's REST API. It is safe for concurrent use.
//
// Endpoint methods hang off its resource fields (client.Avatars.GetLook,
// client.Users.Me, ...); each builds a request with [Client.NewRequest] and
// sends it with [Client.Do], so the key, the envelope and the error shapes
// are handled in exactly one place.
type Client struct {
	baseURL   *url.URL
	http      *http.Client
	keys      *keyRing
	maxBytes  int64
	userAgent string
	transport *transport

	// Avatars reaches the avatar (look) and avatar group endpoints.
	Avatars *AvatarsService
	// Users reaches the account endpoint.
	Users *UsersService
	// Voices reaches the voice endpoints.
	Voices *VoicesService
	// Videos reaches the video endpoints.
	Videos *VideosService
}

// New returns a client, or an error naming the bad option.
func New(opts Options) (*Client, error) {
	if opts.APIKey == "" {
		return nil, errors.New("an API key is required")
	}
	if opts.BaseURL == "" {
		opts.BaseURL = DefaultBaseURL
	}
	base, err := ParseBaseURL(opts.BaseURL)
	if err != nil {
		return nil, err
	}
	if opts.MaxResponseBytes <= 0 {
		opts.MaxResponseBytes = DefaultMaxResponseBytes
	}
	if opts.Transport == nil {
		opts.Transport = NewTransport()
	}
	if opts.UserAgent == "" {
		opts.UserAgent = "heygen-grpc"
	}
	c := &Client{
		baseURL:   base,
		keys:      &keyRing{},
		maxBytes:  opts.MaxResponseBytes,
		userAgent: opts.UserAgent,
	}
	c.keys.set(opts.APIKey)
	c.transport = newTransport(opts, c.keys.redact)
	c.http = &http.Client{
		Transport: c.transport,
		// Never follow a redirect: the X-Api-Key header would go with it.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	c.Avatars = &AvatarsService{c: c}
	c.Users = &UsersService{c: c}
	c.Voices = &VoicesService{c: c}
	c.Videos = &VideosService{c: c}
	return c, nil
}

// SetAPIKey replaces the key used by calls that start after it returns;
// calls already under way finish with the key they started with. An empty
// key is ignored. The previous keys are still redacted from anything
// HeyGen echoes.
func (c *Client) SetAPIKey(key string) { c.keys.set(key) }

// Redact removes every API key the client has used from s. Everything that
// came from HeyGen passes through it before it becomes an error, and
// callers may use it for anything else they log.
func (c *Client) Redact(s string) string { return c.keys.redact(s) }

// ParseBaseURL validates a HeyGen base URL: absolute http or https, a host,
// no user info, query or fragment. The returned error says which rule failed.
func ParseBaseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("base URL %q is not a URL", raw)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("base URL %q must start with https:// or http://", raw)
	case u.Host == "":
		return nil, fmt.Errorf("base URL %q has no host", raw)
	case u.User != nil:
		return nil, errors.New("base URL must not contain credentials")
	case u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		return nil, fmt.Errorf("base URL %q must not have a query or fragment", raw)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u, nil
}

// NewTransport returns the shared transport, sized for one busy host:
// many idle connections kept per host (Go's default is 2, which makes a
// busy client redial constantly), and bounded dial, TLS and response
// header waits so nothing hangs on a sick network.
func NewTransport() *http.Transport {
	return &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   5 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   128,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: 15 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

// ValidID reports whether id may be used as a HeyGen id: the allowlist
// for ids placed in a URL path, ^[A-Za-z0-9_-]{1,128}$ (HeyGen's ids are
// slugs or hex, so "..", "/", "%" and the like are refused outright). A
// loop rather than a regexp: every get by id checks one, and the regexp
// took a microsecond of a call's few tens.
func ValidID(id string) bool {
	if len(id) == 0 || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		switch c := id[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '-':
		default:
			return false
		}
	}
	return true
}

// IDRule says what [ValidID] accepts, for error messages.
const IDRule = "must be 1 to 128 characters of A-Z, a-z, 0-9, '_' or '-'"

func checkID(field, id string) error {
	if !ValidID(id) {
		return &ValidationError{Field: field, Reason: IDRule}
	}
	return nil
}

// Path is a request path together with its route template: the template
// ("/v3/avatars/looks/{look_id}") names the endpoint in errors, logs and
// metrics, which must never carry ids.
type Path struct {
	// Template is the route with placeholders, as HeyGen documents it.
	Template string
	escaped  string
}

// Route fills the {placeholders} of template, in order, with ids, each
// escaped as one path segment. Endpoint methods validate ids first (see
// [ValidID]); Route escapes them anyway.
func Route(template string, ids ...string) Path {
	var b strings.Builder
	rest := template
	for _, id := range ids {
		open := strings.IndexByte(rest, '{')
		end := strings.IndexByte(rest, '}')
		if open < 0 || end < open {
			break
		}
		b.WriteString(rest[:open])
		b.WriteString(url.PathEscape(id))
		rest = rest[end+1:]
	}
	b.WriteString(rest)
	return Path{Template: template, escaped: b.String()}
}

// NewRequest builds a request to HeyGen: method, path (see [Route]), query
// and, when body is not nil, a JSON body. The API key is set here and
// nowhere else. The request is not sent until [Client.Do].
func (c *Client) NewRequest(ctx context.Context, method string, path Path, query url.Values, body any) (*http.Request, error) {
	target := c.baseURL.String() + path.escaped
	if q := query.Encode(); q != "" {
		target += "?" + q
	}
	var rd *bytes.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("encode the body of %s %s: %w", method, path.Template, err)
		}
		rd = bytes.NewReader(b)
	}
	ctx = context.WithValue(ctx, endpointKey{}, path.Template)
	var req *http.Request
	var err error
	if rd != nil {
		req, err = http.NewRequestWithContext(ctx, method, target, rd)
	} else {
		req, err = http.NewRequestWithContext(ctx, method, target, nil)
	}
	if err != nil {
		return nil, fmt.Errorf("build request for %s %s: %w", method, path.Template, err)
	}
	req.Header.Set("X-Api-Key", c.keys.current())
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return req, nil
}

// Response is what a successful call returned besides its data.
type Response struct {
	// StatusCode is HeyGen's HTTP status.
	StatusCode int
	// RequestID is HeyGen's X-Request-Id (redacted, length-capped).
	RequestID string
	// HasMore and NextToken page through lists: NextToken fetches the next
	// page and is empty on the last one.
	HasMore   bool
	NextToken string
	// Attempts is how many HTTP attempts the call took.
	Attempts int
}

// Do sends req (built by [Client.NewRequest]) with the retry policy and
// decodes the successful envelope's data into v (unless v is nil). Every
// failure is an [*Error], a [*LimitError] (refused before sending), or the
// context's error when the caller gave up.
func (c *Client) Do(req *http.Request, v any) (*Response, error) {
	ctx, counter := withAttemptCounter(req.Context())
	req = req.WithContext(ctx)
	endpoint := endpointFrom(ctx)
	resp, err := c.http.Do(req)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, ctxErr
		}
		// url.Error would repeat the full URL with its query: keep only the cause.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		var lerr *LimitError
		if errors.As(err, &lerr) {
			return nil, lerr
		}
		var herr *Error
		if errors.As(err, &herr) { // the transport's own verdict (a bad 409 body, say)
			herr.Method, herr.Endpoint, herr.Attempts = req.Method, endpoint, int(counter.n.Load())
			return nil, herr
		}
		return nil, c.transportError(req.Method, endpoint, int(counter.n.Load()), err)
	}
	env, body, err := checkResponse(resp, c.maxBytes, c.keys.redact)
	defer body.release() // after Data, a slice of it, is decoded
	attempts := int(counter.n.Load())
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, ctxErr
		}
		var herr *Error
		if errors.As(err, &herr) {
			herr.Method, herr.Endpoint, herr.Attempts = req.Method, endpoint, attempts
		}
		return nil, err
	}
	out := &Response{StatusCode: resp.StatusCode, RequestID: cleanField(resp.Header.Get("X-Request-Id"), 128, c.keys.redact),
		HasMore: env.HasMore, Attempts: attempts}
	fail := func(msg string) error {
		return &Error{Kind: KindBadResponse, Method: req.Method, Endpoint: endpoint, HTTPStatus: resp.StatusCode,
			RequestID: out.RequestID, Attempts: attempts, Message: msg}
	}
	if env.HasMore && env.NextToken != nil {
		if len(*env.NextToken) > MaxNextTokenLen {
			return nil, fail(fmt.Sprintf("next_token is %d bytes, over the %d-byte limit", len(*env.NextToken), MaxNextTokenLen))
		}
		out.NextToken = *env.NextToken
	}
	if v == nil {
		return out, nil
	}
	if !isNonNull(env.Data) {
		return nil, fail("response has no data")
	}
	if err := json.Unmarshal(env.Data, v); err != nil {
		return nil, fail("response data does not decode: " + cleanField(err.Error(), 200, c.keys.redact))
	}
	return out, nil
}

// transportError makes an *Error of a failure to reach HeyGen: the
// classified cause for callers, the redacted text for logs.
func (c *Client) transportError(method, endpoint string, attempts int, err error) *Error {
	return &Error{Kind: KindUnavailable, Method: method, Endpoint: endpoint, Attempts: attempts,
		Cause: TransportCause(err), Err: redactError(err, c.keys.redact)}
}

// CloseIdleConnections closes the transport's idle keep-alive connections
// (at shutdown, or in tests checking for leaks).
func (c *Client) CloseIdleConnections() { c.http.CloseIdleConnections() }

// BreakerState reports the breaker state: "closed", "open", "half-open" or "disabled".
func (c *Client) BreakerState() string { return c.transport.breaker.state() }
