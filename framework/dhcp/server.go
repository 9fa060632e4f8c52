package dhcp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/server4"
	"github.com/insomniacslk/dhcp/iana"

	"github.com/vmnet-e2e/vmnet-e2e/framework/netns"
)

// Exchange records one request the server received.
type Exchange struct {
	Time      time.Time
	Type      dhcpv4.MessageType
	ClientMAC net.HardwareAddr
	// Reply is the message type sent back; MessageTypeNone when the server
	// stayed silent (another MAC, or a type it ignores).
	Reply dhcpv4.MessageType
}

// Server is a running single-client DHCP server.
type Server struct {
	iface   string
	ns      string
	cfg     Config
	options dhcpv4.Options
	log     *slog.Logger
	srv     *server4.Server
	done    chan error

	mu        sync.Mutex
	exchanges []Exchange
}

// Start opens UDP port 67 on iface inside ns and serves cfg.ClientMAC until
// Stop. log may be nil.
//
// NOTE: KubeVirt binds 0.0.0.0:67 with SO_REUSEADDR and drops packets whose
// IP_PKTINFO ifindex is not the bridge's; server4 binds the socket to the
// device (SO_BINDTODEVICE) instead. Both receive exactly the bridge's
// traffic. The socket is created inside ns, so it belongs to that namespace.
func Start(ns *netns.Namespace, iface string, cfg Config, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if len(cfg.ClientMAC) != 6 {
		return nil, fmt.Errorf("dhcp: client MAC %q is not an Ethernet address", cfg.ClientMAC)
	}
	if !cfg.Address.Addr().Is4() {
		return nil, fmt.Errorf("dhcp: address %s is not IPv4: KubeVirt's DHCP server offers IPv4 only", cfg.Address)
	}
	if !cfg.ServerID.Is4() {
		return nil, fmt.Errorf("dhcp: server identifier %s is not IPv4", cfg.ServerID)
	}
	opts, err := Options(cfg)
	if err != nil {
		return nil, err
	}

	s := &Server{iface: iface, ns: ns.Name, cfg: cfg, options: opts, log: log, done: make(chan error, 1)}

	var conn *net.UDPConn
	err = ns.Do(func() error {
		var err error
		conn, err = server4.NewIPv4UDPConn(iface, &net.UDPAddr{Port: dhcpv4.ServerPort})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("dhcp: listen on %s:%d in netns %s: %w", iface, dhcpv4.ServerPort, ns.Name, err)
	}
	s.srv, err = server4.NewServer("", nil, s.handle, server4.WithConn(conn))
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("dhcp: create server on %s in netns %s: %w", iface, ns.Name, err)
	}

	log.Info("DHCP server started", "netns", ns.Name, "iface", iface, "client", cfg.ClientMAC.String(),
		"address", cfg.Address, "server-id", cfg.ServerID, "router", cfg.Router, "options", Describe(opts))
	go func() { s.done <- s.srv.Serve() }()
	return s, nil
}

// Stop closes the socket and waits up to 5 s for the serve loop to end.
func (s *Server) Stop() error {
	if err := s.srv.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("dhcp: close server on %s in netns %s: %w", s.iface, s.ns, err)
	}
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		return fmt.Errorf("dhcp: server on %s in netns %s did not stop within 5s", s.iface, s.ns)
	}
	s.log.Info("DHCP server stopped", "netns", s.ns, "iface", s.iface)
	return nil
}

// Exchanges returns the requests received so far.
func (s *Server) Exchanges() []Exchange {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Exchange(nil), s.exchanges...)
}

// handle replies to DISCOVER with OFFER and to REQUEST with ACK for the
// configured MAC, and ignores everything else, as KubeVirt's
// DHCPHandler.ServeDHCP does: no NAK, no check of the requested address.
func (s *Server) handle(conn net.PacketConn, peer net.Addr, req *dhcpv4.DHCPv4) {
	ex := Exchange{Time: time.Now(), Type: req.MessageType(), ClientMAC: req.ClientHWAddr, Reply: dhcpv4.MessageTypeNone}
	defer func() {
		s.mu.Lock()
		s.exchanges = append(s.exchanges, ex)
		s.mu.Unlock()
		s.log.Info("DHCP request", "netns", s.ns, "iface", s.iface, "type", ex.Type, "client", ex.ClientMAC.String(),
			"xid", req.TransactionID, "reply", ex.Reply)
	}()

	if req.OpCode != dhcpv4.OpcodeBootRequest || !bytes.Equal(req.ClientHWAddr, s.cfg.ClientMAC) {
		return
	}
	var replyType dhcpv4.MessageType
	switch req.MessageType() {
	case dhcpv4.MessageTypeDiscover:
		replyType = dhcpv4.MessageTypeOffer
	case dhcpv4.MessageTypeRequest:
		replyType = dhcpv4.MessageTypeAck
	default:
		return
	}

	reply := s.reply(req, replyType)

	// krolaw/dhcp4 Serve broadcasts when the source address is 0.0.0.0 or
	// the broadcast flag is set, and otherwise replies to the source.
	// server4 already turned a 0.0.0.0 source into the broadcast address.
	to := peer
	if up, ok := peer.(*net.UDPAddr); ok && req.IsBroadcast() {
		to = &net.UDPAddr{IP: net.IPv4bcast, Port: up.Port}
	}
	if _, err := conn.WriteTo(reply.ToBytes(), to); err != nil {
		s.log.Warn("DHCP reply failed", "netns", s.ns, "iface", s.iface, "to", to, "error", err)
		return
	}
	ex.Reply = replyType
}

// reply builds the packet krolaw/dhcp4's ReplyPacket builds: BOOTREPLY with
// the request's xid, flags, giaddr and chaddr, yiaddr set, ciaddr and siaddr
// zero, then message type, server identifier, lease time and every option.
//
// NOTE: krolaw writes options 53, 54, 51 first and the rest in Go map order;
// insomniacslk writes them sorted by code. Clients do not depend on the order.
func (s *Server) reply(req *dhcpv4.DHCPv4, mt dhcpv4.MessageType) *dhcpv4.DHCPv4 {
	d, _ := dhcpv4.New()
	d.OpCode = dhcpv4.OpcodeBootReply
	d.HWType = iana.HWTypeEthernet
	d.TransactionID = req.TransactionID
	d.Flags = req.Flags
	d.GatewayIPAddr = req.GatewayIPAddr
	d.ClientHWAddr = append(net.HardwareAddr(nil), req.ClientHWAddr...)
	d.YourIPAddr = net.IP(s.cfg.Address.Addr().AsSlice())

	for code, v := range s.options {
		d.Options[code] = v
	}
	d.Options[dhcpv4.OptionDHCPMessageType.Code()] = []byte{byte(mt)}
	sid := s.cfg.ServerID.As4()
	d.Options[dhcpv4.OptionServerIdentifier.Code()] = sid[:]
	lease := make([]byte, 4)
	binary.BigEndian.PutUint32(lease, uint32(LeaseTime/time.Second))
	d.Options[dhcpv4.OptionIPAddressLeaseTime.Code()] = lease
	return d
}
