// Package heygen is a small REST client for HeyGen's v3 avatar API.
//
// It is plain Go (standard library plus cenkalti/backoff) with no gRPC
// imports, so it can be used on its own. The API key is attached in exactly
// one place ([Client.do]) as the X-Api-Key header; redirects are never
// followed so the key can never reach another host; path segments are
// validated against an allowlist before any request is built; response
// bodies are read through a size cap; and every failure, whatever shape
// HeyGen's body had, comes back as one typed [*Error] (or a
// [*ValidationError] for input rejected before sending, or the context's
// error when the caller gave up).
//
// Retries live in an [http.RoundTripper] (see [NewRetryTransport]) so every
// call, present and future, gets the same policy: transport errors, 429,
// 500, 502, 503 and 504 are retried with full-jitter exponential backoff,
// Retry-After is honoured up to a cap, and no wait ever runs past the
// caller's deadline.
package heygen
