package dhcp

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"

	"github.com/vmnet-e2e/vmnet-e2e/framework/link"
	"github.com/vmnet-e2e/vmnet-e2e/framework/link/linktest"
	"github.com/vmnet-e2e/vmnet-e2e/framework/netns"
)

func TestMain(m *testing.M) { linktest.Main(m) }

var (
	guestMAC = net.HardwareAddr{0x02, 0x00, 0xc0, 0x00, 0x02, 0x0a}
	otherMAC = net.HardwareAddr{0x02, 0x00, 0xc0, 0x00, 0x02, 0x0b}
)

func testConfig() Config {
	return Config{
		ClientMAC: guestMAC,
		Address:   netip.MustParsePrefix("192.0.2.10/24"),
		ServerID:  netip.MustParseAddr("169.254.75.10"),
		Router:    netip.MustParseAddr("192.0.2.1"),
		Routes: []Route{
			{Destination: netip.MustParsePrefix("0.0.0.0/0"), Gateway: netip.MustParseAddr("192.0.2.1")},
			{Destination: netip.MustParsePrefix("198.51.100.0/24"), Gateway: netip.MustParseAddr("192.0.2.254")},
		},
		MTU:           1400,
		DNS:           []netip.Addr{netip.MustParseAddr("10.96.0.10")},
		SearchDomains: []string{"default.svc.cluster.local", "svc.cluster.local", "cluster.local"},
		Hostname:      "testvm",
	}
}

// podBridge builds a pod namespace holding the in-pod bridge with the server
// address, and a guest stand-in namespace whose eth0 is a port of that bridge.
func podBridge(t *testing.T, mac net.HardwareAddr) (pod, guest *netns.Namespace) {
	t.Helper()
	linktest.RequireRoot(t)
	l := linktest.Ledger(t)
	pod = linktest.Namespace(t, l, "pod")
	guest = linktest.Namespace(t, l, "guest")
	h := linktest.Handle(t, pod)
	steps := []func() error{
		func() error { _, err := link.AddBridge(h, "k6t-11c844f95e2"); return err },
		func() error { return link.AddAddr(h, "k6t-11c844f95e2", netip.MustParsePrefix("169.254.75.10/32")) },
		func() error { return link.SetUp(h, "k6t-11c844f95e2") },
		func() error {
			_, err := link.AddVeth(h, "gst0", "eth0", guest, link.WithVethPeerMAC(mac))
			return err
		},
		func() error { return link.SetMaster(h, "gst0", "k6t-11c844f95e2") },
		func() error { return link.SetUp(h, "gst0") },
		func() error { return link.SetUp(linktest.Handle(t, guest), "eth0") },
	}
	for _, s := range steps {
		if err := s(); err != nil {
			t.Fatal(err)
		}
	}
	return pod, guest
}

func startServer(t *testing.T, pod *netns.Namespace, cfg Config) *Server {
	t.Helper()
	s, err := Start(pod, "k6t-11c844f95e2", cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Error(err)
		}
	})
	return s
}

// client opens a DHCP client on the stand-in's eth0 that sends chaddr mac.
func client(t *testing.T, guest *netns.Namespace, mac net.HardwareAddr) *nclient4.Client {
	t.Helper()
	var c *nclient4.Client
	err := guest.Do(func() error {
		var err error
		c, err = nclient4.New("eth0", nclient4.WithHWAddr(mac), nclient4.WithTimeout(time.Second), nclient4.WithRetry(2))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestServerOffersKubeVirtOptions(t *testing.T) {
	pod, guest := podBridge(t, guestMAC)
	cfg := testConfig()
	srv := startServer(t, pod, cfg)
	c := client(t, guest, guestMAC)

	ctx, cancel := context.WithTimeout(linktest.Context(t), 10*time.Second)
	defer cancel()
	start := time.Now()
	lease, err := c.Request(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("DORA took %v\noffer: %s\nack: %s", time.Since(start), lease.Offer.Summary(), lease.ACK.Summary())

	for _, m := range []*dhcpv4.DHCPv4{lease.Offer, lease.ACK} {
		if !m.YourIPAddr.Equal(net.ParseIP("192.0.2.10")) {
			t.Errorf("%s yiaddr %s, want 192.0.2.10", m.MessageType(), m.YourIPAddr)
		}
		if !m.ServerIPAddr.Equal(net.IPv4zero) {
			t.Errorf("%s siaddr %s, want 0.0.0.0 as krolaw/dhcp4 leaves it", m.MessageType(), m.ServerIPAddr)
		}
		want := map[uint8][]byte{
			1:   {255, 255, 255, 0},
			3:   {192, 0, 2, 1},
			6:   {10, 96, 0, 10},
			12:  []byte("testvm"),
			15:  []byte("default.svc.cluster.local"),
			26:  {0x05, 0x78},
			51:  {0x05, 0x25, 0x0a, 0x80}, // 999 days = 86313600 s
			54:  {169, 254, 75, 10},
			119: append(append([]byte("\x07default\x03svc\x07cluster\x05local\x00"), "\x03svc\x07cluster\x05local\x00"...), "\x07cluster\x05local\x00"...),
			121: {24, 198, 51, 100, 192, 0, 2, 254, 0, 192, 0, 2, 1},
		}
		for code, v := range want {
			if got := m.Options.Get(dhcpv4.GenericOptionCode(code)); !bytes.Equal(got, v) {
				t.Errorf("%s option %d = %x, want %x", m.MessageType(), code, got, v)
			}
		}
		if n := len(m.Options); n != len(want)+1 {
			t.Errorf("%s carries %d options, want %d (the above and message type)", m.MessageType(), n, len(want)+1)
		}
	}
	if lease.Offer.MessageType() != dhcpv4.MessageTypeOffer || lease.ACK.MessageType() != dhcpv4.MessageTypeAck {
		t.Errorf("got %s then %s, want OFFER then ACK", lease.Offer.MessageType(), lease.ACK.MessageType())
	}

	ex := srv.Exchanges()
	if len(ex) < 2 || ex[0].Reply != dhcpv4.MessageTypeOffer {
		t.Errorf("server log %+v, want DISCOVER answered with OFFER first", ex)
	}
}

func TestServerIgnoresOtherMAC(t *testing.T) {
	pod, guest := podBridge(t, otherMAC)
	srv := startServer(t, pod, testConfig())
	c := client(t, guest, otherMAC)

	ctx, cancel := context.WithTimeout(linktest.Context(t), 5*time.Second)
	defer cancel()
	offer, err := c.DiscoverOffer(ctx)
	if err == nil {
		t.Fatalf("client with MAC %s got an offer %s, want none", otherMAC, offer.Summary())
	}
	ex := srv.Exchanges()
	if len(ex) == 0 {
		t.Fatal("server saw no request: the test did not reach it")
	}
	for _, e := range ex {
		if e.Reply != dhcpv4.MessageTypeNone {
			t.Errorf("server answered %s from %s with %s, want silence", e.Type, e.ClientMAC, e.Reply)
		}
	}
}

func TestClasslessRoutesPutDefaultLast(t *testing.T) {
	got := ClasslessRoutes([]Route{
		{Destination: netip.MustParsePrefix("0.0.0.0/0"), Gateway: netip.MustParseAddr("192.0.2.1")},
		{Destination: netip.MustParsePrefix("10.0.0.0/8"), Gateway: netip.MustParseAddr("192.0.2.3")},
		{Destination: netip.MustParsePrefix("203.0.113.0/25")},
	})
	want := []byte{8, 10, 192, 0, 2, 3, 25, 203, 0, 113, 0, 0, 0, 0, 0, 0, 192, 0, 2, 1}
	if !bytes.Equal(got, want) {
		t.Errorf("ClasslessRoutes = %v, want %v", got, want)
	}
}

func TestOptionsWithoutRoutesOrRouter(t *testing.T) {
	cfg := testConfig()
	cfg.Router, cfg.Routes, cfg.DNS = netip.Addr{}, nil, nil
	opts, err := Options(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := opts[3]; ok {
		t.Error("option 3 present without a router")
	}
	if _, ok := opts[121]; ok {
		t.Error("option 121 present without routes")
	}
	if v, ok := opts[6]; !ok || len(v) != 0 {
		t.Errorf("option 6 = %v (present %v), want present and empty as KubeVirt sends it", v, ok)
	}
}

func TestParseResolvConfDefaults(t *testing.T) {
	rc := ParseResolvConf("options ndots:5\n")
	if len(rc.Nameservers) != 1 || rc.Nameservers[0] != netip.MustParseAddr("8.8.8.8") {
		t.Errorf("nameservers %v, want KubeVirt's default 8.8.8.8", rc.Nameservers)
	}
	if len(rc.SearchDomains) != 1 || rc.SearchDomains[0] != "cluster.local" {
		t.Errorf("search %v, want KubeVirt's default cluster.local", rc.SearchDomains)
	}
	rc = ParseResolvConf("nameserver 10.96.0.10\nnameserver fd00::10\nsearch NS.svc.cluster.local svc.cluster.local\n")
	if got := rc.IPv4Nameservers(); len(got) != 1 || got[0] != netip.MustParseAddr("10.96.0.10") {
		t.Errorf("IPv4 nameservers %v, want [10.96.0.10]", got)
	}
	if rc.SearchDomains[0] != "ns.svc.cluster.local" {
		t.Errorf("search %v, want lower-cased domains", rc.SearchDomains)
	}
	if got := SearchDomainsWithSubdomain(rc.SearchDomains, "sub"); got[0] != "sub.ns.svc.cluster.local" {
		t.Errorf("with subdomain: %v, want sub.ns.svc.cluster.local first", got)
	}
}

func TestLauncherHostname(t *testing.T) {
	if got := LauncherHostname("vm1.example", ""); got != "vm1" {
		t.Errorf("LauncherHostname(vm1.example) = %q, want vm1", got)
	}
	if got := LauncherHostname("vm1", "host-a"); got != "host-a" {
		t.Errorf("LauncherHostname with spec.hostname = %q, want host-a", got)
	}
}
