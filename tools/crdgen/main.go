// Command crdgen writes KubeVirt's CustomResourceDefinitions as KubeVirt's
// own operator generates them, one YAML file per CRD, into the directory
// named by -o. The kube-apiserver test environment (framework/apitest)
// installs them, so that the API server validates VirtualMachines against
// KubeVirt's real schema.
//
// The CRD functions are those virt-operator installs
// (pkg/virt-operator/resource/generate/install/strategy.go,
// GenerateCurrentInstallStrategy, at v1.8.4) plus NewKubeVirtCrd, whose CRD
// ships in the operator manifest.
//
// The KubeVirt version is v1.8.4, not v1.9.0 as the harness deploys:
// v1.9.0's components package imports kubevirt.io/virt-template-client-go,
// and its go.mod requires kubevirt.io/virt-template-api v0.2.0. The Go
// module proxy serves neither at v0.2.0 (403 Forbidden). v1.8.4 requires
// the v0.1.7 releases, which it serves. docs/apiserver.md lists the fields
// v1.9.0 adds and how to change the version.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	extv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"

	"kubevirt.io/kubevirt/pkg/virt-operator/resource/generate/components"
)

// generators are the CRD constructors of kubevirt.io/kubevirt
// pkg/virt-operator/resource/generate/components (crds.go).
var generators = []func() (*extv1.CustomResourceDefinition, error){
	components.NewKubeVirtCrd,
	components.NewVirtualMachineInstanceCrd,
	components.NewPresetCrd,
	components.NewReplicaSetCrd,
	components.NewVirtualMachineCrd,
	components.NewVirtualMachineInstanceMigrationCrd,
	components.NewVirtualMachineSnapshotCrd,
	components.NewVirtualMachineSnapshotContentCrd,
	components.NewVirtualMachineRestoreCrd,
	components.NewVirtualMachineInstancetypeCrd,
	components.NewVirtualMachineClusterInstancetypeCrd,
	components.NewVirtualMachinePoolCrd,
	components.NewMigrationPolicyCrd,
	components.NewVirtualMachinePreferenceCrd,
	components.NewVirtualMachineClusterPreferenceCrd,
	components.NewVirtualMachineExportCrd,
	components.NewVirtualMachineCloneCrd,
	components.NewVirtualMachineBackupCrd,
	components.NewVirtualMachineBackupTrackerCrd,
}

func main() {
	out := flag.String("o", "", "directory to write the CRDs to, one <name>.yaml per CRD")
	flag.Parse()
	if *out == "" {
		fmt.Fprintln(os.Stderr, "crdgen: missing -o DIR")
		os.Exit(2)
	}
	if err := write(*out); err != nil {
		fmt.Fprintln(os.Stderr, "crdgen:", err)
		os.Exit(1)
	}
}

func write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create output directory: %w", err)
	}
	for _, generate := range generators {
		crd, err := generate()
		if err != nil {
			return fmt.Errorf("generate CRD: %w", err)
		}
		data, err := yaml.Marshal(crd)
		if err != nil {
			return fmt.Errorf("encode CRD %s: %w", crd.Name, err)
		}
		path := filepath.Join(dir, crd.Name+".yaml")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			return fmt.Errorf("write CRD %s: %w", crd.Name, err)
		}
	}
	return nil
}
