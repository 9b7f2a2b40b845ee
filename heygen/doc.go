// Package heygen is a small REST client for HeyGen's v3 API: avatars,
// voices, videos and the account.
//
// It is plain Go (standard library plus cenkalti/backoff and
// sony/gobreaker) with no gRPC imports, so it can be used on its own. It is
// built the way google/go-github is: a [Client] with resources as fields
// (client.Avatars, client.Voices, client.Videos, client.Users), each
// endpoint a few lines over [Client.NewRequest] (which sets the API key,
// in exactly one place, as the X-Api-Key header) and [Client.Do] (which
// sends, retries and decodes the {data, error} envelope, in exactly one
// place).
//
// Safety: redirects are never followed, so the key can never reach another
// host; path segments are validated against an allowlist before any
// request is built; response bodies are read through a size cap; every
// string that comes from HeyGen (or anything between) passes through one
// redaction step that removes the key before it becomes part of an error
// or a log line; and every failure, whatever shape HeyGen's body had,
// comes back as one typed [*Error] (or a [*ValidationError] for input
// refused before sending, a [*LimitError] for a call the client's own
// protections refused, or the context's error when the caller gave up).
//
// Retries live in the client's transport, so every call gets the same
// policy, decided by the pure function [ShouldRetry]: only idempotent
// requests (GETs, and writes that carry an Idempotency-Key) are retried,
// on transport errors, 429, 500, 502, 503, 504 and 409
// request_in_progress, with full-jitter exponential backoff; Retry-After is
// honoured up to a cap, and no wait ever runs past the caller's deadline.
// The transport is also the one place requests leave the process: it
// counts every attempt, keeps Go's http.Transport from silently resending
// any, and applies the circuit breaker (once per call), the retry budget
// and the bound on concurrent attempts.
package heygen
