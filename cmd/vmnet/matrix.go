package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"slices"
	"strings"

	"github.com/olekukonko/tablewriter"
	"github.com/spf13/cobra"

	"github.com/vmnet-e2e/vmnet-e2e/clusters/providers"
	"github.com/vmnet-e2e/vmnet-e2e/framework/matrix"
	"github.com/vmnet-e2e/vmnet-e2e/framework/report"
	"github.com/vmnet-e2e/vmnet-e2e/framework/scenario"
)

// matrixOptions are the flags every matrix subcommand shares.
type matrixOptions struct {
	file      string
	scenarios string
}

func newMatrixCommand(g *globalOptions) *cobra.Command {
	o := &matrixOptions{}
	cmd := &cobra.Command{
		Use:   "matrix",
		Short: "List, run and aggregate the cells of the regression matrix (" + matrix.DefaultPath + ")",
		Long: `A cell is a provider, a set of component versions and a Ginkgo label filter.
list shows the cells and how many scenarios each selects, run runs one cell
through make, and aggregate puts the cells' JSON reports side by side and
lists what changed since a previous aggregated report.`,
	}
	cmd.PersistentFlags().StringVar(&o.file, "file", matrix.DefaultPath, "matrix file")
	cmd.PersistentFlags().StringVar(&o.scenarios, "scenarios", "scenarios", "directory of scenario files the cells select from")

	cmd.AddCommand(
		newMatrixListCommand(o),
		newMatrixRunCommand(g, o),
		newMatrixAggregateCommand(g),
	)
	return cmd
}

// load reads the matrix and the scenarios and checks them against each
// other. Errors in either file are invalid input (exit status 2).
func (o *matrixOptions) load() (*matrix.Matrix, []*scenario.Scenario, error) {
	m, err := matrix.Load(o.file)
	if err != nil {
		return nil, nil, &exitError{code: exitInvalid, err: err}
	}
	scenarios, err := scenario.LoadDir(o.scenarios)
	if err != nil {
		return nil, nil, err
	}
	if err := m.CheckScenarios(scenarios); err != nil {
		return nil, nil, &exitError{code: exitInvalid, err: fmt.Errorf("matrix: %s does not fit the scenarios in %s:\n%w", o.file, o.scenarios, err)}
	}
	return m, scenarios, nil
}

// cellListing is one cell as `vmnet matrix list -o json` prints it, for the
// nightly workflow's job matrix.
type cellListing struct {
	Name        string `json:"name"`
	Provider    string `json:"provider"`
	VersionSet  string `json:"versionSet,omitempty"`
	Versions    string `json:"versions"`
	LabelFilter string `json:"labelFilter"`
	Scenarios   int    `json:"scenarios"`
	Nightly     bool   `json:"nightly"`
	Description string `json:"description,omitempty"`
}

func newMatrixListCommand(o *matrixOptions) *cobra.Command {
	var output, provider string
	var nightly bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the cells: provider, versions, label filter and the number of scenarios each selects",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "table" && output != "json" {
				return &exitError{code: exitInvalid, err: fmt.Errorf("invalid --output %q: use table or json", output)}
			}
			if provider != "" && !slices.Contains(providers.Names, provider) {
				return &exitError{code: exitInvalid, err: fmt.Errorf("invalid --provider %q: use one of %v", provider, providers.Names)}
			}
			m, scenarios, err := o.load()
			if err != nil {
				return err
			}

			listings := []cellListing{}
			for _, c := range m.Cells {
				if (nightly && !c.Nightly) || (provider != "" && c.Provider != provider) {
					continue
				}
				run, err := m.NewRun(c.Name, scenarios, "")
				if err != nil {
					return err
				}
				listings = append(listings, cellListing{
					Name: c.Name, Provider: c.Provider, VersionSet: c.Versions, Versions: versionsOf(run),
					LabelFilter: c.LabelFilter, Scenarios: len(run.Scenarios), Nightly: c.Nightly, Description: c.Description,
				})
			}

			if output == "json" {
				// One line, so that a workflow step can write it to
				// $GITHUB_OUTPUT as cells=<json>.
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetEscapeHTML(false)
				if err := enc.Encode(listings); err != nil {
					return fmt.Errorf("matrix: encode cells: %w", err)
				}
				return nil
			}
			return writeCellTable(cmd, listings, len(matrix.Specs(scenarios)))
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "table", "output format: table or json (one line)")
	cmd.Flags().BoolVar(&nightly, "nightly", false, "list only the cells the nightly workflow runs")
	cmd.Flags().StringVar(&provider, "provider", "", "list only the cells of this provider (local or kind)")
	return cmd
}

func versionsOf(run *matrix.Run) string {
	if run.Versions == nil {
		return "host packages and kernel (recorded in cell.json)"
	}
	return matrix.VersionSummary(*run.Versions)
}

func writeCellTable(cmd *cobra.Command, listings []cellListing, total int) error {
	table := tablewriter.NewWriter(cmd.OutOrStdout())
	table.Header("Cell", "Provider", "Versions", "Label filter", "Scenarios", "Nightly")
	for _, l := range listings {
		filter := l.LabelFilter
		if filter == "" {
			filter = "(all)"
		}
		versions := l.Versions
		if l.VersionSet != "" {
			versions = l.VersionSet + ": " + versions
		}
		nightly := map[bool]string{true: "yes", false: "no"}[l.Nightly]
		if err := table.Append(l.Name, l.Provider, versions, filter, fmt.Sprintf("%d of %d", l.Scenarios, total), nightly); err != nil {
			return fmt.Errorf("matrix: table row %s: %w", l.Name, err)
		}
	}
	if err := table.Render(); err != nil {
		return fmt.Errorf("matrix: render table: %w", err)
	}
	fmt.Fprintln(cmd.OutOrStdout(), "* differs from clusters/versions.yaml. Run one cell with: make e2e CELL=<name>")
	return nil
}

func newMatrixRunCommand(g *globalOptions, o *matrixOptions) *cobra.Command {
	var printOnly, resolveDigests bool
	var makeProgram, artifactsRoot string
	cmd := &cobra.Command{
		Use:   "run CELL",
		Short: "Run one cell's scenarios through make, or print the command with --print",
		Long: `run resolves a cell into the make target of its provider (e2e-local or
e2e-kind) with LABEL_FILTER, ARTIFACTS=<artifacts>/<cell> and REPORT set, and
the version overrides of a kind cell in the environment. Before the suite it
writes <artifacts>/<cell>/cell.json with the versions, the selected scenarios
and, for a local cell, the kernel and host package versions.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, scenarios, err := o.load()
			if err != nil {
				return err
			}
			run, err := m.NewRun(args[0], scenarios, artifactsRoot)
			if err != nil {
				return &exitError{code: exitInvalid, err: err}
			}

			if printOnly {
				fmt.Fprintf(cmd.ErrOrStderr(), "# cell %s selects %d scenarios: %s\n", run.Cell.Name, len(run.Scenarios), strings.Join(run.Scenarios, ", "))
				fmt.Fprintln(cmd.OutOrStdout(), run.CommandLine(makeProgram))
				return nil
			}

			log := g.logger()
			rec := m.NewRecord(run)
			switch {
			case run.Cell.Provider == "local":
				rec.RecordHost(cmd.Context())
			case resolveDigests:
				log.Info("resolving image digests", "cell", run.Cell.Name, "images", len(rec.Images))
				rec.ResolveDigests(cmd.Context(), matrix.DockerDigestResolver)
				for _, img := range rec.Images {
					if img.Error != "" {
						log.Warn("image digest not resolved; cell.json records the error", "image", img.Image, "error", img.Error)
					}
				}
			}
			if err := rec.Write(run.RecordPath()); err != nil {
				return err
			}
			if err := rec.CheckPins(); err != nil {
				return fmt.Errorf("matrix: cell %s: %w", run.Cell.Name, err)
			}

			log.Info("running cell", "cell", run.Cell.Name, "scenarios", len(run.Scenarios), "command", run.CommandLine(makeProgram))
			if err := run.Command(cmd.Context(), makeProgram).Run(); err != nil {
				var exit *exec.ExitError
				if errors.As(err, &exit) {
					return &exitError{code: exitFailed, err: fmt.Errorf("cell %s failed: %s exited with status %d; the report is in %s", run.Cell.Name, makeProgram, exit.ExitCode(), run.ReportPath())}
				}
				return fmt.Errorf("matrix: run %s for cell %s: %w", makeProgram, run.Cell.Name, err)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&printOnly, "print", false, "print the command instead of running it")
	cmd.Flags().StringVar(&makeProgram, "make", "make", "make program to run")
	cmd.Flags().StringVar(&artifactsRoot, "artifacts", matrix.DefaultArtifactsRoot, "directory, relative to the repository root, that receives <cell>/ with the cell's artifacts")
	cmd.Flags().BoolVar(&resolveDigests, "resolve-digests", false, "resolve each kind image's tag to its digest with docker buildx imagetools inspect, record it in cell.json, and stop when a pinned digest no longer matches")
	return cmd
}

func newMatrixAggregateCommand(g *globalOptions) *cobra.Command {
	var cells []string
	var previous, outJSON, outMarkdown string
	var missingOK, failOnRegression bool
	cmd := &cobra.Command{
		Use:   "aggregate --cell NAME=report.json ... [--previous matrix-report.json]",
		Short: "Put the cells' JSON reports side by side and list what changed since a previous aggregated report",
		Long: `aggregate writes one report with a row per scenario and a column per cell, as
JSON (--out-json, the input of the next run's --previous) and Markdown
(--out-md, or standard output). With --previous it lists every verdict that
changed: regressions (the verdict stopped matching the expectation, or the
guest stopped being reachable), fixes (the reverse) and other changes.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(cells) == 0 {
				return &exitError{code: exitInvalid, err: errors.New("no --cell given: pass --cell NAME=path/report.json for each cell")}
			}
			log := g.logger()
			reports := map[string]*report.Report{}
			for _, arg := range cells {
				name, path, ok := strings.Cut(arg, "=")
				if !ok || name == "" || path == "" {
					return &exitError{code: exitInvalid, err: fmt.Errorf("invalid --cell %q: write NAME=path/report.json", arg)}
				}
				if _, dup := reports[name]; dup {
					return &exitError{code: exitInvalid, err: fmt.Errorf("--cell %s is given twice", name)}
				}
				rep, err := report.Read(path)
				switch {
				case err != nil && missingOK && errors.Is(err, fs.ErrNotExist):
					log.Warn("cell produced no report; its column is marked missing", "cell", name, "path", path)
					rep = nil
				case err != nil:
					return err
				}
				reports[name] = rep
			}

			agg := report.Aggregate(reports)
			var changes []report.Change
			if previous != "" {
				prev, err := report.ReadAggregate(previous)
				if err != nil {
					return err
				}
				changes = report.Diff(prev, agg)
				agg.ComparedWith = prev.GeneratedAt
				agg.Changes = changes
			}

			if outJSON != "" {
				if err := report.WriteAggregate(outJSON, agg); err != nil {
					return err
				}
			}
			if err := writeMarkdownTo(cmd, outMarkdown, agg, changes); err != nil {
				return err
			}

			regressions := 0
			for _, c := range changes {
				if c.Kind == report.Regression {
					regressions++
				}
			}
			if failOnRegression && regressions > 0 {
				noun := "verdicts"
				if regressions == 1 {
					noun = "verdict"
				}
				return &exitError{code: exitFailed, err: fmt.Errorf("%d %s regressed since the previous report; the Markdown report lists them", regressions, noun)}
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&cells, "cell", nil, "a cell's name and JSON report, as NAME=path/report.json (repeat for each cell)")
	cmd.Flags().StringVar(&previous, "previous", "", "aggregated JSON report of the previous run to list changes against")
	cmd.Flags().StringVar(&outJSON, "out-json", "", "write the aggregated report as JSON to this file")
	cmd.Flags().StringVar(&outMarkdown, "out-md", "", "write the aggregated report as Markdown to this file (default standard output)")
	cmd.Flags().BoolVar(&missingOK, "missing-ok", false, "mark a cell whose report file does not exist as missing instead of failing")
	cmd.Flags().BoolVar(&failOnRegression, "fail-on-regression", false, "exit with status 1 when any verdict regressed")
	return cmd
}

func writeMarkdownTo(cmd *cobra.Command, path string, agg *report.MatrixReport, changes []report.Change) error {
	if path == "" {
		return report.WriteMarkdown(cmd.OutOrStdout(), agg, changes)
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("matrix: create %s: %w", path, err)
	}
	if err := report.WriteMarkdown(f, agg, changes); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("matrix: write %s: %w", path, err)
	}
	return nil
}
