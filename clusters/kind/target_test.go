package kind

import (
	"net/netip"
	"testing"
)

func TestTargetFromSpec(t *testing.T) {
	target, err := DefaultTargetResolver(loadScenario(t, macvlanScenario))
	if err != nil {
		t.Fatal(err)
	}
	if target.Probe != netip.MustParseAddr("192.0.2.10") || target.Peer != netip.MustParsePrefix("192.0.2.254/24") {
		t.Errorf("target = %s from %s, want 192.0.2.10 from 192.0.2.254/24", target.Probe, target.Peer)
	}
	if target.Attachment.Network.Name != "net1" || target.Attachment.CNI.Type != "macvlan" {
		t.Errorf("attachment = %s (%s), want net1 (macvlan)", target.Attachment.Network.Name, target.Attachment.CNI.Type)
	}
}

func TestTargetFromNetworkDataVersion1(t *testing.T) {
	target, err := DefaultTargetResolver(loadScenario(t, macvtapScenario))
	if err != nil {
		t.Fatal(err)
	}
	if target.Probe != netip.MustParseAddr("198.51.100.20") {
		t.Errorf("probe = %s, want 198.51.100.20 from networkData (address with dotted netmask)", target.Probe)
	}
	if target.Peer != netip.MustParsePrefix("198.51.100.254/24") {
		t.Errorf("peer = %s, want the subnet's highest usable address 198.51.100.254/24", target.Peer)
	}
}

func TestTargetFromNetworkDataVersion2ByMAC(t *testing.T) {
	s := loadScenario(t, macvlanScenario)
	s.Spec.Probe, s.Spec.Peer = "", ""
	target, err := DefaultTargetResolver(s)
	if err != nil {
		t.Fatal(err)
	}
	if target.Probe != netip.MustParseAddr("192.0.2.10") || target.Peer != netip.MustParsePrefix("192.0.2.254/24") {
		t.Errorf("target = %s from %s, want 192.0.2.10 from 192.0.2.254/24", target.Probe, target.Peer)
	}
}
