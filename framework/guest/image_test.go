package guest

import (
	"os"
	"path/filepath"
	"testing"
)

func TestRecipeHashCoversHooks(t *testing.T) {
	base := DefaultRecipe(RendererNetplan)
	withHook := DefaultRecipe(RendererNetplan)
	withHook.Hooks = []Hook{{Name: "motd", Script: "echo hi >\"$1/etc/motd\""}}
	changedHook := DefaultRecipe(RendererNetplan)
	changedHook.Hooks = []Hook{{Name: "motd", Script: "echo bye >\"$1/etc/motd\""}}

	hashes := map[string]string{
		"base":         base.Hash(),
		"hook":         withHook.Hash(),
		"changed hook": changedHook.Hash(),
		"networkd":     DefaultRecipe(RendererNetworkd).Hash(),
	}
	seen := map[string]string{}
	for name, h := range hashes {
		if other, ok := seen[h]; ok {
			t.Errorf("recipes %q and %q share hash %s", name, other, h)
		}
		seen[h] = name
	}
	if base.Hash() != DefaultRecipe("").Hash() {
		t.Errorf("the default renderer is not netplan")
	}
}

func TestPruneImagesKeepsListed(t *testing.T) {
	cache := t.TempDir()
	keep := DefaultRecipe(RendererNetplan)
	images := filepath.Join(cache, "images")
	for _, name := range []string{keep.Hash(), "0123456789abcdef"} {
		if err := os.MkdirAll(filepath.Join(images, name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(images, name+".lock"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	removed, err := PruneImages([]Recipe{keep}, WithCacheDir(cache))
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 1 || filepath.Base(removed[0]) != "0123456789abcdef" {
		t.Errorf("removed %v, want only the unlisted image", removed)
	}
	if _, err := os.Stat(filepath.Join(images, keep.Hash())); err != nil {
		t.Errorf("kept image is gone: %v", err)
	}
	if _, err := os.Stat(filepath.Join(images, "0123456789abcdef")); !os.IsNotExist(err) {
		t.Errorf("unlisted image still exists")
	}
}

func TestRecipeValidate(t *testing.T) {
	bad := DefaultRecipe(RendererNetplan)
	bad.Renderer = "NetworkManager"
	if err := bad.Validate(); err == nil {
		t.Errorf("renderer NetworkManager accepted")
	}
	small := DefaultRecipe(RendererNetplan)
	small.DiskSizeMiB = 100
	if err := small.Validate(); err == nil {
		t.Errorf("100 MiB disk accepted")
	}
	if err := DefaultRecipe(RendererIfupdown).Validate(); err != nil {
		t.Errorf("ifupdown recipe rejected: %v", err)
	}
}
