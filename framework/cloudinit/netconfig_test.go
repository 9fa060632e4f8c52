package cloudinit

import (
	"net/netip"
	"slices"
	"testing"
)

func TestParseNetworkDataV2(t *testing.T) {
	for name, data := range map[string]string{
		"plain": `version: 2
ethernets:
  secondary:
    match:
      macaddress: 02:00:c0:00:02:02
    set-name: net1
    addresses: [192.0.2.10/24]
    dhcp4: no
  mynet:
    dhcp4: yes
`,
		"network key": `network:
  version: 2
  ethernets:
    secondary:
      match:
        macaddress: "02:00:c0:00:02:02"
      set-name: net1
      addresses:
        - 192.0.2.10/24
      dhcp4: false
    mynet:
      dhcp4: true
`,
	} {
		t.Run(name, func(t *testing.T) {
			cfg, err := ParseNetworkData([]byte(data))
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Version != 2 {
				t.Errorf("version %d, want 2", cfg.Version)
			}
			if cfg.NetworkKey != (name == "network key") {
				t.Errorf("NetworkKey %t for %s", cfg.NetworkKey, name)
			}
			ifaces := cfg.Interfaces()
			if len(ifaces) != 2 {
				t.Fatalf("got %d interfaces, want 2", len(ifaces))
			}
			first := ifaces[0]
			if first.Key != "secondary" || first.Name != "net1" || first.SetName != "net1" || first.MAC != "02:00:c0:00:02:02" {
				t.Errorf("first entry %+v, want key secondary, set-name net1, MAC 02:00:c0:00:02:02", first)
			}
			if want := []netip.Prefix{netip.MustParsePrefix("192.0.2.10/24")}; !slices.Equal(first.Addresses, want) {
				t.Errorf("addresses %v, want %v", first.Addresses, want)
			}
			if first.DHCP4 {
				t.Errorf("dhcp4 read as true for %q", "no/false")
			}
			second := ifaces[1]
			if second.Key != "mynet" || second.Name != "mynet" || second.MAC != "" || !second.DHCP4 {
				t.Errorf("second entry %+v, want key and name mynet with dhcp4 and no MAC", second)
			}
		})
	}
}

func TestParseNetworkDataV1(t *testing.T) {
	data := `network:
  version: 1
  config:
    - type: physical
      name: eth1
      mac_address: "02:00:c0:00:02:02"
      subnets:
        - type: static
          address: 192.0.2.10
          netmask: 255.255.255.0
        - type: static
          address: 198.51.100.7/25
    - type: nameserver
      address: [192.0.2.53]
`
	cfg, err := ParseNetworkData([]byte(data))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Version != 1 || len(cfg.Physical) != 1 {
		t.Fatalf("version %d with %d physical entries, want 1 and 1", cfg.Version, len(cfg.Physical))
	}
	ifaces := cfg.Interfaces()
	want := []netip.Prefix{netip.MustParsePrefix("192.0.2.10/24"), netip.MustParsePrefix("198.51.100.7/25")}
	if ifaces[0].Name != "eth1" || ifaces[0].MAC != "02:00:c0:00:02:02" || !slices.Equal(ifaces[0].Addresses, want) {
		t.Errorf("interface %+v, want eth1 02:00:c0:00:02:02 %v", ifaces[0], want)
	}
	if !slices.Equal(cfg.Sections, []string{"nameserver"}) {
		t.Errorf("other entries %v, want [nameserver]", cfg.Sections)
	}
}

func TestParseNetworkDataSexagesimalMAC(t *testing.T) {
	cfg, err := ParseNetworkData([]byte("version: 2\nethernets:\n  a:\n    match:\n      macaddress: 52:54:00:12:34:56\n  b:\n    match:\n      macaddress: '52:54:00:12:34:56'\n  c:\n    match:\n      macaddress: 02:00:c0:00:02:02\n"))
	if err != nil {
		t.Fatal(err)
	}
	got := []bool{cfg.Ethernets[0].Match.MACAddressNotString, cfg.Ethernets[1].Match.MACAddressNotString, cfg.Ethernets[2].Match.MACAddressNotString}
	if want := []bool{true, false, false}; !slices.Equal(got, want) {
		t.Errorf("MACAddressNotString %v, want %v (unquoted all-decimal MAC is a YAML 1.1 integer)", got, want)
	}
}

func TestParseNetworkDataDisabledAndInvalid(t *testing.T) {
	cfg, err := ParseNetworkData([]byte("network:\n  config: disabled\n"))
	if err != nil || !cfg.Disabled {
		t.Errorf("config: disabled = %+v, %v; want Disabled", cfg, err)
	}
	for name, data := range map[string]string{
		"no version":  "ethernets: {}\n",
		"version 3":   "version: 3\n",
		"not mapping": "- a\n",
		"bad yaml":    "version: [\n",
	} {
		if _, err := ParseNetworkData([]byte(data)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
