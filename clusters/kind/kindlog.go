package kind

import (
	"context"
	"fmt"
	"log/slog"

	kindlog "sigs.k8s.io/kind/pkg/log"
)

// kindLogger adapts a *slog.Logger to kind's log.Logger. V(0) messages,
// which kind shows users by default, become Info, and V(1) and above Debug.
type kindLogger struct{ log *slog.Logger }

var _ kindlog.Logger = kindLogger{}

func newKindLogger(log *slog.Logger) kindLogger {
	return kindLogger{log: log.With("component", "kind")}
}

func (l kindLogger) Warn(message string) { l.log.Warn(message) }

func (l kindLogger) Warnf(format string, args ...any) { l.log.Warn(fmt.Sprintf(format, args...)) }

func (l kindLogger) Error(message string) { l.log.Error(message) }

func (l kindLogger) Errorf(format string, args ...any) { l.log.Error(fmt.Sprintf(format, args...)) }

func (l kindLogger) V(level kindlog.Level) kindlog.InfoLogger {
	if level <= 0 {
		return kindInfoLogger{log: l.log, level: slog.LevelInfo}
	}
	return kindInfoLogger{log: l.log.With("v", int(level)), level: slog.LevelDebug}
}

type kindInfoLogger struct {
	log   *slog.Logger
	level slog.Level
}

func (l kindInfoLogger) Info(message string) { l.log.Log(context.Background(), l.level, message) }

func (l kindInfoLogger) Infof(format string, args ...any) {
	l.log.Log(context.Background(), l.level, fmt.Sprintf(format, args...))
}

func (l kindInfoLogger) Enabled() bool { return l.log.Enabled(context.Background(), l.level) }
