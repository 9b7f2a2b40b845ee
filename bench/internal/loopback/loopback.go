// Package loopback keeps the benchmark programs on this machine: every
// address they listen on or send load to must be a loopback address.
package loopback

import (
	"fmt"
	"net"
	"net/url"
)

// CheckAddr returns an error unless addr (host:port) names a loopback
// host: an IP in 127.0.0.0/8 or ::1, or "localhost". An empty host (":0")
// is refused, since it would listen on every interface.
func CheckAddr(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("address %q: %w", addr, err)
	}
	return checkHost(host, addr)
}

// CheckURL is CheckAddr for an http(s) URL.
func CheckURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("url %q: %w", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("url %q: want http or https", raw)
	}
	return checkHost(u.Hostname(), raw)
}

func checkHost(host, what string) error {
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("%q is not a loopback address: benchmark traffic must stay on 127.0.0.1", what)
}
