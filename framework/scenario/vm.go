package scenario

import (
	"encoding/base64"
	"errors"

	"github.com/google/uuid"
	"k8s.io/apimachinery/pkg/types"
	kubevirtv1 "kubevirt.io/api/core/v1"
)

// instanceFromVM returns the VirtualMachineInstance KubeVirt would start for
// vm: the template's metadata and spec under the VM's name and namespace.
//
// The firmware UUID, which KubeVirt's NoCloud seed uses as instance-id, is
// filled the way KubeVirt v1.9.0 fills it for a new VM: a random UUID when the
// template has none (pkg/virt-api/webhooks/mutating-webhook/mutators/
// vm-mutator.go, setFirmwareDefaultsIfEmpty). The name-based legacy UUID of
// pkg/virt-controller/watch/vm/firmware.go (CalculateLegacyUUID) only applies
// to VMs that predate that webhook.
func instanceFromVM(vm *kubevirtv1.VirtualMachine) (*kubevirtv1.VirtualMachineInstance, error) {
	if vm.Spec.Template == nil {
		return nil, errors.New("VirtualMachine " + vm.Name + " has no spec.template: add spec.template.spec with domain, networks and volumes")
	}

	vmi := &kubevirtv1.VirtualMachineInstance{}
	vmi.APIVersion = kubevirtv1.SchemeGroupVersion.String()
	vmi.Kind = "VirtualMachineInstance"
	vmi.Name = vm.Name
	vmi.Namespace = vm.Namespace
	vmi.Labels = vm.Spec.Template.ObjectMeta.Labels
	vmi.Annotations = vm.Spec.Template.ObjectMeta.Annotations
	vmi.Spec = *vm.Spec.Template.Spec.DeepCopy()

	if vmi.Spec.Domain.Firmware == nil {
		vmi.Spec.Domain.Firmware = &kubevirtv1.Firmware{}
	}
	if vmi.Spec.Domain.Firmware.UUID == "" {
		vmi.Spec.Domain.Firmware.UUID = types.UID(uuid.New().String())
	}
	return vmi, nil
}

func decodeBase64(s string) ([]byte, error) {
	return base64.StdEncoding.DecodeString(s)
}
