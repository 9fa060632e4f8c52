package apitest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
)

// nadModule is the Go module whose artifacts/networks-crd.yaml is the
// NetworkAttachmentDefinition CRD. The version is the one the main module
// requires.
const nadModule = "github.com/k8snetworkplumbingwg/network-attachment-definition-client"

var crdResource = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// NADCRDPath returns the path of artifacts/networks-crd.yaml in the module
// cache, for the NAD client version the module in moduleDir requires,
// downloading the module when the cache lacks it.
func NADCRDPath(ctx context.Context, moduleDir string) (string, error) {
	out, err := goCommand(ctx, moduleDir, "list", "-m", "-f", "{{.Dir}}", nadModule).Output()
	if err != nil {
		return "", fmt.Errorf("apitest: go list -m %s in %s: %w%s", nadModule, moduleDir, err, exitStderr(err))
	}
	dir := strings.TrimSpace(string(out))
	if dir == "" {
		out, err := goCommand(ctx, moduleDir, "mod", "download", "-json", nadModule).Output()
		if err != nil {
			return "", fmt.Errorf("apitest: go mod download %s: %w%s", nadModule, err, exitStderr(err))
		}
		var info struct{ Dir string }
		if err := json.Unmarshal(out, &info); err != nil || info.Dir == "" {
			return "", fmt.Errorf("apitest: go mod download %s gave no directory: %s", nadModule, out)
		}
		dir = info.Dir
	}
	path := filepath.Join(dir, "artifacts", "networks-crd.yaml")
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("apitest: NAD CRD: %w", err)
	}
	return path, nil
}

// crdFiles lists the KubeVirt CRDs in dir, sorted, then the NAD CRD and the
// extra files.
func crdFiles(kubevirtDir, nadCRD string, extra []string) ([]string, error) {
	files, err := filepath.Glob(filepath.Join(kubevirtDir, "*.yaml"))
	if err != nil || len(files) == 0 {
		return nil, fmt.Errorf("apitest: no KubeVirt CRDs in %s: remove the directory so that the next start generates them again", kubevirtDir)
	}
	slices.Sort(files)
	if nadCRD != "" {
		files = append(files, nadCRD)
	}
	return append(files, extra...), nil
}

// installCRDs creates the CustomResourceDefinitions in files and waits until
// every one is Established. It returns their names.
func installCRDs(ctx context.Context, cfg *rest.Config, files []string, log *slog.Logger) ([]string, error) {
	client, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("apitest: dynamic client: %w", err)
	}
	crds := client.Resource(crdResource)

	var names []string
	for _, path := range files {
		objs, err := readCRDs(path)
		if err != nil {
			return nil, err
		}
		for _, obj := range objs {
			_, err := crds.Create(ctx, obj, metav1.CreateOptions{FieldValidation: metav1.FieldValidationStrict})
			if err != nil && !apierrors.IsAlreadyExists(err) {
				return nil, fmt.Errorf("apitest: create CRD %s from %s: %w", obj.GetName(), path, err)
			}
			names = append(names, obj.GetName())
		}
	}

	start := time.Now()
	for _, name := range names {
		if err := waitEstablished(ctx, crds, name); err != nil {
			return nil, err
		}
	}
	log.Info("CRDs established", "count", len(names), "took", time.Since(start).Round(time.Millisecond).String())
	return names, nil
}

// readCRDs decodes the CustomResourceDefinitions of a YAML file; other
// documents are an error.
func readCRDs(path string) ([]*unstructured.Unstructured, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("apitest: read CRD file: %w", err)
	}
	decoder := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var objs []*unstructured.Unstructured
	for {
		obj := &unstructured.Unstructured{}
		if err := decoder.Decode(&obj.Object); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, fmt.Errorf("apitest: decode %s: %w", path, err)
		}
		if len(obj.Object) == 0 {
			continue
		}
		if obj.GetKind() != "CustomResourceDefinition" {
			return nil, fmt.Errorf("apitest: invalid CRD file %s: it contains %s %q, and only CustomResourceDefinitions are allowed", path, obj.GetKind(), obj.GetName())
		}
		objs = append(objs, obj)
	}
	if len(objs) == 0 {
		return nil, fmt.Errorf("apitest: no CustomResourceDefinition in %s", path)
	}
	return objs, nil
}

// waitEstablished polls the CRD until its Established condition is True or
// ctx ends, and then fails with the conditions last seen.
func waitEstablished(ctx context.Context, crds dynamic.NamespaceableResourceInterface, name string) error {
	last := "not read yet"
	for {
		obj, err := crds.Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			conditions, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
			var states []string
			for _, raw := range conditions {
				c, _ := raw.(map[string]any)
				kind, _ := c["type"].(string)
				status, _ := c["status"].(string)
				message, _ := c["message"].(string)
				if kind == "Established" && status == "True" {
					return nil
				}
				states = append(states, fmt.Sprintf("%s=%s (%s)", kind, status, message))
			}
			last = "conditions: " + strings.Join(states, ", ")
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("apitest: waiting for CRD %s to be Established: %w; last state: %s", name, ctx.Err(), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
