package kind

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	ctrlclient "sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/vmnet-e2e/vmnet-e2e/framework/verdict"
)

// artifactSet is the input of writeArtifacts for one scenario.
type artifactSet struct {
	dir       string
	namespace string
	// vm and vmi name the scenario's VirtualMachine (empty for a bare VMI)
	// and VirtualMachineInstance.
	vm, vmi string
	// pod is the launcher pod, empty when none was found.
	pod      string
	console  []byte
	evidence *verdict.Evidence
	// failure is Observe's error, empty when it succeeded.
	failure string
}

// writeArtifacts writes, under a.dir: the VM, VMI and launcher pod as YAML,
// the namespace's events, the launcher's `ip -d link`, `ip addr` and `bridge
// link`, the guest console log, the guest's cloud-init report and the
// evidence. It writes what it can and returns every failure joined, so that
// a missing artifact never hides the scenario's own result.
func (k *kubeClient) writeArtifacts(ctx context.Context, a artifactSet) error {
	if err := os.MkdirAll(a.dir, 0o755); err != nil {
		return fmt.Errorf("kind: create artifacts directory %s: %w", a.dir, err)
	}
	var errs []error
	write := func(name string, data []byte) {
		if err := os.WriteFile(filepath.Join(a.dir, name), data, 0o644); err != nil {
			errs = append(errs, fmt.Errorf("kind: write artifact %s: %w", name, err))
		}
	}

	// objects
	objects := []struct{ file, apiVersion, kind, name string }{
		{"vm.yaml", "kubevirt.io/v1", "VirtualMachine", a.vm},
		{"vmi.yaml", "kubevirt.io/v1", "VirtualMachineInstance", a.vmi},
		{"launcher-pod.yaml", "v1", "Pod", a.pod},
	}
	for _, o := range objects {
		if o.name == "" {
			continue
		}
		data, err := k.objectYAML(ctx, o.apiVersion, o.kind, a.namespace, o.name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		write(o.file, data)
	}

	// events of the namespace, oldest first
	if events, err := k.eventsText(ctx, a.namespace); err != nil {
		errs = append(errs, err)
	} else {
		write("events.txt", events)
	}

	// the launcher pod's link tables
	if a.pod != "" {
		for _, cmd := range []struct {
			file string
			args []string
		}{
			{"launcher-ip-link.txt", []string{"ip", "-d", "link", "show"}},
			{"launcher-ip-addr.txt", []string{"ip", "addr", "show"}},
			{"launcher-bridge-link.txt", []string{"bridge", "link", "show"}},
		} {
			out, err := k.execInPod(ctx, a.namespace, a.pod, computeContainer, cmd.args...)
			if err != nil {
				errs = append(errs, err)
			}
			if len(out) > 0 || err == nil {
				write(cmd.file, out)
			}
		}
	}

	if len(a.console) > 0 {
		write("guest-console.log", a.console)
	}
	if a.evidence != nil && a.evidence.Guest != nil {
		write("cloud-init.txt", cloudInitReport(a.evidence.Guest))
	}
	if a.evidence != nil {
		data, _ := json.MarshalIndent(a.evidence, "", "  ")
		write("evidence.json", append(data, '\n'))
	}
	if a.failure != "" {
		write("error.txt", []byte(a.failure+"\n"))
	}
	return errors.Join(errs...)
}

func (k *kubeClient) objectYAML(ctx context.Context, apiVersion, kind, namespace, name string) ([]byte, error) {
	obj := &unstructured.Unstructured{}
	obj.SetAPIVersion(apiVersion)
	obj.SetKind(kind)
	if err := k.ctrl.Get(ctx, ctrlclient.ObjectKey{Namespace: namespace, Name: name}, obj); err != nil {
		return nil, fmt.Errorf("kind: get %s %s/%s for artifacts: %w", kind, namespace, name, err)
	}
	unstructured.RemoveNestedField(obj.Object, "metadata", "managedFields")
	data, err := yaml.Marshal(obj.Object)
	if err != nil {
		return nil, fmt.Errorf("kind: encode %s %s/%s: %w", kind, namespace, name, err)
	}
	return data, nil
}

func (k *kubeClient) eventsText(ctx context.Context, namespace string) ([]byte, error) {
	events := &corev1.EventList{}
	if err := k.ctrl.List(ctx, events, ctrlclient.InNamespace(namespace)); err != nil {
		return nil, fmt.Errorf("kind: list events in %s: %w", namespace, err)
	}
	sort.SliceStable(events.Items, func(i, j int) bool {
		return eventTime(&events.Items[i]).Before(eventTime(&events.Items[j]))
	})
	var b strings.Builder
	for _, e := range events.Items {
		fmt.Fprintf(&b, "%s %s %s %s/%s: %s (x%d)\n", eventTime(&e).UTC().Format("2006-01-02T15:04:05Z"), e.Type, e.Reason,
			e.InvolvedObject.Kind, e.InvolvedObject.Name, strings.TrimSpace(e.Message), max(e.Count, 1))
	}
	return []byte(b.String()), nil
}

func eventTime(e *corev1.Event) time.Time {
	switch {
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp.Time
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	}
	return e.CreationTimestamp.Time
}

// cloudInitReport formats the guest's cloud-init report as text.
func cloudInitReport(g *verdict.Guest) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "stage: %s\nstatus: %s\n", g.Stage, g.CloudInitStatus)
	for _, e := range g.CloudInitErrors {
		fmt.Fprintf(&b, "error: %s\n", e)
	}
	for _, w := range g.CloudInitWarnings {
		fmt.Fprintf(&b, "warning: %s\n", w)
	}
	paths := make([]string, 0, len(g.RenderedConfig))
	for p := range g.RenderedConfig {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		fmt.Fprintf(&b, "--- %s\n%s\n", p, strings.TrimRight(g.RenderedConfig[p], "\n"))
	}
	return []byte(b.String())
}
