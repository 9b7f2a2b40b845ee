package server

import (
	"io"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
)

// The per-RPC info line, encoded by the gateway. Every RPC writes it, and
// through slog it was the largest cost the gateway adds to a cached call
// that the gateway controls (6.6% of the ListAvatars profile, about 5 µs:
// building the record, its attribute slice, the handler's state and
// buffer). Its fields are a few strings and integers, so it is encoded
// here, straight into a pooled buffer, exactly as slog's JSON handler
// writes it, with its keys and each method's part written once; a line
// with anything this encoder does not write byte for byte as slog does (a
// string that needs escaping, a year outside 0-9999) goes through slog
// instead.
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

// write writes the line of one call and reports whether it could; when
// it could not, nothing was written.
func (j *jsonLine) write(t time.Time, level slog.Level, f *callFields) bool {
	bp := j.bufs.Get().(*[]byte)
	b, ok := appendCallLine((*bp)[:0], t, level, f)
	if ok {
		_, _ = j.out.Write(b) // as slog's handler, whose write errors the gateway ignores too
	}
	if cap(b) <= 64<<10 {
		*bp = b
		j.bufs.Put(bp)
	}
	return ok
}

// callFields are the fields of one call's "finished call" line, in the
// order the middleware's logging provider writes them: those from the
// context (caller, heygen.attempts), the call's, then its outcome.
type callFields struct {
	caller      string // "": none
	attempts    int64
	hasAttempts bool
	method      *methodLine
	peer        string
	hasPeer     bool
	start       string
	deadline    string // "": none
	code        string
	err         string
	hasErr      bool
	took        time.Duration // grpc.time_ms
}

// methodLine is a method's part of the line, which every call of the
// method shares.
type methodLine struct {
	service, method, typ string
	// encoded is the part as JSON: `,"protocol":"grpc",...,"grpc.method_type":"unary"`,
	// or "" when slog would escape any of it.
	encoded string
}

func newMethodLine(service, method, typ string) *methodLine {
	m := &methodLine{service: service, method: method, typ: typ}
	if jsonSafe(service) && jsonSafe(method) && jsonSafe(typ) {
		m.encoded = `,"` + logging.SystemTag[0] + `":"` + logging.SystemTag[1] + `","` + logging.ComponentFieldKey + `":"` +
			logging.KindServerFieldValue + `","` + logging.ServiceFieldKey + `":"` + service + `","` + logging.MethodFieldKey + `":"` +
			method + `","` + logging.MethodTypeFieldKey + `":"` + typ + `"`
	}
	return m
}

// attrs appends the fields as slog attributes, for slog's handler.
func (f *callFields) attrs(a []slog.Attr) []slog.Attr {
	if f.caller != "" {
		a = append(a, slog.String("caller", f.caller))
	}
	if f.hasAttempts {
		a = append(a, slog.Int64("heygen.attempts", f.attempts))
	}
	a = append(a, slog.String(logging.SystemTag[0], logging.SystemTag[1]), slog.String(logging.ComponentFieldKey, logging.KindServerFieldValue),
		slog.String(logging.ServiceFieldKey, f.method.service), slog.String(logging.MethodFieldKey, f.method.method),
		slog.String(logging.MethodTypeFieldKey, f.method.typ))
	if f.hasPeer {
		a = append(a, slog.String("peer.address", f.peer))
	}
	a = append(a, slog.String("grpc.start_time", f.start))
	if f.deadline != "" {
		a = append(a, slog.String("grpc.request.deadline", f.deadline))
	}
	a = append(a, slog.String("grpc.code", f.code))
	if f.hasErr {
		a = append(a, slog.String("grpc.error", f.err))
	}
	return append(a, slog.String("grpc.time_ms", timeMillis(f.took)))
}

// appendCallLine appends the line slog.JSONHandler (no options) writes
// for a record of t, level, "finished call" and f.attrs, or reports
// false. The keys and the method's part are known to need no escaping;
// the values that vary by call are checked.
func appendCallLine(b []byte, t time.Time, level slog.Level, f *callFields) ([]byte, bool) {
	if y := t.Year(); y < 0 || y >= 10000 || f.method.encoded == "" || !jsonSafe(f.caller) || !jsonSafe(f.peer) ||
		!jsonSafe(f.start) || !jsonSafe(f.deadline) || !jsonSafe(f.code) || !jsonSafe(f.err) {
		return b, false
	}
	b = append(b, `{"time":"`...)
	b = appendRFC3339Nano(b, t)
	b = append(b, `","level":"`...)
	b = append(b, level.String()...)
	b = append(b, `","msg":"finished call"`...)
	if f.caller != "" {
		b = appendField(b, "caller", f.caller)
	}
	if f.hasAttempts {
		b = append(b, `,"heygen.attempts":`...)
		b = strconv.AppendInt(b, f.attempts, 10)
	}
	b = append(b, f.method.encoded...)
	if f.hasPeer {
		b = appendField(b, "peer.address", f.peer)
	}
	b = appendField(b, "grpc.start_time", f.start)
	if f.deadline != "" {
		b = appendField(b, "grpc.request.deadline", f.deadline)
	}
	b = appendField(b, "grpc.code", f.code)
	if f.hasErr {
		b = appendField(b, "grpc.error", f.err)
	}
	b = append(b, `,"grpc.time_ms":"`...)
	b = appendTimeMillis(b, f.took)
	return append(b, "\"}\n"...), true
}

// lineSecond is the last second a line's time was written in.
var lineSecond secondText

// appendRFC3339Nano appends t as time.RFC3339Nano formats it, with the
// part to the second and the zone written once per second: the calls of
// a second share them.
func appendRFC3339Nano(b []byte, t time.Time) []byte {
	p := lineSecond.second(t)
	b = append(b, p.date...)
	if ns := t.Nanosecond(); ns != 0 {
		var digits [9]byte
		for i := 8; i >= 0; i-- {
			digits[i] = byte('0' + ns%10)
			ns /= 10
		}
		n := 9
		for digits[n-1] == '0' {
			n--
		}
		b = append(b, '.')
		b = append(b, digits[:n]...)
	}
	return append(b, p.zone...)
}

// appendField appends `,"key":"value"` for a key and a value that need no
// escaping.
func appendField(b []byte, key, value string) []byte {
	b = append(b, `,"`...)
	b = append(b, key...)
	b = append(b, `":"`...)
	b = append(b, value...)
	return append(b, '"')
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
