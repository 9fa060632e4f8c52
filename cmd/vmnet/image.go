package main

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/vmnet-e2e/vmnet-e2e/framework/guest"
)

func newImageCommand(g *globalOptions) *cobra.Command {
	image := &cobra.Command{
		Use:   "image",
		Short: "Build or inspect the local provider's guest image",
	}

	var renderer string
	var cacheDir string
	var rebuild bool
	build := &cobra.Command{
		Use:   "build",
		Short: "Build the Debian 12 guest image with mmdebstrap, or load it from the cache",
		Long: `build makes the guest image the local provider boots: Debian 12 from Debian's
archive with cloud-init, systemd and the chosen network renderer, cached under
the user's cache directory by a hash of its recipe. A cached image is reused
as long as the recipe is unchanged.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r := guest.Renderer(renderer)
			switch r {
			case guest.RendererNetplan, guest.RendererNetworkd, guest.RendererIfupdown:
			default:
				return &exitError{code: exitInvalid, err: fmt.Errorf("invalid --renderer %q: use netplan, networkd or ifupdown", renderer)}
			}
			if os.Geteuid() != 0 {
				return fmt.Errorf("image build needs root (mmdebstrap unpacks packages as root): run it with sudo")
			}

			opts := []guest.ImageOption{guest.WithImageLogger(g.logger()), guest.WithProgress(os.Stderr)}
			if cacheDir != "" {
				opts = append(opts, guest.WithCacheDir(cacheDir))
			}
			if rebuild {
				opts = append(opts, guest.WithRebuild())
			}
			start := time.Now()
			img, err := guest.EnsureImage(cmd.Context(), guest.DefaultRecipe(r), opts...)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "image %s (%s renderer) ready in %s: %s\n", img.Hash, r, time.Since(start).Round(100*time.Millisecond), img.Dir)
			fmt.Fprintf(cmd.OutOrStdout(), "  built %s in %.0f s; root filesystem %d MiB, disk %d MiB; kernel %s\n",
				img.Manifest.BuiltAt.Format(time.RFC3339), img.Manifest.BuildSeconds,
				img.Manifest.RootfsBytes>>20, img.Manifest.DiskBytes>>20, img.Manifest.KernelVersion)
			return nil
		},
	}
	build.Flags().StringVar(&renderer, "renderer", string(guest.RendererNetplan), "network renderer cloud-init uses in the guest: netplan, networkd or ifupdown")
	build.Flags().StringVar(&cacheDir, "cache-dir", "", "image cache directory (default: the user's cache directory/vmnet-e2e/images)")
	build.Flags().BoolVar(&rebuild, "rebuild", false, "build again even when a cached image matches the recipe")
	image.AddCommand(build)
	return image
}
