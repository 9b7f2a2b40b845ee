package heygentest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

const testKey = "test-key-123"

func newTestServer(t *testing.T, c Catalogue) *Server {
	t.Helper()
	s, err := NewServer(Options{APIKey: testKey, Catalogue: c})
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// get sends a GET with the test key (key "" sends none) through client (nil: default).
func get(t *testing.T, client *http.Client, s *Server, pathAndQuery, key string) response {
	t.Helper()
	resp, err := do(context.Background(), client, http.MethodGet, s.URL()+pathAndQuery, key)
	if err != nil {
		t.Fatalf("GET %s: %v", pathAndQuery, err)
	}
	return resp
}

func do(ctx context.Context, client *http.Client, method, u, key string) (response, error) {
	if client == nil {
		client = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return response{}, err
	}
	if key != "" {
		req.Header.Set("X-Api-Key", key)
	}
	resp, err := client.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, err
	}
	return response{resp.StatusCode, resp.Header, b}, nil
}

func decode[T any](t *testing.T, b []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("decode %q: %v", truncate(string(b), 300), err)
	}
	return v
}

type page struct {
	Data      []json.RawMessage `json:"data"`
	HasMore   bool              `json:"has_more"`
	NextToken *string           `json:"next_token"`
}

type v3err struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Param   string `json:"param"`
	} `json:"error"`
}

func wantError(t *testing.T, r response, status int, code, param string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status = %d, want %d; body %s", r.status, status, r.body)
	}
	e := decode[v3err](t, r.body)
	if e.Error.Code != code || e.Error.Param != param || e.Error.Message == "" {
		t.Fatalf("error = %+v, want code %q param %q; body %s", e.Error, code, param, r.body)
	}
}

// listAll pages through path with query q and returns the ids in order.
func listAll(t *testing.T, s *Server, path string, q url.Values) []string {
	t.Helper()
	var ids []string
	for pages := 0; ; pages++ {
		if pages > 10000 {
			t.Fatal("paging does not end")
		}
		r := get(t, nil, s, path+"?"+q.Encode(), testKey)
		if r.status != http.StatusOK {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
		p := decode[page](t, r.body)
		for _, raw := range p.Data {
			ids = append(ids, decode[struct{ ID string }](t, raw).ID)
		}
		if !p.HasMore {
			if p.NextToken != nil {
				t.Fatalf("last page has next_token %q", *p.NextToken)
			}
			return ids
		}
		if p.NextToken == nil || *p.NextToken == "" {
			t.Fatal("has_more without next_token")
		}
		q.Set("token", *p.NextToken)
	}
}

func TestHeadersAndAuth(t *testing.T) {
	s := newTestServer(t, DemoCatalogue())
	for _, key := range []string{"", "wrong"} {
		r := get(t, nil, s, "/v3/users/me", key)
		if r.status != http.StatusUnauthorized {
			t.Fatalf("key %q: status %d", key, r.status)
		}
		if got, want := string(r.body), `{"code":400112,"message":"Unauthorized"}`; got != want {
			t.Fatalf("401 body = %s, want %s", got, want)
		}
	}
	// Unknown paths are behind the auth layer too.
	if r := get(t, nil, s, "/nope", ""); r.status != http.StatusUnauthorized {
		t.Fatalf("unknown path without key: %d", r.status)
	}
	ids := map[string]bool{}
	for range 3 {
		r := get(t, nil, s, "/v3/users/me", testKey)
		if r.status != 200 {
			t.Fatalf("users/me: %d %s", r.status, r.body)
		}
		if ct := r.header.Get("Content-Type"); ct != "application/json" {
			t.Fatalf("Content-Type %q", ct)
		}
		id := r.header.Get("X-Request-Id")
		if id == "" || ids[id] {
			t.Fatalf("X-Request-Id %q not unique", id)
		}
		ids[id] = true
		me := decode[userMe](t, r.body)
		if me.Data.Username != "demo" || me.Data.Wallet.RemainingBalance != 100 || string(me.Data.Subscription) != "null" {
			t.Fatalf("users/me = %s", r.body)
		}
	}
}

type userMe struct {
	Data struct {
		Username    string
		BillingType string `json:"billing_type"`
		Wallet      struct {
			Currency         string
			RemainingBalance float64 `json:"remaining_balance"`
		}
		Subscription json.RawMessage
	}
}

func TestRoutingAndMethods(t *testing.T) {
	s := newTestServer(t, DemoCatalogue())
	r, err := do(context.Background(), nil, http.MethodPost, s.URL()+"/v3/avatars", testKey)
	if err != nil {
		t.Fatal(err)
	}
	wantError(t, r, http.StatusMethodNotAllowed, "method_not_allowed", "")
	if r.header.Get("Allow") != "GET" {
		t.Fatalf("Allow = %q", r.header.Get("Allow"))
	}
	for _, p := range []string{"/", "/v3", "/v2/avatars", "/v3/avatars/x/y", "/v3/avatars/looks/x/y", "/v3/users/me/x"} {
		wantError(t, get(t, nil, s, p, testKey), 404, "not_found", "")
	}
	// An escaped slash is part of the segment, not a separator; bad ids are not found.
	wantError(t, get(t, nil, s, "/v3/avatars/a%2Fb", testKey), 404, "avatar_not_found", "group_id")
	wantError(t, get(t, nil, s, "/v3/avatars/looks/a%2Fb", testKey), 404, "avatar_not_found", "look_id")
	wantError(t, get(t, nil, s, "/v3/avatars/"+strings.Repeat("a", 129), testKey), 404, "avatar_not_found", "group_id")
	wantError(t, get(t, nil, s, "/v3/avatars/looks/", testKey), 404, "avatar_not_found", "look_id")
}

func TestPagingAllLooks(t *testing.T) {
	c := DemoCatalogue()
	s := newTestServer(t, c)
	ids := listAll(t, s, "/v3/avatars/looks", url.Values{"limit": {"50"}})
	want := make([]string, len(c.Looks))
	for i, l := range c.Looks {
		want[i] = l.ID
	}
	if !reflect.DeepEqual(ids, want) {
		t.Fatalf("paged %d looks, want %d in catalogue order", len(ids), len(want))
	}
	// Default limit is 20.
	p := decode[page](t, get(t, nil, s, "/v3/avatars/looks", testKey).body)
	if len(p.Data) != 20 || !p.HasMore {
		t.Fatalf("default page: %d items, has_more %v", len(p.Data), p.HasMore)
	}
	groups := listAll(t, s, "/v3/avatars", url.Values{"limit": {"7"}})
	if len(groups) != len(c.Groups) {
		t.Fatalf("paged %d groups, want %d", len(groups), len(c.Groups))
	}
}

func TestFilters(t *testing.T) {
	c := DemoCatalogue()
	s := newTestServer(t, c)
	count := func(pred func(Look) bool) []string {
		var ids []string
		for _, l := range c.Looks {
			if pred(l) {
				ids = append(ids, l.ID)
			}
		}
		return ids
	}
	g := c.Groups[3]
	cases := []struct {
		q    url.Values
		want []string
	}{
		{url.Values{"group_id": {g.ID}}, count(func(l Look) bool { return l.GroupID != nil && *l.GroupID == g.ID })},
		{url.Values{"group_id": {"unknown_group"}}, nil},
		{url.Values{"avatar_type": {AvatarTypePhoto}}, count(func(l Look) bool { return l.AvatarType == AvatarTypePhoto })},
		{url.Values{"ownership": {"private"}}, count(func(l Look) bool { return l.Ownership == "private" })},
		{url.Values{"ownership": {"public"}, "avatar_type": {AvatarTypeStudio}}, count(func(l Look) bool {
			return l.Ownership == "public" && l.AvatarType == AvatarTypeStudio
		})},
		{url.Values{"group_id": {g.ID}, "ownership": {"private"}}, count(func(l Look) bool {
			return l.GroupID != nil && *l.GroupID == g.ID && l.Ownership == "private"
		})},
	}
	for _, tc := range cases {
		tc.q.Set("limit", "13")
		got := listAll(t, s, "/v3/avatars/looks", tc.q)
		if len(tc.want) == 0 && len(got) == 0 {
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%v: got %d looks, want %d", tc.q, len(got), len(tc.want))
		}
	}
	for _, own := range []string{"public", "private"} {
		got := listAll(t, s, "/v3/avatars", url.Values{"ownership": {own}, "limit": {"50"}})
		var want []string
		for _, g := range c.Groups {
			if g.Ownership == own {
				want = append(want, g.ID)
			}
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("groups ownership=%s: got %d, want %d", own, len(got), len(want))
		}
	}
}

func TestInvalidParameters(t *testing.T) {
	s := newTestServer(t, DemoCatalogue())
	for _, tc := range []struct{ q, param string }{
		{"limit=0", "limit"}, {"limit=51", "limit"}, {"limit=abc", "limit"}, {"limit=-1", "limit"},
		{"limit=1.5", "limit"}, {"ownership=mine", "ownership"}, {"avatar_type=robot", "avatar_type"},
		{"group_id=a%2Fb", "group_id"}, {"token=garbage!", "token"}, {"token=bzEyLjEyMzQ", "token"},
	} {
		wantError(t, get(t, nil, s, "/v3/avatars/looks?"+tc.q, testKey), 400, "invalid_parameter", tc.param)
	}
	wantError(t, get(t, nil, s, "/v3/avatars?limit=51", testKey), 400, "invalid_parameter", "limit")
	wantError(t, get(t, nil, s, "/v3/avatars?ownership=x", testKey), 400, "invalid_parameter", "ownership")
	wantError(t, get(t, nil, s, "/v3/avatars?a=%zz", testKey), 400, "invalid_parameter", "")

	// A token is bound to the filters it was issued for.
	p := decode[page](t, get(t, nil, s, "/v3/avatars/looks?limit=5&ownership=public", testKey).body)
	tok := url.QueryEscape(*p.NextToken)
	for _, q := range []string{"ownership=private", "", "avatar_type=studio_avatar&ownership=public"} {
		wantError(t, get(t, nil, s, "/v3/avatars/looks?token="+tok+"&"+q, testKey), 400, "invalid_parameter", "token")
	}
	wantError(t, get(t, nil, s, "/v3/avatars?ownership=public&token="+tok, testKey), 400, "invalid_parameter", "token")
	// Same filters with another limit is fine.
	if r := get(t, nil, s, "/v3/avatars/looks?limit=7&ownership=public&token="+tok, testKey); r.status != 200 {
		t.Fatalf("token with same filters: %d %s", r.status, r.body)
	}
}

func TestGetAndNulls(t *testing.T) {
	c := DemoCatalogue()
	s := newTestServer(t, c)
	for _, l := range c.Looks {
		r := get(t, nil, s, "/v3/avatars/looks/"+l.ID, testKey)
		if r.status != 200 {
			t.Fatalf("look %s: %d %s", l.ID, r.status, r.body)
		}
		got := decode[struct{ Data Look }](t, r.body).Data
		got.Ownership = l.Ownership
		if !reflect.DeepEqual(got, l) {
			t.Fatalf("look %s round trip:\n got %+v\nwant %+v", l.ID, got, l)
		}
	}
	for _, g := range c.Groups {
		r := get(t, nil, s, "/v3/avatars/"+g.ID, testKey)
		got := decode[struct{ Data Group }](t, r.body).Data
		got.Ownership = g.Ownership
		if r.status != 200 || !reflect.DeepEqual(got, g) {
			t.Fatalf("group %s: %d %s", g.ID, r.status, r.body)
		}
	}
	r := get(t, nil, s, "/v3/avatars/looks/no_such_look", testKey)
	wantError(t, r, 404, "avatar_not_found", "look_id")
	if !strings.Contains(string(r.body), "Avatar no_such_look not found") {
		t.Fatalf("message: %s", r.body)
	}
	r = get(t, nil, s, "/v3/avatars/no_such_group", testKey)
	wantError(t, r, 404, "avatar_not_found", "group_id")
	if !strings.Contains(string(r.body), "Avatar group no_such_group not found") {
		t.Fatalf("message: %s", r.body)
	}

	// Nil fields are explicit JSON nulls, never absent.
	var nullLook Look
	for _, l := range c.Looks {
		if l.Tags == nil && l.PreviewVideoURL == nil {
			nullLook = l
			break
		}
	}
	if nullLook.ID == "" {
		t.Fatal("demo has no look with null tags and preview_video_url")
	}
	raw := decode[struct{ Data map[string]json.RawMessage }](t, get(t, nil, s, "/v3/avatars/looks/"+nullLook.ID, testKey).body).Data
	for _, f := range []string{"tags", "preview_video_url"} {
		if v, ok := raw[f]; !ok || string(v) != "null" {
			t.Errorf("%s = %q present %v, want null", f, v, ok)
		}
	}
	if _, ok := raw["Ownership"]; ok {
		t.Error("ownership is serialised")
	}
	pub := c.Groups[0]
	raw = decode[struct{ Data map[string]json.RawMessage }](t, get(t, nil, s, "/v3/avatars/"+pub.ID, testKey).body).Data
	for _, f := range []string{"status", "error", "consent_status"} {
		if v, ok := raw[f]; !ok || string(v) != "null" {
			t.Errorf("public group %s = %q present %v, want null", f, v, ok)
		}
	}
}

func TestDemoCatalogueInvariants(t *testing.T) {
	c := DemoCatalogue()
	if !reflect.DeepEqual(c, DemoCatalogue()) {
		t.Fatal("DemoCatalogue is not deterministic")
	}
	if len(c.Groups) < 50 || len(c.Looks) < 400 {
		t.Fatalf("%d groups, %d looks", len(c.Groups), len(c.Looks))
	}
	idRE := regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)
	hexRE := regexp.MustCompile(`^[0-9a-f]{32}$`)
	seen := map[string]bool{}
	groupIdx := map[string]int{}
	own := map[string]int{}
	statuses := map[string]int{}
	nullGender, failedWithError := 0, 0
	for i, g := range c.Groups {
		if !idRE.MatchString(g.ID) || seen[g.ID] {
			t.Errorf("group id %q bad or duplicate", g.ID)
		}
		seen[g.ID] = true
		groupIdx[g.ID] = i
		own[g.Ownership]++
		if g.Ownership == OwnershipPrivate && !hexRE.MatchString(g.ID) {
			t.Errorf("private group id %q not 32 hex", g.ID)
		}
		if g.Ownership == OwnershipPublic && hexRE.MatchString(g.ID) {
			t.Errorf("public group id %q not a slug", g.ID)
		}
		if g.Name == "" || g.CreatedAt <= 0 {
			t.Errorf("group %q lacks required fields", g.ID)
		}
		if g.Status != nil {
			statuses[*g.Status]++
			if *g.Status == "failed" && g.Error != nil {
				failedWithError++
			}
		}
		if g.Gender == nil {
			nullGender++
		}
	}
	if own["public"] == 0 || own["private"] == 0 || len(own) != 2 {
		t.Errorf("ownerships %v", own)
	}
	for _, st := range []string{"processing", "pending_consent", "failed", "completed", "archived"} {
		if statuses[st] == 0 {
			t.Errorf("no group with status %s (%v)", st, statuses)
		}
	}
	if failedWithError == 0 || nullGender == 0 {
		t.Errorf("failed with error %d, null gender %d", failedWithError, nullGender)
	}
	counts := map[string]int{}
	types := map[string]int{}
	var nullTags, nullVideo, nullSize, nullCreated, ultrawide, orphans int
	for _, l := range c.Looks {
		if !idRE.MatchString(l.ID) || seen[l.ID] {
			t.Errorf("look id %q bad or duplicate", l.ID)
		}
		seen[l.ID] = true
		types[l.AvatarType]++
		if l.GroupID == nil {
			orphans++
		} else if gi, ok := groupIdx[*l.GroupID]; !ok {
			t.Errorf("look %s names unknown group %s", l.ID, *l.GroupID)
		} else if c.Groups[gi].Ownership != l.Ownership {
			t.Errorf("look %s ownership differs from its group's", l.ID)
		} else {
			counts[*l.GroupID]++
		}
		if l.Tags == nil {
			nullTags++
		}
		if l.PreviewVideoURL == nil {
			nullVideo++
		}
		if l.ImageWidth == nil {
			nullSize++
		}
		if l.CreatedAt == nil {
			nullCreated++
		}
		if l.PreferredOrientation != nil && *l.PreferredOrientation == "ultrawide" {
			ultrawide++
		}
		for _, e := range l.SupportedAPIEngines {
			if e != "avatar_v" && e != "avatar_iv" && e != "avatar_iii" {
				t.Errorf("engine %q", e)
			}
		}
	}
	for _, g := range c.Groups {
		if g.LooksCount != counts[g.ID] {
			t.Errorf("group %s looks_count %d, has %d", g.ID, g.LooksCount, counts[g.ID])
		}
	}
	if len(types) != 3 || types[AvatarTypeStudio] == 0 || types[AvatarTypeDigitalTwin] == 0 || types[AvatarTypePhoto] == 0 {
		t.Errorf("avatar types %v", types)
	}
	if nullTags == 0 || nullVideo == 0 || nullSize == 0 || nullCreated == 0 || ultrawide == 0 || orphans > 1 {
		t.Errorf("null tags %d, video %d, size %d, created %d; ultrawide %d; orphans %d",
			nullTags, nullVideo, nullSize, nullCreated, ultrawide, orphans)
	}
}

func TestGenerateCatalogue(t *testing.T) {
	a := GenerateCatalogue(7, 100, 50)
	if len(a.Groups) != 100 || len(a.Looks) != 5000 {
		t.Fatalf("%d groups, %d looks", len(a.Groups), len(a.Looks))
	}
	if !reflect.DeepEqual(a, GenerateCatalogue(7, 100, 50)) {
		t.Fatal("not deterministic")
	}
	if reflect.DeepEqual(a, GenerateCatalogue(8, 100, 50)) {
		t.Fatal("seed ignored")
	}
	seen := map[string]bool{}
	for _, l := range a.Looks {
		if seen[l.ID] {
			t.Fatalf("duplicate look id %s", l.ID)
		}
		seen[l.ID] = true
	}
	if c := GenerateCatalogue(1, -1, -1); len(c.Groups) != 0 || len(c.Looks) != 0 {
		t.Fatal("negative sizes")
	}
}

func TestFaultStatusBodyHeaderTimes(t *testing.T) {
	s := newTestServer(t, DemoCatalogue())
	s.Inject(Fault{Path: "/v3/avatars/looks", Times: 2, Status: 429, Body: V3Error("rate_limit_exceeded", "slow down"),
		Header: map[string]string{"Retry-After": "3"}})
	for range 2 {
		r := get(t, nil, s, "/v3/avatars/looks", testKey)
		wantError(t, r, 429, "rate_limit_exceeded", "")
		if r.header.Get("Retry-After") != "3" || r.header.Get("Content-Type") != "application/json" {
			t.Fatalf("headers %v", r.header)
		}
	}
	if r := get(t, nil, s, "/v3/avatars/looks", testKey); r.status != 200 {
		t.Fatalf("fault not consumed: %d", r.status)
	}
	// Faults answer before auth, with any content type; prefixes match.
	s.Inject(Fault{Path: "/v3/avatars/*", Status: 502, Body: "<html>bad gateway</html>", ContentType: "text/html"})
	r := get(t, nil, s, "/v3/avatars/looks/x", "")
	if r.status != 502 || r.header.Get("Content-Type") != "text/html" || string(r.body) != "<html>bad gateway</html>" {
		t.Fatalf("prefix fault: %d %v %s", r.status, r.header, r.body)
	}
	if r := get(t, nil, s, "/v3/avatars", testKey); r.status != 200 {
		t.Fatalf("prefix matched its parent: %d", r.status)
	}
	if r := get(t, nil, s, "/v3/avatars/looks", testKey); r.status != 502 {
		t.Fatalf("Times 0 fault expired: %d", r.status)
	}
	s.ClearFaults()
	if r := get(t, nil, s, "/v3/avatars/looks", testKey); r.status != 200 {
		t.Fatalf("after ClearFaults: %d", r.status)
	}
	// First matching fault wins; empty body; status out of range becomes 500.
	s.Inject(Fault{Times: 1, Status: 204})
	s.Inject(Fault{Times: 1, Status: 42})
	if r := get(t, nil, s, "/x", ""); r.status != 204 {
		t.Fatalf("first fault: %d", r.status)
	}
	if r := get(t, nil, s, "/x", ""); r.status != 500 {
		t.Fatalf("bad status fault: %d", r.status)
	}
	// Pass-through header fault decorates the normal answer.
	s.Inject(Fault{Times: 1, Header: map[string]string{"X-Extra": "1"}})
	if r := get(t, nil, s, "/v3/users/me", testKey); r.status != 200 || r.header.Get("X-Extra") != "1" {
		t.Fatalf("pass-through fault: %d %v", r.status, r.header)
	}
	if n := s.FaultCounts()["scripted"]; n != 7 {
		t.Fatalf("scripted count %d", n)
	}
}

func TestErrorHelpers(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{V3Error("not_found", `a "quoted" <msg>`), `{"error":{"code":"not_found","message":"a \"quoted\" \u003cmsg\u003e"}}`},
		{V3ErrorParam("invalid_parameter", "m", "limit"), `{"error":{"code":"invalid_parameter","message":"m","param":"limit"}}`},
		{V2Error("internal_error", "forbidden"), `{"data":null,"error":{"code":"internal_error","message":"forbidden"}}`},
		{V2StringError("Invalid API key"), `{"data":null,"error":"Invalid API key"}`},
		{FlatError(400599, "no API access"), `{"code":400599,"message":"no API access"}`},
		{FlatStringError("x", "y"), `{"code":"x","message":"y"}`},
	} {
		if tc.got != tc.want {
			t.Errorf("got %s, want %s", tc.got, tc.want)
		}
		if !json.Valid([]byte(tc.got)) {
			t.Errorf("invalid JSON %s", tc.got)
		}
	}
}

func TestFaultReset(t *testing.T) {
	s := newTestServer(t, DemoCatalogue())
	// A fresh connection per request: on a reused one http.Transport retries silently.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	s.Inject(Fault{Path: "/v3/users/me", Times: 1, Reset: true})
	_, err := do(context.Background(), client, http.MethodGet, s.URL()+"/v3/users/me", testKey)
	if err == nil {
		t.Fatal("reset fault: no error")
	}
	if r := get(t, client, s, "/v3/users/me", testKey); r.status != 200 {
		t.Fatalf("after reset: %d", r.status)
	}
	if n := s.CountPath("/v3/users/me"); n != 2 {
		t.Fatalf("CountPath = %d, want 2", n)
	}
}

func TestFaultRedirect(t *testing.T) {
	s := newTestServer(t, DemoCatalogue())
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	s.Inject(Fault{Times: 1, Redirect: "https://evil.example.com/steal"})
	r := get(t, noFollow, s, "/v3/avatars", testKey)
	if r.status != 302 || r.header.Get("Location") != "https://evil.example.com/steal" {
		t.Fatalf("redirect: %d %v", r.status, r.header)
	}
	s.Inject(Fault{Times: 1, Status: 308, Redirect: "/v3/users/me"})
	if r := get(t, noFollow, s, "/v3/avatars", testKey); r.status != 308 || r.header.Get("Location") != "/v3/users/me" {
		t.Fatalf("redirect 308: %d %v", r.status, r.header)
	}
}

func TestFaultOversize(t *testing.T) {
	s := newTestServer(t, DemoCatalogue())
	for _, size := range []int{1, 1000, 3 << 20} {
		for _, cl := range []bool{false, true} {
			s.Inject(Fault{Times: 1, OversizeBytes: size, OversizeContentLength: cl})
			resp, err := http.Get(s.URL() + "/v3/avatars/looks")
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusOK || len(b) < size || !json.Valid(b) {
				t.Fatalf("oversize %d: status %d, %d bytes, valid %v", size, resp.StatusCode, len(b), json.Valid(b))
			}
			if cl != (resp.ContentLength == int64(len(b))) {
				t.Fatalf("oversize %d content length %d for %d bytes (announce %v)", size, resp.ContentLength, len(b), cl)
			}
			if size > 1000 && len(b) > size+2000 {
				t.Fatalf("oversize %d: %d bytes is far more than asked", size, len(b))
			}
		}
	}
}

func TestFaultDelayHonoursCancel(t *testing.T) {
	s := newTestServer(t, DemoCatalogue())
	s.Inject(Fault{Path: "/v3/users/me", Times: 1, Delay: 10 * time.Second, Status: 500})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := do(ctx, nil, http.MethodGet, s.URL()+"/v3/users/me", testKey)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
	// A delay-only fault delays, then the normal handler answers.
	s.Inject(Fault{Times: 1, Delay: 50 * time.Millisecond})
	start := time.Now()
	if r := get(t, nil, s, "/v3/users/me", testKey); r.status != 200 || time.Since(start) < 50*time.Millisecond {
		t.Fatalf("delay-only fault: %d after %v", r.status, time.Since(start))
	}
	// The cancelled handler has returned: Close does not wait for the 10 s delay.
	start = time.Now()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Close took %v", d)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestCloseInterruptsDelays(t *testing.T) {
	s, err := NewServer(Options{APIKey: testKey})
	if err != nil {
		t.Fatal(err)
	}
	s.SetLatency(time.Minute)
	errc := make(chan error, 1)
	go func() {
		_, err := do(context.Background(), nil, http.MethodGet, s.URL()+"/v3/users/me", testKey)
		errc <- err
	}()
	for s.RequestCount() == 0 {
		time.Sleep(time.Millisecond)
	}
	start := time.Now()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Close took %v", d)
	}
	if err := <-errc; err == nil {
		t.Fatal("request survived Close")
	}
}

func TestLatency(t *testing.T) {
	s := newTestServer(t, DemoCatalogue())
	s.SetLatency(60 * time.Millisecond)
	start := time.Now()
	get(t, nil, s, "/v3/users/me", testKey)
	if d := time.Since(start); d < 60*time.Millisecond {
		t.Fatalf("latency not applied: %v", d)
	}
	s.SetLatency(0)
}

func TestRequestCounting(t *testing.T) {
	s := newTestServer(t, DemoCatalogue())
	get(t, nil, s, "/v3/avatars/looks?limit=5", testKey)
	get(t, nil, s, "/v3/avatars/looks?limit=6", "bad")
	s.Inject(Fault{Times: 1, Status: 503})
	get(t, nil, s, "/v3/avatars", testKey)
	if n := s.RequestCount(); n != 3 {
		t.Fatalf("RequestCount = %d", n)
	}
	if n := s.CountPath("/v3/avatars/looks"); n != 2 {
		t.Fatalf("CountPath looks = %d", n)
	}
	if n := s.CountPath("/v3/avatars"); n != 1 {
		t.Fatalf("CountPath groups = %d", n)
	}
	reqs := s.Requests()
	if len(reqs) != 3 || reqs[0].RawQuery != "limit=5" || reqs[1].APIKey != "bad" || reqs[0].APIKey != testKey ||
		reqs[0].Method != http.MethodGet || reqs[2].Path != "/v3/avatars" || reqs[0].Time.IsZero() || reqs[0].RequestID == "" {
		t.Fatalf("Requests = %+v", reqs)
	}
	s.ResetRequests()
	if s.RequestCount() != 0 || len(s.Requests()) != 0 || s.CountPath("/v3/avatars") != 0 {
		t.Fatal("ResetRequests left something")
	}
}

func TestRequestLogBounded(t *testing.T) {
	s, err := NewServer(Options{APIKey: testKey, RequestLogLimit: 5})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range 12 {
		get(t, nil, s, fmt.Sprintf("/p/%d", i), testKey)
	}
	reqs := s.Requests()
	if len(reqs) != 5 || reqs[0].Path != "/p/7" || reqs[4].Path != "/p/11" {
		t.Fatalf("ring = %+v", reqs)
	}
	if s.RequestCount() != 12 || s.CountPath("/p/0") != 1 {
		t.Fatalf("counts %d %d", s.RequestCount(), s.CountPath("/p/0"))
	}
}

func TestSetAPIKey(t *testing.T) {
	s := newTestServer(t, DemoCatalogue())
	s.SetAPIKey("rotated")
	if r := get(t, nil, s, "/v3/users/me", testKey); r.status != 401 {
		t.Fatalf("old key: %d", r.status)
	}
	if r := get(t, nil, s, "/v3/users/me", "rotated"); r.status != 200 {
		t.Fatalf("new key: %d", r.status)
	}
	s.SetAPIKey("")
	if r := get(t, nil, s, "/v3/users/me", "rotated"); r.status != 401 {
		t.Fatalf("revoked: %d", r.status)
	}
	if _, err := NewServer(Options{}); err == nil {
		t.Fatal("NewServer without key succeeded")
	}
}

func TestSetCatalogue(t *testing.T) {
	s := newTestServer(t, Catalogue{})
	p := decode[page](t, get(t, nil, s, "/v3/avatars/looks", testKey).body)
	if len(p.Data) != 0 || p.HasMore || p.NextToken != nil {
		t.Fatalf("empty catalogue page %+v", p)
	}
	if r := get(t, nil, s, "/v3/avatars/looks", testKey); !strings.Contains(string(r.body), `"data":[]`) {
		t.Fatalf("empty data is not []: %s", r.body)
	}
	c := GenerateCatalogue(3, 10, 3)
	s.SetCatalogue(c)
	c.Looks[0].Name = "mutated after SetCatalogue"
	if ids := listAll(t, s, "/v3/avatars/looks", url.Values{"limit": {"4"}}); len(ids) != 30 {
		t.Fatalf("%d looks after SetCatalogue", len(ids))
	}
	r := get(t, nil, s, "/v3/avatars/looks/"+c.Looks[0].ID, testKey)
	if strings.Contains(string(r.body), "mutated") {
		t.Fatal("server retained the caller's catalogue")
	}
	// A token from a larger catalogue gives an empty last page after shrinking.
	p = decode[page](t, get(t, nil, s, "/v3/avatars/looks?limit=25", testKey).body)
	s.SetCatalogue(GenerateCatalogue(3, 2, 3))
	p = decode[page](t, get(t, nil, s, "/v3/avatars/looks?token="+url.QueryEscape(*p.NextToken), testKey).body)
	if len(p.Data) != 0 || p.HasMore {
		t.Fatalf("stale token page %+v", p)
	}
}

func TestRandomFaults(t *testing.T) {
	s := newTestServer(t, DemoCatalogue())
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	cfg := &RandomFaults{Seed: 42, Rate503: 0.2, Rate429: 0.2, RateReset: 0.1, RateSlow: 0.1, RateMalformed: 0.1,
		RetryAfter: "1", SlowDelay: time.Millisecond}
	run := func() []string {
		s.SetRandomFaults(cfg)
		var seq []string
		for range 100 {
			r, err := do(context.Background(), client, http.MethodGet, s.URL()+"/v3/users/me", testKey)
			switch {
			case err != nil:
				seq = append(seq, "reset")
			case r.status == 429:
				if r.header.Get("Retry-After") != "1" {
					t.Fatalf("429 without Retry-After")
				}
				seq = append(seq, "429")
			case r.status == 503:
				seq = append(seq, "503")
			case !json.Valid(r.body):
				seq = append(seq, "malformed")
			default:
				seq = append(seq, "ok") // ok or slow
			}
		}
		return seq
	}
	a := run()
	counts := s.FaultCounts()
	if b := run(); !reflect.DeepEqual(a, b) {
		t.Fatal("same seed gave different outcomes")
	}
	total := 0
	for _, k := range []string{"ok", "503", "429", "reset", "slow", "malformed"} {
		if counts[k] == 0 {
			t.Errorf("no %q outcome in 100 requests: %v", k, counts)
		}
		total += counts[k]
	}
	if total != 100 {
		t.Fatalf("counts %v sum to %d", counts, total)
	}
	seen := map[string]int{}
	for _, o := range a {
		seen[o]++
	}
	if seen["503"] != counts["503"] || seen["429"] != counts["429"] || seen["reset"] != counts["reset"] ||
		seen["malformed"] != counts["malformed"] || seen["ok"] != counts["ok"]+counts["slow"] {
		t.Fatalf("observed %v, counted %v", seen, counts)
	}
	// Scripted faults come first and skip the draw.
	s.SetRandomFaults(&RandomFaults{Seed: 1, Rate503: 1})
	s.Inject(Fault{Times: 1, Status: 418})
	if r := get(t, client, s, "/v3/users/me", testKey); r.status != 418 {
		t.Fatalf("scripted under random: %d", r.status)
	}
	if r := get(t, client, s, "/v3/users/me", testKey); r.status != 503 {
		t.Fatalf("random 503: %d", r.status)
	}
	s.SetRandomFaults(nil)
	if r := get(t, client, s, "/v3/users/me", testKey); r.status != 200 {
		t.Fatalf("random off: %d", r.status)
	}
	if len(s.FaultCounts()) != 0 {
		t.Fatal("counts not reset")
	}
}

func TestConcurrency(t *testing.T) {
	s := newTestServer(t, DemoCatalogue())
	s.SetRandomFaults(&RandomFaults{Seed: 9, Rate503: 0.05, Rate429: 0.05})
	s.Inject(Fault{Path: "/v3/avatars", Times: 30, Status: 500})
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 50}}
	var wg sync.WaitGroup
	var mu sync.Mutex
	statuses := map[int]int{}
	for g := range 50 {
		wg.Go(func() {
			for i := range 20 {
				var path string
				switch i % 4 {
				case 0:
					path = "/v3/avatars"
				case 1:
					path = "/v3/avatars/looks?limit=50&ownership=public"
				case 2:
					path = "/v3/avatars/looks/no_such"
				default:
					path = "/v3/users/me"
				}
				r, err := do(context.Background(), client, http.MethodGet, s.URL()+path, testKey)
				if err != nil {
					t.Errorf("goroutine %d: %v", g, err)
					return
				}
				mu.Lock()
				statuses[r.status]++
				mu.Unlock()
				if g%10 == 0 && i == 10 {
					s.SetCatalogue(DemoCatalogue())
					_ = s.Requests()
					_ = s.FaultCounts()
				}
			}
		})
	}
	wg.Wait()
	if n := s.RequestCount(); n != 1000 {
		t.Fatalf("RequestCount = %d", n)
	}
	if n := s.CountPath("/v3/avatars"); n != 250 {
		t.Fatalf("CountPath = %d", n)
	}
	fc := s.FaultCounts()
	if fc["scripted"] != 30 || fc["ok"]+fc["503"]+fc["429"] != 970 {
		t.Fatalf("fault counts %v", fc)
	}
	if statuses[500] != 30 || statuses[200]+statuses[404]+statuses[503]+statuses[429] != 970 {
		t.Fatalf("statuses %v", statuses)
	}
}

func BenchmarkListLooks(b *testing.B) {
	s, err := NewServer(Options{APIKey: testKey, Catalogue: GenerateCatalogue(1, 100, 50)})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r, err := do(context.Background(), client, http.MethodGet, s.URL()+"/v3/avatars/looks?limit=50&ownership=public", testKey)
			if err != nil || r.status != 200 {
				b.Errorf("%v %d", err, r.status)
				return
			}
		}
	})
}
