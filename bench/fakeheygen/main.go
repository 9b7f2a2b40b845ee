// Command fakeheygen serves internal/fakeheygen's fake HeyGen API as a standalone
// process for benchmarks: a generated catalogue of a chosen size, an
// optional HeyGen-like latency added to every response, and an admin
// endpoint on a separate loopback port that reports how many requests each
// path received.
//
//	HEYGEN_API_KEY=bench-key fakeheygen -groups 100 -looks-per-group 50 -voices 2000 -latency 300ms -ready-file /tmp/fake.ready
//
// The ready file (and stdout) gets two lines once both ports listen:
//
//	url=http://127.0.0.1:PORT        the fake HeyGen API (use as -heygen-base-url)
//	admin=http://127.0.0.1:PORT      the admin endpoint
//
// Admin endpoint (never on the API port, so it cannot skew the counts):
//
//	GET  /_fake/stats               JSON: request counts per kind of call, the most
//	                                requests in flight at once, latency, catalogue
//	                                sizes and the calls one full crawl needs
//	POST /_fake/reset               zero the request counts and the in-flight peak
//	POST /_fake/latency?d=300ms     change the added latency
//
// Both listeners must be loopback addresses. SIGINT or SIGTERM stops it.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/heygen-grpc/heygen-grpc/bench/internal/loopback"
	"github.com/heygen-grpc/heygen-grpc/internal/fakeheygen"
)

// The paths the gateway calls, reported one by one in the stats.
const (
	pathLooks  = "/v3/avatars/looks"
	pathGroups = "/v3/avatars"
	pathMe     = "/v3/users/me"
	pathVoices = "/v3/voices"
	// pathVoice stands for every GET /v3/voices/{voice_id}.
	pathVoice = "/v3/voices/{id}"
)

// inFlight counts requests being answered and their peak.
type inFlight struct {
	now, peak atomic.Int64
	voice     atomic.Int64 // voice detail requests
}

// raisePeak raises peak to n if n is higher.
func raisePeak(peak *atomic.Int64, n int64) {
	for p := peak.Load(); n > p; p = peak.Load() {
		if peak.CompareAndSwap(p, n) {
			return
		}
	}
}

func (f *inFlight) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := f.now.Add(1)
		raisePeak(&f.peak, n)
		if strings.HasPrefix(r.URL.Path, pathVoices+"/") {
			f.voice.Add(1)
		}
		defer f.now.Add(-1)
		h.ServeHTTP(w, r)
	})
}

// Stats is the JSON the admin endpoint serves at /_fake/stats.
type Stats struct {
	// Total is every request received since start or the last reset.
	Total int `json:"total"`
	// Paths counts requests by exact path (any query) for the list and
	// account endpoints, and voice details (GET /v3/voices/{id}) under
	// "/v3/voices/{id}"; Other is everything else (gets by id, bad paths).
	Paths map[string]int `json:"paths"`
	// Other is Total minus the requests counted in Paths.
	Other int `json:"other"`
	// MaxInFlight is the most requests the fake was answering at once
	// (added latency included) since start or the last reset.
	MaxInFlight int64 `json:"max_in_flight"`
	// LatencyMS is the latency currently added to every response.
	LatencyMS float64 `json:"latency_ms"`
	// Catalogue describes the data served.
	Catalogue CatalogueInfo `json:"catalogue"`
	// CrawlCalls is how many list calls one full crawl (public and private
	// looks and groups, MaxLimit per page) takes, by path.
	CrawlCalls map[string]int `json:"crawl_calls"`
}

// CatalogueInfo counts the catalogue's items by kind and ownership.
type CatalogueInfo struct {
	// Seed is the generator seed.
	Seed int64 `json:"seed"`
	// Voices and ClonedVoices count the voice library (cloned voices are
	// private; the gateway fetches each one's details).
	Voices       int `json:"voices"`
	ClonedVoices int `json:"cloned_voices"`
	// Groups and Looks are the catalogue's sizes, split by ownership below.
	Groups        int `json:"groups"`
	Looks         int `json:"looks"`
	PublicGroups  int `json:"public_groups"`
	PrivateGroups int `json:"private_groups"`
	PublicLooks   int `json:"public_looks"`
	PrivateLooks  int `json:"private_looks"`
	// PageLimit is the largest page the fake serves.
	PageLimit int `json:"page_limit"`
}

// curLatency is the latency last given to the fake, which does not report it.
var curLatency atomic.Int64

// pages is how many list calls a crawl of n items takes: an empty list
// still costs one call.
func pages(n, limit int) int { return max(1, (n+limit-1)/limit) }

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "fakeheygen: "+err.Error())
		os.Exit(1)
	}
}

func run() error {
	addr := flag.String("addr", "127.0.0.1:0", "loopback address of the fake HeyGen API (port 0: any free port)")
	adminAddr := flag.String("admin-addr", "127.0.0.1:0", "loopback address of the admin endpoint")
	groups := flag.Int("groups", 100, "avatar groups in the generated catalogue")
	looksPerGroup := flag.Int("looks-per-group", 50, "looks per group (groups x looks-per-group avatars)")
	seed := flag.Int64("seed", 20241125, "catalogue generator seed")
	nVoices := flag.Int("voices", 0, "voices in the generated voice library (every tenth a cloned, private voice)")
	latency := flag.Duration("latency", 0, "latency added before every response, like HeyGen's own (e.g. 300ms)")
	readyFile := flag.String("ready-file", "", "write the url= and admin= lines here once listening")
	flag.Parse()

	key := os.Getenv("HEYGEN_API_KEY")
	if key == "" {
		return errors.New("set HEYGEN_API_KEY to the key the fake must accept")
	}
	for _, a := range []string{*addr, *adminAddr} {
		if err := loopback.CheckAddr(a); err != nil {
			return err
		}
	}

	cat := fakeheygen.GenerateCatalogue(*seed, *groups, *looksPerGroup)
	voices := fakeheygen.GenerateVoices(*seed, *nVoices)
	info := CatalogueInfo{Seed: *seed, Groups: len(cat.Groups), Looks: len(cat.Looks), PageLimit: fakeheygen.MaxLimit, Voices: len(voices)}
	for _, v := range voices {
		if v.Type == fakeheygen.VoiceTypePrivate {
			info.ClonedVoices++
		}
	}
	for _, g := range cat.Groups {
		if g.Ownership == fakeheygen.OwnershipPrivate {
			info.PrivateGroups++
		} else {
			info.PublicGroups++
		}
	}
	for _, l := range cat.Looks {
		if l.Ownership == fakeheygen.OwnershipPrivate {
			info.PrivateLooks++
		} else {
			info.PublicLooks++
		}
	}
	crawl := map[string]int{
		pathLooks:  pages(info.PublicLooks, info.PageLimit) + pages(info.PrivateLooks, info.PageLimit),
		pathGroups: pages(info.PublicGroups, info.PageLimit) + pages(info.PrivateGroups, info.PageLimit),
	}

	// The fake listens on a loopback port of its own; its handler is
	// mounted on the requested address too, sharing all its state.
	fake, err := fakeheygen.NewServer(fakeheygen.Options{APIKey: key, Catalogue: cat, Voices: voices})
	if err != nil {
		return err
	}
	defer func() { _ = fake.Close() }()
	fake.SetLatency(*latency)

	apiLn, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", *addr, err)
	}
	adminLn, err := net.Listen("tcp", *adminAddr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", *adminAddr, err)
	}

	var flight inFlight
	admin := http.NewServeMux()
	admin.HandleFunc("GET /_fake/stats", func(w http.ResponseWriter, _ *http.Request) {
		st := Stats{Total: fake.RequestCount(), Paths: map[string]int{}, Catalogue: info, CrawlCalls: crawl, MaxInFlight: flight.peak.Load()}
		counted := 0
		for _, p := range []string{pathLooks, pathGroups, pathMe, pathVoices} {
			n := fake.CountPath(p)
			st.Paths[p] = n
			counted += n
		}
		st.Paths[pathVoice] = int(flight.voice.Load())
		counted += st.Paths[pathVoice]
		st.Other = st.Total - counted
		st.LatencyMS = float64(curLatency.Load()) / float64(time.Millisecond)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(st)
	})
	admin.HandleFunc("POST /_fake/reset", func(w http.ResponseWriter, _ *http.Request) {
		fake.ResetRequests()
		flight.peak.Store(flight.now.Load())
		flight.voice.Store(0)
		w.WriteHeader(http.StatusNoContent)
	})
	admin.HandleFunc("POST /_fake/latency", func(w http.ResponseWriter, r *http.Request) {
		d, err := time.ParseDuration(r.URL.Query().Get("d"))
		if err != nil || d < 0 {
			http.Error(w, "want ?d=<duration>, such as 300ms", http.StatusBadRequest)
			return
		}
		fake.SetLatency(d)
		curLatency.Store(int64(d))
		w.WriteHeader(http.StatusNoContent)
	})
	curLatency.Store(int64(*latency))

	apiSrv := &http.Server{Handler: flight.wrap(fake.Handler()), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 90 * time.Second}
	adminSrv := &http.Server{Handler: admin, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 2)
	go func() { errc <- apiSrv.Serve(apiLn) }()
	go func() { errc <- adminSrv.Serve(adminLn) }()

	ready := fmt.Sprintf("url=http://%s\nadmin=http://%s\n", apiLn.Addr(), adminLn.Addr())
	if *readyFile != "" {
		if err := os.WriteFile(*readyFile, []byte(ready), 0o600); err != nil {
			return err
		}
	}
	fmt.Print(ready)
	log.Printf("fakeheygen: %d groups, %d looks (%d public, %d private), %d voices (%d cloned), latency %s",
		info.Groups, info.Looks, info.PublicLooks, info.PrivateLooks, info.Voices, info.ClonedVoices, *latency)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	select {
	case <-ctx.Done():
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = fake.Close() // interrupts injected latency, so shutdown is prompt
	_ = apiSrv.Shutdown(sctx)
	_ = adminSrv.Shutdown(sctx)
	return nil
}
