package catalogue

import (
	"fmt"
	"strings"
	"time"
)

// FieldError is a request field the catalogue refuses (a bad page token),
// before anything is sent to HeyGen.
type FieldError struct {
	// Field names the request field.
	Field string
	// Reason says what is wrong and what to do.
	Reason string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

// DisabledError is a filter only the catalogue can apply, asked of a
// gateway whose catalogue is switched off.
type DisabledError struct {
	// Fields are the filters concerned, sorted.
	Fields []string
}

func (e *DisabledError) Error() string {
	return "the " + strings.Join(e.Fields, ", ") + " filter needs the gateway's catalogue, which is switched off on this gateway; drop the filter or ask its operators to enable the catalogue"
}

// StaleError is a snapshot past the maximum staleness. It
// wraps the last crawl's error, which decides what callers see.
type StaleError struct {
	// Resource is the resource's name.
	Resource string
	// Age is the snapshot's age; Max the maximum staleness.
	Age, Max time.Duration
	// Cause is the last crawl's error, if any.
	Cause error
}

func (e *StaleError) Error() string {
	msg := fmt.Sprintf("%s catalogue snapshot is %s old, past the maximum staleness of %s", e.Resource, e.Age.Round(time.Second), e.Max)
	if e.Cause != nil {
		msg += "; last refresh: " + e.Cause.Error()
	}
	return msg
}

func (e *StaleError) Unwrap() error { return e.Cause }

// ColdError is what a read gets when there is no snapshot yet and the last
// crawl failed. Until the
// crawl's backoff ends no new crawl starts: callers get the last crawl's
// error at once, and RetryAfter says when the next crawl may run.
type ColdError struct {
	// Resource is the resource's name.
	Resource string
	// Cause is the last crawl's error.
	Cause error
	// RetryAfter is the time until the next crawl may start.
	RetryAfter time.Duration
}

func (e *ColdError) Error() string {
	return fmt.Sprintf("no %s catalogue yet: its last crawl failed (next crawl in %s): %v", e.Resource, e.RetryAfter.Round(time.Millisecond), e.Cause)
}

func (e *ColdError) Unwrap() error { return e.Cause }

// Reasons a crawl failed, for logs and metrics.
const (
	ReasonOK           = "ok"
	ReasonShared       = "shared"
	ReasonHeyGen       = "heygen_error"
	ReasonTimeout      = "timeout"
	ReasonLoopingToken = "looping_token"
	ReasonTooManyPages = "too_many_pages"
	ReasonTooManyItems = "too_many_items"
)

// BoundError is a crawl stopped because HeyGen's list broke one of the
// crawl's bounds: a repeated next_token (a loop), or more pages or items
// than any real account has. HeyGen misbehaved: the last good snapshot
// keeps serving.
type BoundError struct {
	// Partition names the list ("public looks").
	Partition string
	// Reason is ReasonLoopingToken, ReasonTooManyPages or ReasonTooManyItems.
	Reason string
	// Pages is how many pages of the list were fetched.
	Pages int
	// Limit is the bound that was hit (pages or items).
	Limit int
}

func (e *BoundError) Error() string {
	switch e.Reason {
	case ReasonLoopingToken:
		return fmt.Sprintf("HeyGen's %s list repeated a next_token after %d pages (a loop); the crawl was stopped", e.Partition, e.Pages)
	case ReasonTooManyPages:
		return fmt.Sprintf("HeyGen's %s list went past %d pages; the crawl was stopped (raise the bound if the account really is that large)", e.Partition, e.Limit)
	}
	return fmt.Sprintf("HeyGen's %s crawl went past %d items; the crawl was stopped (raise the bound if the account really is that large)", e.Partition, e.Limit)
}
