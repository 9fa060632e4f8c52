package cloudinit

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// NetworkConfig is networkData as cloud-init 22.4.2 reads it, for other code
// to inspect. Parsing never changes the bytes written to the seed.
//
// cloud-init loads network-config with PyYAML's safe_load (YAML 1.1) and, when
// the document has a top-level "network" key, uses the value of that key
// (cloudinit/stages.py, _remove_top_level_network_key).
type NetworkConfig struct {
	// Version is 1 or 2.
	Version int
	// NetworkKey reports that the document was wrapped in a top-level
	// "network:" key.
	NetworkKey bool
	// Disabled reports "config: disabled", which turns networking config off
	// (cloudinit/net/__init__.py, is_disabled_cfg).
	Disabled bool
	// Ethernets are the entries of a v2 "ethernets" section, in document
	// order.
	Ethernets []Ethernet
	// Physical are the "type: physical" entries of a v1 "config" list.
	Physical []Physical
	// Sections lists the other v2 sections present (bonds, bridges, vlans,
	// ...) or the other v1 entry types, which this parser does not model.
	Sections []string
}

// Ethernet is one v2 ethernets entry.
type Ethernet struct {
	// Key is the entry's key. Without set-name and without a MAC match that
	// finds a NIC, cloud-init takes the key as the interface name
	// (cloudinit/net/network_state.py, handle_ethernets).
	Key       string
	Match     Match
	SetName   string
	Addresses []string
	DHCP4     *bool
	DHCP6     *bool
	Gateway4  string
	MTU       int
	Optional  *bool
}

// Match is a v2 match section.
type Match struct {
	// MACAddress is the value as written. cloud-init's wait_for_physdevs
	// compares it, without lowering its case, with the lowercase MACs in
	// sysfs (cloudinit/distros/networking.py).
	MACAddress string
	// MACAddressNotString reports an unquoted MAC of decimal digits whose
	// groups are all below 60, for example 10:20:30:40:50:59. YAML 1.1
	// reads it as a sexagesimal integer, so cloud-init does not get the MAC
	// as written.
	MACAddressNotString bool
	Name                string
	Driver              string
}

// Physical is one v1 "type: physical" entry.
type Physical struct {
	Name       string
	MACAddress string
	MTU        int
	Subnets    []Subnet
}

// Subnet is one v1 subnet.
type Subnet struct {
	Type    string
	Address string
	Netmask string
	Gateway string
}

// InterfaceConfig is one configured NIC in either version, normalized.
type InterfaceConfig struct {
	// Key is the v2 entry key or the v1 name.
	Key string
	// Name is the name cloud-init configures when no MAC lookup applies:
	// set-name, else the key (v2), or the v1 name.
	Name    string
	MAC     string
	SetName string
	// Addresses are the static addresses. An entry that does not parse is
	// in InvalidAddresses.
	Addresses        []netip.Prefix
	InvalidAddresses []string
	DHCP4            bool
}

// Interfaces returns the configured physical NICs, v1 or v2.
func (c *NetworkConfig) Interfaces() []InterfaceConfig {
	var out []InterfaceConfig
	for _, e := range c.Ethernets {
		ic := InterfaceConfig{Key: e.Key, Name: e.Key, MAC: e.Match.MACAddress, SetName: e.SetName}
		if e.SetName != "" {
			ic.Name = e.SetName
		}
		ic.DHCP4 = e.DHCP4 != nil && *e.DHCP4
		for _, a := range e.Addresses {
			if p, err := netip.ParsePrefix(a); err == nil {
				ic.Addresses = append(ic.Addresses, p)
			} else {
				ic.InvalidAddresses = append(ic.InvalidAddresses, a)
			}
		}
		out = append(out, ic)
	}
	for _, p := range c.Physical {
		ic := InterfaceConfig{Key: p.Name, Name: p.Name, MAC: p.MACAddress}
		for _, s := range p.Subnets {
			switch s.Type {
			case "dhcp", "dhcp4":
				ic.DHCP4 = true
			case "static", "static4":
				prefix, err := v1Prefix(s)
				if err != nil {
					ic.InvalidAddresses = append(ic.InvalidAddresses, s.Address)
					continue
				}
				ic.Addresses = append(ic.Addresses, prefix)
			}
		}
		out = append(out, ic)
	}
	return out
}

// v1Prefix reads a v1 static subnet: address with a /len, or address plus
// netmask.
func v1Prefix(s Subnet) (netip.Prefix, error) {
	if strings.Contains(s.Address, "/") {
		return netip.ParsePrefix(s.Address)
	}
	addr, err := netip.ParseAddr(s.Address)
	if err != nil {
		return netip.Prefix{}, err
	}
	if s.Netmask == "" {
		return netip.PrefixFrom(addr, addr.BitLen()), nil
	}
	mask, err := netip.ParseAddr(s.Netmask)
	if err != nil {
		return netip.Prefix{}, err
	}
	ones := 0
	for _, b := range mask.AsSlice() {
		for i := 7; i >= 0; i-- {
			if b&(1<<i) != 0 {
				ones++
			}
		}
	}
	return netip.PrefixFrom(addr, ones), nil
}

// ParseNetworkData parses networkData (v1 or v2, with or without a
// top-level "network:" key).
func ParseNetworkData(data []byte) (*NetworkConfig, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("cloudinit: networkData is not valid YAML: %w", err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil, errors.New("cloudinit: networkData is empty")
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("cloudinit: networkData must be a mapping, found a %s at line %d", kindName(root), root.Line)
	}

	cfg := &NetworkConfig{}
	if inner := mapValue(root, "network"); inner != nil {
		cfg.NetworkKey = true
		root = inner
		if root.Kind != yaml.MappingNode {
			return nil, fmt.Errorf("cloudinit: networkData's network key must hold a mapping, found a %s at line %d", kindName(root), root.Line)
		}
	}
	if c := mapValue(root, "config"); c != nil && c.Kind == yaml.ScalarNode && c.Value == "disabled" {
		cfg.Disabled = true
		return cfg, nil
	}

	versionNode := mapValue(root, "version")
	if versionNode == nil {
		return nil, errors.New("cloudinit: networkData has no version: set version: 1 or version: 2")
	}
	version, err := strconv.Atoi(versionNode.Value)
	if err != nil {
		return nil, fmt.Errorf("cloudinit: networkData version %q is not a number", versionNode.Value)
	}
	cfg.Version = version

	switch version {
	case 1:
		err = parseV1(root, cfg)
	case 2:
		err = parseV2(root, cfg)
	default:
		return nil, fmt.Errorf("cloudinit: networkData version %d is not supported by cloud-init: use 1 or 2", version)
	}
	if err != nil {
		return nil, err
	}
	return cfg, nil
}

func parseV2(root *yaml.Node, cfg *NetworkConfig) error {
	for i := 0; i+1 < len(root.Content); i += 2 {
		key, value := root.Content[i].Value, root.Content[i+1]
		switch key {
		case "version", "renderer":
		case "ethernets":
			if value.Kind != yaml.MappingNode {
				return fmt.Errorf("cloudinit: networkData ethernets must be a mapping, found a %s at line %d", kindName(value), value.Line)
			}
			for j := 0; j+1 < len(value.Content); j += 2 {
				eth, err := parseEthernet(value.Content[j].Value, value.Content[j+1])
				if err != nil {
					return err
				}
				cfg.Ethernets = append(cfg.Ethernets, eth)
			}
		default:
			cfg.Sections = append(cfg.Sections, key)
		}
	}
	return nil
}

func parseEthernet(key string, node *yaml.Node) (Ethernet, error) {
	eth := Ethernet{Key: key}
	if node.Kind == yaml.ScalarNode && node.Tag == "!!null" {
		return eth, nil
	}
	if node.Kind != yaml.MappingNode {
		return eth, fmt.Errorf("cloudinit: networkData ethernets entry %q must be a mapping, found a %s at line %d", key, kindName(node), node.Line)
	}

	if m := mapValue(node, "match"); m != nil && m.Kind == yaml.MappingNode {
		if mac := mapValue(m, "macaddress"); mac != nil {
			eth.Match.MACAddress = mac.Value
			eth.Match.MACAddressNotString = mac.Style == 0 && sexagesimalRE.MatchString(mac.Value)
		}
		eth.Match.Name = scalar(mapValue(m, "name"))
		eth.Match.Driver = scalar(mapValue(m, "driver"))
	}

	eth.SetName = scalar(mapValue(node, "set-name"))
	if a := mapValue(node, "addresses"); a != nil {
		if a.Kind != yaml.SequenceNode {
			return eth, fmt.Errorf("cloudinit: networkData ethernets entry %q: addresses must be a list, found a %s at line %d", key, kindName(a), a.Line)
		}
		for _, item := range a.Content {
			eth.Addresses = append(eth.Addresses, item.Value)
		}
	}

	eth.DHCP4 = yaml11Bool(mapValue(node, "dhcp4"))
	eth.DHCP6 = yaml11Bool(mapValue(node, "dhcp6"))
	eth.Optional = yaml11Bool(mapValue(node, "optional"))
	eth.Gateway4 = scalar(mapValue(node, "gateway4"))
	if mtu := mapValue(node, "mtu"); mtu != nil {
		eth.MTU, _ = strconv.Atoi(mtu.Value)
	}
	return eth, nil
}

func parseV1(root *yaml.Node, cfg *NetworkConfig) error {
	list := mapValue(root, "config")
	if list == nil {
		return nil
	}
	if list.Kind != yaml.SequenceNode {
		return fmt.Errorf("cloudinit: networkData v1 config must be a list, found a %s at line %d", kindName(list), list.Line)
	}
	for _, entry := range list.Content {
		if entry.Kind != yaml.MappingNode {
			continue
		}
		typ := scalar(mapValue(entry, "type"))
		if typ != "physical" {
			cfg.Sections = append(cfg.Sections, typ)
			continue
		}
		p := Physical{Name: scalar(mapValue(entry, "name")), MACAddress: scalar(mapValue(entry, "mac_address"))}
		if mtu := mapValue(entry, "mtu"); mtu != nil {
			p.MTU, _ = strconv.Atoi(mtu.Value)
		}
		if subnets := mapValue(entry, "subnets"); subnets != nil && subnets.Kind == yaml.SequenceNode {
			for _, s := range subnets.Content {
				p.Subnets = append(p.Subnets, Subnet{
					Type:    scalar(mapValue(s, "type")),
					Address: scalar(mapValue(s, "address")),
					Netmask: scalar(mapValue(s, "netmask")),
					Gateway: scalar(mapValue(s, "gateway")),
				})
			}
		}
		cfg.Physical = append(cfg.Physical, p)
	}
	return nil
}

// sexagesimalRE is YAML 1.1's base-60 integer form. PyYAML's safe_load
// (6.0, as in Debian 12) reads 52:54:00:12:34:56 unquoted as 41135085296.
var sexagesimalRE = regexp.MustCompile(`^[-+]?[1-9][0-9_]*(:[0-5]?[0-9])+$`)

// yaml11Bool reads a boolean the way PyYAML does: yes/no, true/false and
// on/off in lower, title or upper case.
func yaml11Bool(n *yaml.Node) *bool {
	if n == nil || n.Kind != yaml.ScalarNode {
		return nil
	}
	var v bool
	switch n.Value {
	case "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON":
		v = true
	case "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF":
		v = false
	default:
		return nil
	}
	return &v
}

func mapValue(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

func scalar(n *yaml.Node) string {
	if n == nil || n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		return ""
	}
	return n.Value
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	case yaml.ScalarNode:
		return "scalar"
	case yaml.AliasNode:
		return "alias"
	}
	return "node"
}
