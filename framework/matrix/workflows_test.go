package matrix

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rhysd/actionlint"
)

// newWorkflowLinter returns actionlint with shellcheck when it is installed.
// actionlint skips the shellcheck rule without it, as `go tool actionlint`
// does.
func newWorkflowLinter(t *testing.T, out *bytes.Buffer) *actionlint.Linter {
	t.Helper()
	opts := &actionlint.LinterOptions{Oneline: true}
	if path, err := exec.LookPath("shellcheck"); err == nil {
		opts.Shellcheck = path
	} else {
		t.Log("shellcheck is not installed: run: blocks are not checked by it")
	}
	l, err := actionlint.NewLinter(out, opts)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestWorkflowsPassActionlint(t *testing.T) {
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	l := newWorkflowLinter(t, &out)
	errs, err := l.LintDir(filepath.Join(root, ".github", "workflows"), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range errs {
		t.Errorf("%s:%d:%d: %s [%s]", e.Filepath, e.Line, e.Column, e.Message, e.Kind)
	}
}

// TestActionlintRejectsBrokenWorkflow shows that the check above can fail.
func TestActionlintRejectsBrokenWorkflow(t *testing.T) {
	broken := []byte(`on: push
jobs:
  test:
    runs-on: ubuntu-24.04
    strategy:
      matrix:
        cell: ${{ fromJSON(needs.cells.outputs.cells) }}
    steps:
      - run: echo "${{ matrix.cel.name }}"
`)
	var out bytes.Buffer
	errs, err := newWorkflowLinter(t, &out).Lint("broken.yml", broken, nil)
	if err != nil {
		t.Fatal(err)
	}
	var messages []string
	for _, e := range errs {
		messages = append(messages, e.Message)
	}
	joined := strings.Join(messages, "\n")
	if len(errs) != 2 || !strings.Contains(joined, `"cells"`) || !strings.Contains(joined, `"cel"`) {
		t.Errorf("actionlint found %q, want two errors: needs.cells without a needed job, and the misspelt matrix.cel", joined)
	}
}
