package kind

import (
	"fmt"

	"github.com/vmnet-e2e/vmnet-e2e/framework/scenario"
)

// DefaultTargetResolver picks the probed interface and addresses with
// (*scenario.Scenario).Target, the inference the local provider uses, so
// that both providers probe the same address from the same peer address.
func DefaultTargetResolver(s *scenario.Scenario) (Target, error) {
	t, err := s.Target()
	if err != nil {
		return Target{}, fmt.Errorf("scenario %s: %w", s.Name, err)
	}
	return Target{Attachment: t.Attachment, Probe: t.Address, Peer: t.Peer}, nil
}
