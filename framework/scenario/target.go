package scenario

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/vmnet-e2e/vmnet-e2e/framework/cloudinit"
)

// Target is the address the external peer probes and the interface expected
// to carry it.
type Target struct {
	Attachment Attachment
	// Address is the probed address; Prefix is it with the prefix length of
	// the config that assigns it.
	Address netip.Addr
	Prefix  netip.Prefix
	// Peer is the external peer's address in the same subnet.
	Peer netip.Prefix
	// Source is the origin of the address: "spec.probe", "networkData" or
	// "NAD IPAM".
	Source string
}

// defaultPrefixLength is used when only spec.probe names the address and no
// config gives its subnet.
const defaultPrefixLength = 24

// PredictedNICName returns the name a KubeVirt guest on q35 gives its NIC at
// interface index i (0-based, spec order): libvirt puts every device behind
// its own pcie-root-port with the NICs first, so the NIC at index i sits on
// PCI bus i+1 and udev's path-based scheme names it enp<i+1>s0. The local
// provider's guest tests check this on a booted guest.
func PredictedNICName(index int) string {
	return fmt.Sprintf("enp%ds0", index+1)
}

// Target returns the address to probe: spec.probe when set, else the first
// static address in networkData that belongs to a secondary network, else
// the first static address of a NAD's IPAM.
func (s *Scenario) Target() (Target, error) {
	secondary := s.SecondaryAttachments()
	if len(secondary) == 0 {
		return Target{}, errors.New("the VMI has no Multus network: there is no secondary network to probe")
	}

	candidates, err := s.addressCandidates(secondary)
	if err != nil {
		return Target{}, err
	}

	var t Target
	if probe, ok := s.ProbeAddress(); ok {
		t = Target{Address: probe, Source: "spec.probe", Attachment: secondary[0]}
		t.Prefix = netip.PrefixFrom(probe, defaultPrefixLength)
		for _, c := range candidates {
			if c.Prefix.Addr() == probe {
				t.Attachment, t.Prefix = c.Attachment, c.Prefix
				break
			}
		}
	} else {
		if len(candidates) == 0 {
			return Target{}, errors.New("cannot infer the address to probe: networkData has no static address and no NAD has static IPAM; set spec.probe (or pass --probe ADDRESS)")
		}
		t = candidates[0]
	}

	if s.Spec.Peer != "" {
		t.Peer, _ = netip.ParsePrefix(s.Spec.Peer)
	} else {
		peer, err := defaultPeer(t.Prefix)
		if err != nil {
			return Target{}, err
		}
		t.Peer = peer
	}
	if t.Peer.Addr() == t.Address {
		return Target{}, fmt.Errorf("the external peer %s would take the probed address %s: set spec.peer to another address", t.Peer, t.Address)
	}
	return t, nil
}

// addressCandidates lists static addresses from networkData, then from NAD
// IPAM, each with the secondary attachment it belongs to.
func (s *Scenario) addressCandidates(secondary []Attachment) ([]Target, error) {
	var out []Target

	if data := s.networkData(); len(data) > 0 {
		config, err := cloudinit.ParseNetworkData(data)
		if err != nil {
			return nil, fmt.Errorf("networkData: %w", err)
		}
		for _, ic := range config.Interfaces() {
			a, ok := attachmentFor(ic, secondary)
			if !ok {
				continue
			}
			for _, p := range ic.Addresses {
				out = append(out, Target{Attachment: a, Address: p.Addr(), Prefix: p, Source: "networkData"})
			}
		}
	}

	for _, a := range secondary {
		for _, p := range a.CNI.StaticAddresses {
			out = append(out, Target{Attachment: a, Address: p.Addr(), Prefix: p, Source: "NAD IPAM"})
		}
	}
	return out, nil
}

// attachmentFor maps a networkData entry to the secondary attachment it is
// meant for: by MAC when it matches one, else by the guest NIC name or the
// network name its key or set-name uses, else the only secondary network.
func attachmentFor(ic cloudinit.InterfaceConfig, secondary []Attachment) (Attachment, bool) {
	if ic.MAC != "" {
		for _, a := range secondary {
			if a.MAC != nil && strings.EqualFold(a.MAC.String(), ic.MAC) {
				return a, true
			}
		}
	}
	for _, a := range secondary {
		for _, name := range []string{ic.Key, ic.Name} {
			if name == PredictedNICName(a.Index) || name == a.Network.Name {
				return a, true
			}
		}
	}
	if len(secondary) == 1 {
		return secondary[0], true
	}
	return Attachment{}, false
}

// networkData returns the VMI's cloudInitNoCloud networkData as written,
// decoded when given in base64.
func (s *Scenario) networkData() []byte {
	if s.VMI == nil {
		return nil
	}
	for _, v := range s.VMI.Spec.Volumes {
		if v.CloudInitNoCloud == nil {
			continue
		}
		if v.CloudInitNoCloud.NetworkData != "" {
			return []byte(v.CloudInitNoCloud.NetworkData)
		}
		if v.CloudInitNoCloud.NetworkDataBase64 != "" {
			data, err := decodeBase64(v.CloudInitNoCloud.NetworkDataBase64)
			if err == nil {
				return data
			}
		}
	}
	return nil
}

// defaultPeer returns the highest usable address of prefix's subnet.
func defaultPeer(prefix netip.Prefix) (netip.Prefix, error) {
	if !prefix.Addr().Is4() {
		return netip.Prefix{}, fmt.Errorf("probed address %s is not IPv4: set spec.peer", prefix.Addr())
	}
	if prefix.Bits() > 30 {
		return netip.Prefix{}, fmt.Errorf("subnet %s has no room for an external peer: set spec.peer or use a prefix of /30 or shorter", prefix)
	}
	network := prefix.Masked().Addr().As4()
	hostBits := 32 - prefix.Bits()
	value := uint32(network[0])<<24 | uint32(network[1])<<16 | uint32(network[2])<<8 | uint32(network[3])
	last := value | (1<<hostBits - 1) - 1
	peer := netip.AddrFrom4([4]byte{byte(last >> 24), byte(last >> 16), byte(last >> 8), byte(last)})
	if peer == prefix.Addr() {
		last--
		peer = netip.AddrFrom4([4]byte{byte(last >> 24), byte(last >> 16), byte(last >> 8), byte(last)})
	}
	return netip.PrefixFrom(peer, prefix.Bits()), nil
}
