package kvnames

import "testing"

func TestHashVectors(t *testing.T) {
	// Values computed with `printf %s NAME | sha256sum | cut -c1-11`.
	cases := map[string]string{
		"network1": "a7662f44d65",
		"mynet":    "11c844f95e2",
	}
	for name, want := range cases {
		if got := Hash(name); got != want {
			t.Errorf("Hash(%q) = %q, want %q", name, got, want)
		}
	}
}

func TestNamesFitIFNAMSIZ(t *testing.T) {
	long := "a-network-name-far-longer-than-fifteen-bytes"
	for _, name := range []string{PodInterface(long), Bridge(long), Tap(long), BridgedNIC(long)} {
		if len(name) > 15 {
			t.Errorf("link name %q is %d bytes, over the kernel's 15-byte limit", name, len(name))
		}
	}
}
