package kind

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	kubevirtv1 "kubevirt.io/api/core/v1"
	ctrlclient "sigs.k8s.io/controller-runtime/pkg/client"
)

// progressEvery is how often a long wait logs that it is still waiting.
const progressEvery = 30 * time.Second

// WaitError is a wait that ended before its condition held: it timed out or
// its context ended. It names the awaited condition, the timeout, and the last
// state observed.
type WaitError struct {
	Awaited   string
	Timeout   time.Duration
	Interval  time.Duration
	Elapsed   time.Duration
	LastState string
	// Err is the context's error when the context ended, else nil.
	Err error
}

func (e *WaitError) Error() string {
	reason := fmt.Sprintf("timed out after %s", e.Timeout)
	if e.Err != nil {
		reason = fmt.Sprintf("stopped after %s (%v)", e.Elapsed.Round(time.Second), e.Err)
	}
	return fmt.Sprintf("kind: %s waiting for %s (polled every %s); last observed: %s", reason, e.Awaited, e.Interval, e.LastState)
}

func (e *WaitError) Unwrap() error { return e.Err }

// StateError is a wait that stopped early because the observed state can no
// longer reach the condition (a VMI in phase Failed).
type StateError struct {
	Awaited string
	State   string
}

func (e *StateError) Error() string {
	return fmt.Sprintf("kind: gave up waiting for %s: %s", e.Awaited, e.State)
}

// observeFunc reports whether the awaited condition holds and describes the
// state it saw. A non-nil error ends the wait at once, so transient API
// errors belong in the state instead.
type observeFunc func(ctx context.Context) (done bool, state string, err error)

// poll observes every interval until the condition holds, observe fails, the
// timeout elapses or ctx ends. It logs what it waits for and for how long,
// and progress every progressEvery.
func poll(ctx context.Context, log *slog.Logger, awaited string, timeout, interval time.Duration, observe observeFunc) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if interval <= 0 {
		interval = time.Second
	}
	log.Info("waiting", "for", awaited, "timeout", timeout.String(), "poll", interval.String())

	start := time.Now()
	deadline := start.Add(timeout)
	lastProgress := start
	state := "nothing observed yet"
	for {
		done, observed, err := observe(ctx)
		if observed != "" {
			state = observed
		}
		if err != nil {
			return err
		}
		if done {
			log.Info("done waiting", "for", awaited, "after", time.Since(start).Round(time.Millisecond).String())
			return nil
		}

		now := time.Now()
		if !now.Before(deadline) {
			return &WaitError{Awaited: awaited, Timeout: timeout, Interval: interval, Elapsed: now.Sub(start), LastState: state}
		}
		if now.Sub(lastProgress) >= progressEvery {
			log.Info("still waiting", "for", awaited, "elapsed", now.Sub(start).Round(time.Second).String(), "timeout", timeout.String(), "state", state)
			lastProgress = now
		}

		timer := time.NewTimer(min(interval, time.Until(deadline)))
		select {
		case <-ctx.Done():
			timer.Stop()
			return &WaitError{Awaited: awaited, Timeout: timeout, Interval: interval, Elapsed: time.Since(start), LastState: state, Err: ctx.Err()}
		case <-timer.C:
		}
	}
}

// WaitVMIReady waits until the VMI namespace/name has condition Ready=True
// and returns it. It gives up early when the VMI reaches phase Failed or
// Succeeded. The state it reports names the VMI's phase, conditions and node
// and the launcher pod's phase and container states.
func WaitVMIReady(ctx context.Context, c ctrlclient.Client, log *slog.Logger, namespace, name string, timeout, interval time.Duration) (*kubevirtv1.VirtualMachineInstance, error) {
	awaited := fmt.Sprintf("VMI %s/%s to be Ready", namespace, name)
	var vmi *kubevirtv1.VirtualMachineInstance
	err := poll(ctx, log, awaited, timeout, interval, func(ctx context.Context) (bool, string, error) {
		got := &kubevirtv1.VirtualMachineInstance{}
		if err := c.Get(ctx, ctrlclient.ObjectKey{Namespace: namespace, Name: name}, got); err != nil {
			if apierrors.IsNotFound(err) {
				return false, "the VMI does not exist yet (a VirtualMachine creates it only when its runStrategy starts it)", nil
			}
			return false, "get VMI: " + err.Error(), nil
		}
		vmi = got
		state := DescribeVMI(got) + "; " + describeLauncher(ctx, c, got)
		switch got.Status.Phase {
		case kubevirtv1.Failed, kubevirtv1.Succeeded:
			return false, state, &StateError{Awaited: awaited, State: state}
		}
		return vmiReady(got), state, nil
	})
	return vmi, err
}

func vmiReady(vmi *kubevirtv1.VirtualMachineInstance) bool {
	for _, c := range vmi.Status.Conditions {
		if c.Type == kubevirtv1.VirtualMachineInstanceReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// DescribeVMI returns a VMI's phase, node and conditions in one line.
func DescribeVMI(vmi *kubevirtv1.VirtualMachineInstance) string {
	phase := string(vmi.Status.Phase)
	if phase == "" {
		phase = "(none)"
	}
	parts := []string{"VMI phase " + phase}
	if vmi.Status.NodeName != "" {
		parts = append(parts, "node "+vmi.Status.NodeName)
	}
	var conds []string
	for _, c := range vmi.Status.Conditions {
		conds = append(conds, condition(string(c.Type), string(c.Status), c.Reason, c.Message))
	}
	if len(conds) > 0 {
		parts = append(parts, "conditions "+strings.Join(conds, ", "))
	}
	return strings.Join(parts, "; ")
}

func condition(kind, status, reason, message string) string {
	s := kind + "=" + status
	detail := strings.TrimSpace(strings.Join(nonEmpty(reason, message), ": "))
	if detail != "" {
		s += " (" + detail + ")"
	}
	return s
}

func nonEmpty(values ...string) []string {
	var out []string
	for _, v := range values {
		if v != "" {
			out = append(out, v)
		}
	}
	return out
}

// launcherPods lists the virt-launcher pods of a VMI by the label
// kubevirt.io/created-by=<VMI UID> (kubevirt.io/api v1.9.0, CreatedByLabel).
func launcherPods(ctx context.Context, c ctrlclient.Client, vmi *kubevirtv1.VirtualMachineInstance) ([]corev1.Pod, error) {
	pods := &corev1.PodList{}
	err := c.List(ctx, pods, ctrlclient.InNamespace(vmi.Namespace), ctrlclient.MatchingLabels{kubevirtv1.CreatedByLabel: string(vmi.UID)})
	if err != nil {
		return nil, err
	}
	sort.Slice(pods.Items, func(i, j int) bool {
		return pods.Items[i].CreationTimestamp.After(pods.Items[j].CreationTimestamp.Time)
	})
	return pods.Items, nil
}

func describeLauncher(ctx context.Context, c ctrlclient.Client, vmi *kubevirtv1.VirtualMachineInstance) string {
	if vmi.UID == "" {
		return "launcher pod unknown (VMI has no UID)"
	}
	pods, err := launcherPods(ctx, c, vmi)
	if err != nil {
		return "list launcher pods: " + err.Error()
	}
	if len(pods) == 0 {
		return "no launcher pod yet"
	}
	return DescribePod(&pods[0])
}

// DescribePod returns a pod's phase, unmet conditions and container states
// in one line. The guest-console-log container is an init container with
// restartPolicy Always (kubevirt v1.9.0,
// pkg/virt-controller/services/serialconsolelog.go), so init containers are
// included.
func DescribePod(pod *corev1.Pod) string {
	parts := []string{fmt.Sprintf("launcher pod %s %s", pod.Name, pod.Status.Phase)}
	if pod.Spec.NodeName != "" {
		parts = append(parts, "node "+pod.Spec.NodeName)
	}
	var conds []string
	for _, c := range pod.Status.Conditions {
		if c.Status != corev1.ConditionTrue {
			conds = append(conds, condition(string(c.Type), string(c.Status), c.Reason, c.Message))
		}
	}
	if len(conds) > 0 {
		parts = append(parts, "conditions "+strings.Join(conds, ", "))
	}
	var containers []string
	for _, list := range [][]corev1.ContainerStatus{pod.Status.InitContainerStatuses, pod.Status.ContainerStatuses} {
		for _, cs := range list {
			containers = append(containers, cs.Name+" "+containerState(cs.State))
		}
	}
	if len(containers) > 0 {
		parts = append(parts, "containers "+strings.Join(containers, ", "))
	}
	return strings.Join(parts, "; ")
}

func containerState(s corev1.ContainerState) string {
	switch {
	case s.Waiting != nil:
		return "waiting (" + strings.Join(nonEmpty(s.Waiting.Reason, s.Waiting.Message), ": ") + ")"
	case s.Terminated != nil:
		return fmt.Sprintf("terminated (exit %d, %s)", s.Terminated.ExitCode, strings.Join(nonEmpty(s.Terminated.Reason, s.Terminated.Message), ": "))
	case s.Running != nil:
		return "running"
	}
	return "unknown"
}

// waitPodsGone waits until no pod in namespace matches labels.
func waitPodsGone(ctx context.Context, c ctrlclient.Client, log *slog.Logger, namespace string, labels map[string]string, timeout, interval time.Duration) error {
	awaited := fmt.Sprintf("pods %s in %s to be deleted", formatLabels(labels), namespace)
	return poll(ctx, log, awaited, timeout, interval, func(ctx context.Context) (bool, string, error) {
		pods := &corev1.PodList{}
		if err := c.List(ctx, pods, ctrlclient.InNamespace(namespace), ctrlclient.MatchingLabels(labels)); err != nil {
			return false, "list pods: " + err.Error(), nil
		}
		var left []string
		for i := range pods.Items {
			left = append(left, DescribePod(&pods.Items[i]))
		}
		return len(left) == 0, orNone(strings.Join(left, " | ")), nil
	})
}

func formatLabels(labels map[string]string) string {
	var parts []string
	for k, v := range labels {
		parts = append(parts, k+"="+v)
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

// waitNodesReady waits until want nodes exist and all are Ready.
func waitNodesReady(ctx context.Context, c ctrlclient.Client, log *slog.Logger, want int, timeout, interval time.Duration) error {
	awaited := fmt.Sprintf("%d nodes to be Ready", want)
	return poll(ctx, log, awaited, timeout, interval, func(ctx context.Context) (bool, string, error) {
		nodes := &corev1.NodeList{}
		if err := c.List(ctx, nodes); err != nil {
			return false, "list nodes: " + err.Error(), nil
		}
		var states []string
		ready := 0
		for _, n := range nodes.Items {
			status := "Unknown"
			for _, cond := range n.Status.Conditions {
				if cond.Type == corev1.NodeReady {
					status = string(cond.Status)
				}
			}
			if status == string(corev1.ConditionTrue) {
				ready++
			}
			states = append(states, n.Name+" Ready="+status)
		}
		return len(nodes.Items) >= want && ready == len(nodes.Items), orNone(strings.Join(states, ", ")), nil
	})
}

// waitDaemonSetRolledOut waits until every scheduled pod of the DaemonSet
// runs its current template and is ready.
func waitDaemonSetRolledOut(ctx context.Context, c ctrlclient.Client, log *slog.Logger, namespace, name string, timeout, interval time.Duration) error {
	awaited := fmt.Sprintf("DaemonSet %s/%s to roll out", namespace, name)
	return poll(ctx, log, awaited, timeout, interval, func(ctx context.Context) (bool, string, error) {
		ds := &appsv1.DaemonSet{}
		if err := c.Get(ctx, ctrlclient.ObjectKey{Namespace: namespace, Name: name}, ds); err != nil {
			return false, "get DaemonSet: " + err.Error(), nil
		}
		s := ds.Status
		state := fmt.Sprintf("desired %d, updated %d, ready %d, generation %d observed %d",
			s.DesiredNumberScheduled, s.UpdatedNumberScheduled, s.NumberReady, ds.Generation, s.ObservedGeneration)
		done := s.ObservedGeneration >= ds.Generation && s.DesiredNumberScheduled > 0 &&
			s.UpdatedNumberScheduled == s.DesiredNumberScheduled && s.NumberReady == s.DesiredNumberScheduled
		return done, state, nil
	})
}

// waitDeploymentAvailable waits for a Deployment's Available condition.
func waitDeploymentAvailable(ctx context.Context, c ctrlclient.Client, log *slog.Logger, namespace, name string, timeout, interval time.Duration) error {
	awaited := fmt.Sprintf("Deployment %s/%s to be Available", namespace, name)
	return poll(ctx, log, awaited, timeout, interval, func(ctx context.Context) (bool, string, error) {
		d := &appsv1.Deployment{}
		if err := c.Get(ctx, ctrlclient.ObjectKey{Namespace: namespace, Name: name}, d); err != nil {
			return false, "get Deployment: " + err.Error(), nil
		}
		var conds []string
		available := false
		for _, cond := range d.Status.Conditions {
			conds = append(conds, condition(string(cond.Type), string(cond.Status), cond.Reason, cond.Message))
			available = available || cond.Type == appsv1.DeploymentAvailable && cond.Status == corev1.ConditionTrue
		}
		return available, fmt.Sprintf("ready replicas %d; conditions %s", d.Status.ReadyReplicas, orNone(strings.Join(conds, ", "))), nil
	})
}

// waitKubeVirtAvailable waits for the KubeVirt CR's Available condition,
// which virt-operator sets once virt-api, virt-controller and virt-handler
// are deployed and ready.
func waitKubeVirtAvailable(ctx context.Context, c ctrlclient.Client, log *slog.Logger, timeout, interval time.Duration) error {
	awaited := fmt.Sprintf("KubeVirt %s/%s to be Available", KubeVirtNamespace, KubeVirtName)
	return poll(ctx, log, awaited, timeout, interval, func(ctx context.Context) (bool, string, error) {
		kv := &kubevirtv1.KubeVirt{}
		if err := c.Get(ctx, ctrlclient.ObjectKey{Namespace: KubeVirtNamespace, Name: KubeVirtName}, kv); err != nil {
			return false, "get KubeVirt: " + err.Error(), nil
		}
		var conds []string
		available := false
		for _, cond := range kv.Status.Conditions {
			conds = append(conds, condition(string(cond.Type), string(cond.Status), cond.Reason, cond.Message))
			available = available || cond.Type == kubevirtv1.KubeVirtConditionAvailable && cond.Status == corev1.ConditionTrue
		}
		return available, fmt.Sprintf("phase %s; conditions %s", orNone(string(kv.Status.Phase)), orNone(strings.Join(conds, ", "))), nil
	})
}

// waitCRDEstablished waits for a CustomResourceDefinition's Established
// condition, so that objects of its kind can be created.
func waitCRDEstablished(ctx context.Context, c ctrlclient.Client, log *slog.Logger, name string, timeout, interval time.Duration) error {
	awaited := fmt.Sprintf("CustomResourceDefinition %s to be Established", name)
	return poll(ctx, log, awaited, timeout, interval, func(ctx context.Context) (bool, string, error) {
		crd := &unstructured.Unstructured{}
		crd.SetAPIVersion("apiextensions.k8s.io/v1")
		crd.SetKind("CustomResourceDefinition")
		if err := c.Get(ctx, ctrlclient.ObjectKey{Name: name}, crd); err != nil {
			return false, "get CRD: " + err.Error(), nil
		}
		conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
		var states []string
		established := false
		for _, raw := range conds {
			cond, _ := raw.(map[string]any)
			kind, _ := cond["type"].(string)
			status, _ := cond["status"].(string)
			states = append(states, kind+"="+status)
			established = established || kind == "Established" && status == "True"
		}
		return established, orNone(strings.Join(states, ", ")), nil
	})
}
