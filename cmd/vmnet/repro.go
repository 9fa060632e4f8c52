package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/vmnet-e2e/vmnet-e2e/clusters/providers"
	"github.com/vmnet-e2e/vmnet-e2e/framework/lint"
	"github.com/vmnet-e2e/vmnet-e2e/framework/report"
	"github.com/vmnet-e2e/vmnet-e2e/framework/scenario"
	"github.com/vmnet-e2e/vmnet-e2e/framework/verdict"
)

// reproOutput is the document `repro -o json` prints.
type reproOutput struct {
	Scenario string            `json:"scenario"`
	Provider string            `json:"provider"`
	Verdict  verdict.Verdict   `json:"verdict"`
	Fixes    map[string]string `json:"fixes,omitempty"`
	Lint     []lint.Finding    `json:"lint"`
	Evidence *verdict.Evidence `json:"evidence"`
	Phases   []report.Phase    `json:"phases"`
	// Artifacts is the directory holding the console log, link tables and
	// evidence of the run.
	Artifacts string `json:"artifacts,omitempty"`
}

func newReproCommand(g *globalOptions) *cobra.Command {
	var files []string
	var probe, provider, output, artifacts string
	cmd := &cobra.Command{
		Use:   "repro -f FILE... [--probe ADDRESS] [--provider local|kind]",
		Short: "Run your NAD and VM manifests and say whether the static IP answers, and why not",
		Long: `repro runs the manifests as a scenario: it builds the data plane Multus and
KubeVirt would build (local provider: in network namespaces on this machine,
needs root), boots the guest with your cloud-init data, and probes the static
IP from outside the pod. It prints the verdict, every cause found with its
evidence, the pod's link table as KubeVirt leaves it, what the VMI status
would report, what the guest configured, and a fix for each cause.
The address to probe comes from --probe, else from networkData, else from the
NAD's static IPAM. Exit status: 0 reachable, 1 unreachable or rejected,
2 invalid input, 3 the harness could not run (for example without root),
130 interrupted.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := validateOutput(output); err != nil {
				return err
			}
			if probe != "" {
				if _, err := netip.ParseAddr(probe); err != nil {
					return &exitError{code: exitInvalid, err: fmt.Errorf("invalid --probe %q: give an IP address such as 192.0.2.10, without prefix length", probe)}
				}
			}
			if provider != "local" && provider != "kind" {
				return &exitError{code: exitInvalid, err: fmt.Errorf("invalid --provider %q: use local or kind", provider)}
			}

			s, err := scenario.LoadFiles(files...)
			if err != nil {
				return err
			}
			if probe != "" {
				s.Spec.Probe = probe
			}
			if s.Rejection == nil {
				// Fail on an address that cannot be inferred before anything
				// is built.
				if _, err := s.Target(); err != nil {
					return &scenario.InputError{Source: s.Source, Err: err}
				}
			}
			findings := lint.Scenario(s)

			log := g.logger()
			p, err := providers.New(cmd.Context(), provider, providers.Options{Log: log, ArtifactsDir: artifacts, Progress: os.Stderr})
			if err != nil {
				return err
			}
			if reason := p.Skip(s); reason != "" {
				return &exitError{code: exitInvalid, err: fmt.Errorf("the %s provider cannot run these manifests: %s", provider, reason)}
			}
			if _, err := p.Prepare(cmd.Context()); err != nil {
				return err
			}
			defer func() { _ = p.Teardown(cmd.Context()) }()

			phases := &report.Phases{}
			start := time.Now()
			evidence, err := p.Observe(cmd.Context(), s, phases)
			phases.Record("total", time.Since(start))
			if err != nil {
				return err
			}
			v := verdict.Derive(evidence)

			out := reproOutput{
				Scenario: s.Name, Provider: provider, Verdict: v, Fixes: fixesFor(v, findings),
				Lint: findings, Evidence: evidence, Phases: phases.List(),
			}
			if provider == "local" && artifacts != "" {
				out.Artifacts = filepath.Join(artifacts, "local", s.Name)
			}
			if out.Lint == nil {
				out.Lint = []lint.Finding{}
			}
			if output == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				if err := enc.Encode(out); err != nil {
					return err
				}
			} else {
				writeRepro(cmd.OutOrStdout(), out)
			}

			if v.Outcome != scenario.Reachable {
				return &exitError{code: exitFailed}
			}
			return nil
		},
	}
	cmd.Flags().StringSliceVarP(&files, "filename", "f", nil, "manifest file (repeat for several)")
	cmd.Flags().StringVar(&probe, "probe", "", "address to probe (default: from networkData, else the NAD's static IPAM)")
	cmd.Flags().StringVar(&provider, "provider", "local", "where to run: local (namespaces and a qemu guest here) or kind")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	cmd.Flags().StringVar(&artifacts, "artifacts", "artifacts", "directory for the console log, link tables and evidence")
	_ = cmd.MarkFlagRequired("filename")
	return cmd
}

// fixesFor returns a fix per cause of the verdict. Lint findings, which know
// the manifest, give the specific fix when one matches the cause.
func fixesFor(v verdict.Verdict, findings []lint.Finding) map[string]string {
	byCheck := map[string]string{}
	for _, f := range findings {
		if _, ok := byCheck[f.Check]; !ok {
			byCheck[f.Check] = f.Fix
		}
	}
	first := func(checks ...string) string {
		for _, c := range checks {
			if fix, ok := byCheck[c]; ok {
				return fix
			}
		}
		return ""
	}

	fixes := map[string]string{}
	for _, f := range v.Causes {
		var fix string
		switch f.Cause {
		case verdict.CauseUnknownField:
			fix = first(lint.CheckUnknownField)
		case verdict.CauseGuestMACOnNoMacvlan:
			fix = first(lint.CheckMacvlanBridge)
			if fix == "" {
				fix = "use the linux-bridge CNI plugin with the bridge binding, or the macvtap binding with macvtap-cni"
			}
		case verdict.CauseGuestHasNoAddress:
			fix = first(lint.CheckNoSuchGuestNIC, lint.CheckMACMatchWithoutMAC, lint.CheckNameTooLong)
			if fix == "" {
				fix = "check that networkData configures the NIC on this network: key it by the guest's NIC name or match it by MAC with spec macAddress; with DHCP, check that something serves DHCP on the network"
			}
		case verdict.CauseCloudInitError:
			fix = first(lint.CheckUppercaseMAC, lint.CheckMACNotString, lint.CheckNetworkDataInvalid)
			if fix == "" {
				fix = "read the cloud-init errors above and /var/log/cloud-init.log in the guest"
			}
		case verdict.CauseAddressOnOtherNIC:
			fix = "configure the address on the NIC of the probed network (see the guest's NIC names above)"
		case verdict.CauseGuestNotReady:
			fix = "read the console log in the artifacts directory: the guest did not report its network in time"
		default:
			fix = "compare the link table and counters above with a working scenario"
		}
		fixes[f.Cause] = fix
	}
	return fixes
}

func writeRepro(w io.Writer, out reproOutput) {
	e := out.Evidence
	fmt.Fprintf(w, "Verdict: %s\n", strings.ToUpper(string(out.Verdict.Outcome)))
	if e.Probe != "" {
		fmt.Fprintf(w, "  probed %s from an external peer %s on parent %s (%s CNI, %s binding, network %s)\n", e.Probe, e.Peer, e.Parent, e.CNI, e.Binding, e.Network)
	}

	if len(out.Verdict.Causes) > 0 {
		fmt.Fprintln(w, "\nCauses:")
		for _, f := range out.Verdict.Causes {
			fmt.Fprintf(w, "  %s\n", f.Cause)
			for _, line := range f.Evidence {
				fmt.Fprintf(w, "    - %s\n", line)
			}
			if fix := out.Fixes[f.Cause]; fix != "" {
				fmt.Fprintf(w, "    fix: %s\n", fix)
			}
		}
	}

	if len(e.PodLinks) > 0 {
		fmt.Fprintln(w, "\nvirt-launcher pod links, as KubeVirt's binding leaves them:")
		tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  NAME\tKIND\tSTATE\tMAC\tMASTER\tADDRESSES")
		for _, l := range e.PodLinks {
			if l.Name == "lo" {
				continue
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", l.Name, l.Kind, l.State, l.MAC, dash(l.Master), dash(strings.Join(l.Addresses, " ")))
		}
		_ = tw.Flush()
	}

	if len(e.ReportedStatus) > 0 {
		fmt.Fprintln(w, "\nVMI status.interfaces would report (without a guest agent):")
		for _, st := range e.ReportedStatus {
			fmt.Fprintf(w, "  %s: mac %s, ipAddress %s\n", st.Name, st.MAC, dash(strings.Join(st.IPAddresses, ", ")))
		}
	}

	if g := e.Guest; g != nil {
		fmt.Fprintf(w, "\nThe guest reports (cloud-init %s):\n", g.CloudInitStatus)
		for _, nic := range g.Interfaces {
			fmt.Fprintf(w, "  %s %s %s %s\n", nic.Name, nic.MAC, nic.State, dash(strings.Join(nic.Addresses, " ")))
		}
		var paths []string
		for p := range g.RenderedConfig {
			paths = append(paths, p)
		}
		sort.Strings(paths)
		for _, p := range paths {
			fmt.Fprintf(w, "  rendered %s:\n", p)
			for _, line := range strings.Split(strings.TrimRight(g.RenderedConfig[p], "\n"), "\n") {
				fmt.Fprintf(w, "    | %s\n", line)
			}
		}
	} else if e.GuestError != "" {
		fmt.Fprintf(w, "\nNo guest report: %s\n", e.GuestError)
	}

	if u := e.Unicast; u != nil {
		fmt.Fprintf(w, "\nLink layer: %d frames to the guest MAC %s: the pod link %s received %d; the parent %s dropped %d as not addressed to it (rx_otherhost_dropped).\n",
			u.Frames, e.GuestMAC, u.PodLink, u.ReachedPod, e.Parent, u.ParentOtherhostDropped)
	}
	if e.ARP != nil {
		fmt.Fprintf(w, "ARP: %s for %s, reply from %s.\n", plural(e.ARP.Requests, "request"), e.Probe, dash(e.ARP.ReplyMAC))
	}
	if e.Echo != nil {
		fmt.Fprintf(w, "ICMP echo: %d of %d answered.\n", e.Echo.Received, e.Echo.Sent)
	}

	if len(out.Lint) > 0 {
		fmt.Fprintln(w, "\nStatic checks of the manifests:")
		writeFindings(w, out.Lint)
	}
	if out.Artifacts != "" {
		fmt.Fprintf(w, "\nConsole log, link tables and evidence: %s\n", out.Artifacts)
	}
}

func plural(n int, word string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, word)
	}
	return fmt.Sprintf("%d %ss", n, word)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
