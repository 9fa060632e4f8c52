package scenario

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// validate checks what the harness needs to run the scenario. Problems that
// the API server would reject (unknown fields) are not errors here: they are
// the scenario's Rejection.
func (s *Scenario) validate() error {
	if err := s.validateSpec(); err != nil {
		return err
	}
	if s.VMI == nil {
		return nil
	}

	networks := map[string]bool{}
	for _, n := range s.VMI.Spec.Networks {
		networks[n.Name] = true
	}
	interfaces := map[string]bool{}
	for _, iface := range s.VMI.Spec.Domain.Devices.Interfaces {
		interfaces[iface.Name] = true
		if !networks[iface.Name] {
			return fmt.Errorf("interface %q has no network of the same name in spec.networks: add one or rename the interface", iface.Name)
		}
		if iface.MacAddress != "" {
			mac, err := net.ParseMAC(iface.MacAddress)
			if err != nil || len(mac) != 6 {
				return fmt.Errorf("interface %q has invalid macAddress %q: use six hex pairs such as 02:00:00:00:00:0a", iface.Name, iface.MacAddress)
			}
		}
	}
	for _, n := range s.VMI.Spec.Networks {
		if !interfaces[n.Name] {
			return fmt.Errorf("network %q has no interface of the same name in spec.domain.devices.interfaces: add one (for example with bridge: {})", n.Name)
		}
		if n.Multus == nil {
			continue
		}
		if n.Multus.NetworkName == "" {
			return fmt.Errorf("network %q: multus.networkName is empty: name a NetworkAttachmentDefinition", n.Name)
		}
		nad := s.nadFor(n.Multus.NetworkName)
		if nad == nil {
			return fmt.Errorf("network %q refers to NetworkAttachmentDefinition %q, which the given manifests do not contain: add the NAD manifest (or pass its file with another -f)%s",
				n.Name, qualified(s.VMI.Namespace, n.Multus.NetworkName), s.nadHint())
		}
		if _, err := ParseCNIConfig(nad.Spec.Config); err != nil {
			return fmt.Errorf("NetworkAttachmentDefinition %s/%s: %w", nad.Namespace, nad.Name, err)
		}
	}
	return nil
}

func (s *Scenario) validateSpec() error {
	if s.Spec.Probe != "" {
		if _, err := netip.ParseAddr(s.Spec.Probe); err != nil {
			return fmt.Errorf("spec.probe %q is not an IP address: write an address such as 192.0.2.10, without prefix length", s.Spec.Probe)
		}
	}
	if s.Spec.Peer != "" {
		if _, err := netip.ParsePrefix(s.Spec.Peer); err != nil {
			return fmt.Errorf("spec.peer %q is not an address with prefix length: write one such as 192.0.2.254/24", s.Spec.Peer)
		}
	}
	if e := s.Spec.Expect; e != nil {
		if !e.Outcome.Valid() {
			return fmt.Errorf("spec.expect.outcome %q is not an outcome: use reachable, unreachable or rejected", e.Outcome)
		}
		if e.Outcome == Reachable && len(e.Causes) > 0 {
			return fmt.Errorf("spec.expect: a reachable outcome has no causes, but %v are listed: remove them", e.Causes)
		}
		if e.Outcome != Reachable && len(e.Causes) == 0 {
			return fmt.Errorf("spec.expect: outcome %s needs at least one cause in spec.expect.causes", e.Outcome)
		}
	}
	return nil
}

func (s *Scenario) nadHint() string {
	if len(s.NADs) == 0 {
		return ""
	}
	var names []string
	for _, nad := range s.NADs {
		names = append(names, nad.Namespace+"/"+nad.Name)
	}
	return "; NADs present: " + strings.Join(names, ", ")
}

func qualified(namespace, ref string) string {
	if strings.Contains(ref, "/") {
		return ref
	}
	return namespace + "/" + ref
}
