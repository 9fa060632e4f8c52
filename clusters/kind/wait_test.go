package kind

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	kubevirtv1 "kubevirt.io/api/core/v1"
	ctrlclient "sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
)

const (
	testPoll    = 5 * time.Millisecond
	testTimeout = 200 * time.Millisecond
)

func testScheme(t *testing.T) *runtime.Scheme {
	t.Helper()
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := kubevirtv1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	return s
}

// schedulingVMI is a VMI whose launcher pod cannot be scheduled, with the
// conditions KubeVirt sets in that case.
func schedulingVMI() *kubevirtv1.VirtualMachineInstance {
	return &kubevirtv1.VirtualMachineInstance{
		ObjectMeta: metav1.ObjectMeta{Name: "vm1", Namespace: "default", UID: "uid-1"},
		Status: kubevirtv1.VirtualMachineInstanceStatus{
			Phase: kubevirtv1.Scheduling,
			Conditions: []kubevirtv1.VirtualMachineInstanceCondition{
				{Type: kubevirtv1.VirtualMachineInstanceReady, Status: corev1.ConditionFalse, Reason: "PodNotExists"},
				{Type: kubevirtv1.VirtualMachineInstanceConditionType(corev1.PodScheduled), Status: corev1.ConditionFalse,
					Reason: "Unschedulable", Message: "0/2 nodes are available: 2 Insufficient macvtap.network.kubevirt.io/br-vtap."},
			},
		},
	}
}

func pendingLauncher() *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "virt-launcher-vm1-abcde", Namespace: "default", Labels: map[string]string{kubevirtv1.CreatedByLabel: "uid-1"}},
		Status: corev1.PodStatus{
			Phase: corev1.PodPending,
			Conditions: []corev1.PodCondition{
				{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: "Unschedulable"},
			},
			InitContainerStatuses: []corev1.ContainerStatus{
				{Name: consoleLogContainer, State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "PodInitializing"}}},
			},
			ContainerStatuses: []corev1.ContainerStatus{
				{Name: computeContainer, State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}}},
			},
		},
	}
}

func TestWaitVMIReadyBecomesReady(t *testing.T) {
	var gets atomic.Int32
	c := fake.NewClientBuilder().WithScheme(testScheme(t)).WithObjects(schedulingVMI(), pendingLauncher()).
		WithInterceptorFuncs(interceptor.Funcs{
			Get: func(ctx context.Context, c ctrlclient.WithWatch, key ctrlclient.ObjectKey, obj ctrlclient.Object, opts ...ctrlclient.GetOption) error {
				if err := c.Get(ctx, key, obj, opts...); err != nil {
					return err
				}
				// From the third observation on, the VMI runs and is Ready.
				if vmi, ok := obj.(*kubevirtv1.VirtualMachineInstance); ok && gets.Add(1) >= 3 {
					vmi.Status.Phase = kubevirtv1.Running
					vmi.Status.Conditions = []kubevirtv1.VirtualMachineInstanceCondition{{Type: kubevirtv1.VirtualMachineInstanceReady, Status: corev1.ConditionTrue}}
				}
				return nil
			},
		}).Build()

	vmi, err := WaitVMIReady(context.Background(), c, nil, "default", "vm1", time.Second, testPoll)
	if err != nil {
		t.Fatal(err)
	}
	if vmi.Status.Phase != kubevirtv1.Running || gets.Load() != 3 {
		t.Errorf("returned phase %s after %d observations, want Running after 3", vmi.Status.Phase, gets.Load())
	}
}

func TestWaitVMIReadyTimeoutNamesLastState(t *testing.T) {
	c := fake.NewClientBuilder().WithScheme(testScheme(t)).WithObjects(schedulingVMI(), pendingLauncher()).Build()

	start := time.Now()
	_, err := WaitVMIReady(context.Background(), c, nil, "default", "vm1", testTimeout, testPoll)
	var waitErr *WaitError
	if !errors.As(err, &waitErr) {
		t.Fatalf("error = %v, want a *WaitError", err)
	}
	if elapsed := time.Since(start); elapsed < testTimeout {
		t.Errorf("gave up after %s, before the %s timeout", elapsed, testTimeout)
	}
	msg := err.Error()
	for _, want := range []string{
		"timed out after 200ms waiting for VMI default/vm1 to be Ready (polled every 5ms)",
		"VMI phase Scheduling",
		"Ready=False (PodNotExists)",
		"PodScheduled=False (Unschedulable: 0/2 nodes are available: 2 Insufficient macvtap.network.kubevirt.io/br-vtap.)",
		"launcher pod virt-launcher-vm1-abcde Pending",
		"guest-console-log waiting (PodInitializing)",
		"compute waiting (ContainerCreating)",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
}

func TestWaitVMIReadyMissingVMI(t *testing.T) {
	c := fake.NewClientBuilder().WithScheme(testScheme(t)).Build()
	_, err := WaitVMIReady(context.Background(), c, nil, "default", "vm1", testTimeout, testPoll)
	if err == nil || !strings.Contains(err.Error(), "the VMI does not exist yet") {
		t.Fatalf("error = %v, want the last state to say the VMI does not exist", err)
	}
}

func TestWaitVMIReadyStopsOnFailedPhase(t *testing.T) {
	vmi := schedulingVMI()
	vmi.Status.Phase = kubevirtv1.Failed
	c := fake.NewClientBuilder().WithScheme(testScheme(t)).WithObjects(vmi).Build()

	start := time.Now()
	_, err := WaitVMIReady(context.Background(), c, nil, "default", "vm1", time.Minute, testPoll)
	var stateErr *StateError
	if !errors.As(err, &stateErr) || !strings.Contains(err.Error(), "VMI phase Failed") {
		t.Fatalf("error = %v, want a *StateError naming phase Failed", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Error("the wait did not stop early on phase Failed")
	}
}

func TestWaitStopsWithContext(t *testing.T) {
	c := fake.NewClientBuilder().WithScheme(testScheme(t)).WithObjects(schedulingVMI()).Build()
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(20*time.Millisecond, cancel)

	_, err := WaitVMIReady(ctx, c, nil, "default", "vm1", time.Minute, testPoll)
	var waitErr *WaitError
	if !errors.As(err, &waitErr) || !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "VMI phase Scheduling") {
		t.Fatalf("error = %v, want a cancelled *WaitError with the last state", err)
	}
}

func TestWaitPodsGone(t *testing.T) {
	var lists atomic.Int32
	c := fake.NewClientBuilder().WithScheme(testScheme(t)).WithObjects(pendingLauncher()).
		WithInterceptorFuncs(interceptor.Funcs{
			List: func(ctx context.Context, c ctrlclient.WithWatch, list ctrlclient.ObjectList, opts ...ctrlclient.ListOption) error {
				// The pod disappears after two observations.
				if lists.Add(1) == 3 {
					_ = c.Delete(ctx, pendingLauncher())
				}
				return c.List(ctx, list, opts...)
			},
		}).Build()
	labels := map[string]string{kubevirtv1.CreatedByLabel: "uid-1"}

	if err := waitPodsGone(context.Background(), c, nil, "default", labels, time.Second, testPoll); err != nil {
		t.Fatal(err)
	}

	stuck := fake.NewClientBuilder().WithScheme(testScheme(t)).WithObjects(pendingLauncher()).Build()
	err := waitPodsGone(context.Background(), stuck, nil, "default", labels, testTimeout, testPoll)
	if err == nil || !strings.Contains(err.Error(), "virt-launcher-vm1-abcde Pending") {
		t.Fatalf("error = %v, want the pod still present in the last state", err)
	}
}
