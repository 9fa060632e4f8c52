package matrix

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/vmnet-e2e/vmnet-e2e/clusters/kind"
	"github.com/vmnet-e2e/vmnet-e2e/framework/scenario"
)

// DefaultArtifactsRoot is the directory that receives one subdirectory of
// artifacts per cell. It is relative to the repository root because the
// Makefile prefixes ARTIFACTS with $(CURDIR).
const DefaultArtifactsRoot = "artifacts"

// Run is a cell resolved into what runs it: the make target, its variables
// and the environment.
type Run struct {
	Cell Cell
	// Versions are the kind provider's versions with the cell's version
	// set applied; nil for a local cell.
	Versions *kind.Versions
	// Scenarios are the names of the scenarios the label filter selects.
	Scenarios []string
	// GuestImages are the containerDisk images those scenarios boot.
	GuestImages []string
	// ArtifactsDir receives the cell's report.json, junit.xml, cell.json
	// and per-scenario artifacts.
	ArtifactsDir string
	// Env holds the variables the run adds to the environment: the
	// version overrides of a kind cell.
	Env map[string]string
}

// NewRun resolves the cell called name against the scenarios (to list what
// it selects) and puts its artifacts under artifactsRoot/<name>, which must
// be a relative path.
func (m *Matrix) NewRun(name string, scenarios []*scenario.Scenario, artifactsRoot string) (*Run, error) {
	cell, err := m.Cell(name)
	if err != nil {
		return nil, err
	}
	if artifactsRoot == "" {
		artifactsRoot = DefaultArtifactsRoot
	}
	if path.IsAbs(artifactsRoot) || strings.HasPrefix(path.Clean(artifactsRoot), "..") {
		return nil, fmt.Errorf("matrix: artifacts directory %q must be relative to the repository root and inside it: the Makefile prefixes it with $(CURDIR)", artifactsRoot)
	}

	selected, err := Select(cell.LabelFilter, scenarios)
	if err != nil {
		return nil, fmt.Errorf("matrix: cell %s: %w", name, err)
	}
	r := &Run{Cell: *cell, ArtifactsDir: path.Join(artifactsRoot, cell.Name), Env: map[string]string{}}
	for _, s := range selected {
		r.Scenarios = append(r.Scenarios, s.Name)
		for _, image := range ContainerDiskImages(s) {
			if !slices.Contains(r.GuestImages, image) {
				r.GuestImages = append(r.GuestImages, image)
			}
		}
	}
	slices.Sort(r.GuestImages)

	if cell.Provider == "kind" {
		set, ok := m.VersionSet(cell.Versions)
		if !ok {
			return nil, fmt.Errorf("matrix: cell %s names version set %q, which does not exist", name, cell.Versions)
		}
		versions, err := set.KindVersions()
		if err != nil {
			return nil, fmt.Errorf("matrix: cell %s: %w", name, err)
		}
		r.Versions = &versions
		r.Env = set.Env()
	}
	return r, nil
}

// ReportPath returns the path of the cell's JSON report.
func (r *Run) ReportPath() string { return path.Join(r.ArtifactsDir, "report.json") }

// RecordPath returns the path of the cell's cell.json.
func (r *Run) RecordPath() string { return path.Join(r.ArtifactsDir, "cell.json") }

// MakeArgs returns the make target and variables that run the cell: the
// provider's e2e target, which already builds the guest image or checks the
// kind prerequisites and writes JUnit beside the report.
func (r *Run) MakeArgs() []string {
	return []string{
		"e2e-" + r.Cell.Provider,
		"LABEL_FILTER=" + r.Cell.LabelFilter,
		"ARTIFACTS=" + r.ArtifactsDir,
		"REPORT=" + r.ReportPath(),
	}
}

// CommandLine returns the command as a shell line a user can copy:
// "env NAME=value ... make e2e-kind LABEL_FILTER=... ARTIFACTS=...".
func (r *Run) CommandLine(makeProgram string) string {
	var words []string
	if len(r.Env) > 0 {
		words = append(words, "env")
		for _, pair := range sortedEnv(r.Env) {
			words = append(words, shellQuote(pair))
		}
	}
	words = append(words, shellQuote(makeProgram))
	for _, arg := range r.MakeArgs() {
		words = append(words, shellQuote(arg))
	}
	return strings.Join(words, " ")
}

// teardownGrace is how long a cancelled run gets to remove what it created
// before make is killed: the suite's SynchronizedAfterSuite allows 10
// minutes for the provider's teardown, a spec's cleanup less.
const teardownGrace = 10 * time.Minute

// Command returns the make command with the run's environment added to this
// process's, writing to this process's stdout and stderr. When ctx is
// cancelled, make gets SIGINT, as from Ctrl-C, so that the suite removes what
// it created. Make is killed only if it has not exited after teardownGrace.
func (r *Run) Command(ctx context.Context, makeProgram string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, makeProgram, r.MakeArgs()...)
	cmd.Env = append(os.Environ(), sortedEnv(r.Env)...)
	cmd.Stdout = os.Stdout
	cmd.Stderr = os.Stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = teardownGrace
	return cmd
}

var shellSafe = regexp.MustCompile(`^[A-Za-z0-9_./:=@+,-]+$`)

// shellQuote quotes s for a POSIX shell when it needs quoting.
func shellQuote(s string) string {
	if shellSafe.MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
