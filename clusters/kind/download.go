package kind

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// DefaultCacheDir returns os.UserCacheDir()/vmnet-e2e/kind, where downloads
// are kept between runs.
func DefaultCacheDir() (string, error) {
	base, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("kind: find the user cache directory: %w (set one with WithCacheDir)", err)
	}
	return filepath.Join(base, "vmnet-e2e", "kind"), nil
}

// Cache downloads release files once into Dir and checks their sha256.
type Cache struct {
	Dir    string
	Client *http.Client
	Log    *slog.Logger
}

// Download describes one file to fetch.
type Download struct {
	URL string
	// SHA256 is the pinned digest, empty when none is pinned.
	SHA256 string
	// PublishedSHA256URL is a checksum file the project publishes beside the
	// file ("<sha256>  <name>"), used when SHA256 is empty.
	PublishedSHA256URL string
	// Env names the variable that pins SHA256, for messages.
	Env string
}

// recordSuffix marks the file holding the sha256 a download had on first
// use, when nothing pinned it.
const recordSuffix = ".first-use.sha256"

// Fetch returns the path of d's content in the cache, downloading it when it
// is missing. A pinned or published sha256 must match. Without one, the
// sha256 of the first download is recorded and later uses must match it.
func (c *Cache) Fetch(ctx context.Context, d Download) (string, error) {
	log := c.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dest, err := c.pathFor(d.URL)
	if err != nil {
		return "", err
	}

	want := strings.ToLower(d.SHA256)
	check := "pinned"
	if want == "" && d.PublishedSHA256URL != "" {
		want, err = c.publishedSum(ctx, d.PublishedSHA256URL)
		if err != nil {
			return "", err
		}
		check = "published at " + d.PublishedSHA256URL
	}
	if want == "" {
		if recorded, err := os.ReadFile(dest + recordSuffix); err == nil {
			want, check = strings.TrimSpace(string(recorded)), "recorded on first use in "+dest+recordSuffix
		}
	}

	// use the cached copy when it matches
	if got, err := fileSHA256(dest); err == nil {
		if want == "" || got == want {
			log.Debug("using cached download", "url", d.URL, "path", dest, "sha256", got)
			return dest, nil
		}
		if strings.HasPrefix(check, "recorded") {
			return "", fmt.Errorf("kind: cached %s has sha256 %s, but %s it was %s: the file changed on disk; delete %s and its %s file to download it again",
				dest, got, check, want, dest, recordSuffix)
		}
		log.Warn("cached download does not match its sha256, downloading again", "path", dest, "sha256", got, "want", want)
	}

	// download into a temporary file next to the destination, then rename
	got, err := c.download(ctx, d.URL, dest)
	if err != nil {
		return "", err
	}
	if want != "" && got != want {
		_ = os.Remove(dest)
		return "", fmt.Errorf("kind: %s has sha256 %s, want %s (%s): the release changed or the download is corrupt; check the version, or set %s",
			d.URL, got, want, check, orNone(d.Env))
	}
	if want == "" {
		if err := os.WriteFile(dest+recordSuffix, []byte(got+"\n"), 0o644); err != nil {
			return "", fmt.Errorf("kind: record sha256 of %s: %w", dest, err)
		}
		log.Warn("download not pinned by sha256: recorded its sha256 for later runs", "url", d.URL, "sha256", got, "pin with", orNone(d.Env))
	}
	log.Info("downloaded", "url", d.URL, "path", dest, "sha256", got)
	return dest, nil
}

// pathFor maps a URL to Dir/<host>/<path>, so that each version has its own
// file.
func (c *Cache) pathFor(rawURL string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("kind: invalid download URL %q", rawURL)
	}
	clean := path.Clean("/" + u.Path)
	if clean == "/" {
		return "", fmt.Errorf("kind: download URL %q names no file", rawURL)
	}
	host := strings.ReplaceAll(u.Host, ":", "_")
	return filepath.Join(c.Dir, host, filepath.FromSlash(clean)), nil
}

func (c *Cache) client() *http.Client {
	if c.Client != nil {
		return c.Client
	}
	return &http.Client{Timeout: 10 * time.Minute}
}

func (c *Cache) download(ctx context.Context, rawURL, dest string) (string, error) {
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return "", fmt.Errorf("kind: create cache directory: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return "", fmt.Errorf("kind: download %s: %w", rawURL, err)
	}
	resp, err := c.client().Do(req)
	if err != nil {
		return "", fmt.Errorf("kind: download %s: %w", rawURL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("kind: download %s: HTTP %s: check the version and the URL in clusters/versions.yaml", rawURL, resp.Status)
	}

	tmp, err := os.CreateTemp(filepath.Dir(dest), filepath.Base(dest)+".part-*")
	if err != nil {
		return "", fmt.Errorf("kind: create download file: %w", err)
	}
	defer os.Remove(tmp.Name())

	hash := sha256.New()
	if _, err := io.Copy(io.MultiWriter(tmp, hash), resp.Body); err != nil {
		tmp.Close()
		return "", fmt.Errorf("kind: download %s: %w", rawURL, err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("kind: write %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), dest); err != nil {
		return "", fmt.Errorf("kind: move download into the cache: %w", err)
	}
	return hex.EncodeToString(hash.Sum(nil)), nil
}

// publishedSum reads the first field of a checksum file.
func (c *Cache) publishedSum(ctx context.Context, rawURL string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return "", fmt.Errorf("kind: fetch checksum %s: %w", rawURL, err)
	}
	resp, err := c.client().Do(req)
	if err != nil {
		return "", fmt.Errorf("kind: fetch checksum %s: %w", rawURL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("kind: fetch checksum %s: HTTP %s", rawURL, resp.Status)
	}
	line, err := bufio.NewReader(io.LimitReader(resp.Body, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("kind: read checksum %s: %w", rawURL, err)
	}
	fields := strings.Fields(line)
	if len(fields) == 0 || !sha256Hex.MatchString(strings.ToLower(fields[0])) {
		return "", fmt.Errorf("kind: checksum file %s does not start with a sha256: %q", rawURL, strings.TrimSpace(line))
	}
	return strings.ToLower(fields[0]), nil
}

func fileSHA256(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	hash := sha256.New()
	if _, err := io.Copy(hash, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(hash.Sum(nil)), nil
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
