package guest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/vmnet-e2e/vmnet-e2e/framework/filelock"
)

// Image is a built guest image in the cache.
type Image struct {
	// Dir is the image's cache directory, named after Hash.
	Dir string
	// Kernel and Initrd are extracted from the root filesystem for direct
	// kernel boot.
	Kernel string
	Initrd string
	// Disk is the qcow2 root disk. Guests never write to it: each boots from
	// a copy-on-write overlay.
	Disk     string
	Hash     string
	Manifest Manifest
}

// Manifest records how an image was built; it is written last, so an image
// directory with a manifest is complete.
type Manifest struct {
	Hash          string            `json:"hash"`
	Recipe        Recipe            `json:"recipe"`
	BuiltAt       time.Time         `json:"builtAt"`
	BuildSeconds  float64           `json:"buildSeconds"`
	RootfsBytes   int64             `json:"rootfsBytes"`
	DiskBytes     int64             `json:"diskBytes"`
	KernelVersion string            `json:"kernelVersion"`
	Versions      map[string]string `json:"versions"`
}

const manifestName = "manifest.json"

type imageOptions struct {
	cacheDir string
	log      *slog.Logger
	progress io.Writer
	rebuild  bool
}

// ImageOption changes where and how EnsureImage finds or builds an image.
type ImageOption func(*imageOptions)

// WithCacheDir sets the directory that holds images/<hash>/; the default is
// os.UserCacheDir()/vmnet-e2e.
func WithCacheDir(dir string) ImageOption { return func(o *imageOptions) { o.cacheDir = dir } }

// WithImageLogger sets the logger for build steps and mmdebstrap's output.
func WithImageLogger(log *slog.Logger) ImageOption { return func(o *imageOptions) { o.log = log } }

// WithProgress draws a progress indicator on w while an image builds; the
// default draws one on stderr when stderr is a terminal.
func WithProgress(w io.Writer) ImageOption { return func(o *imageOptions) { o.progress = w } }

// WithRebuild builds the image even when the cache has it, replacing it.
func WithRebuild() ImageOption { return func(o *imageOptions) { o.rebuild = true } }

// DefaultCacheDir returns os.UserCacheDir()/vmnet-e2e.
func DefaultCacheDir() (string, error) {
	base, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("guest: find the user cache directory: %w (set HOME or XDG_CACHE_HOME, or pass WithCacheDir)", err)
	}
	return filepath.Join(base, "vmnet-e2e"), nil
}

// EnsureImage returns the image for recipe from the cache, building it first
// when the cache lacks it. A build takes about a minute on two cores. It
// needs root (mmdebstrap) and network access to the recipe's mirrors. A
// cached image is returned after reading its manifest. Concurrent callers
// (several test binaries) build once: the others wait on a lock file.
func EnsureImage(ctx context.Context, recipe Recipe, opts ...ImageOption) (*Image, error) {
	o := imageOptions{}
	for _, opt := range opts {
		opt(&o)
	}
	if o.log == nil {
		o.log = slog.New(slog.DiscardHandler)
	}
	if o.cacheDir == "" {
		dir, err := DefaultCacheDir()
		if err != nil {
			return nil, err
		}
		o.cacheDir = dir
	}
	if err := recipe.Validate(); err != nil {
		return nil, err
	}

	hash := recipe.Hash()
	imagesDir := filepath.Join(o.cacheDir, "images")
	dir := filepath.Join(imagesDir, hash)
	if !o.rebuild {
		if img, err := loadImage(dir); err == nil {
			o.log.Debug("guest image found in cache", "hash", hash, "dir", dir)
			return img, nil
		}
	}

	if err := os.MkdirAll(imagesDir, 0o755); err != nil {
		return nil, fmt.Errorf("guest: create image cache %s: %w", imagesDir, err)
	}
	lockPath := filepath.Join(imagesDir, hash+".lock")
	unlock, err := filelock.Lock(ctx, lockPath, func() { o.log.Info("another process is building this guest image; waiting for it", "lock", lockPath) })
	if err != nil {
		return nil, err
	}
	defer unlock()

	// Another process may have built it while this one waited.
	if !o.rebuild {
		if img, err := loadImage(dir); err == nil {
			return img, nil
		}
	}
	removeStaleBuilds(imagesDir, hash, o.log)

	b := &builder{recipe: recipe, hash: hash, log: o.log, progress: o.progress}
	return b.build(ctx, imagesDir, dir)
}

func loadImage(dir string) (*Image, error) {
	data, err := os.ReadFile(filepath.Join(dir, manifestName))
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("guest: invalid manifest in %s: %w", dir, err)
	}
	img := &Image{
		Dir:      dir,
		Kernel:   filepath.Join(dir, "vmlinuz"),
		Initrd:   filepath.Join(dir, "initrd.img"),
		Disk:     filepath.Join(dir, "disk.qcow2"),
		Hash:     m.Hash,
		Manifest: m,
	}
	for _, f := range []string{img.Kernel, img.Initrd, img.Disk} {
		if _, err := os.Stat(f); err != nil {
			return nil, fmt.Errorf("guest: image %s is incomplete: %w", dir, err)
		}
	}
	return img, nil
}

// removeStaleBuilds deletes build directories of hash left by a build that
// was killed. The caller holds the hash's lock, so no build is running. A
// directory with a mount below it is left alone: mmdebstrap runs in unshare
// mode, so its mounts die with it, but removing a live /proc or /dev bind
// mount's contents would be a disaster.
func removeStaleBuilds(imagesDir, hash string, log *slog.Logger) {
	stale, _ := filepath.Glob(filepath.Join(imagesDir, ".build-"+hash+"-*"))
	for _, dir := range stale {
		if hasMountBelow(dir) {
			log.Warn("stale image build directory has mounts below it; leaving it", "dir", dir)
			continue
		}
		log.Info("removing an interrupted image build", "dir", dir)
		_ = os.RemoveAll(dir)
	}
}

func hasMountBelow(dir string) bool {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return true
	}
	prefix := filepath.Clean(dir) + "/"
	for _, line := range strings.Split(string(data), "\n") {
		fields := strings.Fields(line)
		if len(fields) > 4 && strings.HasPrefix(fields[4]+"/", prefix) {
			return true
		}
	}
	return false
}

type builder struct {
	recipe   Recipe
	hash     string
	log      *slog.Logger
	progress io.Writer

	bar *progressbar.ProgressBar
}

// build makes the image in a temporary directory beside dir and renames it
// into place, so an interrupted build never leaves a half image under dir.
func (b *builder) build(ctx context.Context, imagesDir, dir string) (_ *Image, err error) {
	start := time.Now()
	tmp, err := os.MkdirTemp(imagesDir, ".build-"+b.hash+"-")
	if err != nil {
		return nil, fmt.Errorf("guest: create build directory in %s: %w", imagesDir, err)
	}
	defer func() {
		if err != nil && !hasMountBelow(tmp) {
			_ = os.RemoveAll(tmp)
		}
	}()

	b.log.Info("building guest image (about 1 minute on 2 idle cores, 3 or more on a busy machine)",
		"hash", b.hash, "suite", b.recipe.Suite, "renderer", b.recipe.Renderer, "dir", dir)
	b.startProgress()
	defer b.stopProgress()

	rootfs := filepath.Join(tmp, "rootfs")
	steps := []struct {
		name string
		run  func() error
	}{
		{"mmdebstrap: install packages into a root filesystem", func() error { return b.mmdebstrap(ctx, tmp, rootfs) }},
		{"extract kernel and initrd", func() error { return extractBoot(rootfs, tmp) }},
		{"mkfs.ext4 -d: make the root disk", func() error { return b.mkfs(ctx, rootfs, filepath.Join(tmp, "disk.raw")) }},
		{"qemu-img convert: raw to qcow2", func() error {
			return b.run(ctx, "qemu-img", "convert", "-O", "qcow2", filepath.Join(tmp, "disk.raw"), filepath.Join(tmp, "disk.qcow2"))
		}},
	}
	for i, step := range steps {
		stepStart := time.Now()
		b.describe(fmt.Sprintf("step %d/%d: %s", i+1, len(steps), step.name))
		b.log.Info("image build step", "step", fmt.Sprintf("%d/%d", i+1, len(steps)), "name", step.name)
		if err := step.run(); err != nil {
			return nil, err
		}
		b.log.Info("image build step done", "name", step.name, "seconds", time.Since(stepStart).Seconds())
	}

	manifest := Manifest{
		Hash:    b.hash,
		Recipe:  b.recipe,
		BuiltAt: time.Now().UTC(),
	}
	manifest.RootfsBytes = duBytes(rootfs)
	manifest.KernelVersion, manifest.Versions = packageVersions(ctx, rootfs, b.recipe.Kernel)
	if err := os.RemoveAll(filepath.Join(tmp, "disk.raw")); err != nil {
		return nil, fmt.Errorf("guest: remove raw disk: %w", err)
	}
	if hasMountBelow(rootfs) {
		return nil, fmt.Errorf("guest: %s still has mounts below it after mmdebstrap; unmount them and rerun", rootfs)
	}
	if err := os.RemoveAll(rootfs); err != nil {
		return nil, fmt.Errorf("guest: remove build root filesystem %s: %w", rootfs, err)
	}
	if info, err := os.Stat(filepath.Join(tmp, "disk.qcow2")); err == nil {
		manifest.DiskBytes = info.Size()
	}
	manifest.BuildSeconds = time.Since(start).Seconds()
	data, _ := json.MarshalIndent(manifest, "", "  ")
	if err := os.WriteFile(filepath.Join(tmp, manifestName), data, 0o644); err != nil {
		return nil, fmt.Errorf("guest: write image manifest: %w", err)
	}

	// Replace an older copy of the same hash (WithRebuild) only now that the
	// new one is complete.
	if _, err := os.Stat(dir); err == nil {
		old := dir + ".old-" + filepath.Base(tmp)
		if err := os.Rename(dir, old); err != nil {
			return nil, fmt.Errorf("guest: move old image %s aside: %w", dir, err)
		}
		defer os.RemoveAll(old)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return nil, fmt.Errorf("guest: move built image into %s: %w", dir, err)
	}

	b.log.Info("guest image built",
		"hash", b.hash, "seconds", manifest.BuildSeconds,
		"rootfsMiB", manifest.RootfsBytes>>20, "qcow2MiB", manifest.DiskBytes>>20,
		"kernel", manifest.KernelVersion, "cloud-init", manifest.Versions["cloud-init"])
	return loadImage(dir)
}

// mmdebstrap installs the recipe's packages into rootfs. Unshare mode keeps
// the build's /proc, /sys and /dev mounts in a private mount namespace, so a
// killed build leaves no mounts behind.
func (b *builder) mmdebstrap(ctx context.Context, tmp, rootfs string) error {
	hookDir := filepath.Join(tmp, "hooks")
	if err := os.Mkdir(hookDir, 0o755); err != nil {
		return fmt.Errorf("guest: create hook directory: %w", err)
	}
	hooks := append([]Hook{{Name: "vmnet-e2e", Script: b.recipe.customizeScript()}}, b.recipe.Hooks...)

	packages := append([]string{b.recipe.Kernel}, b.recipe.Packages...)
	args := []string{
		"--mode=unshare",
		"--variant=" + b.recipe.Variant,
		"--verbose",
		"--include=" + strings.Join(packages, ","),
		// Documentation, man pages and translations are never read in the
		// guest; copyright files stay.
		"--dpkgopt=path-exclude=/usr/share/man/*",
		"--dpkgopt=path-exclude=/usr/share/doc/*",
		"--dpkgopt=path-include=/usr/share/doc/*/copyright",
		"--dpkgopt=path-exclude=/usr/share/locale/*",
		"--dpkgopt=path-include=/usr/share/locale/locale.alias",
		"--dpkgopt=path-exclude=/usr/share/info/*",
	}
	for i, h := range hooks {
		path := filepath.Join(hookDir, fmt.Sprintf("%02d-%s.sh", i, sanitize(h.Name)))
		if err := os.WriteFile(path, []byte(h.Script), 0o755); err != nil {
			return fmt.Errorf("guest: write hook %s: %w", h.Name, err)
		}
		args = append(args, fmt.Sprintf(`--customize-hook=sh %s "$1"`, path))
	}
	args = append(args, b.recipe.Suite, rootfs)
	args = append(args, b.recipe.Mirrors...)
	return b.run(ctx, "mmdebstrap", args...)
}

func (b *builder) mkfs(ctx context.Context, rootfs, raw string) error {
	f, err := os.Create(raw)
	if err != nil {
		return fmt.Errorf("guest: create %s: %w", raw, err)
	}
	err = f.Truncate(int64(b.recipe.DiskSizeMiB) << 20)
	_ = f.Close()
	if err != nil {
		return fmt.Errorf("guest: size %s to %d MiB: %w", raw, b.recipe.DiskSizeMiB, err)
	}
	return b.run(ctx, "mkfs.ext4", "-q", "-F", "-L", "root", "-d", rootfs, raw)
}

// run executes a build command, streaming each output line to the logger
// (mmdebstrap's "I:" progress lines at info level, the rest at debug) and
// keeping the last lines for the error.
func (b *builder) run(ctx context.Context, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	pr, pw := io.Pipe()
	cmd.Stdout = pw
	cmd.Stderr = pw

	last := newLineRing(30)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		scanner := bufio.NewScanner(pr)
		scanner.Buffer(make([]byte, 64<<10), 1<<20)
		for scanner.Scan() {
			line := scanner.Text()
			last.add(line)
			if strings.HasPrefix(line, "I: ") || strings.HasPrefix(line, "W: ") || strings.HasPrefix(line, "E: ") {
				b.log.Info(name, "output", line)
				b.describe(name + ": " + strings.TrimPrefix(line, "I: "))
			} else {
				b.log.Debug(name, "output", line)
			}
			if b.bar != nil {
				_ = b.bar.Add(1)
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()

	err := cmd.Start()
	if err != nil {
		_ = pw.Close()
		wg.Wait()
		if errors.Is(err, exec.ErrNotFound) {
			return fmt.Errorf("guest: %s not found: install it with `apt-get install %s`", name, aptPackageFor(name))
		}
		return fmt.Errorf("guest: start %s: %w", name, err)
	}
	err = cmd.Wait()
	_ = pw.Close()
	wg.Wait()
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("guest: %s interrupted: %w", name, ctx.Err())
		}
		return fmt.Errorf("guest: %s %s failed: %w; last output:\n%s", name, strings.Join(args, " "), err, strings.Join(last.lines(), "\n"))
	}
	return nil
}

func aptPackageFor(binary string) string {
	switch binary {
	case "mkfs.ext4":
		return "e2fsprogs"
	case "qemu-img":
		return "qemu-utils"
	}
	return binary
}

func (b *builder) startProgress() {
	w := b.progress
	if w == nil {
		if !isTerminal(os.Stderr) {
			return
		}
		w = os.Stderr
	}
	b.bar = progressbar.NewOptions(-1,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSpinnerType(14),
		progressbar.OptionSetDescription("building guest image"),
		progressbar.OptionShowElapsedTimeOnFinish(),
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionThrottle(200*time.Millisecond),
	)
}

func (b *builder) describe(text string) {
	if b.bar == nil {
		return
	}
	if len(text) > 70 {
		text = text[:70]
	}
	b.bar.Describe(text)
}

func (b *builder) stopProgress() {
	if b.bar != nil {
		_ = b.bar.Finish()
		_, _ = fmt.Fprintln(b.progressWriter())
	}
}

func (b *builder) progressWriter() io.Writer {
	if b.progress != nil {
		return b.progress
	}
	return os.Stderr
}

func isTerminal(f *os.File) bool {
	info, err := f.Stat()
	return err == nil && info.Mode()&os.ModeCharDevice != 0
}

// extractBoot copies the kernel and initrd of the one installed kernel to
// dir/vmlinuz and dir/initrd.img.
func extractBoot(rootfs, dir string) error {
	kernels, _ := filepath.Glob(filepath.Join(rootfs, "boot", "vmlinuz-*"))
	if len(kernels) != 1 {
		return fmt.Errorf("guest: want one kernel in %s/boot, found %d (%v): check the recipe's kernel package", rootfs, len(kernels), kernels)
	}
	version := strings.TrimPrefix(filepath.Base(kernels[0]), "vmlinuz-")
	initrd := filepath.Join(rootfs, "boot", "initrd.img-"+version)
	if _, err := os.Stat(initrd); err != nil {
		return fmt.Errorf("guest: no initrd for kernel %s: %w (is initramfs-tools in the recipe?)", version, err)
	}
	if err := copyFile(kernels[0], filepath.Join(dir, "vmlinuz")); err != nil {
		return err
	}
	return copyFile(initrd, filepath.Join(dir, "initrd.img"))
}

func copyFile(src, dst string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("guest: read %s: %w", src, err)
	}
	if err := os.WriteFile(dst, data, 0o644); err != nil {
		return fmt.Errorf("guest: write %s: %w", dst, err)
	}
	return nil
}

// packageVersions reads the installed versions of the packages that decide
// network behaviour from the root filesystem's dpkg database.
func packageVersions(ctx context.Context, rootfs, kernel string) (string, map[string]string) {
	out, err := exec.CommandContext(ctx, "dpkg-query", "--admindir="+filepath.Join(rootfs, "var/lib/dpkg"),
		"-W", "-f=${Package} ${Version}\n").Output()
	versions := map[string]string{}
	if err != nil {
		return "", versions
	}
	tracked := map[string]bool{"cloud-init": true, "netplan.io": true, "systemd": true, "udev": true, "ifupdown": true, "iproute2": true, kernel: true}
	kernelVersion := ""
	scanner := bufio.NewScanner(bytes.NewReader(out))
	for scanner.Scan() {
		fields := strings.Fields(scanner.Text())
		if len(fields) != 2 {
			continue
		}
		if tracked[fields[0]] {
			versions[fields[0]] = fields[1]
		}
		if strings.HasPrefix(fields[0], "linux-image-") && fields[0] != kernel {
			kernelVersion = strings.TrimPrefix(fields[0], "linux-image-")
		}
	}
	return kernelVersion, versions
}

func duBytes(dir string) int64 {
	var total int64
	_ = filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				total += info.Size()
			}
		}
		return nil
	})
	return total
}

func sanitize(name string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, name)
}

// lineRing keeps the last n lines.
type lineRing struct {
	mu   sync.Mutex
	buf  []string
	next int
	full bool
}

func newLineRing(n int) *lineRing { return &lineRing{buf: make([]string, n)} }

func (r *lineRing) add(line string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.buf[r.next] = line
	r.next = (r.next + 1) % len(r.buf)
	if r.next == 0 {
		r.full = true
	}
}

func (r *lineRing) lines() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.full {
		return append([]string(nil), r.buf[:r.next]...)
	}
	return append(append([]string(nil), r.buf[r.next:]...), r.buf[:r.next]...)
}

// PruneImages removes the cached images whose hash is not among keep's, and
// the lock files and interrupted builds that go with them, and returns the
// removed directories. An image whose lock another process holds (a build in
// progress) is left alone.
//
// NOTE: a guest booted from an image keeps reading it through its overlay;
// prune only when no other run uses the images it removes.
func PruneImages(keep []Recipe, opts ...ImageOption) ([]string, error) {
	o := imageOptions{}
	for _, opt := range opts {
		opt(&o)
	}
	if o.cacheDir == "" {
		dir, err := DefaultCacheDir()
		if err != nil {
			return nil, err
		}
		o.cacheDir = dir
	}
	kept := map[string]bool{}
	for _, r := range keep {
		kept[r.Hash()] = true
	}

	imagesDir := filepath.Join(o.cacheDir, "images")
	entries, err := os.ReadDir(imagesDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("guest: list image cache %s: %w", imagesDir, err)
	}

	var removed []string
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") || kept[e.Name()] {
			continue
		}
		lockPath := filepath.Join(imagesDir, e.Name()+".lock")
		lock, err := os.OpenFile(lockPath, os.O_CREATE|os.O_RDWR, 0o644)
		if err != nil {
			return removed, fmt.Errorf("guest: open lock %s: %w", lockPath, err)
		}
		if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			_ = lock.Close()
			continue
		}
		dir := filepath.Join(imagesDir, e.Name())
		removeStaleBuilds(imagesDir, e.Name(), slog.New(slog.DiscardHandler))
		err = os.RemoveAll(dir)
		_ = os.Remove(lockPath)
		_ = lock.Close()
		if err != nil {
			return removed, fmt.Errorf("guest: remove image %s: %w", dir, err)
		}
		removed = append(removed, dir)
	}
	return removed, nil
}
