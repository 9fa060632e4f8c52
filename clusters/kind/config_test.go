package kind

import (
	"slices"
	"testing"

	"sigs.k8s.io/kind/pkg/apis/config/v1alpha4"
	"sigs.k8s.io/yaml"
)

func TestClusterConfigNodes(t *testing.T) {
	v := loadVersionsFile(t)
	cfg, err := ClusterConfig(v, "ci", 3)
	if err != nil {
		t.Fatal(err)
	}

	if cfg.Name != "ci" || cfg.Kind != "Cluster" || cfg.APIVersion != "kind.x-k8s.io/v1alpha4" {
		t.Errorf("config header = %q %q %q, want ci, Cluster, kind.x-k8s.io/v1alpha4", cfg.Name, cfg.Kind, cfg.APIVersion)
	}
	var roles []v1alpha4.NodeRole
	for _, n := range cfg.Nodes {
		roles = append(roles, n.Role)
		if n.Image != v.Kind.NodeImage {
			t.Errorf("%s node image = %q, want %q", n.Role, n.Image, v.Kind.NodeImage)
		}
	}
	want := []v1alpha4.NodeRole{v1alpha4.ControlPlaneRole, v1alpha4.WorkerRole, v1alpha4.WorkerRole, v1alpha4.WorkerRole}
	if !slices.Equal(roles, want) {
		t.Errorf("roles = %v, want %v", roles, want)
	}
}

func TestClusterConfigMountsDevOnWorkers(t *testing.T) {
	cfg, err := ClusterConfig(loadVersionsFile(t), "ci", 2)
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range cfg.Nodes {
		hasDev := slices.ContainsFunc(n.ExtraMounts, func(m v1alpha4.Mount) bool {
			return m.HostPath == "/dev" && m.ContainerPath == "/dev" && m.Propagation == v1alpha4.MountPropagationHostToContainer
		})
		if n.Role == v1alpha4.WorkerRole && !hasDev {
			t.Errorf("worker %d has no /dev mount with HostToContainer propagation: %+v", i, n.ExtraMounts)
		}
		if n.Role == v1alpha4.ControlPlaneRole && hasDev {
			t.Errorf("control plane mounts /dev: %+v", n.ExtraMounts)
		}
	}

	// Workers must not share the mount slice: changing one leaves the other.
	cfg.Nodes[1].ExtraMounts[0].HostPath = "/changed"
	if cfg.Nodes[2].ExtraMounts[0].HostPath != "/dev" {
		t.Error("workers share one ExtraMounts slice")
	}
}

func TestClusterConfigRejectsNoWorkers(t *testing.T) {
	if _, err := ClusterConfig(loadVersionsFile(t), "ci", 0); err == nil {
		t.Fatal("ClusterConfig accepted 0 workers")
	}
}

func TestMarshalClusterConfigRoundTrips(t *testing.T) {
	cfg, err := ClusterConfig(loadVersionsFile(t), "ci", 1)
	if err != nil {
		t.Fatal(err)
	}
	data, err := MarshalClusterConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var back v1alpha4.Cluster
	if err := yaml.UnmarshalStrict(data, &back); err != nil {
		t.Fatalf("marshalled config does not decode strictly: %v\n%s", err, data)
	}
	if back.Name != cfg.Name || len(back.Nodes) != 2 || back.Nodes[1].ExtraMounts[0].Propagation != v1alpha4.MountPropagationHostToContainer {
		t.Errorf("round trip lost fields:\n%s", data)
	}
}

func TestNodeNamesFollowKindNamer(t *testing.T) {
	cfg, err := ClusterConfig(loadVersionsFile(t), "vmnet-e2e", 3)
	if err != nil {
		t.Fatal(err)
	}
	got := NodeNames(cfg)
	want := []string{"vmnet-e2e-control-plane", "vmnet-e2e-worker", "vmnet-e2e-worker2", "vmnet-e2e-worker3"}
	if !slices.Equal(got, want) {
		t.Errorf("NodeNames = %v, want %v", got, want)
	}
}
