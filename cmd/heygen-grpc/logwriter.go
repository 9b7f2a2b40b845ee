package main

import (
	"context"
	"io"
	"log/slog"
	"sync/atomic"
	"time"

	"go.uber.org/zap/zapcore"
)

// Log batching. Every RPC writes one info line; written one by one, each
// line is a write(2) of its own, which profiled at about 3% of a cached
// call's server CPU (bench/RESULTS.md). The log's writer therefore keeps
// lines in a buffer and writes them together, at the latest
// logFlushInterval after they were logged, or as soon as logBufferSize is
// full. A line at warn or above is written at once, together with every
// line before it, so what an operator is paged for never waits in a
// buffer, and the log keeps its order. [logOutput.Close] writes what is
// left when the process stops; a process killed by a signal it cannot
// catch (SIGKILL, the OOM killer) or by a panic outside an RPC loses at
// most the info lines of its last logFlushInterval.
//
// The buffer is zapcore.BufferedWriteSyncer: a well-kept buffered writer
// with a flush timer and a stop that drains it, rather than one more
// hand-written one. Only it is used from zap; slog stays the logger.
//
// logBufferSize is half of a Linux pipe's default capacity (64 KiB). A
// container's output is a pipe that the runtime drains, and a write larger
// than the room left in it blocks until the runtime has read enough, while
// the buffer's lock is held and every call that logs waits behind it. With
// 256 KiB flushes (four times the pipe) cached ListAvatars under load
// (bench/grpcload -raw, 32 callers) made 8-16% fewer calls a second, and
// used 7-11% more CPU per call, than with 32 KiB, in three A/B runs of
// the same gateway. A 32 KiB write still carries about 80 lines.
const (
	logFlushInterval = 100 * time.Millisecond
	logBufferSize    = 32 << 10
)

// logOutput is the log's buffered writer.
type logOutput struct {
	buf    *zapcore.BufferedWriteSyncer
	w      io.Writer
	closed atomic.Bool
}

// newLogOutput buffers w. w's own Sync (fsync, for a file) is never
// called: handing the lines to w is enough, as it was without the buffer.
func newLogOutput(w io.Writer) *logOutput {
	return &logOutput{w: w, buf: &zapcore.BufferedWriteSyncer{
		WS:            zapcore.AddSync(writerOnly{w}),
		Size:          logBufferSize,
		FlushInterval: logFlushInterval,
	}}
}

// writerOnly hides the writer's other methods (Sync).
type writerOnly struct{ io.Writer }

// Write implements io.Writer. After Close, lines are written at once.
func (o *logOutput) Write(p []byte) (int, error) {
	if o.closed.Load() {
		return o.w.Write(p)
	}
	return o.buf.Write(p)
}

// Flush writes the buffered lines now.
func (o *logOutput) Flush() error { return o.buf.Sync() }

// Close writes what is left and stops the flush timer.
func (o *logOutput) Close() error {
	o.closed.Store(true)
	return o.buf.Stop()
}

// flushAbove is a slog handler that writes its output's buffer out after
// every record at level or above.
type flushAbove struct {
	slog.Handler
	level slog.Level
	out   *logOutput
}

// Handle implements slog.Handler.
func (h flushAbove) Handle(ctx context.Context, r slog.Record) error {
	err := h.Handler.Handle(ctx, r)
	if r.Level >= h.level {
		if ferr := h.out.Flush(); err == nil {
			err = ferr
		}
	}
	return err
}

// WithAttrs implements slog.Handler.
func (h flushAbove) WithAttrs(as []slog.Attr) slog.Handler {
	return flushAbove{Handler: h.Handler.WithAttrs(as), level: h.level, out: h.out}
}

// WithGroup implements slog.Handler.
func (h flushAbove) WithGroup(name string) slog.Handler {
	return flushAbove{Handler: h.Handler.WithGroup(name), level: h.level, out: h.out}
}
