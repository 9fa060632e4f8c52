package cni

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/vmnet-e2e/vmnet-e2e/framework/netns"
)

// PluginError is a failed plugin run: the CNI error the plugin printed on
// stdout (code, msg, details) together with its stderr.
type PluginError struct {
	Plugin  string
	Command string
	// CNI is the plugin's JSON error; Msg is set even when the plugin
	// printed none.
	CNI    *types.Error
	Stderr string
	// Err is the process error (exit status, signal, context).
	Err error
}

func (e *PluginError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "cni: plugin %s %s failed", e.Plugin, e.Command)
	if e.CNI != nil {
		fmt.Fprintf(&b, ": %s", e.CNI.Msg)
		if e.CNI.Details != "" {
			fmt.Fprintf(&b, ": %s", e.CNI.Details)
		}
		if e.CNI.Code != 0 {
			fmt.Fprintf(&b, " (CNI error code %d)", e.CNI.Code)
		}
	}
	if e.Err != nil {
		fmt.Fprintf(&b, " [%v]", e.Err)
	}
	if s := strings.TrimSpace(e.Stderr); s != "" {
		fmt.Fprintf(&b, "; stderr: %s", s)
	}
	return b.String()
}

// Unwrap returns the CNI error, so that errors.As(err, **types.Error) finds it
// as it does for libcni's own exec.
func (e *PluginError) Unwrap() []error {
	var errs []error
	if e.CNI != nil {
		errs = append(errs, e.CNI)
	}
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	return errs
}

// nsExec runs plugin binaries inside a network namespace. It implements
// libcni's invoke.Exec.
//
// A plugin such as bridge or macvlan acts on the namespace it runs in: the
// bridge plugin creates its bridge there and macvlan looks its master up
// there. The namespace is entered on a locked thread with (*netns.Namespace).Do
// and the plugin is forked from that thread, so the child starts inside it.
type nsExec struct {
	ns  *netns.Namespace
	log *slog.Logger
}

var _ invoke.Exec = &nsExec{}

func (e *nsExec) ExecPlugin(ctx context.Context, pluginPath string, stdinData []byte, environ []string) ([]byte, error) {
	command := envValue(environ, "CNI_COMMAND")
	plugin := filepath.Base(pluginPath)
	var stdout, stderr bytes.Buffer

	start := time.Now()
	runErr := e.ns.Do(func() error {
		cmd := exec.CommandContext(ctx, pluginPath)
		cmd.Env = environ
		cmd.Stdin = bytes.NewReader(stdinData)
		cmd.Stdout = &stdout
		cmd.Stderr = &stderr
		return cmd.Run()
	})
	e.log.Debug("cni plugin ran", "plugin", plugin, "command", command, "netns", e.ns.Name,
		"duration", time.Since(start), "error", runErr, "stderr", stderr.String())

	if runErr == nil {
		return stdout.Bytes(), nil
	}
	pe := &PluginError{Plugin: plugin, Command: command, Stderr: stderr.String(), Err: runErr}
	if stdout.Len() > 0 {
		var cniErr types.Error
		if err := json.Unmarshal(stdout.Bytes(), &cniErr); err == nil && cniErr.Msg != "" {
			pe.CNI = &cniErr
		} else {
			pe.CNI = &types.Error{Msg: fmt.Sprintf("unparsable plugin output %q", stdout.String())}
		}
	}
	return nil, pe
}

func (e *nsExec) FindInPath(plugin string, paths []string) (string, error) {
	return invoke.FindInPath(plugin, paths)
}

func (e *nsExec) Decode(jsonBytes []byte) (version.PluginInfo, error) {
	var decoder version.PluginDecoder
	return decoder.Decode(jsonBytes)
}

func envValue(environ []string, key string) string {
	for _, kv := range environ {
		if v, ok := strings.CutPrefix(kv, key+"="); ok {
			return v
		}
	}
	return ""
}
