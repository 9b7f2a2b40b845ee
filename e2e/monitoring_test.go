//go:build e2e

package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	heygenv1 "github.com/heygen-grpc/heygen-grpc/gen/heygen/v1"
	"github.com/heygen-grpc/heygen-grpc/internal/fakeheygen"
	"github.com/heygen-grpc/heygen-grpc/internal/fakeheygen/faults"
)

// The monitoring in deploy/monitoring, proven against real components:
// promtool checks the rules and runs their unit tests, and a real
// Prometheus scrapes a real gateway under load while every PromQL
// expression of the dashboard and the rules is evaluated against it.

const (
	monitoringDir  = "deploy/monitoring"
	rulesFile      = "heygen-grpc.rules.yml"
	rulesTestFile  = "heygen-grpc.rules.test.yml"
	operatorFile   = "prometheusrule.yaml"
	dashboardFile  = "heygen-grpc-dashboard.json"
	scrapeJob      = "heygen-grpc"
	monitoringWait = 90 * time.Second
)

// pendingMetrics are named by the dashboard or the rules but not exported
// by this build yet, each with why. An expression naming one is evaluated
// but may return nothing; once the metric has data, the test fails until
// it is taken off this list, so the list cannot go stale.
var pendingMetrics = map[string]string{}

// foreignMetrics come from other exporters and cannot be produced here,
// each with why.
var foreignMetrics = map[string]string{
	"kube_pod_status_ready": "kube-state-metrics' metric (alert HeyGenGatewayPodsNotReady): needs a Kubernetes cluster; " +
		"the rule's unit tests cover it",
}

// ---- rules ---------------------------------------------------------------------

// ruleFile is the part of a Prometheus rules file the tests read.
type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Record      string            `yaml:"record"`
			Expr        string            `yaml:"expr"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func readYAML(t *testing.T, name string, v any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, monitoringDir, name))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

// promtool returns the path of Debian's promtool (package prometheus).
func promtool(t *testing.T) string {
	t.Helper()
	needDebianPackages(t)
	path, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool is not on PATH although Debian's prometheus is installed: %v", err)
	}
	return path
}

// TestAlertRules runs `promtool check rules` and `promtool test rules`,
// checks that every alert has a unit test where it fires and one where it
// does not, that every alert says what it means and what to do first,
// and that the PrometheusRule holds exactly the plain rules.
func TestAlertRules(t *testing.T) {
	pt := promtool(t)
	dir := filepath.Join(repoRoot, monitoringDir)
	for _, args := range [][]string{{"check", "rules", rulesFile}, {"test", "rules", rulesTestFile}} {
		cmd := newCommand(t, pt, args...)
		cmd.Dir = dir
		if res := output(t, cmd); res.code != 0 {
			t.Errorf("promtool %s: exit code %d:\n%s", strings.Join(args, " "), res.code, res.out)
		}
	}

	var rules ruleFile
	readYAML(t, rulesFile, &rules)
	var alerts []string
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			alerts = append(alerts, r.Alert)
			for _, a := range []string{"summary", "description", "runbook"} {
				if len(strings.Fields(r.Annotations[a])) < 5 {
					t.Errorf("alert %s: annotation %q is missing or too short to say what the alert means and what to do first", r.Alert, a)
				}
			}
		}
	}
	if len(alerts) == 0 {
		t.Fatalf("%s has no alerts", rulesFile)
	}

	var tests struct {
		RuleFiles []string `yaml:"rule_files"`
		Tests     []struct {
			AlertRuleTest []struct {
				Alertname string `yaml:"alertname"`
				ExpAlerts []any  `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	readYAML(t, rulesTestFile, &tests)
	if !slices.Equal(tests.RuleFiles, []string{rulesFile}) {
		t.Errorf("%s tests rule_files %q, want [%s]", rulesTestFile, tests.RuleFiles, rulesFile)
	}
	fires, quiet := map[string]int{}, map[string]int{}
	for _, tc := range tests.Tests {
		for _, at := range tc.AlertRuleTest {
			if !slices.Contains(alerts, at.Alertname) {
				t.Errorf("%s tests alert %q, which %s does not have", rulesTestFile, at.Alertname, rulesFile)
			}
			if len(at.ExpAlerts) > 0 {
				fires[at.Alertname]++
			} else {
				quiet[at.Alertname]++
			}
		}
	}
	for _, a := range alerts {
		if fires[a] == 0 {
			t.Errorf("alert %s has no unit test in %s where it fires (an alert_rule_test with exp_alerts)", a, rulesTestFile)
		}
		if quiet[a] == 0 {
			t.Errorf("alert %s has no unit test in %s where it does not fire (an alert_rule_test with exp_alerts: [])", a, rulesTestFile)
		}
	}

	// The PrometheusRule's spec is the plain file, value for value.
	var plain any
	readYAML(t, rulesFile, &plain)
	var cr struct {
		APIVersion string `yaml:"apiVersion"`
		Kind       string `yaml:"kind"`
		Metadata   struct {
			Name      string `yaml:"name"`
			Namespace string `yaml:"namespace"`
		} `yaml:"metadata"`
		Spec any `yaml:"spec"`
	}
	readYAML(t, operatorFile, &cr)
	if cr.APIVersion != "monitoring.coreos.com/v1" || cr.Kind != "PrometheusRule" || cr.Metadata.Name == "" || cr.Metadata.Namespace == "" {
		t.Errorf("%s: apiVersion %q, kind %q, name %q, namespace %q; want a named monitoring.coreos.com/v1 PrometheusRule in a namespace",
			operatorFile, cr.APIVersion, cr.Kind, cr.Metadata.Name, cr.Metadata.Namespace)
	}
	if !reflect.DeepEqual(plain, cr.Spec) {
		a, _ := yaml.Marshal(plain)
		b, _ := yaml.Marshal(cr.Spec)
		t.Errorf("the spec of %s differs from %s: edit both the same way.\n--- %s\n%s\n--- %s spec\n%s", operatorFile, rulesFile, rulesFile, a, operatorFile, b)
	}
}

// ---- dashboard -----------------------------------------------------------------

// dashboard is the part of a Grafana dashboard the tests read.
type dashboard struct {
	UID           string           `json:"uid"`
	Title         string           `json:"title"`
	ID            *int             `json:"id"`
	SchemaVersion int              `json:"schemaVersion"`
	Panels        []dashboardPanel `json:"panels"`
	Templating    struct {
		List []struct {
			Name       string         `json:"name"`
			Type       string         `json:"type"`
			Query      any            `json:"query"`
			Datasource map[string]any `json:"datasource"`
		} `json:"list"`
	} `json:"templating"`
}

type dashboardPanel struct {
	ID          int            `json:"id"`
	Type        string         `json:"type"`
	Title       string         `json:"title"`
	Description string         `json:"description"`
	Datasource  map[string]any `json:"datasource"`
	GridPos     struct{ H, W, X, Y int }
	Targets     []struct {
		Expr       string         `json:"expr"`
		RefID      string         `json:"refId"`
		Datasource map[string]any `json:"datasource"`
	} `json:"targets"`
	Panels []dashboardPanel `json:"panels"` // a collapsed row's
}

// panelExpr is one PromQL expression of the dashboard.
type panelExpr struct {
	panel, expr string
}

// readDashboard checks what makes the JSON importable as is into any
// Grafana with a Prometheus data source (no __inputs to fill in, the data
// source a template variable) and returns its expressions.
func readDashboard(t *testing.T) []panelExpr {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, monitoringDir, dashboardFile))
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	dec := json.NewDecoder(strings.NewReader(string(b)))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	var raw map[string]any
	_ = json.Unmarshal(b, &raw)
	if _, ok := raw["__inputs"]; ok {
		t.Errorf("%s has __inputs: an import would ask for them; use the datasource template variable instead", dashboardFile)
	}
	if d.UID == "" || d.Title == "" || d.SchemaVersion < 36 || d.ID != nil {
		t.Errorf("%s: uid %q, title %q, schemaVersion %d, id %v; want a uid, a title, schemaVersion >= 36 and id null", dashboardFile, d.UID, d.Title, d.SchemaVersion, d.ID)
	}
	hasDatasourceVar := false
	for _, v := range d.Templating.List {
		if v.Name == "datasource" && v.Type == "datasource" && v.Query == "prometheus" {
			hasDatasourceVar = true
		}
		if v.Type == "query" && !isDatasourceVar(v.Datasource) {
			t.Errorf("template variable %s queries data source %v, want ${datasource}", v.Name, v.Datasource)
		}
	}
	if !hasDatasourceVar {
		t.Errorf(`%s has no template variable {"name": "datasource", "type": "datasource", "query": "prometheus"}`, dashboardFile)
	}

	var exprs []panelExpr
	ids := map[int]bool{}
	var walk func([]dashboardPanel)
	walk = func(panels []dashboardPanel) {
		for _, p := range panels {
			if ids[p.ID] || p.ID == 0 {
				t.Errorf("panel %q: id %d is zero or not unique", p.Title, p.ID)
			}
			ids[p.ID] = true
			if p.GridPos.W <= 0 || p.GridPos.H <= 0 || p.GridPos.X+p.GridPos.W > 24 {
				t.Errorf("panel %q: gridPos %+v does not fit Grafana's 24 columns", p.Title, p.GridPos)
			}
			if p.Type == "row" {
				walk(p.Panels)
				continue
			}
			if !isDatasourceVar(p.Datasource) || len(p.Targets) == 0 || p.Description == "" {
				t.Errorf("panel %q: data source %v, %d targets, description %q; want ${datasource}, targets and a description", p.Title, p.Datasource, len(p.Targets), p.Description)
			}
			for _, tg := range p.Targets {
				if tg.Expr == "" || tg.RefID == "" || !isDatasourceVar(tg.Datasource) {
					t.Errorf("panel %q: target %q has no expression, no refId or another data source than ${datasource}", p.Title, tg.RefID)
				}
				exprs = append(exprs, panelExpr{p.Title, tg.Expr})
			}
		}
	}
	walk(d.Panels)
	return exprs
}

func isDatasourceVar(ds map[string]any) bool {
	return ds["uid"] == "${datasource}" && ds["type"] == "prometheus"
}

// grafanaVariables become what this test's Prometheus can evaluate.
var grafanaVariables = strings.NewReplacer(
	"$__rate_interval", "2m",
	"$__interval", "15s",
	"$__range", "1h",
	"$job", scrapeJob,
)

// TestDashboardImportable checks the dashboard's shape and that every
// expression parses, without a Prometheus.
func TestDashboardImportable(t *testing.T) {
	exprs := readDashboard(t)
	p := parser.NewParser(parser.Options{})
	for _, e := range exprs {
		if strings.Contains(grafanaVariables.Replace(e.expr), "$") {
			t.Errorf("panel %q: %s uses a variable the dashboard does not define", e.panel, e.expr)
		}
		if _, err := p.ParseExpr(grafanaVariables.Replace(e.expr)); err != nil {
			t.Errorf("panel %q: %s: %v", e.panel, e.expr, err)
		}
	}
}

// ---- against a real Prometheus ----------------------------------------------------

// TestMonitoringExpressions starts a gateway against a fake HeyGen the
// test can break, a real Prometheus scraping the gateway every second and
// evaluating the alerting rules, puts a short load on the gateway (errors,
// a rate-limited caller, an unauthenticated one, shed calls, HeyGen 503s
// that are retried, refused by the retry budget and open the breaker),
// then evaluates through Prometheus' HTTP API every dashboard expression
// (each must return data) and every series selector in the rules (each
// must select data), so an expression naming a metric or label the
// gateway does not export fails.
func TestMonitoringExpressions(t *testing.T) {
	needDebianPackages(t)
	promBin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatalf("prometheus is not on PATH although Debian's prometheus is installed: %v", err)
	}
	exprs := readDashboard(t)
	var rules ruleFile
	readYAML(t, rulesFile, &rules)

	inj := faults.New()
	const key = "e2e-monitoring-key-not-a-secret"
	fake, err := fakeheygen.NewServer(fakeheygen.Options{APIKey: key, Catalogue: fakeheygen.DemoCatalogue(),
		Voices: fakeheygen.DemoVoices(), Videos: fakeheygen.DemoVideos(), Middleware: inj.Wrap})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fake.Close() })

	tokens := map[string]string{"web": "hgt_e2e-monitoring-web-not-a-secret", "batch": "hgt_e2e-monitoring-batch-not-a-secret"}
	callers := filepath.Join(t.TempDir(), "callers.txt")
	var lines string
	for name, tok := range tokens {
		lines += name + ": " + hashToken(t, tok) + "\n"
	}
	if err := os.WriteFile(callers, []byte(lines), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := startGateway(t, append(hermeticEnv(), "HEYGEN_API_KEY="+key),
		"-heygen-base-url", fake.URL(), "-metrics-addr", "127.0.0.1:0", "-callers-file", callers,
		"-caller-rate-limits", "batch=1:3", "-max-in-flight", "3",
		"-heygen-breaker-failures", "12", "-heygen-breaker-open-for", "1s",
		"-heygen-retry-base-delay", "5ms", "-heygen-retry-max-delay", "20ms", "-health-probe-interval", "1s")
	rec, ok := srv.findLog(func(r logRecord) bool { return r.Msg == "serving metrics" })
	if !ok {
		t.Fatalf(`no "serving metrics" log line with the metrics address`)
	}
	prom := startPrometheus(t, promBin, rec.Addr)

	monitoringLoad(t, srv.addr, tokens, inj)
	// Let Prometheus scrape what the load left and evaluate the rules.
	prom.waitScrapedAfter(t, time.Now().Add(3*time.Second))
	prom.waitRulesEvaluated(t)

	p := parser.NewParser(parser.Options{})
	used := map[string]bool{}
	// check evaluates expr; whole says whether the expression itself must
	// return data, or only each series selector in it.
	check := func(where, expr string, whole bool) {
		t.Helper()
		ast, err := p.ParseExpr(expr)
		if err != nil {
			t.Errorf("%s: %s: %v", where, expr, err)
			return
		}
		waived := ""
		parser.Inspect(ast, func(n parser.Node, _ []parser.Node) error {
			vs, ok := n.(*parser.VectorSelector)
			if !ok {
				return nil
			}
			used[vs.Name] = true
			n2, err := prom.query(vs.String())
			switch reason, pending := pendingMetrics[vs.Name]; {
			case err != nil:
				t.Errorf("%s: selector %s: %v", where, vs, err)
			case pending && n2 > 0:
				t.Errorf("%s: %s is on the pending list (%s) but now has data: take it off pendingMetrics", where, vs.Name, reason)
			case pending:
				waived = vs.Name + ": pending, " + reason
			case foreignMetrics[vs.Name] != "":
				waived = vs.Name + ": " + foreignMetrics[vs.Name]
			case n2 == 0:
				t.Errorf("%s: selector %s selects no series: the gateway does not export it, or the load does not produce it", where, vs)
			}
			return nil
		})
		n, err := prom.query(expr)
		switch {
		case err != nil:
			t.Errorf("%s: %s: Prometheus: %v", where, expr, err)
		case waived != "":
			t.Logf("%s: %s: no data required (%s)", where, expr, waived)
		case whole && n == 0:
			t.Errorf("%s: %s returns no data", where, expr)
		}
	}
	for _, e := range exprs {
		check("dashboard panel "+e.panel, grafanaVariables.Replace(e.expr), true)
	}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			check("alert "+r.Alert, r.Expr, false)
		}
	}
	for _, m := range slices.Concat(mapKeys(pendingMetrics), mapKeys(foreignMetrics)) {
		if !used[m] {
			t.Errorf("%s is listed as pending or foreign but no expression uses it: take it off the list", m)
		}
	}
}

func mapKeys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// monitoringLoad makes the calls that make every series the dashboard and
// the rules read exist: successes on every service, caller errors, a
// caller over its rate limit, an unauthenticated call, calls shed at the
// in-flight bound, and HeyGen 503s on lookups that miss the catalogue
// (retried, then refused by the retry budget, then by the open breaker).
func monitoringLoad(t *testing.T, addr string, tokens map[string]string, inj *faults.Injector) {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	avatars, voices := heygenv1.NewAvatarsServiceClient(conn), heygenv1.NewVoicesServiceClient(conn)
	as := func(caller string) (context.Context, context.CancelFunc) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		if tok := tokens[caller]; tok != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok)
		}
		return ctx, cancel
	}
	call := func(caller string, want codes.Code, f func(context.Context) error) {
		t.Helper()
		ctx, cancel := as(caller)
		defer cancel()
		if err := f(ctx); status.Code(err) != want {
			t.Errorf("load: a call as %q: %v, want %s", caller, err, want)
		}
	}

	// Successes and the caller's own mistakes.
	for range 5 {
		call("web", codes.OK, func(ctx context.Context) error {
			_, err := avatars.ListAvatars(ctx, &heygenv1.ListAvatarsRequest{PageSize: 5})
			return err
		})
	}
	call("web", codes.OK, func(ctx context.Context) error {
		_, err := avatars.ListAvatarGroups(ctx, &heygenv1.ListAvatarGroupsRequest{PageSize: 5})
		return err
	})
	call("web", codes.OK, func(ctx context.Context) error {
		_, err := voices.ListVoices(ctx, &heygenv1.ListVoicesRequest{PageSize: 5})
		return err
	})
	call("web", codes.InvalidArgument, func(ctx context.Context) error {
		_, err := avatars.GetAvatar(ctx, &heygenv1.GetAvatarRequest{AvatarId: "../x"})
		return err
	})
	call("web", codes.NotFound, func(ctx context.Context) error {
		_, err := avatars.GetAvatar(ctx, &heygenv1.GetAvatarRequest{AvatarId: "no_such_avatar_1"})
		return err
	})
	// Over the rate limit (batch: a burst of 3, then one a second), and
	// without a token.
	for range 6 {
		ctx, cancel := as("batch")
		_, _ = avatars.ListAvatars(ctx, &heygenv1.ListAvatarsRequest{PageSize: 1})
		cancel()
	}
	call("", codes.Unauthenticated, func(ctx context.Context) error {
		_, err := avatars.ListAvatars(ctx, &heygenv1.ListAvatarsRequest{PageSize: 1})
		return err
	})

	// A video created and watched for a moment.
	videos := heygenv1.NewVideosServiceClient(conn)
	var videoID string
	call("web", codes.OK, func(ctx context.Context) error {
		resp, err := videos.CreateVideo(ctx, &heygenv1.CreateVideoRequest{
			RequestId: "monitoring-1",
			Visual:    &heygenv1.CreateVideoRequest_Avatar{Avatar: &heygenv1.AvatarVisual{AvatarId: "Zoe_OutdoorPark_20240523"}},
			Speech:    &heygenv1.CreateVideoRequest_Script{Script: &heygenv1.Script{Text: "Dashboards need data."}},
		})
		videoID = resp.GetVideo().GetId()
		return err
	})
	if videoID != "" {
		ctx, cancel := as("web")
		if w, err := videos.WatchVideo(ctx, &heygenv1.WatchVideoRequest{VideoId: videoID}); err == nil {
			_, _ = w.Recv()
		}
		cancel()
	}

	// Shed: lookups that miss the catalogue wait on a slow HeyGen while
	// more arrive than -max-in-flight allows.
	inj.Inject(faults.Fault{Path: "/v3/avatars/looks/*", Delay: 500 * time.Millisecond})
	var wg sync.WaitGroup
	shed := make(chan bool, 8)
	for i := range 8 {
		wg.Go(func() {
			ctx, cancel := as("web")
			defer cancel()
			_, err := avatars.GetAvatar(ctx, &heygenv1.GetAvatarRequest{AvatarId: fmt.Sprintf("slow_miss_%d", i)})
			shed <- status.Code(err) == codes.ResourceExhausted
		})
	}
	wg.Wait()
	close(shed)
	anyShed := false
	for s := range shed {
		anyShed = anyShed || s
	}
	if !anyShed {
		t.Error("load: no call was shed at -max-in-flight 3 with 8 slow calls at once")
	}
	inj.ClearFaults()

	// HeyGen 503s: retried (http_503), then the retry budget refuses
	// retries, then the breaker opens (CIRCUIT_OPEN).
	inj.Inject(faults.Fault{Path: "/v3/avatars/looks/*", Status: 503})
	opened := false
	for i := 0; i < 40 && !opened; i++ {
		ctx, cancel := as("web")
		_, err := avatars.GetAvatar(ctx, &heygenv1.GetAvatarRequest{AvatarId: fmt.Sprintf("failing_miss_%d", i)})
		cancel()
		opened = errorReason(err) == "CIRCUIT_OPEN"
	}
	if !opened {
		t.Error("load: the breaker did not open after 40 calls HeyGen answered with 503")
	}
	inj.ClearFaults()
}

// errorReason is the ErrorInfo reason of a gRPC error.
func errorReason(err error) string {
	for _, d := range status.Convert(err).Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return info.GetReason()
		}
	}
	return ""
}

// prometheusServer is a Prometheus process of this test.
type prometheusServer struct {
	url string
}

// startPrometheus starts Debian's Prometheus scraping target every second
// and evaluating the rules file every second, with its storage in a
// temporary directory, and waits until it has scraped the target.
func startPrometheus(t *testing.T, bin, target string) *prometheusServer {
	t.Helper()
	dir := t.TempDir()
	config := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - %q
scrape_configs:
  - job_name: %s
    static_configs:
      - targets: [%q]
`, filepath.Join(repoRoot, monitoringDir, rulesFile), scrapeJob, target)
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	logPath := filepath.Join(dir, "prometheus.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = logFile.Close() }()
	cmd := exec.Command(bin, "--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"), "--web.listen-address="+addr, "--log.level=warn")
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("prometheus log:\n%s", b)
		}
	})
	p := &prometheusServer{url: "http://" + addr}
	deadline := time.Now().Add(monitoringWait)
	for {
		if n, err := p.query(`up{job="` + scrapeJob + `"} == 1`); err == nil && n == 1 {
			return p
		}
		select {
		case <-exited:
			b, _ := os.ReadFile(logPath)
			t.Fatalf("prometheus exited:\n%s", b)
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus did not scrape the gateway at %s within %s", target, monitoringWait)
		}
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = lis.Close() }()
	return lis.Addr().String()
}

// query evaluates expr now and returns how many series it returned.
func (p *prometheusServer) query(expr string) (int, error) {
	var out struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := p.get("/api/v1/query?"+url.Values{"query": {expr}}.Encode(), &out); err != nil {
		return 0, err
	}
	if out.Status != "success" {
		return 0, fmt.Errorf("%s", out.Error)
	}
	return len(out.Data.Result), nil
}

func (p *prometheusServer) get(path string, v any) error {
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(p.url + path)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("HTTP %d: %.300s", resp.StatusCode, b)
	}
	return nil
}

// waitScrapedAfter waits until Prometheus has scraped the gateway after t0.
func (p *prometheusServer) waitScrapedAfter(t *testing.T, t0 time.Time) {
	t.Helper()
	deadline := time.Now().Add(monitoringWait)
	for {
		var out struct {
			Data struct {
				ActiveTargets []struct {
					LastScrape time.Time `json:"lastScrape"`
					Health     string    `json:"health"`
					LastError  string    `json:"lastError"`
				} `json:"activeTargets"`
			} `json:"data"`
		}
		err := p.get("/api/v1/targets", &out)
		if err == nil && len(out.Data.ActiveTargets) == 1 && out.Data.ActiveTargets[0].LastScrape.After(t0) {
			if tg := out.Data.ActiveTargets[0]; tg.Health != "up" {
				t.Fatalf("prometheus scraped the gateway: health %s, %s", tg.Health, tg.LastError)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus did not scrape the gateway after %s within %s (%v)", t0.Format(time.RFC3339), monitoringWait, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitRulesEvaluated waits until Prometheus has evaluated every rule at
// least once and fails on a rule whose evaluation failed.
func (p *prometheusServer) waitRulesEvaluated(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(monitoringWait)
	for {
		var out struct {
			Data struct {
				Groups []struct {
					Rules []struct {
						Name           string    `json:"name"`
						Health         string    `json:"health"`
						LastError      string    `json:"lastError"`
						LastEvaluation time.Time `json:"lastEvaluation"`
					} `json:"rules"`
				} `json:"groups"`
			} `json:"data"`
		}
		if err := p.get("/api/v1/rules", &out); err != nil {
			t.Fatal(err)
		}
		evaluated, total := 0, 0
		for _, g := range out.Data.Groups {
			for _, r := range g.Rules {
				total++
				if !r.LastEvaluation.IsZero() && r.LastEvaluation.Year() > 2000 {
					evaluated++
					if r.Health != "ok" {
						t.Errorf("prometheus evaluated rule %s: health %s: %s", r.Name, r.Health, r.LastError)
					}
				}
			}
		}
		if total > 0 && evaluated == total {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus evaluated %d of %d rules within %s", evaluated, total, monitoringWait)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
