package server

import (
	"io"
	"log/slog"
	"strconv"
	"sync"
	"time"
)

// The per-RPC info line, encoded by the gateway. Every RPC writes it, and
// through slog it was the largest cost the gateway adds to a cached call
// that the gateway controls (6.6% of the ListAvatars profile, about 5 µs:
// building the record, its attribute slice, the handler's state and
// buffer). Its fields are a few strings and integers, so it is encoded
// here, straight into a pooled buffer, exactly as slog's JSON handler
// writes it; a line with anything this encoder does not write byte for
// byte as slog does (a string that needs escaping, another kind of value,
// a year outside 0-9999) goes through slog instead.
// TestCallLineMatchesSlog compares the two on every byte they could see.

// jsonLine writes JSON lines shaped as slog.JSONHandler writes them, with
// no handler options, to out, which must be where that handler writes.
type jsonLine struct {
	out  io.Writer
	bufs sync.Pool
}

func newJSONLine(out io.Writer) *jsonLine {
	return &jsonLine{out: out, bufs: sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}}
}

// write writes the line and reports whether it could; when it could not,
// nothing was written.
func (j *jsonLine) write(t time.Time, level slog.Level, msg string, attrs []slog.Attr) bool {
	bp := j.bufs.Get().(*[]byte)
	b, ok := appendJSONLine((*bp)[:0], t, level, msg, attrs)
	if ok {
		_, _ = j.out.Write(b) // as slog's handler, whose write errors the gateway ignores too
	}
	if cap(b) <= 64<<10 {
		*bp = b
		j.bufs.Put(bp)
	}
	return ok
}

// appendJSONLine appends the line slog.JSONHandler (no options) writes for
// a record of t, level, msg and attrs, or reports false.
func appendJSONLine(b []byte, t time.Time, level slog.Level, msg string, attrs []slog.Attr) ([]byte, bool) {
	if y := t.Year(); y < 0 || y >= 10000 || !jsonSafe(msg) {
		return b, false
	}
	b = append(b, `{"time":"`...)
	b = t.Round(0).AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","level":"`...)
	b = append(b, level.String()...)
	b = append(b, `","msg":"`...)
	b = append(b, msg...)
	b = append(b, '"')
	for _, a := range attrs {
		if a.Key == "" || !jsonSafe(a.Key) {
			return b, false
		}
		b = append(b, `,"`...)
		b = append(b, a.Key...)
		b = append(b, `":`...)
		switch a.Value.Kind() {
		case slog.KindString:
			s := a.Value.String()
			if !jsonSafe(s) {
				return b, false
			}
			b = append(b, '"')
			b = append(b, s...)
			b = append(b, '"')
		case slog.KindInt64:
			b = strconv.AppendInt(b, a.Value.Int64(), 10)
		default:
			return b, false
		}
	}
	return append(b, "}\n"...), true
}

// jsonSafe reports whether slog writes s into a JSON string unchanged:
// printable ASCII but the quote and the backslash.
func jsonSafe(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}
