package heygen

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"
)

// DefaultBaseURL is HeyGen's API.
const DefaultBaseURL = "https://api.heygen.com"

// DefaultMaxResponseBytes caps a response body. A page of 50 looks is
// around 50 KB; HeyGen's old unpaginated list was over 2 MB.
const DefaultMaxResponseBytes = 8 << 20

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
type Client struct {
	baseURL   *url.URL
	http      *http.Client
	apiKey    atomic.Pointer[string]
	maxBytes  int64
	userAgent string
	breaker   *breaker

	// Avatars reaches the avatar (look) and avatar group endpoints.
	Avatars *AvatarsService
	// Users reaches the account endpoint.
	Users *UsersService
}

// New returns a client, or an error naming the bad option.
func New(opts Options) (*Client, error) {
	if opts.APIKey == "" {
		return nil, errors.New("heygen: an API key is required")
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
	obs := opts.Observer
	if obs == nil {
		obs = nopObserver{}
	}
	rt := NewRetryTransport(opts.Transport, opts.Retry, opts.Logger).(*retryTransport)
	rt.obs = obs
	rt.breaker = newBreaker(opts.Breaker, obs.BreakerState)
	rt.budget = newRetryBudget(opts.Budget)
	if opts.MaxConcurrent > 0 {
		rt.sem = semaphore.NewWeighted(int64(opts.MaxConcurrent))
	}
	c := &Client{
		baseURL: base,
		breaker: rt.breaker,
		http: &http.Client{
			Transport: rt,
			// Never follow a redirect: the X-Api-Key header would go with it.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		maxBytes:  opts.MaxResponseBytes,
		userAgent: opts.UserAgent,
	}
	c.SetAPIKey(opts.APIKey)
	c.Avatars = &AvatarsService{c: c}
	c.Users = &UsersService{c: c}
	return c, nil
}

// SetAPIKey replaces the key used by calls that start after it returns;
// calls already under way finish with the key they started with. An empty
// key is ignored.
func (c *Client) SetAPIKey(key string) {
	if key != "" {
		c.apiKey.Store(&key)
	}
}

// ParseBaseURL validates a HeyGen base URL: absolute http or https, a host,
// no user info, query or fragment. The returned error says which rule failed.
func ParseBaseURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("heygen: base URL %q is not a URL", raw)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("heygen: base URL %q must start with https:// or http://", raw)
	case u.Host == "":
		return nil, fmt.Errorf("heygen: base URL %q has no host", raw)
	case u.User != nil:
		return nil, errors.New("heygen: base URL must not contain credentials")
	case u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		return nil, fmt.Errorf("heygen: base URL %q must not have a query or fragment", raw)
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

// idPattern is the allowlist for ids placed in a URL path: HeyGen's ids are
// slugs or hex, so "..", "/", "%" and the like are refused outright.
var idPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)

// ValidID reports whether id may be used as a HeyGen id.
func ValidID(id string) bool { return idPattern.MatchString(id) }

func checkID(field, id string) error {
	if !ValidID(id) {
		return &ValidationError{Field: field, Reason: "must be 1 to 128 characters of A-Z, a-z, 0-9, '_' or '-'"}
	}
	return nil
}

// get performs GET base+path?query and decodes the successful envelope.
// endpoint is the route template used in errors ("/v3/avatars/{group_id}").
func (c *Client) get(ctx context.Context, endpoint string, segments []string, query url.Values) (envelope, error) {
	u := *c.baseURL
	var path strings.Builder
	path.WriteString(u.Path)
	for _, s := range segments {
		path.WriteByte('/')
		path.WriteString(url.PathEscape(s))
	}
	u.Path = path.String()
	u.RawQuery = query.Encode()
	return c.do(ctx, endpoint, &u)
}

// do sends one GET, with the API key set here and nowhere else.
func (c *Client) do(ctx context.Context, endpoint string, u *url.URL) (envelope, error) {
	ctx, counter := withAttemptCounter(ctx)
	ctx = context.WithValue(ctx, endpointKey{}, endpoint)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return envelope{}, fmt.Errorf("heygen: build request for %s: %w", endpoint, err)
	}
	req.Header.Set("X-Api-Key", *c.apiKey.Load())
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)

	resp, err := c.http.Do(req) //nolint:bodyclose // checkResponse always closes it
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return envelope{}, ctxErr
		}
		// url.Error would repeat the full URL with its query: keep only the cause.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		var lerr *LimitError
		if errors.As(err, &lerr) {
			return envelope{}, lerr
		}
		if errors.Is(err, context.DeadlineExceeded) {
			err = errors.New("attempt timed out")
		}
		return envelope{}, &Error{Kind: KindUnavailable, Method: http.MethodGet, Endpoint: endpoint,
			Attempts: int(counter.n.Load()), Err: err}
	}
	env, err := checkResponse(resp, c.maxBytes)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return envelope{}, ctxErr
		}
		var herr *Error
		if errors.As(err, &herr) {
			herr.Method, herr.Endpoint = http.MethodGet, endpoint
			herr.Attempts = int(counter.n.Load())
			herr.Message = c.redact(herr.Message)
		}
		return envelope{}, err
	}
	return env, nil
}

// redact removes the API key from text that came from HeyGen, in case an
// error message ever echoes it.
func (c *Client) redact(s string) string {
	if key := *c.apiKey.Load(); key != "" && strings.Contains(s, key) {
		s = strings.ReplaceAll(s, key, "[REDACTED]")
	}
	return s
}

// decodeData unmarshals the envelope's data into v, reporting a missing or
// malformed data member as a bad response.
func decodeData(env envelope, endpoint string, v any) error {
	if !isNonNull(env.Data) {
		return &Error{Kind: KindBadResponse, Method: http.MethodGet, Endpoint: endpoint, HTTPStatus: http.StatusOK,
			Message: "response has no data"}
	}
	if err := json.Unmarshal(env.Data, v); err != nil {
		return &Error{Kind: KindBadResponse, Method: http.MethodGet, Endpoint: endpoint, HTTPStatus: http.StatusOK,
			Message: "response data does not decode: " + truncate(err.Error(), 200)}
	}
	return nil
}

func pageQuery(limit int, token string) (url.Values, error) {
	q := url.Values{}
	if limit < 0 || limit > MaxPageLimit {
		return nil, &ValidationError{Field: "limit", Reason: "must be between 1 and " + strconv.Itoa(MaxPageLimit)}
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if token != "" {
		q.Set("token", token)
	}
	return q, nil
}

// MaxNextTokenLen bounds HeyGen's next_token: HeyGen's are short opaque
// strings, and callers carry them inside their own page tokens.
const MaxNextTokenLen = 2048

func nextToken(env envelope, endpoint string) (string, error) {
	if env.NextToken == nil || !env.HasMore {
		return "", nil
	}
	if len(*env.NextToken) > MaxNextTokenLen {
		return "", &Error{Kind: KindBadResponse, Method: http.MethodGet, Endpoint: endpoint, HTTPStatus: http.StatusOK,
			Message: fmt.Sprintf("next_token is %d bytes, over the %d-byte limit", len(*env.NextToken), MaxNextTokenLen)}
	}
	return *env.NextToken, nil
}

// AvatarsService is HeyGen's avatar endpoints.
type AvatarsService struct{ c *Client }

// ListLooks fetches one page of looks (GET /v3/avatars/looks).
func (s *AvatarsService) ListLooks(ctx context.Context, opts ListLooksOptions) (*LookPage, error) {
	const endpoint = "/v3/avatars/looks"
	q, err := pageQuery(opts.Limit, opts.Token)
	if err != nil {
		return nil, err
	}
	if opts.GroupID != "" {
		if err := checkID("group_id", opts.GroupID); err != nil {
			return nil, err
		}
		q.Set("group_id", opts.GroupID)
	}
	if opts.AvatarType != "" {
		q.Set("avatar_type", opts.AvatarType)
	}
	if opts.Ownership != "" {
		q.Set("ownership", opts.Ownership)
	}
	env, err := s.c.get(ctx, endpoint, []string{"v3", "avatars", "looks"}, q)
	if err != nil {
		return nil, err
	}
	next, err := nextToken(env, endpoint)
	if err != nil {
		return nil, err
	}
	page := &LookPage{HasMore: env.HasMore, NextToken: next}
	if err := decodeData(env, endpoint, &page.Looks); err != nil {
		return nil, err
	}
	return page, nil
}

// GetLook fetches one look (GET /v3/avatars/looks/{look_id}).
func (s *AvatarsService) GetLook(ctx context.Context, lookID string) (*Look, error) {
	const endpoint = "/v3/avatars/looks/{look_id}"
	if err := checkID("look_id", lookID); err != nil {
		return nil, err
	}
	env, err := s.c.get(ctx, endpoint, []string{"v3", "avatars", "looks", lookID}, nil)
	if err != nil {
		return nil, err
	}
	var look Look
	if err := decodeData(env, endpoint, &look); err != nil {
		return nil, err
	}
	return &look, nil
}

// ListGroups fetches one page of avatar groups (GET /v3/avatars).
func (s *AvatarsService) ListGroups(ctx context.Context, opts ListGroupsOptions) (*GroupPage, error) {
	const endpoint = "/v3/avatars"
	q, err := pageQuery(opts.Limit, opts.Token)
	if err != nil {
		return nil, err
	}
	if opts.Ownership != "" {
		q.Set("ownership", opts.Ownership)
	}
	env, err := s.c.get(ctx, endpoint, []string{"v3", "avatars"}, q)
	if err != nil {
		return nil, err
	}
	next, err := nextToken(env, endpoint)
	if err != nil {
		return nil, err
	}
	page := &GroupPage{HasMore: env.HasMore, NextToken: next}
	if err := decodeData(env, endpoint, &page.Groups); err != nil {
		return nil, err
	}
	return page, nil
}

// GetGroup fetches one avatar group (GET /v3/avatars/{group_id}).
func (s *AvatarsService) GetGroup(ctx context.Context, groupID string) (*Group, error) {
	const endpoint = "/v3/avatars/{group_id}"
	if err := checkID("group_id", groupID); err != nil {
		return nil, err
	}
	if groupID == "looks" {
		// "/v3/avatars/looks" is the look list, not a group.
		return nil, &ValidationError{Field: "group_id", Reason: `"looks" is not a group id`}
	}
	env, err := s.c.get(ctx, endpoint, []string{"v3", "avatars", groupID}, nil)
	if err != nil {
		return nil, err
	}
	var g Group
	if err := decodeData(env, endpoint, &g); err != nil {
		return nil, err
	}
	return &g, nil
}

// UsersService is HeyGen's account endpoint.
type UsersService struct{ c *Client }

// Me fetches the account that owns the key (GET /v3/users/me): a cheap
// call that proves the key works.
func (s *UsersService) Me(ctx context.Context) (*User, error) {
	const endpoint = "/v3/users/me"
	env, err := s.c.get(ctx, endpoint, []string{"v3", "users", "me"}, nil)
	if err != nil {
		return nil, err
	}
	var u User
	if err := decodeData(env, endpoint, &u); err != nil {
		return nil, err
	}
	return &u, nil
}

// CloseIdleConnections closes the transport's idle keep-alive connections
// (at shutdown, or in tests checking for leaks).
func (c *Client) CloseIdleConnections() { c.http.CloseIdleConnections() }
