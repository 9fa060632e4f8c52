package netns

import (
	"fmt"
	"os"
	"testing"
)

func TestCreateDoDelete(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("creating network namespaces needs root")
	}
	name := fmt.Sprintf("vmnet-test-%d", os.Getpid())
	ns, err := Create(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ns.Delete() })

	if _, err := Create(name); err == nil {
		t.Errorf("second Create(%q) succeeded, want an error for an existing namespace", name)
	}

	h, err := ns.Netlink()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	links, err := h.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	if len(links) != 1 || links[0].Attrs().Name != "lo" {
		t.Errorf("new namespace holds %d links, want only lo", len(links))
	}

	var inside string
	if err := ns.Do(func() error {
		var err error
		inside, err = os.Readlink("/proc/thread-self/ns/net")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	outside, _ := os.Readlink("/proc/thread-self/ns/net")
	if inside == outside {
		t.Errorf("Do ran in the caller's namespace %s", outside)
	}

	if err := ns.Delete(); err != nil {
		t.Fatal(err)
	}
	if ns.Exists() {
		t.Errorf("namespace %s still exists after Delete", name)
	}
}

func TestValidateName(t *testing.T) {
	for _, bad := range []string{"", "a/b", "..", string(make([]byte, 65))} {
		if err := ValidateName(bad); err == nil {
			t.Errorf("ValidateName(%q) = nil, want an error", bad)
		}
	}
}
