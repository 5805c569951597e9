package store

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/hashicorp/go-hclog"
)

// NewRaftLogger routes raft's hclog output into the node's slog logger.
func NewRaftLogger(l *slog.Logger) hclog.Logger {
	il := hclog.NewInterceptLogger(&hclog.LoggerOptions{Name: "raft", Level: hclog.Info, Output: io.Discard})
	il.RegisterSink(slogSink{l})
	return il
}

type slogSink struct{ l *slog.Logger }

func (s slogSink) Accept(name string, level hclog.Level, msg string, args ...any) {
	lvl := slog.LevelInfo
	switch {
	case level <= hclog.Debug:
		lvl = slog.LevelDebug
	case level == hclog.Warn:
		lvl = slog.LevelWarn
	case level >= hclog.Error:
		lvl = slog.LevelError
	}
	for i, a := range args {
		if f, ok := a.(hclog.Format); ok && len(f) > 0 {
			if format, ok := f[0].(string); ok {
				args[i] = fmt.Sprintf(format, f[1:]...)
			}
		}
		// raft's own keys must not repeat the line's: its "node" (itself,
		// "Node at … [Candidate]") is not the Roost node, its "time" is a
		// duration.
		if i%2 == 0 {
			if k, ok := a.(string); ok && reservedKey(k) {
				args[i] = "raft_" + k
			}
		}
	}
	s.l.Log(context.Background(), lvl, msg, args...)
}

// reservedKey reports the keys every Roost log line may already have:
// slog's own and those the node's loggers add.
func reservedKey(k string) bool {
	switch k {
	case slog.TimeKey, slog.LevelKey, slog.MessageKey, slog.SourceKey, "node", "component":
		return true
	}
	return false
}
