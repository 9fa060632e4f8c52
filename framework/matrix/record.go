package matrix

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/vmnet-e2e/vmnet-e2e/clusters/kind"
	"github.com/vmnet-e2e/vmnet-e2e/framework/guest"
)

// Record describes the inputs of one run of a cell. The run writes it to
// <artifacts>/cell.json before the suite starts, so that a report can be
// traced to its versions.
type Record struct {
	Cell        string         `json:"cell"`
	Provider    string         `json:"provider"`
	VersionSet  string         `json:"versionSet,omitempty"`
	LabelFilter string         `json:"labelFilter"`
	Scenarios   []string       `json:"scenarios"`
	Versions    *kind.Versions `json:"versions,omitempty"`
	// Images are the container images of a kind cell, with the digest each
	// tag resolved to when ResolveDigests ran.
	Images []ImageRecord `json:"images,omitempty"`
	// Host records what decides a local cell's data plane: the kernel and
	// the Debian packages of the CNI plugins and qemu.
	Host       *HostRecord `json:"host,omitempty"`
	RecordedAt time.Time   `json:"recordedAt"`
}

// ImageRecord is one image of a run.
type ImageRecord struct {
	// Image is the reference without a digest.
	Image string `json:"image"`
	// Pinned is the digest the matrix or clusters/versions.yaml pins, or
	// empty when none is pinned.
	Pinned string `json:"pinned,omitempty"`
	// Resolved is the digest the tag resolved to at run time.
	Resolved string `json:"resolved,omitempty"`
	// Error is the reason the digest could not be resolved.
	Error string `json:"error,omitempty"`
}

// HostRecord is the part of this machine that decides local verdicts.
type HostRecord struct {
	Kernel   string            `json:"kernel,omitempty"`
	Packages map[string]string `json:"packages,omitempty"`
	// GuestRecipe is the hash of the guest image recipe the local provider
	// boots by default (guest.DefaultRecipe with the netplan renderer), the
	// key of the image in the cache.
	GuestRecipe string `json:"guestRecipe,omitempty"`
	Error       string `json:"error,omitempty"`
}

// hostPackages are the Debian packages whose versions decide a local run:
// the CNI plugins it calls and the qemu that runs the guests.
var hostPackages = []string{"containernetworking-plugins", "qemu-system-x86"}

// NewRecord describes a run. For a kind cell it lists the node, Multus and
// macvtap-cni images and the containerDisk images of the selected scenarios,
// pinned where the matrix or clusters/versions.yaml gives a digest.
//
// NOTE: KubeVirt's images are chosen by its operator at install time and are
// not listed. Only the kind provider can read them, from the cluster.
func (m *Matrix) NewRecord(r *Run) *Record {
	rec := &Record{
		Cell: r.Cell.Name, Provider: r.Cell.Provider, VersionSet: r.Cell.Versions,
		LabelFilter: r.Cell.LabelFilter, Scenarios: r.Scenarios, Versions: r.Versions,
		RecordedAt: time.Now().UTC().Truncate(time.Second),
	}
	if r.Versions == nil {
		return rec
	}

	node, nodeDigest, _ := strings.Cut(r.Versions.Kind.NodeImage, "@")
	rec.Images = append(rec.Images,
		ImageRecord{Image: node, Pinned: nodeDigest},
		ImageRecord{Image: r.Versions.MultusImage()},
		ImageRecord{Image: r.Versions.MacvtapImage()},
	)
	for _, image := range r.GuestImages {
		entry := ImageRecord{Image: image}
		if g, ok := m.GuestImage(image); ok {
			entry.Pinned = g.Digest
		}
		rec.Images = append(rec.Images, entry)
	}
	return rec
}

// DigestResolver returns the digest ("sha256:...") a tagged image resolves
// to in its registry.
type DigestResolver func(ctx context.Context, image string) (string, error)

// ResolveDigests resolves every image of the record and stores the digest or
// the error. A failed resolution is recorded, not returned: the run can go on
// without it.
func (rec *Record) ResolveDigests(ctx context.Context, resolve DigestResolver) {
	for i := range rec.Images {
		d, err := resolve(ctx, rec.Images[i].Image)
		if err != nil {
			rec.Images[i].Error = err.Error()
			continue
		}
		rec.Images[i].Resolved = d
	}
}

// CheckPins returns an error for every image whose tag resolved to a digest
// other than the pinned one: the tag moved, and the run would test another
// image than the matrix names.
func (rec *Record) CheckPins() error {
	var errs []error
	for _, img := range rec.Images {
		if img.Pinned != "" && img.Resolved != "" && img.Pinned != img.Resolved {
			errs = append(errs, fmt.Errorf("image %s is pinned to %s but the tag now resolves to %s: update the digest in %s or clusters/versions.yaml after checking the new image",
				img.Image, img.Pinned, img.Resolved, DefaultPath))
		}
	}
	return errors.Join(errs...)
}

// RecordHost fills Host with the kernel release and the versions of
// hostPackages, as dpkg-query reports them.
func (rec *Record) RecordHost(ctx context.Context) {
	host := &HostRecord{Packages: map[string]string{}, GuestRecipe: guest.DefaultRecipe(guest.RendererNetplan).Hash()}
	if release, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		host.Kernel = strings.TrimSpace(string(release))
	}

	args := append([]string{"-W", "-f", "${Package}\t${Version}\n"}, hostPackages...)
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "dpkg-query", args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	// dpkg-query exits 1 when a package is not installed and still prints
	// the others.
	scanner := bufio.NewScanner(bytes.NewReader(out))
	for scanner.Scan() {
		name, version, ok := strings.Cut(scanner.Text(), "\t")
		if ok && version != "" {
			host.Packages[name] = version
		}
	}
	if err != nil {
		host.Error = fmt.Sprintf("dpkg-query %s: %v: %s", strings.Join(hostPackages, " "), err, strings.TrimSpace(stderr.String()))
	}
	rec.Host = host
}

// Write writes the record as indented JSON, creating the directory. Label
// filters keep their && unescaped.
func (rec *Record) Write(path string) error {
	var data bytes.Buffer
	enc := json.NewEncoder(&data)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(rec); err != nil {
		return fmt.Errorf("matrix: encode cell record: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("matrix: create directory for %s: %w", path, err)
	}
	if err := os.WriteFile(path, data.Bytes(), 0o644); err != nil {
		return fmt.Errorf("matrix: write %s: %w", path, err)
	}
	return nil
}

// DockerDigestResolver resolves a tag with `docker buildx imagetools
// inspect`, which queries the registry and pulls nothing. It reads the
// top-level "Digest:" line, the digest of the manifest list or of the single
// manifest the tag names.
//
// NOTE: the nodes pull the tag themselves a few minutes later; a tag pushed
// in between would give them another digest. The kind provider can record
// the digest each pod actually ran from its status (imageID).
func DockerDigestResolver(ctx context.Context, image string) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "docker", "buildx", "imagetools", "inspect", image)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("docker buildx imagetools inspect %s: %w: %s", image, err, strings.TrimSpace(stderr.String()))
	}
	return parseImagetoolsDigest(stdout.String())
}

// parseImagetoolsDigest returns the value of the first "Digest:" line of
// `docker buildx imagetools inspect` output.
func parseImagetoolsDigest(out string) (string, error) {
	for line := range strings.SplitSeq(out, "\n") {
		if value, ok := strings.CutPrefix(strings.TrimSpace(line), "Digest:"); ok {
			d := strings.TrimSpace(value)
			if !digest.MatchString(d) {
				return "", fmt.Errorf("docker buildx imagetools inspect printed digest %q, want sha256:<hex>", d)
			}
			return d, nil
		}
	}
	return "", fmt.Errorf("docker buildx imagetools inspect printed no Digest line: %q", firstLines(out, 3))
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, "\n")
}
