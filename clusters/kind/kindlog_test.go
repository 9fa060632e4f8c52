package kind

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestKindLoggerLevels(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	l := newKindLogger(log)

	l.V(0).Infof("Creating cluster %q", "ci")
	l.V(1).Info("debug detail")
	l.Warnf("node %s is slow", "ci-worker")
	l.Error("failed")

	out := buf.String()
	for _, want := range []string{`level=INFO msg="Creating cluster \"ci\"" component=kind`, `level=WARN msg="node ci-worker is slow"`, `level=ERROR msg=failed`} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "debug detail") {
		t.Errorf("a V(1) message reached an Info-level log:\n%s", out)
	}
	if l.V(1).Enabled() || !l.V(0).Enabled() {
		t.Error("Enabled() does not follow the handler's level")
	}
}
