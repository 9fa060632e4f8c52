package cni

import (
	"encoding/json"
	"fmt"
	"path/filepath"
)

// netConf is the parsed spec.config of a NetworkAttachmentDefinition: either
// one plugin configuration or a configuration list ("plugins").
type netConf struct {
	Name       string
	CNIVersion string
	IsList     bool
	// Plugins holds each plugin's JSON object; one entry for a single
	// plugin configuration.
	Plugins []map[string]any
	raw     map[string]any
}

// parseNetConf decides, as Multus v4.3.0 does, between a single plugin
// configuration and a list: a config without "type" is a list, which must
// have a "plugins" array whose first entry has a "type".
//
// Source: k8snetworkplumbingwg/multus-cni v4.3.0, pkg/types/conf.go
// (LoadDelegateNetConf, LoadDelegateNetConfList).
func parseNetConf(config []byte) (*netConf, error) {
	var raw map[string]any
	if err := json.Unmarshal(config, &raw); err != nil {
		return nil, fmt.Errorf("cni: NAD config is not a JSON object: %w (spec.config must hold a CNI network configuration)", err)
	}
	nc := &netConf{raw: raw}
	nc.Name, _ = raw["name"].(string)
	nc.CNIVersion, _ = raw["cniVersion"].(string)

	if t, _ := raw["type"].(string); t != "" {
		nc.Plugins = []map[string]any{raw}
		return nc, nil
	}

	nc.IsList = true
	list, ok := raw["plugins"].([]any)
	if !ok || len(list) == 0 {
		return nil, fmt.Errorf("cni: NAD config %q has neither \"type\" nor a \"plugins\" list: set \"type\" for a single plugin or list plugins under \"plugins\"", nc.Name)
	}
	for i, p := range list {
		obj, ok := p.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("cni: NAD config %q: plugins[%d] is not a JSON object", nc.Name, i)
		}
		nc.Plugins = append(nc.Plugins, obj)
	}
	if t, _ := nc.Plugins[0]["type"].(string); t == "" {
		return nil, fmt.Errorf("cni: NAD config %q: plugins[0] has no \"type\"", nc.Name)
	}
	return nc, nil
}

// setHostLocalDataDir points every host-local IPAM section without a
// "dataDir" at dir and reports whether it changed anything.
//
// NOTE: this is the one change the harness makes to a NAD's config. host-local
// keeps its allocations in files under /var/lib/cni/networks/<name> by
// default, shared with any real CNI setup on the machine and left behind by
// an interrupted run; under the run's state directory they go with the run.
// The allocation logic is unchanged.
func (nc *netConf) setHostLocalDataDir(dir string) bool {
	changed := false
	for _, p := range nc.Plugins {
		ipam, ok := p["ipam"].(map[string]any)
		if !ok || ipam["type"] != "host-local" {
			continue
		}
		if _, set := ipam["dataDir"]; set {
			continue
		}
		ipam["dataDir"] = filepath.Join(dir, "networks")
		changed = true
	}
	return changed
}

// bytes returns the (possibly changed) configuration as JSON.
func (nc *netConf) bytes() ([]byte, error) {
	return json.Marshal(nc.raw)
}

// pluginTypes lists the "type" of each plugin, for messages.
func (nc *netConf) pluginTypes() []string {
	var out []string
	for _, p := range nc.Plugins {
		t, _ := p["type"].(string)
		out = append(out, t)
	}
	return out
}

// masters returns the "master" of plugins that create a link on a parent in
// the node namespace (macvlan, ipvlan, macvtap).
func (nc *netConf) masters() []string {
	var out []string
	for _, p := range nc.Plugins {
		switch p["type"] {
		case "macvlan", "ipvlan", "macvtap":
			if m, _ := p["master"].(string); m != "" {
				out = append(out, m)
			}
		}
	}
	return out
}

// bridgeName returns the "bridge" of a bridge plugin, "cni0" when unset
// (containernetworking/plugins v1.1.1, plugins/main/bridge/bridge.go
// defaultBrName).
func (nc *netConf) bridgeName() (string, bool) {
	for _, p := range nc.Plugins {
		if p["type"] == "bridge" {
			if b, _ := p["bridge"].(string); b != "" {
				return b, true
			}
			return "cni0", true
		}
	}
	return "", false
}
