package verdict

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/vmnet-e2e/vmnet-e2e/framework/scenario"
)

const guestMAC = "02:00:00:00:00:0a"

func guestWith(addresses ...string) *Guest {
	return &Guest{
		Stage:           "network",
		CloudInitStatus: "done",
		Interfaces: []GuestInterface{
			{Name: "enp1s0", MAC: "02:00:00:00:00:01", State: "DOWN"},
			{Name: "enp2s0", MAC: guestMAC, State: "UP", Addresses: addresses},
		},
	}
}

func TestDerive(t *testing.T) {
	cases := []struct {
		name        string
		evidence    Evidence
		wantOutcome scenario.Outcome
		wantCauses  []string
	}{
		{
			name: "rejected",
			evidence: Evidence{Rejection: &scenario.Rejection{
				Object: "VirtualMachine/vm", Fields: []string{"spec.template.spec.networks[0].ipAddress"},
				Message: `strict decoding error: unknown field "spec.template.spec.networks[0].ipAddress"`,
			}},
			wantOutcome: scenario.Rejected,
			wantCauses:  []string{CauseUnknownField},
		},
		{
			name: "echo replied",
			evidence: Evidence{Probe: "192.0.2.10", GuestMAC: guestMAC, Guest: guestWith("192.0.2.10/24"),
				ARP: &ARP{Requests: 1, ReplyMAC: guestMAC}, Echo: &Echo{Sent: 3, Received: 3}},
			wantOutcome: scenario.Reachable,
		},
		{
			name: "macvlan drops unicast",
			evidence: Evidence{CNI: "macvlan", Parent: "vmnet0", ParentMACs: []string{"aa:bb:cc:00:00:01"},
				Probe: "192.0.2.10", GuestMAC: guestMAC, Guest: guestWith("192.0.2.10/24"),
				ARP: &ARP{Requests: 1, ReplyMAC: guestMAC}, Echo: &Echo{Sent: 3},
				Unicast: &Unicast{Frames: 10, PodLink: "x-nic", ReachedPod: 0, ParentOtherhostDropped: 10}},
			wantOutcome: scenario.Unreachable,
			wantCauses:  []string{CauseGuestMACOnNoMacvlan},
		},
		{
			name: "macvlan and no address",
			evidence: Evidence{CNI: "macvlan", Parent: "vmnet0", ParentMACs: []string{"aa:bb:cc:00:00:01"},
				Probe: "192.0.2.10", GuestMAC: guestMAC, Guest: guestWith(),
				ARP: &ARP{Requests: 3}, Echo: &Echo{Sent: 3},
				Unicast: &Unicast{Frames: 10, PodLink: "x-nic", ParentOtherhostDropped: 10}},
			wantOutcome: scenario.Unreachable,
			wantCauses:  []string{CauseGuestHasNoAddress, CauseGuestMACOnNoMacvlan},
		},
		{
			name: "no address on a delivering path",
			evidence: Evidence{CNI: "bridge", Probe: "192.0.2.10", GuestMAC: guestMAC, Guest: guestWith(),
				ARP: &ARP{Requests: 3}, Echo: &Echo{Sent: 3},
				Unicast: &Unicast{Frames: 10, PodLink: "x-nic", ReachedPod: 12}},
			wantOutcome: scenario.Unreachable,
			wantCauses:  []string{CauseGuestHasNoAddress},
		},
		{
			name: "cloud-init error",
			evidence: Evidence{CNI: "bridge", Probe: "192.0.2.10", GuestMAC: guestMAC,
				Guest: &Guest{CloudInitStatus: "error", CloudInitErrors: []string{"Not all expected physical devices present"},
					Interfaces: guestWith().Interfaces},
				ARP: &ARP{Requests: 3}, Echo: &Echo{Sent: 3}},
			wantOutcome: scenario.Unreachable,
			wantCauses:  []string{CauseCloudInitError},
		},
		{
			name: "no guest report",
			evidence: Evidence{CNI: "bridge", Probe: "192.0.2.10", GuestError: "timed out after 5m0s",
				ARP: &ARP{Requests: 3}, Echo: &Echo{Sent: 3}},
			wantOutcome: scenario.Unreachable,
			wantCauses:  []string{CauseGuestNotReady},
		},
		{
			name: "address on the other NIC",
			evidence: Evidence{CNI: "bridge", Network: "mynet", Probe: "192.0.2.10", GuestMAC: guestMAC,
				Guest: &Guest{CloudInitStatus: "done", Interfaces: []GuestInterface{
					{Name: "enp1s0", MAC: "02:00:00:00:00:01", Addresses: []string{"192.0.2.10/24"}},
					{Name: "enp2s0", MAC: guestMAC}}},
				ARP: &ARP{Requests: 3}, Echo: &Echo{Sent: 3}},
			wantOutcome: scenario.Unreachable,
			wantCauses:  []string{CauseAddressOnOtherNIC},
		},
		{
			name: "ARP unanswered",
			evidence: Evidence{CNI: "bridge", Probe: "192.0.2.10", GuestMAC: guestMAC, Guest: guestWith("192.0.2.10/24"),
				ARP: &ARP{Requests: 3}, Echo: &Echo{Sent: 3}, Unicast: &Unicast{Frames: 10, PodLink: "x-nic", ReachedPod: 10}},
			wantOutcome: scenario.Unreachable,
			wantCauses:  []string{CauseNoARPReply},
		},
		{
			name: "ARP answered by another MAC",
			evidence: Evidence{CNI: "bridge", Probe: "192.0.2.10", GuestMAC: guestMAC, Guest: guestWith("192.0.2.10/24"),
				ARP: &ARP{Requests: 1, ReplyMAC: "02:99:00:00:00:01"}, Echo: &Echo{Sent: 3}},
			wantOutcome: scenario.Unreachable,
			wantCauses:  []string{CauseARPAnsweredByOtherMAC},
		},
		{
			name: "echo lost with nothing else wrong",
			evidence: Evidence{CNI: "bridge", Probe: "192.0.2.10", GuestMAC: guestMAC, Guest: guestWith("192.0.2.10/24"),
				ARP: &ARP{Requests: 1, ReplyMAC: guestMAC}, Echo: &Echo{Sent: 3}, Unicast: &Unicast{Frames: 10, PodLink: "x-nic", ReachedPod: 10}},
			wantOutcome: scenario.Unreachable,
			wantCauses:  []string{CauseEchoLost},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := Derive(&tc.evidence)
			if v.Outcome != tc.wantOutcome {
				t.Errorf("outcome %s, want %s (verdict %s)", v.Outcome, tc.wantOutcome, v)
			}
			want := append([]string(nil), tc.wantCauses...)
			slices.Sort(want)
			if !slices.Equal(v.CauseNames(), want) {
				t.Errorf("causes %v, want %v", v.CauseNames(), want)
			}
			for _, f := range v.Causes {
				if len(f.Evidence) == 0 {
					t.Errorf("cause %s has no evidence", f.Cause)
				}
			}
		})
	}
}

func TestCompareMismatchShowsExpectedObservedEvidence(t *testing.T) {
	e := &Evidence{CNI: "macvlan", Parent: "vmnet0", Probe: "192.0.2.10", GuestMAC: guestMAC, Guest: guestWith("192.0.2.10/24"),
		ARP: &ARP{Requests: 1, ReplyMAC: guestMAC}, Echo: &Echo{Sent: 3},
		Unicast: &Unicast{Frames: 10, PodLink: "x-nic", ParentOtherhostDropped: 10}}
	v := Derive(e)

	err := Compare("macvlan-nic-name", scenario.Expectation{Outcome: scenario.Reachable}, v, e)
	var mismatch *Mismatch
	if !errors.As(err, &mismatch) {
		t.Fatalf("Compare returned %v, want a *Mismatch", err)
	}
	msg := err.Error()
	for _, want := range []string{"expected: reachable", "observed: unreachable (GuestMACOnNoMacvlan)", "rx_otherhost_dropped", `"guestMAC": "02:00:00:00:00:0a"`} {
		if !strings.Contains(msg, want) {
			t.Errorf("mismatch message lacks %q:\n%s", want, msg)
		}
	}

	if err := Compare("macvlan-nic-name", scenario.Expectation{Outcome: scenario.Unreachable, Causes: []string{CauseGuestMACOnNoMacvlan}}, v, e); err != nil {
		t.Errorf("Compare with the matching expectation: %v", err)
	}
	if err := Compare("macvlan-nic-name", scenario.Expectation{Outcome: scenario.Unreachable, Causes: []string{CauseGuestHasNoAddress}}, v, e); err == nil {
		t.Error("Compare accepted a different cause set")
	}
}

func TestValidateExpectation(t *testing.T) {
	if err := ValidateExpectation(&scenario.Expectation{Outcome: scenario.Unreachable, Causes: []string{"GuestMacOnNoMacvlan"}}); err == nil {
		t.Error("a misspelt cause passed validation")
	}
	if err := ValidateExpectation(&scenario.Expectation{Outcome: scenario.Unreachable, Causes: []string{CauseGuestMACOnNoMacvlan}}); err != nil {
		t.Error(err)
	}
}
