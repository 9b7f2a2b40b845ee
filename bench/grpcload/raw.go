package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc/codes"

	"github.com/heygen-grpc/heygen-grpc/bench/internal/loadstat"
)

// The raw client (-raw) speaks gRPC over HTTP/2 frames itself, with
// golang.org/x/net/http2's Framer and hpack: one goroutine per connection
// writes each call as two pre-encoded frames (HEADERS from a header block
// encoded once, indices into HPACK's table as grpc-go sends them, and DATA
// with the request's gRPC message), reads the answer's
// frames, counts its DATA bytes, decodes its trailers for grpc-status and
// starts the next call on the same connection. A grpc-go client costs
// about as much CPU per call as the server it loads, so one core of it
// cannot always keep one core of server busy; this one costs a few
// microseconds a call, so that a throughput measurement is bound by the
// server. The server sees ordinary gRPC calls: the same method, request
// bytes, content-type, deadline (grpc-timeout) and authorization header
// as the grpc-go client sends.

// rawWindow is the flow-control window the raw client gives the server
// for every stream and the connection: the largest HTTP/2 allows, so that
// an answer never waits for a window update. The connection's window is
// given back once half of it has been used.
const rawWindow = 1<<31 - 1

// initialWindow is HTTP/2's window before the settings change it.
const initialWindow = 65535

// rawConn is one HTTP/2 connection of the raw client. It is used by one
// goroutine at a time.
type rawConn struct {
	nc         net.Conn
	br         *bufio.Reader
	bw         *bufio.Writer
	fr         *http2.Framer
	dec        *hpack.Decoder
	timeout    time.Duration
	call       rawCall
	maxStreams uint32 // the server's SETTINGS_MAX_CONCURRENT_STREAMS
	nextID     uint32
	streams    map[uint32]*rawStream
	window     uint32 // the flow-control window given to the server (rawWindow but in tests)
	used       int64  // bytes of connection window used since the last update

	// The header block being decoded: its stream, and what it said.
	blockStream uint32
	blockEnds   bool // the block ends its stream (trailers)
	grpcStatus  string
	grpcMessage string
	httpStatus  string
}

// rawStream is one call in flight.
type rawStream struct {
	start time.Time
	bytes int // DATA bytes received, gRPC prefixes included
}

// rawCall is what every call of a raw connection sends.
type rawCall struct {
	// first is the header block of a connection's first call: its fields
	// are literals that enter HPACK's dynamic table. header is the block
	// of every later call: the same fields, each an index into that table,
	// as grpc-go's client sends them, so that the server decodes a few
	// bytes of indices, not the literals again.
	first, header []byte
	// message is the request's gRPC message: the 5-byte prefix and the
	// bytes.
	message []byte
}

// rawRequest builds the calls of method with req's bytes.
func rawRequest(addr, method, token string, timeout time.Duration, req []byte) rawCall {
	var buf bytes.Buffer
	enc := hpack.NewEncoder(&buf)
	fields := []hpack.HeaderField{
		{Name: ":method", Value: "POST"},
		{Name: ":scheme", Value: "http"},
		{Name: ":path", Value: method},
		{Name: ":authority", Value: addr},
		{Name: "content-type", Value: "application/grpc"},
		{Name: "user-agent", Value: "grpcload-raw"},
		{Name: "te", Value: "trailers"},
		{Name: "grpc-timeout", Value: strconv.FormatInt(timeout.Milliseconds(), 10) + "m"},
	}
	if token != "" {
		fields = append(fields, hpack.HeaderField{Name: "authorization", Value: "Bearer " + token})
	}
	block := func() []byte {
		buf.Reset()
		for _, f := range fields {
			_ = enc.WriteField(f)
		}
		return bytes.Clone(buf.Bytes())
	}
	var c rawCall
	c.first = block()
	c.header = block() // every field now in the table: indices only
	c.message = make([]byte, 5+len(req))
	binary.BigEndian.PutUint32(c.message[1:5], uint32(len(req))) //nolint:gosec // G115: a request of a few bytes
	copy(c.message[5:], req)
	return c
}

// dialRaw connects to addr, exchanges the HTTP/2 preface and settings, and
// returns a connection ready for calls, that gives the server window
// bytes of flow-control window (at least 64 KiB) for every stream and for
// the connection.
func dialRaw(addr string, call rawCall, timeout time.Duration, window uint32) (*rawConn, error) {
	if window < initialWindow || window > rawWindow {
		return nil, fmt.Errorf("a window of %d bytes: want 64 KiB to 2 GiB", window)
	}
	d := net.Dialer{Timeout: timeout}
	nc, err := d.DialContext(context.Background(), "tcp", addr)
	if err != nil {
		return nil, err
	}
	rc := &rawConn{
		nc: nc, br: bufio.NewReaderSize(nc, 64<<10), bw: bufio.NewWriterSize(nc, 16<<10),
		timeout: timeout, call: call, nextID: 1, streams: map[uint32]*rawStream{},
		maxStreams: 100, window: window,
	}
	rc.fr = http2.NewFramer(rc.bw, rc.br)
	rc.fr.SetReuseFrames()
	rc.dec = hpack.NewDecoder(4096, rc.field)
	fail := func(err error) (*rawConn, error) {
		_ = nc.Close()
		return nil, fmt.Errorf("%s: raw HTTP/2: %w", addr, err)
	}
	if _, err := rc.bw.WriteString(http2.ClientPreface); err != nil {
		return fail(err)
	}
	if err := rc.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: window}); err != nil {
		return fail(err)
	}
	if err := rc.fr.WriteWindowUpdate(0, window-initialWindow); err != nil {
		return fail(err)
	}
	if err := rc.bw.Flush(); err != nil {
		return fail(err)
	}
	// The server's first frame is its SETTINGS.
	_ = nc.SetReadDeadline(time.Now().Add(timeout))
	f, err := rc.fr.ReadFrame()
	if err != nil {
		return fail(err)
	}
	sf, ok := f.(*http2.SettingsFrame)
	if !ok || sf.IsAck() {
		return fail(fmt.Errorf("the server's first frame is %v, want its SETTINGS", f.Header().Type))
	}
	if err := rc.settings(sf); err != nil {
		return fail(err)
	}
	return rc, nil
}

func (rc *rawConn) close() { _ = rc.nc.Close() }

// settings takes the server's settings and acknowledges them.
func (rc *rawConn) settings(sf *http2.SettingsFrame) error {
	if v, ok := sf.Value(http2.SettingMaxConcurrentStreams); ok {
		rc.maxStreams = v
	}
	return rc.fr.WriteSettingsAck()
}

// field is the hpack decoder's callback: it keeps what the call's outcome
// needs from the block being decoded.
func (rc *rawConn) field(f hpack.HeaderField) {
	switch f.Name {
	case "grpc-status":
		rc.grpcStatus = f.Value
	case "grpc-message":
		rc.grpcMessage = f.Value
	case ":status":
		rc.httpStatus = f.Value
	}
}

// start sends one call.
func (rc *rawConn) start(now time.Time) error {
	id := rc.nextID
	if id > 1<<31-1 {
		return errors.New("out of stream ids")
	}
	rc.nextID += 2
	rc.streams[id] = &rawStream{start: now}
	block := rc.call.header
	if id == 1 {
		block = rc.call.first
	}
	if err := rc.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block, EndHeaders: true}); err != nil {
		return err
	}
	return rc.fr.WriteData(id, true, rc.call.message)
}

// run makes calls on rc, k at a time, while take allows another, and
// records each when it ends (the answer's size is checked against want,
// in bytes of gRPC message without its prefix). It returns when the last
// call it started has ended; an error is the connection's, and ends the
// measurement.
func (rc *rawConn) run(k int, take func() bool, rec *loadstat.Recorder, want int) error {
	if uint32(k) > rc.maxStreams { //nolint:gosec // G115: k <= 1000
		return fmt.Errorf("%d calls at a time on one connection, but the server allows %d streams", k, rc.maxStreams)
	}
	now := time.Now()
	for range k {
		if !take() {
			break
		}
		if err := rc.start(now); err != nil {
			return err
		}
	}
	for len(rc.streams) > 0 {
		if rc.br.Buffered() == 0 {
			// Nothing left to read without waiting: send what was
			// written, then wait, but not forever.
			if err := rc.bw.Flush(); err != nil {
				return err
			}
			_ = rc.nc.SetReadDeadline(time.Now().Add(rc.timeout))
		}
		f, err := rc.fr.ReadFrame()
		if err != nil {
			return err
		}
		done, err := rc.frame(f, rec, want)
		if err != nil {
			return err
		}
		if done && take() {
			if err := rc.start(time.Now()); err != nil {
				return err
			}
		}
	}
	return rc.bw.Flush()
}

// frame handles one frame read; done says that it ended a call.
func (rc *rawConn) frame(f http2.Frame, rec *loadstat.Recorder, want int) (done bool, err error) {
	switch f := f.(type) {
	case *http2.DataFrame:
		rc.used += int64(f.Length)
		if rc.used >= int64(rc.window/2) {
			if err := rc.fr.WriteWindowUpdate(0, uint32(rc.used)); err != nil { //nolint:gosec // G115: < 2^31
				return false, err
			}
			rc.used = 0
		}
		s := rc.streams[f.StreamID]
		if s == nil {
			return false, fmt.Errorf("DATA on stream %d, which is not a call in flight", f.StreamID)
		}
		s.bytes += len(f.Data())
		if f.StreamEnded() {
			return rc.end(f.StreamID, rec, want, errors.New("stream ended without trailers")), nil
		}
	case *http2.HeadersFrame:
		rc.blockStream, rc.blockEnds = f.StreamID, f.StreamEnded()
		rc.grpcStatus, rc.grpcMessage, rc.httpStatus = "", "", ""
		return rc.block(f.HeaderBlockFragment(), f.HeadersEnded(), rec, want)
	case *http2.ContinuationFrame:
		if f.StreamID != rc.blockStream {
			return false, fmt.Errorf("CONTINUATION on stream %d inside stream %d's header block", f.StreamID, rc.blockStream)
		}
		return rc.block(f.HeaderBlockFragment(), f.HeadersEnded(), rec, want)
	case *http2.RSTStreamFrame:
		if rc.streams[f.StreamID] != nil {
			return rc.end(f.StreamID, rec, want, fmt.Errorf("RST_STREAM %v", f.ErrCode)), nil
		}
	case *http2.SettingsFrame:
		if !f.IsAck() {
			return false, rc.settings(f)
		}
	case *http2.PingFrame:
		if !f.IsAck() {
			return false, rc.fr.WritePing(true, f.Data)
		}
	case *http2.GoAwayFrame:
		return false, fmt.Errorf("GOAWAY %v: %s", f.ErrCode, f.DebugData())
	}
	// WINDOW_UPDATE needs nothing: a call sends a few bytes, and the
	// server gives its window back as it reads them.
	return false, nil
}

// block decodes a piece of a header block; at the block's end, a block
// that ends its stream (trailers) ends the call.
func (rc *rawConn) block(frag []byte, ended bool, rec *loadstat.Recorder, want int) (bool, error) {
	if _, err := rc.dec.Write(frag); err != nil {
		return false, err
	}
	if !ended {
		return false, nil
	}
	if err := rc.dec.Close(); err != nil {
		return false, err
	}
	if !rc.blockEnds {
		if rc.httpStatus != "" && rc.httpStatus != "200" {
			return false, fmt.Errorf("HTTP status %s on stream %d", rc.httpStatus, rc.blockStream)
		}
		return false, nil
	}
	var err error
	switch {
	case rc.grpcStatus == "":
		err = errors.New("trailers without grpc-status")
	case rc.grpcStatus != "0":
		// Named as grpc-go's client names it, so that both clients
		// group errors alike.
		code, perr := strconv.ParseUint(rc.grpcStatus, 10, 32)
		if perr != nil {
			code = uint64(codes.Unknown)
		}
		err = errors.New(codes.Code(code).String())
	}
	return rc.end(rc.blockStream, rec, want, err), nil
}

// end records a call's outcome; it reports whether the stream was a call
// in flight.
func (rc *rawConn) end(id uint32, rec *loadstat.Recorder, want int, err error) bool {
	s := rc.streams[id]
	if s == nil {
		return false
	}
	delete(rc.streams, id)
	size := s.bytes - 5
	if err == nil && size != want {
		err = fmt.Errorf("response of %d bytes, want %d", size, want)
	}
	if rec != nil {
		rec.Add(time.Since(s.start), int64(max(size, 0)), err)
	}
	return true
}

// rawPhase runs callers calls at a time over conns, spread as evenly as
// the callers allow, while take allows another call; it returns when every
// call has ended, with the first connection error.
func rawPhase(conns []*rawConn, callers int, take func() bool, rec *loadstat.Recorder, want int) error {
	var wg sync.WaitGroup
	errs := make([]error, len(conns))
	for i, rc := range conns {
		k := callers / len(conns)
		if i < callers%len(conns) {
			k++
		}
		wg.Go(func() { errs[i] = rc.run(k, take, rec, want) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
