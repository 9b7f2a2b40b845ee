package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	heygenv1 "github.com/heygen-grpc/heygen-grpc/gen/heygen/v1"
	"github.com/heygen-grpc/heygen-grpc/internal/fakeheygen"
	"github.com/heygen-grpc/heygen-grpc/server"
)

// testPKI is a throwaway CA with helpers to issue certificates.
type testPKI struct {
	dir    string
	caCert *x509.Certificate
	caKey  *ecdsa.PrivateKey
	caPEM  string
}

func newPKI(t *testing.T, dir, name string) *testPKI {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	p := &testPKI{dir: dir, caCert: cert, caKey: key}
	p.caPEM = p.write(t, name+"-ca.pem", "CERTIFICATE", der)
	return p
}

func (p *testPKI) write(t *testing.T, name, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(p.dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// issue returns cert and key file paths and the tls.Certificate.
func (p *testPKI) issue(t *testing.T, cn string, dns []string, usage x509.ExtKeyUsage) (string, string, tls.Certificate) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: cn}, DNSNames: dns,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.caCert, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	certPath := p.write(t, cn+".pem", "CERTIFICATE", der)
	keyPath := p.write(t, cn+"-key.pem", "EC PRIVATE KEY", kder)
	pair, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		t.Fatal(err)
	}
	return certPath, keyPath, pair
}

func TestMutualTLS(t *testing.T) {
	dir := t.TempDir()
	pki := newPKI(t, dir, "internal")
	other := newPKI(t, dir, "other")
	serverCert, serverKey, _ := pki.issue(t, "gateway", []string{"localhost"}, x509.ExtKeyUsageServerAuth)
	_, _, alice := pki.issue(t, "alice-svc", nil, x509.ExtKeyUsageClientAuth)
	_, _, mallory := other.issue(t, "mallory", nil, x509.ExtKeyUsageClientAuth)

	addr, _, _, logs := startRun(t, []string{"-demo", "-tls-cert", serverCert, "-tls-key", serverKey,
		"-tls-client-ca", pki.caPEM, "-mtls-caller-identity"}, nil)
	roots := x509.NewCertPool()
	roots.AddCert(pki.caCert)
	call := func(certs []tls.Certificate) error {
		creds := credentials.NewTLS(&tls.Config{RootCAs: roots, ServerName: "localhost", Certificates: certs, MinVersion: tls.VersionTLS12})
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
		if err != nil {
			return err
		}
		defer func() { _ = conn.Close() }()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err = heygenv1.NewAvatarsServiceClient(conn).ListAvatars(ctx, &heygenv1.ListAvatarsRequest{PageSize: 1})
		return err
	}
	if err := call([]tls.Certificate{alice}); err != nil {
		t.Fatalf("with a client certificate from the trusted CA: %v", err)
	}
	if err := call(nil); status.Code(err) != codes.Unavailable {
		t.Errorf("without a client certificate: %v, want the handshake refused (UNAVAILABLE)", err)
	}
	if err := call([]tls.Certificate{mallory}); status.Code(err) != codes.Unavailable {
		t.Errorf("with a certificate from another CA: %v, want the handshake refused", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logs.String(), `"caller":"alice-svc"`) {
		if time.Now().After(deadline) {
			t.Fatalf("the caller's certificate name is not in the RPC log:\n%s", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestKeyRotationUnderLoad: the key file changes while callers keep
// calling; no call fails, and HeyGen sees the new key afterwards.
func TestKeyRotationUnderLoad(t *testing.T) {
	const oldKey, newKey = canaryKey, "sk-CANARY-rotated-2f9d1c-never-log"
	fake, err := fakeheygen.NewServer(fakeheygen.Options{APIKey: oldKey, Catalogue: fakeheygen.DemoCatalogue()})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = fake.Close() }()
	keyFile := filepath.Join(t.TempDir(), "api-key")
	if err := os.WriteFile(keyFile, []byte(oldKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr, _, _, logs := startRun(t, []string{"-heygen-base-url", fake.URL(), "-catalogue=false", "-reload-interval", "50ms"},
		map[string]string{"HEYGEN_API_KEY_FILE": keyFile})
	c := heygenv1.NewAvatarsServiceClient(dial(t, addr))

	stop := make(chan struct{})
	var calls, failures atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				_, err := c.ListAvatars(ctx, &heygenv1.ListAvatarsRequest{PageSize: 5})
				cancel()
				calls.Add(1)
				if err != nil {
					failures.Add(1)
					t.Errorf("call failed during rotation: %v", err)
				}
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	// Rotation as HeyGen and Kubernetes do it: the new key is valid, the
	// secret file is replaced, the gateway picks it up, the old key is revoked.
	fake.SetAPIKeys(oldKey, newKey)
	tmp := keyFile + ".new"
	if err := os.WriteFile(tmp, []byte(newKey), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, keyFile); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		reqs := fake.Requests()
		if len(reqs) > 0 && reqs[len(reqs)-1].APIKey == newKey {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the gateway never switched to the new key")
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // calls that started with the old key finish
	fake.SetAPIKeys(newKey)
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	if calls.Load() < 20 || failures.Load() != 0 {
		t.Fatalf("%d calls, %d failed; want many calls and no failure", calls.Load(), failures.Load())
	}
	for _, k := range []string{oldKey, newKey} {
		if strings.Contains(logs.String(), k) {
			t.Error("a key appears in the logs")
		}
	}
	// The key file is watched by internal/watch, which logs "<what> reloaded".
	if !strings.Contains(logs.String(), "the HeyGen API key file reloaded") {
		t.Error("the reload was not logged")
	}
	t.Logf("%d calls during the rotation, none failed", calls.Load())
}

func TestMetricsEndpointAndPprof(t *testing.T) {
	addr, _, _, logs := startRun(t, []string{"-demo", "-metrics-addr", "127.0.0.1:0", "-pprof"}, nil)
	conn := dial(t, addr)
	c := heygenv1.NewAvatarsServiceClient(conn)
	// A cold replica may answer from HeyGen while it crawls: wait for the
	// catalogue, whose size the metrics report.
	waitServing(t, conn, "heygen-grpc.catalogue")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.ListAvatars(ctx, &heygenv1.ListAvatarsRequest{PageSize: 3}); err != nil {
		t.Fatal(err)
	}
	var metricsAddr string
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, `"msg":"serving metrics"`) {
			_, rest, _ := strings.Cut(line, `"addr":"`)
			metricsAddr, _, _ = strings.Cut(rest, `"`)
		}
	}
	if metricsAddr == "" {
		t.Fatalf("no 'serving metrics' log line:\n%s", logs.String())
	}
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + metricsAddr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := get("/metrics")
	if code != 200 || !strings.Contains(body, `grpc_server_handled_total{grpc_code="OK",grpc_method="ListAvatars"`) ||
		!strings.Contains(body, `heygen_catalogue_items{resource="avatars"} 425`) {
		t.Fatalf("/metrics = %d:\n%.2000s", code, body)
	}
	if code, _ := get("/debug/pprof/cmdline"); code != 200 {
		t.Errorf("pprof not served with -pprof: %d", code)
	}
	_, _, _, logs2 := startRun(t, []string{"-demo", "-metrics-addr", "127.0.0.1:0"}, nil)
	var a2 string
	for a2 == "" {
		if _, after, ok := strings.Cut(logs2.String(), `"msg":"serving metrics"`); ok {
			_, rest, _ := strings.Cut(after, `"addr":"`)
			a2, _, _ = strings.Cut(rest, `"`)
		}
		time.Sleep(10 * time.Millisecond)
	}
	resp, err := http.Get("http://" + a2 + "/debug/pprof/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("pprof is served without -pprof: %d", resp.StatusCode)
	}
}

// TestShutdownUnderLoad: SIGTERM (ctx cancel, as main's NotifyContext
// does) while callers keep calling: every call that started before the
// signal succeeds.
func TestShutdownUnderLoad(t *testing.T) {
	fake, err := fakeheygen.NewServer(fakeheygen.Options{APIKey: canaryKey, Catalogue: fakeheygen.DemoCatalogue()})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = fake.Close() }()
	fake.SetLatency(30 * time.Millisecond)
	addr, stop, done, _ := startRun(t, []string{"-heygen-base-url", fake.URL(), "-catalogue=false",
		"-shutdown-drain-delay", "200ms", "-shutdown-timeout", "10s"}, map[string]string{"HEYGEN_API_KEY": canaryKey})
	c := heygenv1.NewAvatarsServiceClient(dial(t, addr))
	var signalled atomic.Int64 // unix nanos of the signal; 0 before
	var before, beforeFailed, after atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				started := time.Now().UnixNano()
				sig := signalled.Load()
				if sig != 0 && started > sig+int64(time.Second) {
					return
				}
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				_, err := c.ListAvatars(ctx, &heygenv1.ListAvatarsRequest{PageSize: 5})
				cancel()
				if sig == 0 {
					before.Add(1)
					if err != nil {
						beforeFailed.Add(1)
						t.Errorf("a call started before the signal failed: %v", err)
					}
				} else {
					after.Add(1)
					if err != nil {
						time.Sleep(10 * time.Millisecond)
					}
				}
			}
		}()
	}
	time.Sleep(500 * time.Millisecond)
	signalled.Store(time.Now().UnixNano())
	stop()
	if err := <-done; err != nil {
		t.Fatalf("run = %v", err)
	}
	wg.Wait()
	if before.Load() < 50 || beforeFailed.Load() != 0 {
		t.Fatalf("%d calls before the signal, %d failed", before.Load(), beforeFailed.Load())
	}
	t.Logf("%d calls started before SIGTERM, all succeeded; %d attempted after", before.Load(), after.Load())
}

func TestTokenCommands(t *testing.T) {
	var out bytes.Buffer
	handled, err := runTokenCommand([]string{"new-token", "billing-svc"}, nil, &out)
	if !handled || err != nil {
		t.Fatal(handled, err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	token, entry := lines[1], lines[3]
	if !strings.HasPrefix(token, "hgt_") || entry != "billing-svc: "+server.HashToken(token) {
		t.Fatalf("new-token printed:\n%s", out.String())
	}
	out.Reset()
	if handled, err := runTokenCommand([]string{"hash-token"}, strings.NewReader(token+"\n"), &out); !handled || err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(out.String()) != server.HashToken(token) {
		t.Fatalf("hash-token = %q", out.String())
	}
	if _, err := runTokenCommand([]string{"new-token", "bad name!"}, nil, io.Discard); err == nil {
		t.Error("a bad caller name was accepted")
	}
	if _, err := runTokenCommand([]string{"hash-token", "secret-on-argv"}, nil, io.Discard); err == nil {
		t.Error("hash-token took the token as an argument")
	}
	if handled, _ := runTokenCommand([]string{"-demo"}, nil, io.Discard); handled {
		t.Error("flags were taken for a subcommand")
	}
}

func TestHardeningConfigErrors(t *testing.T) {
	t.Chdir(t.TempDir())
	key := map[string]string{"HEYGEN_API_KEY": canaryKey}
	for name, tc := range map[string]struct {
		args []string
		env  map[string]string
		want string
	}{
		"key and key file":    {nil, map[string]string{"HEYGEN_API_KEY": "a", "HEYGEN_API_KEY_FILE": "/x"}, "keep only one"},
		"cert without key":    {[]string{"-tls-cert", "c.pem"}, key, "-tls-key"},
		"ca without cert":     {[]string{"-tls-client-ca", "ca.pem"}, key, "-tls-client-ca"},
		"identity without ca": {[]string{"-mtls-caller-identity"}, key, "-tls-client-ca"},
		"pprof without port":  {[]string{"-pprof"}, key, "-metrics-addr"},
		"bad rate":            {[]string{"-caller-rate-limit", "fast"}, key, "-caller-rate-limit"},
		"bad overrides":       {[]string{"-caller-rate-limits", "alice"}, key, "-caller-rate-limits"},
		"bad budget":          {[]string{"-heygen-retry-budget", "2"}, key, "-heygen-retry-budget"},
	} {
		_, err := parseConfig(tc.args, env(tc.env), io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error mentioning %q", name, err, tc.want)
		}
	}
	// Files that do not exist or do not parse stop the binary at start.
	for name, args := range map[string][]string{
		"missing key file":     {"-heygen-api-key-file", "/nonexistent/key"},
		"missing callers file": {"-demo", "-callers-file", "/nonexistent/callers"},
		"missing cert":         {"-demo", "-tls-cert", "/nonexistent/c", "-tls-key", "/nonexistent/k"},
	} {
		err := run(context.Background(), append([]string{"-addr", "127.0.0.1:0"}, args...), env(nil), io.Discard, io.Discard)
		var cerr *configError
		if err == nil || !errorsAs(err, &cerr) {
			t.Errorf("%s: got %v, want a config error", name, err)
		}
	}
}
