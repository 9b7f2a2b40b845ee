// Command restload sends a bounded number of GET requests to one loopback
// URL with a fixed concurrency, as a caller of HeyGen's REST API would,
// and reports throughput and latency percentiles. It is the REST side of
// the gateway-versus-HeyGen comparison in scripts/bench.sh.
//
//	HEYGEN_API_KEY=bench-key restload -url 'http://127.0.0.1:PORT/v3/avatars/looks?limit=50' -n 200 -c 8
//
// Each request sends X-Api-Key (from HEYGEN_API_KEY), reads the whole body
// and, with -expect-items, decodes the JSON and checks that "data" holds
// that many items: any other answer counts as an error. The JSON report
// (bench/internal/loadstat.Report) goes to stdout (or -o), a one-line
// summary to stderr.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heygen-grpc/heygen-grpc/bench/internal/loadstat"
	"github.com/heygen-grpc/heygen-grpc/bench/internal/loopback"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "restload: "+err.Error())
		os.Exit(1)
	}
}

func run() error {
	target := flag.String("url", "", "loopback URL to GET (required)")
	n := flag.Int("n", 200, "total requests (at most 100000)")
	c := flag.Int("c", 8, "concurrent requests")
	timeout := flag.Duration("timeout", 10*time.Second, "timeout of one request")
	maxDuration := flag.Duration("max-duration", 2*time.Minute, "stop starting requests after this long")
	expect := flag.Int("expect-items", 0, "if positive, decode the body and require this many items in data")
	out := flag.String("o", "", "write the JSON report here instead of stdout")
	flag.Parse()

	if err := loopback.CheckURL(*target); err != nil {
		return err
	}
	if *n < 1 || *n > 100000 || *c < 1 || *c > 1000 {
		return errors.New("want 1 <= -n <= 100000 and 1 <= -c <= 1000")
	}
	key := os.Getenv("HEYGEN_API_KEY")

	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = *c
	client := &http.Client{Transport: tr, Timeout: *timeout}
	defer client.CloseIdleConnections()

	ctx, cancel := context.WithTimeout(context.Background(), *maxDuration)
	defer cancel()

	var (
		next atomic.Int64
		rec  = loadstat.NewRecorder(*n)
		wg   sync.WaitGroup
	)
	start := time.Now()
	for range *c {
		wg.Go(func() {
			for next.Add(1) <= int64(*n) && ctx.Err() == nil {
				t0 := time.Now()
				size, err := get(ctx, client, *target, key, *expect)
				rec.Add(time.Since(t0), size, err)
			}
		})
	}
	wg.Wait()
	r := rec.Report(*target, *c, time.Since(start))
	if err := loadstat.Write("restload", r, *out); err != nil {
		return err
	}
	if r.OK == 0 {
		return errors.New("no request succeeded")
	}
	return nil
}

// get performs one request and returns the body size and an error
// describing any answer other than the expected page.
func get(ctx context.Context, client *http.Client, url, key string, expect int) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, http.NoBody)
	if err != nil {
		return 0, err
	}
	if key != "" {
		req.Header.Set("X-Api-Key", key)
	}
	resp, err := client.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			return 0, errors.New("timeout")
		}
		return 0, errors.New("transport error")
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return int64(len(body)), errors.New("body read error")
	}
	if resp.StatusCode != http.StatusOK {
		return int64(len(body)), fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	if expect > 0 {
		var page struct {
			Data []json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(body, &page); err != nil {
			return int64(len(body)), errors.New("malformed JSON")
		}
		if len(page.Data) != expect {
			return int64(len(body)), fmt.Errorf("%d items, want %d", len(page.Data), expect)
		}
	}
	return int64(len(body)), nil
}
