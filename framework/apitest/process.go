package apitest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"time"
)

// process is a control-plane program started by the environment.
type process struct {
	name    string
	cmd     *exec.Cmd
	logPath string

	// done is closed when the process has exited and been waited for.
	done    chan struct{}
	waitErr error
}

// stopGrace is how long a process has to exit after SIGTERM before SIGKILL.
const stopGrace = 10 * time.Second

// startProcess starts path with args. Its stderr, and its stdout unless
// stdout is given, go to logPath.
//
// The process gets its own process group, so that a Ctrl-C in the terminal
// reaches only the test, which then stops it by PID. It also gets SIGKILL
// when the starting thread ends (PR_SET_PDEATHSIG), so a test binary killed
// by its -timeout leaves no control plane behind. Because the kernel ties
// that signal to the thread, not the process, the start and the wait run on
// one goroutine locked to its thread, which lives as long as the child.
func startProcess(name, path string, args []string, logPath string, stdout *os.File) (*process, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("apitest: create log of %s: %w", name, err)
	}
	cmd := exec.Command(path, args...)
	cmd.Stderr = logFile
	cmd.Stdout = logFile
	if stdout != nil {
		cmd.Stdout = stdout
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}

	p := &process{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		// No UnlockOSThread: the thread ends with this goroutine, after the
		// child has exited.
		runtime.LockOSThread()
		err := cmd.Start()
		_ = logFile.Close()
		started <- err
		if err != nil {
			close(p.done)
			return
		}
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("apitest: start %s (%s): %w", name, path, err)
	}
	return p, nil
}

func (p *process) pid() int { return p.cmd.Process.Pid }

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM, waits up to stopGrace, then sends SIGKILL and waits
// for the exit. Only this process's PID is signalled.
func (p *process) stop(ctx context.Context) error {
	if p.exited() {
		return nil
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("apitest: SIGTERM %s (pid %d): %w", p.name, p.pid(), err)
	}
	select {
	case <-p.done:
		return nil
	case <-ctx.Done():
	case <-time.After(stopGrace):
	}
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("apitest: SIGKILL %s (pid %d): %w", p.name, p.pid(), err)
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(stopGrace):
		return fmt.Errorf("apitest: %s (pid %d) still running %s after SIGKILL", p.name, p.pid(), stopGrace)
	}
}

// exitError describes how the process ended, with the end of its log.
func (p *process) exitError() error {
	return fmt.Errorf("%s (pid %d) exited: %v; last lines of %s:\n%s", p.name, p.pid(), p.waitErr, p.logPath, tailFile(p.logPath, 30))
}

// readyLine reads r until a line starting with prefix, and returns the rest
// of that line. Lines before it are copied to log.
func readyLine(r io.Reader, prefix string, log io.Writer) (string, error) {
	var line []byte
	buf := make([]byte, 1)
	for {
		n, err := r.Read(buf)
		if n == 1 {
			if buf[0] != '\n' {
				line = append(line, buf[0])
				continue
			}
			if s := string(line); len(s) >= len(prefix) && s[:len(prefix)] == prefix {
				return s[len(prefix):], nil
			}
			_, _ = log.Write(append(line, '\n'))
			line = line[:0]
		}
		if err != nil {
			return "", err
		}
	}
}
