// Package verdict turns what a provider observed into a verdict (reachable,
// unreachable or rejected) and the causes behind it, and compares that verdict
// with a scenario's expectation.
//
// Derive reads only Evidence: API responses, link tables, guest reports,
// probe results and kernel counters. A scenario's expectation never reaches it, so a
// wrong expectation makes the comparison fail instead of bending the verdict.
package verdict

import (
	"github.com/vmnet-e2e/vmnet-e2e/framework/scenario"
)

// Evidence is the record of what a provider observed while running one
// scenario. Both providers fill the same type, so their verdicts compare.
type Evidence struct {
	// Rejection is the API's refusal; when set, nothing else was built.
	Rejection *scenario.Rejection `json:"rejection,omitempty"`
	// Warnings are the warnings the API server would return under
	// fieldValidation=Warn.
	Warnings []string `json:"warnings,omitempty"`

	// CNI is the NAD's plugin type and Binding the interface's binding, for
	// the probed network.
	CNI     string `json:"cni,omitempty"`
	Binding string `json:"binding,omitempty"`
	// Network is the VMI network name of the probed interface.
	Network string `json:"network,omitempty"`
	// Probe is the probed address and Peer the external peer's address.
	Probe string `json:"probe,omitempty"`
	Peer  string `json:"peer,omitempty"`
	// GuestMAC is the MAC of the guest NIC on the probed network.
	GuestMAC string `json:"guestMAC,omitempty"`

	// PodLinks is the virt-launcher pod's link table as the binding left it.
	PodLinks []Link `json:"podLinks,omitempty"`
	// Parent is the parent link the NAD names (macvlan/macvtap master or
	// the linux-bridge plugin's bridge).
	Parent string `json:"parent,omitempty"`
	// ParentMACs lists the MACs of every macvlan or macvtap link whose lower
	// device is Parent, in any namespace. Nil when the CNI creates none.
	ParentMACs []string `json:"parentMACs,omitempty"`

	// ReportedStatus is the VMI's status.interfaces as KubeVirt would report
	// it for each secondary network, without a guest agent.
	ReportedStatus []StatusInterface `json:"reportedStatus,omitempty"`

	// Guest is the guest's own report; nil when none arrived.
	Guest *Guest `json:"guest,omitempty"`
	// GuestError is the reason no guest report arrived (timeout, qemu exit).
	GuestError string `json:"guestError,omitempty"`

	// ARP, Echo and Unicast are the probes from the external peer.
	ARP     *ARP     `json:"arp,omitempty"`
	Echo    *Echo    `json:"echo,omitempty"`
	Unicast *Unicast `json:"unicast,omitempty"`
}

// Link is one row of a namespace's link table.
type Link struct {
	Name      string   `json:"name"`
	Kind      string   `json:"kind"`
	MAC       string   `json:"mac"`
	State     string   `json:"state"`
	Master    string   `json:"master,omitempty"`
	Lower     string   `json:"lower,omitempty"`
	Mode      string   `json:"mode,omitempty"`
	MTU       int      `json:"mtu"`
	Addresses []string `json:"addresses,omitempty"`
}

// StatusInterface is one entry of a VMI's status.interfaces.
type StatusInterface struct {
	Name string `json:"name"`
	MAC  string `json:"mac,omitempty"`
	// IPAddresses come from virt-handler's pod interface cache: the
	// addresses the CNI plugin's IPAM put on the pod link, not what the
	// guest configured (kubevirt v1.9.0 pkg/network/setup/netstat.go,
	// updateIfacesStatusFromPodCache).
	IPAddresses []string `json:"ipAddresses,omitempty"`
}

// Guest is the guest's report about itself, printed on its serial console.
type Guest struct {
	// Stage is "network" (networking configured as far as it will be) or
	// "final" (cloud-init finished).
	Stage string `json:"stage"`
	// CloudInitStatus is cloud-init's overall status (running, done, error).
	CloudInitStatus string   `json:"cloudInitStatus"`
	CloudInitErrors []string `json:"cloudInitErrors,omitempty"`
	// CloudInitWarnings are WARNING lines of cloud-init.log.
	CloudInitWarnings []string `json:"cloudInitWarnings,omitempty"`
	// RenderedConfig maps each network config file cloud-init wrote to its
	// content.
	RenderedConfig map[string]string `json:"renderedConfig,omitempty"`
	// Interfaces are the guest's NICs as `ip -j addr` showed them.
	Interfaces []GuestInterface `json:"interfaces"`
}

// GuestInterface is one guest NIC.
type GuestInterface struct {
	Name      string   `json:"name"`
	MAC       string   `json:"mac"`
	State     string   `json:"state"`
	Addresses []string `json:"addresses,omitempty"`
}

// ARP is the result of ARP requests for the probed address.
type ARP struct {
	Requests int `json:"requests"`
	// ReplyMAC is the MAC that replied, empty when none did.
	ReplyMAC string `json:"replyMAC,omitempty"`
}

// Echo is the result of ICMP echo requests to the probed address.
type Echo struct {
	Sent     int `json:"sent"`
	Received int `json:"received"`
}

// Unicast is the result of sending Ethernet frames addressed to the guest MAC
// from the external peer and counting where they arrived. It tests the link
// layer alone, whatever the guest's IP configuration.
type Unicast struct {
	Frames int `json:"frames"`
	// PodLink is the pod's end of the attachment, through which every frame
	// for the guest must pass: <hash>-nic for the bridge binding, the
	// macvtap link for the macvtap binding. ReachedPod is how much its
	// receive counter (packets and drops) rose. Frames that reach it go on to
	// the guest's tap. The tap is not counted, because whether qemu reads
	// from it depends on the guest's NIC state.
	PodLink    string `json:"podLink"`
	ReachedPod uint64 `json:"reachedPod"`
	// ParentOtherhostDropped is how much the parent link's
	// rx_otherhost_dropped counter rose: frames the parent's own stack
	// received for a MAC that is not its own and dropped.
	ParentOtherhostDropped uint64 `json:"parentOtherhostDropped"`
}

// AddressOnGuest returns the guest NIC carrying addr, if any.
func (g *Guest) AddressOnGuest(addr string) (GuestInterface, bool) {
	if g == nil {
		return GuestInterface{}, false
	}
	for _, nic := range g.Interfaces {
		for _, a := range nic.Addresses {
			if hostPart(a) == addr {
				return nic, true
			}
		}
	}
	return GuestInterface{}, false
}

func hostPart(prefix string) string {
	for i := 0; i < len(prefix); i++ {
		if prefix[i] == '/' {
			return prefix[:i]
		}
	}
	return prefix
}
