package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"
)

// Files are re-read by polling their content rather than with inotify:
// Kubernetes updates secret and config mounts by swapping a symlink to a
// new directory, which file watches easily miss, while a read every few
// seconds of a few hundred bytes costs nothing and never misses a change.

// readKeyFile reads an API key file: the whole content, trimmed.
func readKeyFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read HEYGEN_API_KEY_FILE: %w", unwrapPathError(err))
	}
	key := strings.TrimSpace(string(b))
	if key == "" {
		return "", fmt.Errorf("HEYGEN_API_KEY_FILE %s is empty", path)
	}
	return key, nil
}

// watchKeyFile re-reads the key file every interval and hands a changed
// key to set. Calls already under way finish with the key they started
// with; a missing or empty file keeps the current key. Never logs the key.
func watchKeyFile(ctx context.Context, path string, interval time.Duration, current string, set func(string), log *slog.Logger) {
	last := sha256.Sum256([]byte(current))
	pollEvery(ctx, interval, func() {
		key, err := readKeyFile(path)
		if err != nil {
			log.ErrorContext(ctx, "cannot re-read the HeyGen API key file; keeping the current key", "error", err)
			return
		}
		if sum := sha256.Sum256([]byte(key)); sum != last {
			last = sum
			set(key)
			log.InfoContext(ctx, "HeyGen API key reloaded from its file", "path", path)
		}
	})
}

// pollEvery calls check every interval until ctx is done.
func pollEvery(ctx context.Context, interval time.Duration, check func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			check()
		}
	}
}

// certReloader serves the TLS certificate from files, re-read when they change.
type certReloader struct {
	certFile, keyFile string
	log               *slog.Logger

	mu   sync.RWMutex
	cert *tls.Certificate
	sum  [sha256.Size]byte
}

func newCertReloader(certFile, keyFile string, log *slog.Logger) (*certReloader, error) {
	r := &certReloader{certFile: certFile, keyFile: keyFile, log: log}
	if _, err := r.reload(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *certReloader) reload() (bool, error) {
	certPEM, err := os.ReadFile(r.certFile)
	if err != nil {
		return false, fmt.Errorf("read -tls-cert: %w", unwrapPathError(err))
	}
	keyPEM, err := os.ReadFile(r.keyFile)
	if err != nil {
		return false, fmt.Errorf("read -tls-key: %w", unwrapPathError(err))
	}
	sum := sha256.Sum256(append(bytes.Clone(certPEM), keyPEM...))
	r.mu.RLock()
	same := r.cert != nil && sum == r.sum
	r.mu.RUnlock()
	if same {
		return false, nil
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return false, fmt.Errorf("-tls-cert/-tls-key: %w", err)
	}
	r.mu.Lock()
	r.cert, r.sum = &cert, sum
	r.mu.Unlock()
	return true, nil
}

func (r *certReloader) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.cert, nil
}

func (r *certReloader) watch(ctx context.Context, interval time.Duration) {
	pollEvery(ctx, interval, func() {
		switch changed, err := r.reload(); {
		case err != nil:
			r.log.ErrorContext(ctx, "cannot reload the TLS certificate; keeping the current one", "error", err)
		case changed:
			r.log.InfoContext(ctx, "TLS certificate reloaded", "cert", r.certFile)
		}
	})
}

// tlsConfig builds the server's TLS configuration: TLS 1.2 or later, the
// reloading certificate, and with a client CA, verified client certificates.
func tlsConfig(cfg *config, r *certReloader) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: r.getCertificate}
	if cfg.tlsClientCA != "" {
		pem, err := os.ReadFile(cfg.tlsClientCA) //nolint:gosec // G703: the operator's own -tls-client-ca path
		if err != nil {
			return nil, fmt.Errorf("read -tls-client-ca: %w", unwrapPathError(err))
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, errors.New("-tls-client-ca holds no PEM certificate")
		}
		tc.ClientCAs = pool
		tc.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return tc, nil
}
