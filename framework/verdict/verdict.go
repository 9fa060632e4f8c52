package verdict

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/vmnet-e2e/vmnet-e2e/framework/scenario"
)

// Causes a verdict can name. The names are stable: scenario files and
// reports use them.
const (
	// CauseUnknownField: the API server refuses a manifest field under
	// strict field validation.
	CauseUnknownField = "UnknownField"
	// CauseGuestNotReady: no guest report arrived in time.
	CauseGuestNotReady = "GuestNotReady"
	// CauseGuestHasNoAddress: the guest reports the probed address on no
	// NIC, and cloud-init reports no error.
	CauseGuestHasNoAddress = "GuestHasNoAddress"
	// CauseCloudInitError: the guest reports the probed address on no NIC
	// and cloud-init recorded errors.
	CauseCloudInitError = "CloudInitError"
	// CauseGuestMACOnNoMacvlan: frames for the guest MAC never reach the
	// guest because no macvlan on the parent carries that MAC.
	CauseGuestMACOnNoMacvlan = "GuestMACOnNoMacvlan"
	// CauseUnicastNotDelivered: frames for the guest MAC never reach the
	// guest's port, for a reason other than a macvlan parent.
	CauseUnicastNotDelivered = "UnicastNotDelivered"
	// CauseAddressOnOtherNIC: the guest holds the probed address on a NIC
	// other than the one attached to the probed network.
	CauseAddressOnOtherNIC = "AddressOnOtherNIC"
	// CauseNoARPReply: no host replied to ARP for the probed address
	// although the guest has it configured.
	CauseNoARPReply = "NoARPReply"
	// CauseARPAnsweredByOtherMAC: a MAC other than the guest's answered ARP
	// for the probed address.
	CauseARPAnsweredByOtherMAC = "ARPAnsweredByOtherMAC"
	// CauseEchoLost: ARP resolved to the guest, frames reach its port, yet
	// no echo reply came back.
	CauseEchoLost = "EchoLost"
)

// KnownCauses lists every cause Derive can return.
var KnownCauses = []string{
	CauseUnknownField, CauseGuestNotReady, CauseGuestHasNoAddress, CauseCloudInitError,
	CauseAddressOnOtherNIC, CauseGuestMACOnNoMacvlan, CauseUnicastNotDelivered, CauseNoARPReply,
	CauseARPAnsweredByOtherMAC, CauseEchoLost,
}

// Verdict is the outcome with every cause found.
type Verdict struct {
	Outcome scenario.Outcome `json:"outcome"`
	Causes  []Finding        `json:"causes,omitempty"`
}

// Finding is one cause with the evidence behind it, in sentences.
type Finding struct {
	Cause    string   `json:"cause"`
	Evidence []string `json:"evidence"`
}

// CauseNames returns the verdict's cause names, sorted.
func (v Verdict) CauseNames() []string {
	names := make([]string, 0, len(v.Causes))
	for _, f := range v.Causes {
		names = append(names, f.Cause)
	}
	sort.Strings(names)
	return names
}

// String returns "outcome" or "outcome (Cause, Cause)".
func (v Verdict) String() string {
	if len(v.Causes) == 0 {
		return string(v.Outcome)
	}
	return fmt.Sprintf("%s (%s)", v.Outcome, strings.Join(v.CauseNames(), ", "))
}

// deliveryThreshold is the share of unicast frames that must reach the pod
// link for the link layer to count as delivering. Background frames
// (broadcasts, the peer's ARP and IPv6 neighbour traffic) only ever add to the
// counter, so a delivering path is at or above the number of frames sent, and
// a dropping one stays near zero.
const deliveryThreshold = 0.5

// Derive returns the verdict the evidence supports. Every unreachable cause
// whose evidence is present is named, not only the first.
func Derive(e *Evidence) Verdict {
	if e.Rejection != nil {
		return Verdict{Outcome: scenario.Rejected, Causes: []Finding{{
			Cause: CauseUnknownField,
			Evidence: []string{
				fmt.Sprintf("the API server refuses %s under fieldValidation=Strict: unknown field(s) %s",
					e.Rejection.Object, strings.Join(e.Rejection.Fields, ", ")),
				e.Rejection.Message,
			},
		}}}
	}

	if e.Echo != nil && e.Echo.Received > 0 {
		return Verdict{Outcome: scenario.Reachable}
	}

	var findings []Finding
	add := func(cause string, evidence ...string) {
		findings = append(findings, Finding{Cause: cause, Evidence: evidence})
	}

	// What the guest configured.
	guestHasAddress := false
	switch {
	case e.Guest == nil:
		add(CauseGuestNotReady, "no guest report arrived: "+orNone(e.GuestError))
	default:
		nic, ok := e.Guest.AddressOnGuest(e.Probe)
		guestHasAddress = ok
		if !ok && len(e.Guest.CloudInitErrors) > 0 {
			add(CauseCloudInitError, append([]string{
				fmt.Sprintf("the guest reports %s on no NIC (%s); cloud-init (status %q) recorded these errors:", e.Probe, describeNICs(e.Guest.Interfaces), e.Guest.CloudInitStatus),
			}, e.Guest.CloudInitErrors...)...)
		} else if !ok {
			add(CauseGuestHasNoAddress,
				fmt.Sprintf("the guest reports %s on no NIC: %s", e.Probe, describeNICs(e.Guest.Interfaces)),
				fmt.Sprintf("cloud-init status %q with no error; it rendered %s", e.Guest.CloudInitStatus, describeRendered(e.Guest.RenderedConfig)))
		} else if e.GuestMAC != "" && !strings.EqualFold(nic.MAC, e.GuestMAC) {
			add(CauseAddressOnOtherNIC, fmt.Sprintf("the guest holds %s on %s (%s), but the NIC on network %q has MAC %s",
				e.Probe, nic.Name, nic.MAC, e.Network, e.GuestMAC))
		}
	}

	// What the link layer did with frames for the guest MAC.
	if u := e.Unicast; u != nil && u.Frames > 0 {
		delivered := float64(u.ReachedPod) >= deliveryThreshold*float64(u.Frames)
		if !delivered {
			onParent := slices.ContainsFunc(e.ParentMACs, func(m string) bool { return strings.EqualFold(m, e.GuestMAC) })
			evidence := []string{
				fmt.Sprintf("%d Ethernet frames sent from the external peer to the guest MAC %s: the pod link %s received %d, the parent %s dropped %d as not addressed to it (rx_otherhost_dropped)",
					u.Frames, e.GuestMAC, u.PodLink, u.ReachedPod, e.Parent, u.ParentOtherhostDropped),
			}
			if e.CNI == "macvlan" && !onParent {
				evidence = append(evidence, fmt.Sprintf("macvlan links on parent %s carry %s; the guest MAC %s is on none of them, so the macvlan driver hands its frames to the parent's own stack",
					e.Parent, orNone(strings.Join(e.ParentMACs, ", ")), e.GuestMAC))
				add(CauseGuestMACOnNoMacvlan, evidence...)
			} else {
				add(CauseUnicastNotDelivered, evidence...)
			}
		}
	}

	// What ARP and echo showed, when the guest holds the address.
	if guestHasAddress && e.ARP != nil && !hasCause(findings, CauseAddressOnOtherNIC) {
		switch {
		case e.ARP.ReplyMAC == "":
			add(CauseNoARPReply, fmt.Sprintf("%d ARP requests for %s got no reply", e.ARP.Requests, e.Probe))
		case e.GuestMAC != "" && !strings.EqualFold(e.ARP.ReplyMAC, e.GuestMAC):
			add(CauseARPAnsweredByOtherMAC, fmt.Sprintf("ARP for %s was answered by %s, not by the guest MAC %s", e.Probe, e.ARP.ReplyMAC, e.GuestMAC))
		}
	}
	if len(findings) == 0 {
		evidence := "no echo reply"
		if e.Echo != nil {
			evidence = fmt.Sprintf("%d echo requests to %s, %d replies", e.Echo.Sent, e.Probe, e.Echo.Received)
		}
		if e.ARP != nil && e.ARP.ReplyMAC != "" {
			evidence += fmt.Sprintf("; ARP resolved %s to %s", e.Probe, e.ARP.ReplyMAC)
		}
		add(CauseEchoLost, evidence)
	}
	return Verdict{Outcome: scenario.Unreachable, Causes: findings}
}

func describeNICs(nics []GuestInterface) string {
	if len(nics) == 0 {
		return "no NICs"
	}
	var parts []string
	for _, n := range nics {
		addrs := "no address"
		if len(n.Addresses) > 0 {
			addrs = strings.Join(n.Addresses, " ")
		}
		parts = append(parts, fmt.Sprintf("%s %s %s [%s]", n.Name, n.MAC, n.State, addrs))
	}
	return strings.Join(parts, "; ")
}

func describeRendered(files map[string]string) string {
	if len(files) == 0 {
		return "no network config file"
	}
	var paths []string
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	return strings.Join(paths, ", ")
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func hasCause(findings []Finding, cause string) bool {
	return slices.ContainsFunc(findings, func(f Finding) bool { return f.Cause == cause })
}
