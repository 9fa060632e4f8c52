package guest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vmnet-e2e/vmnet-e2e/framework/cleanup"
)

// NIC is one guest network interface backed by a tap file descriptor.
type NIC struct {
	// Tap is an open tap (or macvtap) file; see link.OpenTap and
	// link.OpenMacvtap.
	// qemu receives a duplicate, so the caller may close it after Start.
	Tap *os.File
	// MAC is the guest NIC's MAC address.
	MAC net.HardwareAddr
}

// Config describes one guest.
type Config struct {
	// Name identifies the guest in logs, file names and the cleanup ledger.
	Name  string
	Image *Image
	// Seed is the NoCloud ISO (cloudinit.WriteSeed); it is attached after
	// the root disk as a virtio disk, like KubeVirt's cloudinitdisk.
	Seed string
	// NICs are attached in order: the first gets PCI bus 1, which the
	// guest names enp1s0, the second bus 2 (enp2s0), and so on.
	NICs []NIC
	// CPUs is qemu's -smp; 0 means 1.
	CPUs int
	// MemoryMiB is the guest memory; 0 means 768.
	MemoryMiB int
	// StateDir holds the overlay disk, the console log and qemu's log; the
	// default is <ledger dir>/guest-<Name>.
	StateDir string
	// Console receives every console line as it arrives.
	Console io.Writer
	// Ledger tracks the qemu process so that it is stopped on cleanup and by
	// cleanup.Reap after a crash. Required.
	Ledger *cleanup.Ledger
	Log    *slog.Logger
	// Nonce marks this boot's evidence; the user-data harness part must carry
	// the same (FinalEvidenceScript). The default is a new nonce, which
	// suits guests that only report early evidence.
	Nonce string
	// KernelArgs are appended to the kernel command line.
	KernelArgs []string
	// QEMU is the qemu binary; the default is qemu-system-x86_64.
	QEMU string
}

// VM is a running guest.
type VM struct {
	cfg     Config
	dir     string
	console string
	qemuLog string
	cmd     *exec.Cmd
	handle  *cleanup.Handle
	log     *slog.Logger
	started time.Time

	exited  chan struct{}
	exitErr error
	// consoleDone is closed when the console reader has read everything
	// qemu wrote and stopped.
	consoleDone chan struct{}

	mu       sync.Mutex
	changed  chan struct{}
	evidence map[Stage]*Evidence
	firstAt  map[Stage]time.Duration
	parseErr error
	panicMsg string
	lastLine string
	lines    *lineRing

	stopOnce sync.Once
	stopErr  error
}

const (
	defaultMemoryMiB = 768
	// quietFlush is how long a partial console line may wait for its
	// newline before it is passed on; the serial "login:" prompt never gets
	// one.
	quietFlush = 300 * time.Millisecond
)

// Start boots a guest under qemu with TCG and returns once qemu runs. The
// guest is stopped when ctx is cancelled, by Stop, or by the ledger.
//
// The device layout follows what libvirt generates for a KubeVirt VMI on
// q35: one pcie-root-port per device, the NICs first in spec order, then the
// disks (root disk, then the cloud-init seed). The guest therefore names its
// NICs enp1s0, enp2s0, ... by udev's path-based scheme, and the root disk is
// /dev/vda.
func Start(ctx context.Context, cfg Config) (*VM, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.CPUs == 0 {
		cfg.CPUs = 1
	}
	if cfg.MemoryMiB == 0 {
		cfg.MemoryMiB = defaultMemoryMiB
	}
	if cfg.Nonce == "" {
		cfg.Nonce = NewNonce()
	}
	if cfg.QEMU == "" {
		cfg.QEMU = "qemu-system-x86_64"
	}
	if cfg.StateDir == "" {
		cfg.StateDir = filepath.Join(cfg.Ledger.Dir(), "guest-"+cfg.Name)
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("guest %s: create state directory: %w", cfg.Name, err)
	}

	vm := &VM{
		cfg:         cfg,
		dir:         cfg.StateDir,
		console:     filepath.Join(cfg.StateDir, "console.log"),
		qemuLog:     filepath.Join(cfg.StateDir, "qemu.log"),
		log:         cfg.Log.With("guest", cfg.Name),
		exited:      make(chan struct{}),
		consoleDone: make(chan struct{}),
		changed:     make(chan struct{}),
		evidence:    map[Stage]*Evidence{},
		firstAt:     map[Stage]time.Duration{},
		lines:       newLineRing(40),
	}

	overlay := filepath.Join(cfg.StateDir, "root.qcow2")
	if err := createOverlay(ctx, cfg.Image.Disk, overlay); err != nil {
		return nil, fmt.Errorf("guest %s: %w", cfg.Name, err)
	}
	if err := os.WriteFile(vm.console, nil, 0o600); err != nil {
		return nil, fmt.Errorf("guest %s: create console log: %w", cfg.Name, err)
	}

	if err := vm.startQEMU(ctx, overlay); err != nil {
		return nil, err
	}
	go vm.followConsole()
	return vm, nil
}

func (c *Config) validate() error {
	switch {
	case c.Name == "":
		return errors.New("guest: Config.Name is empty")
	case c.Image == nil:
		return fmt.Errorf("guest %s: Config.Image is nil: get one from EnsureImage", c.Name)
	case c.Ledger == nil:
		return fmt.Errorf("guest %s: Config.Ledger is nil: every qemu process must be tracked", c.Name)
	case c.Nonce != "" && !nonceRE.MatchString(c.Nonce):
		return fmt.Errorf("guest %s: nonce %q is not 16 lowercase hex characters: use NewNonce", c.Name, c.Nonce)
	}
	for i, nic := range c.NICs {
		if nic.Tap == nil {
			return fmt.Errorf("guest %s: NIC %d has no tap file", c.Name, i)
		}
		if len(nic.MAC) != 6 {
			return fmt.Errorf("guest %s: NIC %d has invalid MAC %q", c.Name, i, nic.MAC)
		}
	}
	if c.MemoryMiB != 0 && c.MemoryMiB < 256 {
		return fmt.Errorf("guest %s: %d MiB of memory is too little for Debian with cloud-init: use 512 or more", c.Name, c.MemoryMiB)
	}
	return nil
}

func createOverlay(ctx context.Context, base, overlay string) error {
	cmd := exec.CommandContext(ctx, "qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", base, overlay)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("create overlay %s over %s: %w: %s", overlay, base, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// qemuArgs returns qemu's command line. Tap file descriptors start at 3, the
// first of cmd.ExtraFiles.
func (vm *VM) qemuArgs(overlay string) []string {
	cfg := vm.cfg
	kernelArgs := append([]string{
		"root=/dev/vda", "rw", "console=ttyS0",
		// A panicking guest reboots after 1 s. With -no-reboot qemu then
		// exits, and WaitEvidence reports the exit.
		"panic=1",
		nonceKernelArg + "=" + cfg.Nonce,
	}, cfg.KernelArgs...)

	args := []string{
		"-name", "guest=" + cfg.Name,
		"-machine", "q35",
		"-accel", "tcg",
		"-smp", fmt.Sprint(cfg.CPUs),
		"-m", fmt.Sprint(cfg.MemoryMiB),
		"-nodefaults", "-no-user-config",
		"-display", "none",
		"-no-reboot",
		"-kernel", cfg.Image.Kernel,
		"-initrd", cfg.Image.Initrd,
		"-append", strings.Join(kernelArgs, " "),
		"-chardev", "file,id=charserial0,path=" + vm.console,
		"-serial", "chardev:charserial0",
	}

	// One pcie-root-port per device, as libvirt lays out a q35 domain:
	// functions of slot 2 on pcie.0, chassis and bus numbers from 1.
	port := 0
	rootPort := func() string {
		port++
		id := fmt.Sprintf("pci.%d", port)
		slot, function := 2+(port-1)/8, (port-1)%8
		dev := fmt.Sprintf("pcie-root-port,port=0x%x,chassis=%d,id=%s,bus=pcie.0,addr=0x%x.0x%x", 0x10+port-1, port, id, slot, function)
		if function == 0 {
			dev += ",multifunction=on"
		}
		args = append(args, "-device", dev)
		return id
	}

	for i, nic := range cfg.NICs {
		bus := rootPort()
		args = append(args,
			"-netdev", fmt.Sprintf("tap,id=hostnet%d,fd=%d,vhost=off", i, 3+i),
			"-device", fmt.Sprintf("virtio-net-pci,netdev=hostnet%d,id=net%d,mac=%s,bus=%s,addr=0x0", i, i, nic.MAC, bus),
		)
	}

	bus := rootPort()
	args = append(args,
		"-blockdev", fmt.Sprintf("driver=file,filename=%s,node-name=rootfile,cache.no-flush=on", overlay),
		"-blockdev", "driver=qcow2,file=rootfile,node-name=rootdisk,cache.no-flush=on",
		"-device", fmt.Sprintf("virtio-blk-pci,drive=rootdisk,id=ua-rootdisk,bus=%s,addr=0x0", bus),
	)
	if cfg.Seed != "" {
		bus := rootPort()
		args = append(args,
			"-blockdev", fmt.Sprintf("driver=file,filename=%s,node-name=seedfile", cfg.Seed),
			"-blockdev", "driver=raw,file=seedfile,node-name=cloudinitdisk",
			"-device", fmt.Sprintf("virtio-blk-pci,drive=cloudinitdisk,id=ua-cloudinitdisk,bus=%s,addr=0x0", bus),
		)
	}
	return args
}

func (vm *VM) startQEMU(ctx context.Context, overlay string) error {
	cfg := vm.cfg
	logFile, err := os.Create(vm.qemuLog)
	if err != nil {
		return fmt.Errorf("guest %s: create qemu log: %w", cfg.Name, err)
	}
	defer logFile.Close()

	cmd := exec.CommandContext(ctx, cfg.QEMU, vm.qemuArgs(overlay)...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	for _, nic := range cfg.NICs {
		cmd.ExtraFiles = append(cmd.ExtraFiles, nic.Tap)
	}
	// Its own process group keeps a terminal's Ctrl-C away from qemu, so the
	// harness stops it in order; Pdeathsig ends it if the harness is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second

	vm.log.Info("starting guest", "cpus", cfg.CPUs, "memoryMiB", cfg.MemoryMiB, "nics", len(cfg.NICs), "stateDir", vm.dir)
	vm.log.Debug("qemu command line", "args", strings.Join(cmd.Args, " "))

	// The kernel sends Pdeathsig when the thread that forked the child exits,
	// not the process. Go ends a thread whenever a goroutine exits while
	// locked to it (network namespace helpers do that), so qemu is started
	// and waited for on a thread locked for qemu's whole life.
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		err := cmd.Wait()
		vm.mu.Lock()
		vm.exitErr = err
		vm.mu.Unlock()
		close(vm.exited)
		vm.notify()
	}()
	if err := <-started; err != nil {
		if errors.Is(err, exec.ErrNotFound) {
			return fmt.Errorf("guest %s: %s not found: install it with `apt-get install qemu-system-x86`", cfg.Name, cfg.QEMU)
		}
		return fmt.Errorf("guest %s: start qemu: %w", cfg.Name, err)
	}
	vm.cmd = cmd
	vm.started = time.Now()

	resource, err := cleanup.ProcessResource("qemu "+cfg.Name, cmd.Process.Pid)
	if err != nil {
		// The process already exited; Wait reports why.
		resource = cleanup.Resource{Kind: cleanup.KindProcess, Name: "qemu " + cfg.Name, PID: cmd.Process.Pid}
	}
	vm.handle = cfg.Ledger.Track(resource, vm.stop)
	return nil
}

// PID returns qemu's process ID.
func (vm *VM) PID() int { return vm.cmd.Process.Pid }

// Name returns the guest's name.
func (vm *VM) Name() string { return vm.cfg.Name }

// Nonce returns the nonce this boot's evidence must carry.
func (vm *VM) Nonce() string { return vm.cfg.Nonce }

// ConsolePath returns the file the serial console is written to.
func (vm *VM) ConsolePath() string { return vm.console }

// StateDir returns the directory with the overlay, console and qemu logs.
func (vm *VM) StateDir() string { return vm.dir }

// Started returns when qemu was started.
func (vm *VM) Started() time.Time { return vm.started }

// Exited is closed when qemu has exited.
func (vm *VM) Exited() <-chan struct{} { return vm.exited }

// LastConsoleLines returns up to the last 40 console lines.
func (vm *VM) LastConsoleLines() []string { return vm.lines.lines() }

// Stop stops qemu: SIGTERM, then SIGKILL after 10 s. It is safe to call more
// than once and after qemu has exited.
func (vm *VM) Stop(ctx context.Context) error {
	return vm.handle.Release(ctx)
}

func (vm *VM) stop(ctx context.Context) error {
	vm.stopOnce.Do(func() {
		select {
		case <-vm.exited:
			return
		default:
		}
		vm.log.Info("stopping guest", "pid", vm.PID())
		_ = vm.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-vm.exited:
			return
		case <-time.After(10 * time.Second):
		case <-ctx.Done():
		}
		vm.log.Warn("guest did not stop on SIGTERM; sending SIGKILL", "pid", vm.PID())
		if err := vm.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
			vm.stopErr = fmt.Errorf("guest %s: kill qemu (pid %d): %w", vm.cfg.Name, vm.PID(), err)
			return
		}
		select {
		case <-vm.exited:
		case <-time.After(10 * time.Second):
			vm.stopErr = fmt.Errorf("guest %s: qemu (pid %d) still runs 10 s after SIGKILL", vm.cfg.Name, vm.PID())
		}
	})
	return vm.stopErr
}

// notify wakes every waiter; the caller must not hold vm.mu.
func (vm *VM) notify() {
	vm.mu.Lock()
	close(vm.changed)
	vm.changed = make(chan struct{})
	vm.mu.Unlock()
}

// followConsole reads the console file as qemu writes it, splits it into
// lines, and feeds them to Config.Console, the evidence parser and the panic
// detector. A partial line is flushed after quietFlush without new output.
func (vm *VM) followConsole() {
	defer close(vm.consoleDone)
	f, err := os.Open(vm.console)
	if err != nil {
		vm.log.Error("cannot read the guest console", "path", vm.console, "error", err)
		return
	}
	defer f.Close()

	parser := NewEvidenceParser(vm.cfg.Nonce)
	var pending []byte
	lastData := time.Now()
	buf := make([]byte, 64<<10)
	emit := func(line string) {
		vm.handleLine(parser, line)
	}
	for {
		n, err := f.Read(buf)
		if n > 0 {
			lastData = time.Now()
			pending = append(pending, buf[:n]...)
			for {
				i := bytes.IndexByte(pending, '\n')
				if i < 0 {
					break
				}
				emit(string(bytes.TrimRight(pending[:i], "\r")))
				pending = pending[i+1:]
			}
			continue
		}
		if err != nil && !errors.Is(err, io.EOF) {
			vm.log.Error("reading the guest console failed", "error", err)
			return
		}
		if len(pending) > 0 && time.Since(lastData) >= quietFlush {
			emit(string(bytes.TrimRight(pending, "\r")))
			pending = nil
		}
		select {
		case <-vm.exited:
			// Drain what qemu wrote before it exited, then stop.
			if rest, _ := io.ReadAll(f); len(rest) > 0 {
				pending = append(pending, rest...)
				for _, line := range strings.Split(string(pending), "\n") {
					if line = strings.TrimRight(line, "\r"); line != "" {
						emit(line)
					}
				}
			} else if len(pending) > 0 {
				emit(string(pending))
			}
			return
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (vm *VM) handleLine(parser *EvidenceParser, line string) {
	if vm.cfg.Console != nil {
		_, _ = io.WriteString(vm.cfg.Console, line+"\n")
	}
	// Logs and errors get the line without systemd's colour codes.
	plain := ansiEscapeRE.ReplaceAllString(line, "")
	if !strings.Contains(line, evidenceMarker) {
		vm.lines.add(plain)
	}

	ev, err := parser.Feed(line)
	changed := false
	vm.mu.Lock()
	if strings.TrimSpace(plain) != "" && !strings.Contains(line, evidenceMarker) {
		vm.lastLine = plain
	}
	if err != nil && vm.parseErr == nil {
		vm.parseErr = err
		changed = true
	}
	if ev != nil {
		vm.evidence[ev.Stage] = ev
		vm.firstAt[ev.Stage] = time.Since(vm.started)
		changed = true
	}
	if vm.panicMsg == "" && strings.Contains(line, "Kernel panic - not syncing") {
		vm.panicMsg = strings.TrimSpace(line)
		changed = true
	}
	vm.mu.Unlock()
	if ev != nil {
		vm.log.Info("guest evidence received", "stage", ev.Stage, "afterSeconds", time.Since(vm.started).Seconds(), "summary", ev.Summary())
	}
	if changed {
		vm.notify()
	}
}

// ansiEscapeRE matches the terminal control sequences systemd and agetty
// write to the console.
var ansiEscapeRE = regexp.MustCompile(`\x1b(\[[0-9;?]*[A-Za-z]|[A-Za-z])|\r`)

// Evidence returns the evidence of stage if it has arrived.
func (vm *VM) Evidence(stage Stage) (*Evidence, bool) {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	ev, ok := vm.evidence[stage]
	return ev, ok
}

// EvidenceLatency returns how long after qemu's start the evidence of stage
// was read from the console.
func (vm *VM) EvidenceLatency(stage Stage) (time.Duration, bool) {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	d, ok := vm.firstAt[stage]
	return d, ok
}

// WaitEvidence waits up to timeout for the guest to print the evidence of
// stage and returns it. It fails early when qemu exits, the guest kernel
// panics, or the evidence does not decode; a timeout error carries the last
// console lines. Progress is logged every 15 s.
//
// Typical times on two shared cores with TCG are given by this package's
// benchmarks; StageNetwork comes about 20 to 40 s after Start, StageFinal
// shortly after, or about two minutes later when systemd-networkd-wait-online
// waits for an interface that never appears.
func (vm *VM) WaitEvidence(ctx context.Context, stage Stage, timeout time.Duration) (*Evidence, error) {
	what := map[Stage]string{
		StageNetwork: "early network evidence (printed once networking has settled)",
		StageFinal:   "final evidence (printed once cloud-init has finished)",
	}[stage]
	if what == "" {
		return nil, fmt.Errorf("guest %s: unknown evidence stage %q: use StageNetwork or StageFinal", vm.cfg.Name, stage)
	}
	vm.log.Info("waiting for guest "+what, "timeout", timeout, "sinceStart", time.Since(vm.started).Round(time.Second))

	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	progress := time.NewTicker(15 * time.Second)
	defer progress.Stop()
	start := time.Now()
	for {
		vm.mu.Lock()
		ev, parseErr, panicMsg, changed, last := vm.evidence[stage], vm.parseErr, vm.panicMsg, vm.changed, vm.lastLine
		vm.mu.Unlock()

		switch {
		case ev != nil:
			return ev, nil
		case parseErr != nil:
			return nil, fmt.Errorf("guest %s: %w", vm.cfg.Name, parseErr)
		case panicMsg != "":
			return nil, fmt.Errorf("guest %s: kernel panic while waiting for the %s: %q; last console lines:\n%s", vm.cfg.Name, what, panicMsg, vm.consoleTail())
		}
		select {
		case <-vm.exited:
			// Let the console reader drain the last output first.
			select {
			case <-vm.consoleDone:
			case <-time.After(5 * time.Second):
			}
			if ev, ok := vm.Evidence(stage); ok {
				return ev, nil
			}
			return nil, fmt.Errorf("guest %s: qemu exited (%v) before the %s; qemu log: %s; last console lines:\n%s", vm.cfg.Name, vm.exitStatus(), what, vm.qemuLogTail(), vm.consoleTail())
		default:
		}

		select {
		case <-changed:
		case <-vm.exited:
		case <-progress.C:
			vm.log.Info("still waiting for guest "+what, "waited", time.Since(start).Round(time.Second), "timeout", timeout, "lastConsoleLine", last)
		case <-deadline.C:
			return nil, fmt.Errorf("guest %s: timed out after %s waiting for the %s; last console lines:\n%s", vm.cfg.Name, timeout, what, vm.consoleTail())
		case <-ctx.Done():
			return nil, fmt.Errorf("guest %s: waiting for the %s: %w", vm.cfg.Name, what, ctx.Err())
		}
	}
}

func (vm *VM) exitStatus() error {
	vm.mu.Lock()
	defer vm.mu.Unlock()
	if vm.exitErr == nil {
		return errors.New("exit status 0")
	}
	return vm.exitErr
}

func (vm *VM) consoleTail() string {
	lines := vm.lines.lines()
	if len(lines) > 25 {
		lines = lines[len(lines)-25:]
	}
	return "  " + strings.Join(lines, "\n  ")
}

func (vm *VM) qemuLogTail() string {
	data, _ := os.ReadFile(vm.qemuLog)
	s := strings.TrimSpace(string(data))
	if s == "" {
		return "(empty)"
	}
	if len(s) > 2000 {
		s = "..." + s[len(s)-2000:]
	}
	return s
}
