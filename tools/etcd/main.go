// Command etcd runs a single-member etcd server for the kube-apiserver test
// environment (framework/apitest), built from go.etcd.io/etcd/server/v3's
// embed package so that the Go module proxy is its only source.
//
// It listens on the loopback addresses given, writes "ready CLIENT-URL" on
// standard output once the member serves clients, and stops on SIGTERM or
// SIGINT. With port 0 the kernel picks the port, and the ready line names it.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
)

func main() {
	dataDir := flag.String("data-dir", "", "directory of the member's data (required)")
	client := flag.String("listen-client", "127.0.0.1:0", "host:port for clients; port 0 picks a free port")
	peer := flag.String("listen-peer", "127.0.0.1:0", "host:port for peers; port 0 picks a free port")
	timeout := flag.Duration("ready-timeout", time.Minute, "how long to wait for the member to serve clients")
	flag.Parse()

	if err := run(*dataDir, *client, *peer, *timeout); err != nil {
		fmt.Fprintln(os.Stderr, "etcd:", err)
		os.Exit(1)
	}
}

func run(dataDir, client, peer string, timeout time.Duration) error {
	if dataDir == "" {
		return fmt.Errorf("missing -data-dir")
	}
	clientURL, err := loopbackURL(client)
	if err != nil {
		return fmt.Errorf("-listen-client: %w", err)
	}
	peerURL, err := loopbackURL(peer)
	if err != nil {
		return fmt.Errorf("-listen-peer: %w", err)
	}

	cfg := embed.NewConfig()
	cfg.Name = "apitest"
	cfg.Dir = dataDir
	cfg.ListenClientUrls = []url.URL{clientURL}
	cfg.AdvertiseClientUrls = []url.URL{clientURL}
	cfg.ListenPeerUrls = []url.URL{peerURL}
	cfg.AdvertisePeerUrls = []url.URL{peerURL}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.LogLevel = "warn"
	// The data lives for one test run: fsync buys nothing and costs time.
	cfg.UnsafeNoFsync = true

	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	defer e.Close()

	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		return fmt.Errorf("serve: %w", err)
	case <-time.After(timeout):
		e.Server.Stop()
		return fmt.Errorf("member not ready to serve clients within %s", timeout)
	}
	fmt.Printf("ready http://%s\n", e.Clients[0].Addr())

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	select {
	case <-ctx.Done():
		return nil
	case err := <-e.Err():
		return fmt.Errorf("serve: %w", err)
	}
}

// loopbackURL turns host:port into an http URL and refuses hosts other than
// loopback addresses: the test environment never listens on other addresses.
func loopbackURL(hostPort string) (url.URL, error) {
	host, _, err := net.SplitHostPort(hostPort)
	if err != nil {
		return url.URL{}, err
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return url.URL{}, fmt.Errorf("%s is not a loopback address", host)
	}
	return url.URL{Scheme: "http", Host: hostPort}, nil
}
