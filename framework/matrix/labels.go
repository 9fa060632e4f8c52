package matrix

import (
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/onsi/ginkgo/v2/types"

	"github.com/vmnet-e2e/vmnet-e2e/framework/report"
	"github.com/vmnet-e2e/vmnet-e2e/framework/scenario"
)

// Label keys every scenario carries.
const (
	LabelCNI      = "cni"
	LabelBinding  = "binding"
	LabelStrategy = "strategy"
)

// Labels returns the Ginkgo labels the e2e suite gives a scenario's spec:
// "cni:<x>", "binding:<y>" and "strategy:<z>", from the same fields the
// report records (report.NewResult), sorted.
//
// NOTE: e2e/scenarios_test.go (labelsOf) computes the same labels; the test
// TestSelectionMatchesGinkgoDryRun fails when the two disagree.
func Labels(s *scenario.Scenario) []string {
	r := report.NewResult(s, "")
	var labels []string
	for _, l := range []struct{ key, value string }{
		{LabelCNI, r.CNI}, {LabelBinding, r.Binding}, {LabelStrategy, r.Strategy},
	} {
		if l.value != "" {
			labels = append(labels, l.key+":"+sanitizeLabel(l.value))
		}
	}
	sort.Strings(labels)
	return labels
}

// sanitizeLabel replaces the characters Ginkgo does not allow in a label
// (types.ValidateAndCleanupLabel in ginkgo v2.34.0) with '-'.
func sanitizeLabel(s string) string {
	return strings.Map(func(r rune) rune {
		if strings.ContainsRune("&|!,()/", r) {
			return '-'
		}
		return r
	}, s)
}

// Specs returns the scenarios the e2e suite turns into specs: the files with
// a harness section. Files of plain manifests (scenarios/examples) are inputs
// for vmnet repro, and the suite skips them (e2e/scenarios_test.go).
func Specs(scenarios []*scenario.Scenario) []*scenario.Scenario {
	var specs []*scenario.Scenario
	for _, s := range scenarios {
		if s.Harness {
			specs = append(specs, s)
		}
	}
	return specs
}

// Select returns the specs (see Specs) whose labels the Ginkgo label filter
// matches, in the order given. It parses the filter with Ginkgo's own parser
// (types.ParseLabelFilter), so it selects what `ginkgo --label-filter` runs.
func Select(filter string, scenarios []*scenario.Scenario) ([]*scenario.Scenario, error) {
	match, err := types.ParseLabelFilter(filter)
	if err != nil {
		return nil, fmt.Errorf("invalid label filter %q: %w", filter, err)
	}
	var selected []*scenario.Scenario
	for _, s := range Specs(scenarios) {
		if match(Labels(s)) {
			selected = append(selected, s)
		}
	}
	return selected, nil
}

// labelRef is a key and value a label filter compares labels with.
type labelRef struct {
	key, value string
	// keyOnly is set for "key: isEmpty", which names no value.
	keyOnly bool
}

var (
	// filterRegexp matches /regexp/ terms, which the checks skip.
	filterRegexp = regexp.MustCompile(`/[^/]*/`)
	// setOperation matches "key: op {a, b}" and "key: op a" (ginkgo v2.34.0
	// types/label_filter.go, tokenize).
	setOperation = regexp.MustCompile(`(?i)([^\s&|!,()/:{}]+):\s+(containsAny|containsAll|consistsOf|isSubsetOf|isEmpty)\s*(\{[^}]*\}|[^&|!,()/]*)`)
	// filterOperators separate plain labels.
	filterOperators = regexp.MustCompile(`&&|\|\||[!,()]`)
)

// filterLabels returns every key and value a label filter names, for the
// check against the axes. Ginkgo's parser keeps its syntax tree private, so
// this reads the same tokens with regular expressions. Callers parse the
// filter with types.ParseLabelFilter first, which reports syntax errors.
func filterLabels(filter string) []labelRef {
	var refs []labelRef
	rest := filterRegexp.ReplaceAllString(filter, " ")

	for _, m := range setOperation.FindAllStringSubmatch(rest, -1) {
		key := strings.ToLower(strings.TrimSpace(m[1]))
		arg := strings.Trim(strings.TrimSpace(m[3]), "{}")
		if strings.EqualFold(m[2], "isEmpty") || strings.TrimSpace(arg) == "" {
			refs = append(refs, labelRef{key: key, keyOnly: true})
			continue
		}
		for _, v := range strings.Split(arg, ",") {
			refs = append(refs, labelRef{key: key, value: strings.ToLower(strings.TrimSpace(v))})
		}
	}
	rest = setOperation.ReplaceAllString(rest, " ")

	for _, term := range filterOperators.Split(rest, -1) {
		term = strings.TrimSpace(term)
		if term == "" {
			continue
		}
		key, value, _ := strings.Cut(term, ":")
		refs = append(refs, labelRef{key: strings.ToLower(strings.TrimSpace(key)), value: strings.ToLower(strings.TrimSpace(value))})
	}
	return refs
}
