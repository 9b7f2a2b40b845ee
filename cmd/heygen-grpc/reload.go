package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
)

// parseKeyFile reads an API key file's content: the whole of it, trimmed.
func parseKeyFile(path string, content []byte) (string, error) {
	key := strings.TrimSpace(string(content))
	if key == "" {
		return "", fmt.Errorf("HEYGEN_API_KEY_FILE %s is empty", path)
	}
	return key, nil
}

// certStore serves the TLS certificate loaded from its files (and
// reloaded by the file watcher when they change).
type certStore struct {
	cert atomic.Pointer[tls.Certificate]
}

func (s *certStore) apply(contents [][]byte) error {
	cert, err := tls.X509KeyPair(contents[0], contents[1])
	if err != nil {
		return fmt.Errorf("-tls-cert/-tls-key: %w", err)
	}
	s.cert.Store(&cert)
	return nil
}

func (s *certStore) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return s.cert.Load(), nil
}

// tlsConfig builds the server's TLS configuration: TLS 1.2 or later, the
// reloading certificate, and with a client CA, verified client certificates.
func tlsConfig(cfg *config, certs *certStore) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: certs.getCertificate}
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
