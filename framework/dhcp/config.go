// Package dhcp reproduces the single-client DHCPv4 server virt-launcher runs on
// the in-pod bridge of a bridge-bound interface whose pod link had an IPv4
// address. It serves one guest MAC, offering exactly the pod link's IPAM
// address and options derived from the pod.
//
// Source: kubevirt/kubevirt v1.9.0, pkg/network/dhcp/server/server.go
// (SingleClientDHCPServer, prepareDHCPOptions, DHCPHandler.ServeDHCP,
// formClasslessRoutes), pkg/network/driver/common.go (StartDHCP),
// pkg/network/dns/resolveconf.go. KubeVirt builds packets with
// github.com/krolaw/dhcp4; this package uses github.com/insomniacslk/dhcp.
package dhcp

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// LeaseTime is KubeVirt's "infinite" lease: 999 days.
const LeaseTime = 999 * 24 * time.Hour

// Route is a route the server advertises in option 121.
type Route struct {
	// Destination is the route's network; 0.0.0.0/0 is the default route.
	Destination netip.Prefix
	// Gateway is the next hop; invalid means on-link (sent as 0.0.0.0).
	Gateway netip.Addr
}

// Config is the server's offer: KubeVirt's cache.DHCPConfig together with
// the pod's DNS settings and hostname.
type Config struct {
	// ClientMAC is the only hardware address served.
	ClientMAC net.HardwareAddr
	// Address is the pod link's first global IPv4 address with its prefix
	// length: yiaddr and option 1.
	Address netip.Prefix
	// ServerID is 169.254.75.1<i>, the in-pod bridge's address (option 54).
	ServerID netip.Addr
	// Router is the next hop of the first IPv4 route through the pod link
	// (option 3); invalid when that route had none.
	Router netip.Addr
	// Routes are the pod link's other IPv4 routes (option 121).
	Routes []Route
	// MTU is the MTU of <hash>-nic (option 26).
	MTU uint16
	// DNS are the IPv4 nameservers of the pod's resolv.conf (option 6).
	DNS []netip.Addr
	// SearchDomains are the pod's search domains (option 119); the longest
	// one is also sent as domain name (option 15).
	SearchDomains []string
	// Hostname is the launcher pod's hostname (option 12).
	Hostname string
	// Custom holds spec.domain.devices.interfaces[].dhcpOptions.
	Custom *CustomOptions
}

// CustomOptions mirrors kubevirt.io/api core/v1 DHCPOptions.
type CustomOptions struct {
	BootFileName   string
	TFTPServerName string
	NTPServers     []string
	// PrivateOptions are sent only for codes 224-254.
	PrivateOptions map[int]string
}

// Option codes KubeVirt sets, as numbers (RFC 2132, 3397, 3442).
const (
	optSubnetMask      = 1
	optRouter          = 3
	optDNS             = 6
	optHostName        = 12
	optDomainName      = 15
	optInterfaceMTU    = 26
	optNTPServers      = 42
	optTFTPServerName  = 66
	optBootFileName    = 67
	optDomainSearch    = 119
	optClasslessRoutes = 121
)

// Options returns the options KubeVirt's prepareDHCPOptions builds, byte for
// byte: DNS (always present, empty when there is no IPv4 nameserver), MTU,
// mask, router when known, classless routes when any, search domains,
// hostname, domain name, and the custom options.
func Options(cfg Config) (dhcpv4.Options, error) {
	opts := dhcpv4.Options{}

	var dns []byte
	for _, a := range cfg.DNS {
		if a.Is4() {
			b := a.As4()
			dns = append(dns, b[:]...)
		}
	}
	opts[optDNS] = dns
	mtu := make([]byte, 2)
	binary.BigEndian.PutUint16(mtu, cfg.MTU)
	opts[optInterfaceMTU] = mtu

	if cfg.Address.IsValid() {
		opts[optSubnetMask] = net.CIDRMask(cfg.Address.Bits(), 32)
	}
	if cfg.Router.IsValid() {
		r := cfg.Router.As4()
		opts[optRouter] = r[:]
	}
	if routes := ClasslessRoutes(cfg.Routes); len(routes) > 0 {
		opts[optClasslessRoutes] = routes
	}

	search, err := searchDomainBytes(cfg.SearchDomains)
	if err != nil {
		return nil, err
	}
	if search != nil {
		opts[optDomainSearch] = search
	}
	opts[optHostName] = []byte(cfg.Hostname)
	if d := longest(cfg.SearchDomains); d != "" {
		opts[optDomainName] = []byte(d)
	}

	if c := cfg.Custom; c != nil {
		if c.TFTPServerName != "" {
			opts[optTFTPServerName] = []byte(c.TFTPServerName)
		}
		if c.BootFileName != "" {
			opts[optBootFileName] = []byte(c.BootFileName)
		}
		if len(c.NTPServers) > 0 {
			var ntp []byte
			for _, s := range c.NTPServers {
				ip := net.ParseIP(s).To4()
				if ip == nil {
					return nil, fmt.Errorf("dhcp: could not parse NTP server %q as IPv4 address: fix dhcpOptions.ntpServers", s)
				}
				ntp = append(ntp, ip...)
			}
			opts[optNTPServers] = ntp
		}
		for code, v := range c.PrivateOptions {
			if code >= 224 && code <= 254 {
				opts[uint8(code)] = []byte(v)
			}
		}
	}
	return opts, nil
}

// ClasslessRoutes encodes routes as option 121 data (RFC 3442) the way
// KubeVirt's formClasslessRoutes does: the default route moved last, each
// route as prefix width, the significant destination octets, and the gateway
// (0.0.0.0 when on-link).
func ClasslessRoutes(routes []Route) []byte {
	var sorted, defaults []Route
	for _, r := range routes {
		if r.Destination.Bits() == 0 {
			defaults = append(defaults, r)
			continue
		}
		sorted = append(sorted, r)
	}
	sorted = append(sorted, defaults...)

	var out []byte
	for _, r := range sorted {
		width := r.Destination.Bits()
		dst := r.Destination.Addr().As4()
		octets := 0
		if width > 0 {
			octets = (width-1)/8 + 1
		}
		out = append(out, byte(width))
		out = append(out, dst[:octets]...)
		gw := [4]byte{}
		if r.Gateway.IsValid() && r.Gateway.Is4() {
			gw = r.Gateway.As4()
		}
		out = append(out, gw[:]...)
	}
	return out
}

// searchDomainValidation is KubeVirt's searchDomainValidationRegex.
var searchDomainValidation = regexp.MustCompile(`^(?:[_a-z0-9](?:[_a-z0-9-]{0,61}[a-z0-9])?\.)*(?:[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?)?$`)

// searchDomainBytes encodes search domains as RFC 1035 names without
// compression, as KubeVirt's convertSearchDomainsToBytes does.
func searchDomainBytes(domains []string) ([]byte, error) {
	var out []byte
	for _, d := range domains {
		if len(d) > 253 || !searchDomainValidation.MatchString(d) {
			return nil, fmt.Errorf("dhcp: search domain is not valid: %q", d)
		}
		for _, label := range strings.Split(d, ".") {
			out = append(out, byte(len(label)))
			out = append(out, label...)
		}
		out = append(out, 0)
	}
	if len(out) > 255 {
		return nil, fmt.Errorf("dhcp: search domains length exceeded allowable size: was %d long", len(out))
	}
	return out, nil
}

func longest(domains []string) string {
	selected := ""
	for _, d := range domains {
		if len(d) > len(selected) {
			selected = d
		}
	}
	return selected
}

// ResolvConf holds what KubeVirt reads from the launcher pod's
// /etc/resolv.conf.
type ResolvConf struct {
	Nameservers   []netip.Addr
	SearchDomains []string
}

// IPv4Nameservers returns the IPv4 nameservers, the ones sent in option 6.
func (r ResolvConf) IPv4Nameservers() []netip.Addr {
	var out []netip.Addr
	for _, a := range r.Nameservers {
		if a.Is4() {
			out = append(out, a)
		}
	}
	return out
}

// ParseResolvConf parses resolv.conf content as KubeVirt's ParseNameservers
// and ParseSearchDomains do, defaults included: 8.8.8.8 when there is no
// nameserver at all, "cluster.local" when there is no search domain.
func ParseResolvConf(content string) ResolvConf {
	var rc ResolvConf
	sc := bufio.NewScanner(strings.NewReader(content))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "nameserver"):
			f := strings.Fields(line)
			if len(f) != 2 {
				continue
			}
			if a, err := netip.ParseAddr(f[1]); err == nil {
				rc.Nameservers = append(rc.Nameservers, a.Unmap())
			}
		case strings.HasPrefix(line, "search"):
			for _, d := range strings.Fields(strings.TrimPrefix(line, "search")) {
				rc.SearchDomains = append(rc.SearchDomains, strings.ToLower(d))
			}
		}
	}
	if len(rc.Nameservers) == 0 {
		rc.Nameservers = []netip.Addr{netip.MustParseAddr("8.8.8.8")}
	}
	if len(rc.SearchDomains) == 0 {
		rc.SearchDomains = []string{"cluster.local"}
	}
	return rc
}

// SearchDomainsWithSubdomain prepends "<subdomain>.<longest service domain>"
// when spec.subdomain is set and that domain does not already start with it
// (KubeVirt's DomainNameWithSubdomain, applied in StartDHCP).
func SearchDomainsWithSubdomain(search []string, subdomain string) []string {
	if subdomain == "" {
		return search
	}
	service := ""
	for _, d := range search {
		if strings.Contains(d, ".svc.") && len(d) > len(service) {
			service = d
		}
	}
	if service == "" || strings.HasPrefix(service, subdomain+".") {
		return search
	}
	return append([]string{subdomain + "." + service}, search...)
}

// LauncherHostname returns the virt-launcher pod's hostname, which the DHCP
// server sends as option 12: spec.hostname when set, else the VMI name up to
// the first dot, cut to 63 characters.
//
// Source: kubevirt/kubevirt v1.9.0, pkg/util/net/dns/sanitize.go
// (SanitizeHostname).
func LauncherHostname(vmiName, specHostname string) string {
	if specHostname != "" {
		return specHostname
	}
	h := strings.Split(vmiName, ".")[0]
	if len(h) > 63 {
		h = h[:63]
	}
	return h
}

// Describe formats options for logs and reports, sorted by code.
func Describe(opts dhcpv4.Options) string {
	codes := make([]int, 0, len(opts))
	for c := range opts {
		codes = append(codes, int(c))
	}
	sort.Ints(codes)
	var b bytes.Buffer
	for _, c := range codes {
		fmt.Fprintf(&b, "%d=%x ", c, opts[uint8(c)])
	}
	return strings.TrimSpace(b.String())
}
