package kind

import (
	"context"
	"log/slog"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	ctrlclient "sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vmnet-e2e/vmnet-e2e/framework/scenario"
)

// This file exports the provider's object path to the tests in package
// kind_test, which run it against a real kube-apiserver. They live in the
// external package because they import clusters/providers, which imports
// this package.

// KubeClient is the provider's API client.
type KubeClient = kubeClient

// ApplyResult is the outcome of KubeClient.CreateObjects.
type ApplyResult = applyResult

// NewKubeClient builds the client the provider builds in Prepare and Attach.
func NewKubeClient(cfg *rest.Config, log *slog.Logger) (*KubeClient, error) {
	return newKubeClient(cfg, log)
}

// Ctrl returns the controller-runtime client.
func (k *kubeClient) Ctrl() ctrlclient.Client { return k.ctrl }

// CreateObjects runs the create step of Observe.
func (k *kubeClient) CreateObjects(ctx context.Context, objs []*unstructured.Unstructured) (ApplyResult, error) {
	return k.createObjects(ctx, objs)
}

// WarnDryRun runs the Warn pass Observe makes after a rejection.
func (k *kubeClient) WarnDryRun(ctx context.Context, objs []*unstructured.Unstructured, scratch string) ([]string, error) {
	return k.warnDryRun(ctx, objs, scratch)
}

// ApplyServerSide runs the apply step of Prepare.
func (k *kubeClient) ApplyServerSide(ctx context.Context, objs []*unstructured.Unstructured) error {
	return k.applyServerSide(ctx, objs)
}

// DeleteObjects runs the delete step of Observe.
func (k *kubeClient) DeleteObjects(ctx context.Context, objs []*unstructured.Unstructured) error {
	return k.deleteObjects(ctx, objs)
}

// CreateWarn creates obj with fieldValidation=Warn, as a server with the
// default validation does, and returns the warnings the provider's warning
// handler recorded.
func (k *kubeClient) CreateWarn(ctx context.Context, obj ctrlclient.Object) ([]string, error) {
	ctx, warnings := withWarnings(ctx)
	err := k.ctrl.Create(ctx, obj, ctrlclient.FieldValidation(metav1.FieldValidationWarn))
	return warnings.list(), err
}

// ScenarioObjects returns a scenario's objects as Observe sends them, before
// the evidence part is joined.
func ScenarioObjects(s *scenario.Scenario) ([]*unstructured.Unstructured, error) {
	return scenarioObjects(s)
}

// WaitCRDEstablished runs the CRD wait of Prepare.
func WaitCRDEstablished(ctx context.Context, c ctrlclient.Client, log *slog.Logger, name string, timeout, interval time.Duration) error {
	return waitCRDEstablished(ctx, c, log, name, timeout, interval)
}
