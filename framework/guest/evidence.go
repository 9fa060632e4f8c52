package guest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Stage is the point in the guest's boot an Evidence describes.
type Stage string

const (
	// StageNetwork is printed by the image's early unit once cloud-init's
	// local stage has rendered the network config and systemd-networkd (or
	// ifupdown) has configured the links as far as it will, without waiting
	// for systemd-networkd-wait-online.
	StageNetwork Stage = "network"
	// StageFinal is printed by the user-data harness part once cloud-init has
	// finished all stages.
	StageFinal Stage = "final"
)

// Evidence is the guest's report on its network configuration.
type Evidence struct {
	Stage  Stage
	Nonce  string
	BootID string
	// Uptime is the guest's uptime when the evidence was collected.
	Uptime time.Duration

	CloudInit CloudInitStatus
	// Rendered holds the network config files present in the guest
	// (netplan, systemd-networkd, ifupdown, sysconfig, NetworkManager), by
	// absolute path.
	Rendered map[string]string
	// Interfaces are the guest's links as `ip -j addr` reports them.
	Interfaces []Interface
	// Warnings are the WARNING, ERROR and CRITICAL lines of
	// /var/log/cloud-init.log (the last 200).
	Warnings []string
	// NetworkdStates maps each link but lo to systemd-networkd's setup state
	// (configured, configuring, unmanaged, failed, ...; "unknown" before
	// networkd has seen the link). Empty without networkd.
	NetworkdStates map[string]string
	// NetworkdPending lists links systemd-networkd was still configuring
	// when the early unit stopped waiting, as "name:state" (network stage).
	NetworkdPending []string
	// FailedUnits are `systemctl list-units --failed` lines.
	FailedUnits []string
	// SystemState is `systemctl is-system-running`.
	SystemState string
	// Files holds every collected file by its name in the evidence archive.
	Files map[string][]byte
}

// CloudInitStatus is cloud-init's own record of its run:
// /run/cloud-init/status.json and, once it has finished, result.json.
type CloudInitStatus struct {
	// Datasource is the datasource cloud-init used, for example
	// "DataSourceNoCloud [seed=/dev/vdb][dsmode=net]".
	Datasource string
	// CurrentStage is the stage running when the evidence was collected, ""
	// between stages.
	CurrentStage string
	// Finished reports whether result.json exists.
	Finished bool
	// Stages maps a stage (init-local, init, modules-config, modules-final)
	// to its record.
	Stages map[string]CloudInitStage
	// Errors are result.json's errors when cloud-init has finished, else the
	// errors recorded so far by all stages.
	Errors []string
	// RecoverableErrors maps a log level to messages; cloud-init records
	// them from 23.4 on, so 22.4.2 leaves this empty.
	RecoverableErrors map[string][]string
	// StatusText is the output of `cloud-init status --long`.
	StatusText string
}

// CloudInitStage is one stage's entry in status.json.
type CloudInitStage struct {
	Start             float64             `json:"start"`
	Finished          float64             `json:"finished"`
	Errors            []string            `json:"errors"`
	RecoverableErrors map[string][]string `json:"recoverable_errors"`
}

// Interface is one guest link.
type Interface struct {
	Name      string
	MAC       net.HardwareAddr
	OperState string
	Flags     []string
	LinkType  string
	// PathName is udev's PCI path name for the link (ID_NET_NAME_PATH, for
	// example enp2s0), also after cloud-init renamed it with set-name.
	PathName string
	// PCIPath is udev's ID_PATH, for example pci-0000:02:00.0.
	PCIPath string
	// Addresses are all addresses, IPv6 link-local ones included.
	Addresses []netip.Prefix
}

// IPv4 returns the interface's IPv4 addresses.
func (i Interface) IPv4() []netip.Prefix {
	var out []netip.Prefix
	for _, p := range i.Addresses {
		if p.Addr().Is4() {
			out = append(out, p)
		}
	}
	return out
}

// GlobalAddresses returns the addresses that are not link-local or loopback.
func (i Interface) GlobalAddresses() []netip.Prefix {
	var out []netip.Prefix
	for _, p := range i.Addresses {
		a := p.Addr()
		if a.IsLinkLocalUnicast() || a.IsLoopback() {
			continue
		}
		out = append(out, p)
	}
	return out
}

// Interface returns the link named name.
func (e *Evidence) Interface(name string) (Interface, bool) {
	for _, i := range e.Interfaces {
		if i.Name == name {
			return i, true
		}
	}
	return Interface{}, false
}

// InterfaceByMAC returns the link with the given MAC.
func (e *Evidence) InterfaceByMAC(mac net.HardwareAddr) (Interface, bool) {
	for _, i := range e.Interfaces {
		if bytes.Equal(i.MAC, mac) {
			return i, true
		}
	}
	return Interface{}, false
}

// Summary is a one-line description for logs.
func (e *Evidence) Summary() string {
	var links []string
	for _, i := range e.Interfaces {
		if i.LinkType == "loopback" {
			continue
		}
		addrs := make([]string, 0, len(i.Addresses))
		for _, a := range i.GlobalAddresses() {
			addrs = append(addrs, a.String())
		}
		links = append(links, fmt.Sprintf("%s(%s,%s,[%s])", i.Name, i.MAC, i.OperState, strings.Join(addrs, " ")))
	}
	return fmt.Sprintf("stage=%s uptime=%s cloud-init finished=%t errors=%d links=%s",
		e.Stage, e.Uptime.Round(100*time.Millisecond), e.CloudInit.Finished, len(e.CloudInit.Errors), strings.Join(links, " "))
}

// NewNonce returns a random per-boot nonce: 16 lowercase hex characters.
func NewNonce() string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("guest: read random nonce: %v", err))
	}
	return hex.EncodeToString(b[:])
}

const evidenceMarker = "VMNET-E2E-EVIDENCE"

// evidenceLineRE matches one line of an evidence block anywhere in a console
// line, so that text a kernel message left in front of it does not hide it.
var evidenceLineRE = regexp.MustCompile(evidenceMarker +
	` ([0-9a-f]{16}) ([a-z]+) (?:BEGIN ([0-9]+) ([0-9a-f]{64})|([0-9]+) ([0-9a-f]{8}) ([A-Za-z0-9+/=]{1,64})|(END))\s*$`)

// EvidenceParser assembles evidence blocks from console lines. Lines of one
// block may arrive interleaved with other output, broken, or twice. Each chunk
// carries its own hash, so a broken chunk is dropped and taken from the
// block's second copy. The assembled text must match the block's SHA-256.
type EvidenceParser struct {
	nonce  string
	blocks map[Stage]*evidenceBlock
	done   map[Stage]bool
}

type evidenceBlock struct {
	count  int
	sum    string
	chunks map[int]string
	// rejected counts chunk lines whose hash did not match.
	rejected int
}

// NewEvidenceParser returns a parser that accepts only blocks carrying nonce.
func NewEvidenceParser(nonce string) *EvidenceParser {
	return &EvidenceParser{nonce: nonce, blocks: map[Stage]*evidenceBlock{}, done: map[Stage]bool{}}
}

// Feed takes one console line. It returns the evidence when the line
// completes a block, and an error when a complete block does not decode.
func (p *EvidenceParser) Feed(line string) (*Evidence, error) {
	if !strings.Contains(line, evidenceMarker) {
		return nil, nil
	}
	m := evidenceLineRE.FindStringSubmatch(strings.TrimRight(line, "\r\n"))
	if m == nil || m[1] != p.nonce {
		return nil, nil
	}
	stage := Stage(m[2])
	if p.done[stage] {
		return nil, nil
	}
	block := p.blocks[stage]
	if block == nil {
		block = &evidenceBlock{count: -1, chunks: map[int]string{}}
		p.blocks[stage] = block
	}

	switch {
	case m[3] != "":
		count, err := strconv.Atoi(m[3])
		if err != nil || count <= 0 || count > 100000 {
			return nil, nil
		}
		block.count, block.sum = count, m[4]
	case m[5] != "":
		index, err := strconv.Atoi(m[5])
		if err != nil {
			return nil, nil
		}
		if chunkHash(m[7]) != m[6] {
			block.rejected++
			return nil, nil
		}
		block.chunks[index] = m[7]
	}

	if block.count <= 0 || len(block.chunks) < block.count {
		return nil, nil
	}
	var text strings.Builder
	for i := 0; i < block.count; i++ {
		chunk, ok := block.chunks[i]
		if !ok {
			return nil, nil
		}
		text.WriteString(chunk)
	}
	sum := sha256.Sum256([]byte(text.String()))
	if hex.EncodeToString(sum[:]) != block.sum {
		// A chunk line can match its hash and still belong to another copy
		// with a different count; start over with the next copy.
		delete(p.blocks, stage)
		return nil, nil
	}
	p.done[stage] = true
	ev, err := decodeEvidence(text.String())
	if err != nil {
		return nil, fmt.Errorf("guest: %s evidence: %w", stage, err)
	}
	if ev.Stage != stage {
		return nil, fmt.Errorf("guest: evidence block marked %q contains stage %q", stage, ev.Stage)
	}
	return ev, nil
}

// ParseEvidence returns the evidence of stage with nonce found in console
// output, or an error naming what is missing.
func ParseEvidence(console string, nonce string, stage Stage) (*Evidence, error) {
	p := NewEvidenceParser(nonce)
	for _, line := range strings.Split(console, "\n") {
		ev, err := p.Feed(line)
		if err != nil {
			return nil, err
		}
		if ev != nil && ev.Stage == stage {
			return ev, nil
		}
	}
	block := p.blocks[stage]
	if block == nil {
		return nil, fmt.Errorf("guest: no %s evidence with nonce %s in the console output", stage, nonce)
	}
	return nil, fmt.Errorf("guest: %s evidence with nonce %s is incomplete: %d of %d chunks valid, %d rejected", stage, nonce, len(block.chunks), block.count, block.rejected)
}

// chunkHash is the evidence script's per-chunk hash: h = (h*67 + p) mod
// 2147483647 over the chunk, p being the character's 1-based position in the
// base64 alphabet followed by "=".
func chunkHash(chunk string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="
	var h uint64
	for i := 0; i < len(chunk); i++ {
		p := strings.IndexByte(alphabet, chunk[i]) + 1
		h = (h*67 + uint64(p)) % 2147483647
	}
	return fmt.Sprintf("%08x", h)
}

// decodeEvidence turns the base64 text of a block into Evidence.
func decodeEvidence(text string) (*Evidence, error) {
	raw, err := base64.StdEncoding.DecodeString(text)
	if err != nil {
		return nil, fmt.Errorf("decode base64: %w", err)
	}
	files, err := untar(raw)
	if err != nil {
		return nil, err
	}
	return evidenceFromFiles(files)
}

func untar(raw []byte) (map[string][]byte, error) {
	gz, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("decompress: %w", err)
	}
	defer gz.Close()
	files := map[string][]byte{}
	tr := tar.NewReader(gz)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read tar: %w", err)
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		data, err := io.ReadAll(io.LimitReader(tr, 16<<20))
		if err != nil {
			return nil, fmt.Errorf("read %s from tar: %w", hdr.Name, err)
		}
		files[strings.TrimPrefix(hdr.Name, "./")] = data
	}
}

func evidenceFromFiles(files map[string][]byte) (*Evidence, error) {
	text := func(name string) string { return strings.TrimSpace(string(files[name])) }
	ev := &Evidence{
		Stage:       Stage(text("stage")),
		Nonce:       text("nonce"),
		BootID:      text("boot_id"),
		SystemState: text("system-state.txt"),
		Rendered:    map[string]string{},
		Files:       files,
	}
	if ev.Stage == "" {
		return nil, errors.New("evidence archive has no stage file")
	}
	if seconds, err := strconv.ParseFloat(text("uptime"), 64); err == nil {
		ev.Uptime = time.Duration(seconds * float64(time.Second))
	}
	for name, data := range files {
		if path, ok := strings.CutPrefix(name, "files/"); ok {
			ev.Rendered["/"+path] = string(data)
		}
	}
	ev.Warnings = nonEmptyLines(text("cloud-init-warnings.log"))
	ev.NetworkdPending = nonEmptyLines(text("networkd-pending.txt"))
	ev.NetworkdStates = map[string]string{}
	for _, line := range nonEmptyLines(text("networkd-states.txt")) {
		if link, state, ok := strings.Cut(line, " "); ok {
			ev.NetworkdStates[link] = state
		}
	}
	ev.FailedUnits = nonEmptyLines(text("failed-units.txt"))

	status, err := parseCloudInitStatus(files["status.json"], files["result.json"])
	if err != nil {
		return nil, err
	}
	status.StatusText = text("cloud-init-status.txt")
	ev.CloudInit = status

	ifaces, err := parseIPAddr(files["ip-addr.json"])
	if err != nil {
		return nil, fmt.Errorf("%w (ip stderr: %s)", err, text("ip-addr.err"))
	}
	udev := parseUdevNet(files["udev-net.txt"])
	for i := range ifaces {
		props := udev[ifaces[i].Name]
		ifaces[i].PathName = props["ID_NET_NAME_PATH"]
		ifaces[i].PCIPath = props["ID_PATH"]
	}
	ev.Interfaces = ifaces
	return ev, nil
}

// parseUdevNet reads "<link> KEY=value" lines into properties per link.
func parseUdevNet(data []byte) map[string]map[string]string {
	out := map[string]map[string]string{}
	for _, line := range nonEmptyLines(string(data)) {
		link, prop, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		key, value, ok := strings.Cut(prop, "=")
		if !ok {
			continue
		}
		if out[link] == nil {
			out[link] = map[string]string{}
		}
		out[link][key] = value
	}
	return out
}

func nonEmptyLines(s string) []string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		if line = strings.TrimSpace(line); line != "" {
			out = append(out, line)
		}
	}
	return out
}

// parseCloudInitStatus reads status.json and result.json as cloud-init
// 22.4.2 writes them (cloudinit/cmd/main.py, status_wrapper).
func parseCloudInitStatus(statusJSON, resultJSON []byte) (CloudInitStatus, error) {
	st := CloudInitStatus{Stages: map[string]CloudInitStage{}}
	if len(statusJSON) > 0 {
		var doc struct {
			V1 map[string]json.RawMessage `json:"v1"`
		}
		if err := json.Unmarshal(statusJSON, &doc); err != nil {
			return st, fmt.Errorf("parse cloud-init status.json: %w", err)
		}
		for key, raw := range doc.V1 {
			switch key {
			case "datasource":
				_ = json.Unmarshal(raw, &st.Datasource)
			case "stage":
				_ = json.Unmarshal(raw, &st.CurrentStage)
			default:
				var stage CloudInitStage
				if json.Unmarshal(raw, &stage) == nil {
					st.Stages[key] = stage
				}
			}
		}
	}

	if len(resultJSON) > 0 {
		var doc struct {
			V1 struct {
				Datasource        string              `json:"datasource"`
				Errors            []string            `json:"errors"`
				RecoverableErrors map[string][]string `json:"recoverable_errors"`
			} `json:"v1"`
		}
		if err := json.Unmarshal(resultJSON, &doc); err != nil {
			return st, fmt.Errorf("parse cloud-init result.json: %w", err)
		}
		st.Finished = true
		st.Errors = doc.V1.Errors
		st.RecoverableErrors = doc.V1.RecoverableErrors
		return st, nil
	}

	// Not finished: gather what the stages recorded so far, in boot order.
	for _, name := range stageOrder(st.Stages) {
		stage := st.Stages[name]
		st.Errors = append(st.Errors, stage.Errors...)
		for level, msgs := range stage.RecoverableErrors {
			if st.RecoverableErrors == nil {
				st.RecoverableErrors = map[string][]string{}
			}
			st.RecoverableErrors[level] = append(st.RecoverableErrors[level], msgs...)
		}
	}
	return st, nil
}

func stageOrder(stages map[string]CloudInitStage) []string {
	order := map[string]int{"init-local": 0, "init": 1, "modules-init": 2, "modules-config": 3, "modules-final": 4}
	names := make([]string, 0, len(stages))
	for name := range stages {
		names = append(names, name)
	}
	sort.Slice(names, func(i, j int) bool {
		oi, iok := order[names[i]]
		oj, jok := order[names[j]]
		if iok != jok {
			return iok
		}
		if oi != oj {
			return oi < oj
		}
		return names[i] < names[j]
	})
	return names
}

// parseIPAddr reads `ip -j addr show` (iproute2).
func parseIPAddr(data []byte) ([]Interface, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, errors.New("evidence has no `ip -j addr` output")
	}
	var links []struct {
		IfName    string   `json:"ifname"`
		Address   string   `json:"address"`
		OperState string   `json:"operstate"`
		Flags     []string `json:"flags"`
		LinkType  string   `json:"link_type"`
		AddrInfo  []struct {
			Family    string `json:"family"`
			Local     string `json:"local"`
			PrefixLen int    `json:"prefixlen"`
		} `json:"addr_info"`
	}
	if err := json.Unmarshal(data, &links); err != nil {
		return nil, fmt.Errorf("parse `ip -j addr` output: %w", err)
	}
	var out []Interface
	for _, l := range links {
		iface := Interface{Name: l.IfName, OperState: l.OperState, Flags: l.Flags, LinkType: l.LinkType}
		if mac, err := net.ParseMAC(l.Address); err == nil {
			iface.MAC = mac
		}
		for _, a := range l.AddrInfo {
			addr, err := netip.ParseAddr(a.Local)
			if err != nil {
				continue
			}
			iface.Addresses = append(iface.Addresses, netip.PrefixFrom(addr, a.PrefixLen))
		}
		out = append(out, iface)
	}
	return out, nil
}
