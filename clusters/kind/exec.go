package kind

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/remotecommand"
)

// Container names of a KubeVirt v1.9.0 virt-launcher pod
// (pkg/virt-controller/services/template.go and serialconsolelog.go).
const (
	computeContainer    = "compute"
	consoleLogContainer = "guest-console-log"
)

// execInPod runs command in a container and returns its stdout. It uses the
// WebSocket protocol and falls back to SPDY for API servers that lack it,
// as kubectl exec does. A failed command's error carries its stderr.
func (k *kubeClient) execInPod(ctx context.Context, namespace, pod, container string, command ...string) ([]byte, error) {
	req := k.core.CoreV1().RESTClient().Post().
		Resource("pods").Namespace(namespace).Name(pod).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{
			Container: container,
			Command:   command,
			Stdout:    true,
			Stderr:    true,
		}, scheme.ParameterCodec)

	websocket, err := remotecommand.NewWebSocketExecutor(k.rest, "GET", req.URL().String())
	if err != nil {
		return nil, fmt.Errorf("kind: exec in %s/%s: %w", namespace, pod, err)
	}
	spdy, err := remotecommand.NewSPDYExecutor(k.rest, "POST", req.URL())
	if err != nil {
		return nil, fmt.Errorf("kind: exec in %s/%s: %w", namespace, pod, err)
	}
	executor, err := remotecommand.NewFallbackExecutor(websocket, spdy, func(err error) bool {
		return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
	})
	if err != nil {
		return nil, fmt.Errorf("kind: exec in %s/%s: %w", namespace, pod, err)
	}

	var stdout, stderr bytes.Buffer
	err = executor.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: &stdout, Stderr: &stderr})
	if err != nil {
		return stdout.Bytes(), fmt.Errorf("kind: `%s` in %s/%s container %s: %w: %s",
			strings.Join(command, " "), namespace, pod, container, err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

// streamConsoleLog follows the guest-console-log container's log from its
// start. KubeVirt's virt-tail copies the guest's serial console there. The
// stream ends when ctx ends or the container stops.
func (k *kubeClient) streamConsoleLog(ctx context.Context, namespace, pod string) (io.ReadCloser, error) {
	stream, err := k.core.CoreV1().Pods(namespace).GetLogs(pod, &corev1.PodLogOptions{
		Container: consoleLogContainer,
		Follow:    true,
	}).Stream(ctx)
	if err != nil {
		return nil, fmt.Errorf("kind: follow %s log of %s/%s: %w (the container is missing when the VMI sets autoattachSerialConsole: false or logSerialConsole: false)",
			consoleLogContainer, namespace, pod, err)
	}
	return stream, nil
}
