package kind

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	kubevirtv1 "kubevirt.io/api/core/v1"
	ctrlclient "sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/e2e-framework/klient/k8s/resources"

	"github.com/vmnet-e2e/vmnet-e2e/framework/scenario"
)

// fieldOwner is the field manager of everything the provider applies.
const fieldOwner = "vmnet-e2e"

// kubeClient bundles the clients of one cluster: klient's controller-runtime
// client for objects, and client-go's clientset for pod logs and exec.
type kubeClient struct {
	rest *rest.Config
	ctrl ctrlclient.Client
	core kubernetes.Interface
}

var registerTypes sync.Once

// newKubeClient builds the clients for cfg. API server warnings go to the
// context's warning list when it has one (withWarnings), else to log.
func newKubeClient(cfg *rest.Config, log *slog.Logger) (*kubeClient, error) {
	cfg = rest.CopyConfig(cfg)
	cfg.WarningHandler = nil
	cfg.WarningHandlerWithContext = warningSink{log: log}

	res, err := resources.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("kind: API client: %w", err)
	}

	// klient decodes with client-go's scheme, and e2e-framework adds types
	// by registering them there.
	var schemeErr error
	registerTypes.Do(func() {
		schemeErr = errors.Join(kubevirtv1.AddToScheme(res.GetScheme()), nadv1.AddToScheme(res.GetScheme()))
	})
	if schemeErr != nil {
		return nil, fmt.Errorf("kind: register KubeVirt and NAD types: %w", schemeErr)
	}

	core, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kind: clientset: %w", err)
	}
	return &kubeClient{rest: cfg, ctrl: res.GetControllerRuntimeClient(), core: core}, nil
}

// warningList collects the warnings of the requests made with a context.
type warningList struct {
	mu    sync.Mutex
	texts []string
}

type warningsKey struct{}

// withWarnings returns a context whose requests record API server warnings
// in the returned list.
func withWarnings(ctx context.Context) (context.Context, *warningList) {
	l := &warningList{}
	return context.WithValue(ctx, warningsKey{}, l), l
}

func (l *warningList) list() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.texts...)
}

type warningSink struct{ log *slog.Logger }

// HandleWarningHeaderWithContext implements rest.WarningHandlerWithContext.
func (w warningSink) HandleWarningHeaderWithContext(ctx context.Context, code int, agent, text string) {
	if l, ok := ctx.Value(warningsKey{}).(*warningList); ok {
		l.mu.Lock()
		l.texts = append(l.texts, text)
		l.mu.Unlock()
		return
	}
	if w.log != nil {
		w.log.Warn("API server warning", "warning", text, "agent", agent)
	}
}

// createStrict creates obj with fieldValidation=Strict, kubectl's default.
//
// NOTE: klient v0.7.0's resources.Create with a CreateOption that sets
// metav1.CreateOptions.FieldValidation sends no fieldValidation at all: it
// passes the options to controller-runtime v0.23.3 as CreateOptions.Raw, and
// CreateOptions.AsCreateOptions overwrites Raw.FieldValidation with its own,
// empty, FieldValidation field. The API server then applies its default,
// Warn, and prunes unknown fields silently. The provider therefore calls the
// controller-runtime client klient wraps, with ctrlclient.FieldValidation.
func (k *kubeClient) createStrict(ctx context.Context, obj ctrlclient.Object) error {
	return k.ctrl.Create(ctx, obj, ctrlclient.FieldValidation(metav1.FieldValidationStrict))
}

// applyResult is the outcome of creating a scenario's objects.
type applyResult struct {
	// Created are the objects the server stored, in creation order.
	Created []*unstructured.Unstructured
	// Rejection is set when the server refused an object under Strict
	// validation. Objects after it were not sent.
	Rejection *scenario.Rejection
	// Warnings are the server's warnings for the requests made.
	Warnings []string
}

// createObjects creates objs in order under Strict validation. It stops at
// the first strict decoding error and reports it as a Rejection. It returns
// any other error, with the objects created so far in the result, so that
// the caller can delete them.
func (k *kubeClient) createObjects(ctx context.Context, objs []*unstructured.Unstructured) (applyResult, error) {
	ctx, warnings := withWarnings(ctx)
	var res applyResult
	for _, obj := range objs {
		err := k.createStrict(ctx, obj)
		if rejection := rejectionFrom(obj, err); rejection != nil {
			res.Rejection = rejection
			break
		}
		if err != nil {
			res.Warnings = warnings.list()
			return res, fmt.Errorf("kind: create %s %s/%s: %w", obj.GetKind(), obj.GetNamespace(), obj.GetName(), err)
		}
		res.Created = append(res.Created, obj)
	}
	res.Warnings = warnings.list()
	return res, nil
}

// warnDryRun sends objs again with fieldValidation=Warn and dryRun=All into
// the scratch namespace, and returns the warnings the server gives: the
// unknown fields it would prune. Dry run stores nothing and starts no VM.
// The scratch namespace keeps the objects' names clear of the ones the
// strict pass may have created.
func (k *kubeClient) warnDryRun(ctx context.Context, objs []*unstructured.Unstructured, scratch string) ([]string, error) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: scratch, Labels: map[string]string{"app.kubernetes.io/managed-by": fieldOwner}}}
	if err := k.ctrl.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("kind: create scratch namespace %s: %w", scratch, err)
	}
	defer func() {
		// Deletion completes in the background, and nothing is stored in it.
		gone := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: scratch}}
		_ = k.ctrl.Delete(context.WithoutCancel(ctx), gone)
	}()

	ctx, warnings := withWarnings(ctx)
	var errs []error
	for _, obj := range objs {
		copied := obj.DeepCopy()
		copied.SetNamespace(scratch)
		err := k.ctrl.Create(ctx, copied, ctrlclient.FieldValidation(metav1.FieldValidationWarn), ctrlclient.DryRunAll)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s %s: %w", obj.GetKind(), obj.GetName(), err))
		}
	}
	return warnings.list(), errors.Join(errs...)
}

// applyServerSide applies a component manifest with server-side apply, so
// that a reused cluster converges on the same objects.
func (k *kubeClient) applyServerSide(ctx context.Context, objs []*unstructured.Unstructured) error {
	for _, obj := range objs {
		err := k.ctrl.Apply(ctx, ctrlclient.ApplyConfigurationFromUnstructured(obj), ctrlclient.FieldOwner(fieldOwner), ctrlclient.ForceOwnership)
		if err != nil {
			return fmt.Errorf("kind: apply %s %s/%s: %w", obj.GetKind(), obj.GetNamespace(), obj.GetName(), err)
		}
	}
	return nil
}

// deleteObjects deletes objs in reverse order, in the foreground, ignoring
// objects already gone.
func (k *kubeClient) deleteObjects(ctx context.Context, objs []*unstructured.Unstructured) error {
	var errs []error
	for i := len(objs) - 1; i >= 0; i-- {
		obj := objs[i]
		err := k.ctrl.Delete(ctx, obj, ctrlclient.PropagationPolicy(metav1.DeletePropagationForeground))
		if err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("kind: delete %s %s/%s: %w", obj.GetKind(), obj.GetNamespace(), obj.GetName(), err))
		}
	}
	return errors.Join(errs...)
}
