// Command benchtool is the helper scripts/bench.sh drives the benchmark
// run with:
//
//	benchtool freeport                                  print a free loopback TCP port
//	benchtool wait-health -addr A [-service S] [-timeout 60s]
//	                                                    wait until grpc.health.v1 reports S SERVING on A
//	benchtool http GET|POST URL [FILE]                 fetch a loopback URL (body to FILE or stdout)
//	benchtool calls -ghz WARMUP.json -seconds N         calls for an N-second ghz run at the warm-up's rate
//	benchtool report -dir RESULTS -out bench/RESULTS.md write the markdown report (see report.go)
//
// Every address it touches must be a loopback address.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/heygen-grpc/heygen-grpc/bench/internal/loopback"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: benchtool freeport | wait-health | report (see the package documentation)")
		os.Exit(2)
	}
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "freeport":
		err = freePort()
	case "wait-health":
		err = waitHealth(args)
	case "http":
		err = httpCmd(args)
	case "calls":
		err = callsCmd(args)
	case "report":
		err = reportCmd(args)
	default:
		err = fmt.Errorf("unknown command %q", cmd)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchtool: "+err.Error())
		os.Exit(1)
	}
}

// freePort prints a TCP port that was free on 127.0.0.1 a moment ago.
func freePort() error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		return err
	}
	fmt.Println(port)
	return nil
}

// waitHealth polls Health/Check until the service is SERVING.
func waitHealth(args []string) error {
	fs := flag.NewFlagSet("wait-health", flag.ContinueOnError)
	addr := fs.String("addr", "", "loopback host:port of the gRPC server")
	service := fs.String("service", "", "health service name (\"\" is the whole server)")
	timeout := fs.Duration("timeout", 60*time.Second, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := loopback.CheckAddr(*addr); err != nil {
		return err
	}
	conn, err := grpc.NewClient(*addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close() }()
	client := healthpb.NewHealthClient(conn)
	deadline := time.Now().Add(*timeout)
	last := errors.New("no answer yet")
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		resp, err := client.Check(ctx, &healthpb.HealthCheckRequest{Service: *service})
		cancel()
		switch {
		case err != nil:
			last = err
		case resp.GetStatus() == healthpb.HealthCheckResponse_SERVING:
			return nil
		default:
			last = fmt.Errorf("status %s", resp.GetStatus())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s service %q not SERVING after %s: %w", *addr, *service, *timeout, last)
}

// httpCmd performs one request to a loopback URL and fails on a non-2xx
// answer.
func httpCmd(args []string) error {
	if len(args) < 2 || len(args) > 3 || (args[0] != http.MethodGet && args[0] != http.MethodPost) {
		return errors.New("usage: benchtool http GET|POST URL [FILE]")
	}
	if err := loopback.CheckURL(args[1]); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute) // a CPU profile takes its seconds
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, args[0], args[1], http.NoBody) //nolint:gosec // G704: a loopback URL, checked above
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req) //nolint:gosec // G704: a loopback URL, checked above
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: HTTP %d: %s", args[0], args[1], resp.StatusCode, body)
	}
	if len(args) == 3 {
		return os.WriteFile(args[2], body, 0o600) //nolint:gosec // G703: the path the benchmark script chose
	}
	_, err = os.Stdout.Write(body)
	return err
}

// callsCmd prints how many calls a ghz run needs to last about -seconds at
// the rate a warm-up run reached (at least 100, at most 1,000,000), so
// that measurements can use -n: with -z, ghz cuts the calls in flight at
// the end and reports them as errors.
func callsCmd(args []string) error {
	fs := flag.NewFlagSet("calls", flag.ContinueOnError)
	file := fs.String("ghz", "", "ghz JSON report of the warm-up")
	secs := fs.Float64("seconds", 12, "target duration in seconds")
	if err := fs.Parse(args); err != nil {
		return err
	}
	b, err := os.ReadFile(*file)
	if err != nil {
		return err
	}
	var r struct {
		RPS float64 `json:"rps"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return fmt.Errorf("%s: %w", *file, err)
	}
	fmt.Println(int64(min(max(r.RPS**secs, 100), 1e6)))
	return nil
}
