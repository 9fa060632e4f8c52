package cleanup

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

// NotifyContext returns a context that is cancelled on the first SIGINT or
// SIGTERM, so that every wait returns and deferred cleanup runs. A second
// signal exits at once with status 130; Reap removes what that leaves behind.
// Call stop to restore the default signal behaviour.
func NotifyContext(parent context.Context) (ctx context.Context, stop func()) {
	ctx, cancel := context.WithCancel(parent)
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)

	done := make(chan struct{})
	go func() {
		select {
		case <-signals:
			cancel()
		case <-done:
			return
		}
		select {
		case <-signals:
			os.Exit(130)
		case <-done:
		}
	}()

	return ctx, func() {
		signal.Stop(signals)
		close(done)
		cancel()
	}
}
