package lint

import (
	"fmt"
	"strings"

	"github.com/vmnet-e2e/vmnet-e2e/framework/cloudinit"
	"github.com/vmnet-e2e/vmnet-e2e/framework/scenario"
)

// networkData checks the VMI's cloud-init networkData against the NICs the
// guest will have.
func networkData(s *scenario.Scenario) []Finding {
	data, path := networkDataOf(s)
	if data == nil {
		return nil
	}
	object := vmObject(s)

	config, err := cloudinit.ParseNetworkData(data)
	if err != nil {
		return []Finding{{
			Check: CheckNetworkDataInvalid, Severity: Error, Object: object, Path: path,
			Message: err.Error(),
			Fix:     "write a cloud-init network config version 1 or 2 (https://cloudinit.readthedocs.io/en/latest/reference/network-config.html)",
		}}
	}
	if config.Disabled {
		return nil
	}

	var out []Finding
	nics := guestNICs(s)
	specMACs := map[string]scenario.Attachment{}
	for _, a := range s.Attachments() {
		if a.MAC != nil {
			specMACs[a.MAC.String()] = a
		}
	}

	for _, e := range config.Ethernets {
		entry := fmt.Sprintf("%s: ethernets.%s", path, e.Key)
		out = append(out, checkEntry(object, entry, e.Key, e.SetName, e.Match.MACAddress, e.Match.MACAddressNotString, e.Match.Name != "" || e.Match.Driver != "", nics, specMACs, s)...)
	}
	for i, p := range config.Physical {
		entry := fmt.Sprintf("%s: config[%d] (physical %s)", path, i, p.Name)
		out = append(out, checkEntry(object, entry, p.Name, p.Name, p.MACAddress, false, false, nics, specMACs, s)...)
	}
	return out
}

// checkEntry checks one NIC entry: key is the v2 key or the v1 name, setName
// the name cloud-init renames the NIC to, mac the MAC it matches (v2
// match.macaddress or v1 mac_address).
func checkEntry(object, path, key, setName, mac string, macNotString, matchOther bool,
	nics map[string]scenario.Attachment, specMACs map[string]scenario.Attachment, s *scenario.Scenario) []Finding {
	var out []Finding
	add := func(check string, severity Severity, message, fix string) {
		out = append(out, Finding{Check: check, Severity: severity, Object: object, Path: path, Message: message, Fix: fix})
	}

	// names the kernel refuses (IFNAMSIZ)
	for _, name := range []string{setName, key} {
		if len(name) > maxNameLength && (name == setName || mac == "") {
			add(CheckNameTooLong, Error,
				fmt.Sprintf("interface name %q is %d bytes; Linux allows %d, so the rename or the match by name fails", name, len(name), maxNameLength),
				"use a name of at most 15 bytes")
			break
		}
	}

	switch {
	case macNotString:
		add(CheckMACNotString, Error,
			fmt.Sprintf("the MAC %s is unquoted and made of decimal groups below 60: YAML 1.1, which cloud-init reads with PyYAML, takes it as a sexagesimal integer, not a MAC", mac),
			fmt.Sprintf("quote it: macaddress: %q", mac))

	case mac != "":
		lower := strings.ToLower(mac)
		if mac != lower {
			severity, consequence := Warning, "cloud-init's own MAC lookup (and the eni and networkd renderers) misses it; netplan parses it and still matches"
			if setName != "" {
				severity = Error
				consequence = `with set-name, cloud-init 22.4.2 waits for a NIC with that exact string among the lowercase MACs in sysfs (cloudinit/distros/networking.py, wait_for_physdevs), fails init-local with "Not all expected physical devices present" and writes no network config at all`
			}
			add(CheckUppercaseMAC, severity,
				fmt.Sprintf("the MAC %s is upper case: %s", mac, consequence),
				fmt.Sprintf("write it in lower case: %s", lower))
		}
		if _, ok := specMACs[lower]; !ok {
			add(CheckMACMatchWithoutMAC, Error,
				fmt.Sprintf("the entry matches MAC %s, which no interface sets as spec macAddress: without one, the guest MAC is the CNI link's MAC, chosen when the pod is created (kubevirt v1.9.0 pkg/network/domainspec/generators.go)", mac),
				fmt.Sprintf("set macAddress: %q on the interface this entry is for (%s)", lower, describeGuestNICs(s)))
		}

	case matchOther:
		// match.name or match.driver: netplan resolves these; nothing to
		// predict from the spec alone.

	default:
		if _, ok := nics[key]; !ok {
			fix := "key the entry by the guest's NIC name, or match it by MAC with spec macAddress"
			if secondary := s.SecondaryAttachments(); len(secondary) == 1 {
				fix = fmt.Sprintf("key the entry by %s, the guest's name for the secondary network %q, or match it by MAC with spec macAddress", scenario.PredictedNICName(secondary[0].Index), secondary[0].Network.Name)
			}
			if a, ok := attachmentNamed(s, key); ok {
				fix = fmt.Sprintf("key the entry by %s, the guest's name for network %q, or match it by MAC with spec macAddress", scenario.PredictedNICName(a.Index), a.Network.Name)
			}
			add(CheckNoSuchGuestNIC, Error,
				fmt.Sprintf("without a match, cloud-init takes the key %q as the interface name (cloudinit/net/network_state.py, handle_ethernets), but the guest's NICs will be %s: the entry configures nothing, and cloud-init reports no error",
					key, describeGuestNICs(s)),
				fix)
		}
	}
	return out
}

// attachmentNamed returns the attachment whose network is called name.
func attachmentNamed(s *scenario.Scenario, name string) (scenario.Attachment, bool) {
	for _, a := range s.Attachments() {
		if a.Network.Name == name {
			return a, true
		}
	}
	return scenario.Attachment{}, false
}
