package kind

import (
	_ "embed"
	"fmt"

	"sigs.k8s.io/kind/pkg/apis/config/v1alpha4"
	"sigs.k8s.io/yaml"
)

// clusterYAML is clusters/kind/cluster.yaml, the node layout of a cluster
// the provider creates.
//
//go:embed cluster.yaml
var clusterYAML []byte

// ClusterConfig returns the kind config of a cluster named name: the node
// layout of cluster.yaml with its worker entry repeated workers times and the
// pinned node image on every node.
func ClusterConfig(v Versions, name string, workers int) (*v1alpha4.Cluster, error) {
	if workers < 1 {
		return nil, fmt.Errorf("kind: %d workers requested: VMs run on workers, so at least 1 is needed", workers)
	}

	var base v1alpha4.Cluster
	if err := yaml.UnmarshalStrict(clusterYAML, &base); err != nil {
		return nil, fmt.Errorf("kind: parse clusters/kind/cluster.yaml: %w", err)
	}
	var controlPlanes, workerTemplates []v1alpha4.Node
	for _, n := range base.Nodes {
		switch n.Role {
		case v1alpha4.ControlPlaneRole:
			controlPlanes = append(controlPlanes, n)
		case v1alpha4.WorkerRole:
			workerTemplates = append(workerTemplates, n)
		default:
			return nil, fmt.Errorf("kind: clusters/kind/cluster.yaml: node role %q: use control-plane or worker", n.Role)
		}
	}
	if len(controlPlanes) != 1 || len(workerTemplates) != 1 {
		return nil, fmt.Errorf("kind: clusters/kind/cluster.yaml lists %d control-plane and %d worker entries: write exactly one of each (WithWorkers repeats the worker)",
			len(controlPlanes), len(workerTemplates))
	}

	cfg := base
	cfg.Name = name
	cfg.Nodes = []v1alpha4.Node{controlPlanes[0]}
	for range workers {
		worker := workerTemplates[0]
		worker.ExtraMounts = append([]v1alpha4.Mount(nil), worker.ExtraMounts...)
		cfg.Nodes = append(cfg.Nodes, worker)
	}
	for i := range cfg.Nodes {
		cfg.Nodes[i].Image = v.Kind.NodeImage
	}
	return &cfg, nil
}

// MarshalClusterConfig returns cfg as the YAML `kind create cluster --config`
// reads.
func MarshalClusterConfig(cfg *v1alpha4.Cluster) ([]byte, error) {
	out, err := yaml.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("kind: encode cluster config: %w", err)
	}
	return out, nil
}

// NodeNames returns the container names kind gives cfg's nodes:
// "<cluster>-<role>" for the first node of a role, then "<cluster>-<role>2",
// ... (kind v0.33.0, pkg/cluster/internal/providers/common/namer.go,
// MakeNodeNamer).
func NodeNames(cfg *v1alpha4.Cluster) []string {
	counter := map[v1alpha4.NodeRole]int{}
	var names []string
	for _, n := range cfg.Nodes {
		counter[n.Role]++
		suffix := ""
		if c := counter[n.Role]; c > 1 {
			suffix = fmt.Sprint(c)
		}
		names = append(names, fmt.Sprintf("%s-%s%s", cfg.Name, n.Role, suffix))
	}
	return names
}
