// Package kvnames derives the link names KubeVirt gives a secondary network's
// pod interface and the links its bridge binding creates in the virt-launcher pod.
//
// Source: kubevirt/kubevirt v1.9.0, pkg/network/namescheme/networknamescheme.go
// (GenerateHashedInterfaceName) and pkg/network/link/names.go
// (GenerateTapDeviceName, GenerateBridgeName, GenerateNewBridgedVmiInterfaceName).
package kvnames

import (
	"crypto/sha256"
	"encoding/hex"
)

// HashLength is the number of hex characters KubeVirt keeps from the network
// name's SHA-256: 15 (IFNAMSIZ-1) minus len("-nic"), so that "<hash>-nic" fits.
const HashLength = 11

// Hash returns the first HashLength lowercase hex characters of the SHA-256 of
// the VMI's logical network name (spec.networks[].name, not the NAD name).
func Hash(networkName string) string {
	sum := sha256.Sum256([]byte(networkName))
	return hex.EncodeToString(sum[:])[:HashLength]
}

// PodInterface returns the name KubeVirt asks Multus to give the CNI link
// ("interface" in the network-selection element), "pod<hash>". After the
// bridge binding runs, this name belongs to the DOWN placeholder link that keeps
// the IPAM address.
func PodInterface(networkName string) string { return "pod" + Hash(networkName) }

// Bridge returns the in-pod bridge name, "k6t-<hash>".
func Bridge(networkName string) string { return "k6t-" + Hash(networkName) }

// Tap returns the tap device name, "tap<hash>".
func Tap(networkName string) string { return "tap" + Hash(networkName) }

// BridgedNIC returns the name the bridge binding gives the CNI link after it
// enslaves it to the in-pod bridge, "<hash>-nic".
func BridgedNIC(networkName string) string { return Hash(networkName) + "-nic" }
