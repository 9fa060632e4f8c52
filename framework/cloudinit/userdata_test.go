package cloudinit

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

const harness = "#!/bin/sh\necho harness\n"

// pythonPart is one leaf part as Python's email package decodes it.
type pythonPart struct {
	ContentType string `json:"ctype"`
	Filename    string `json:"filename"`
	Payload     []byte `json:"payload"`
}

// pythonWalk parses user-data with Python's email package, the parser
// cloud-init uses, the way cloud-init 22.4.2 reaches each part: MIME when
// "mime-version:" is in the first 4096 bytes, then Message.walk() over the
// leaves, get_payload(decode=True) and, for gzip types, decompression.
const pythonWalk = `
import base64, email, gzip, json, sys
raw = sys.stdin.buffer.read()
assert b"mime-version:" in raw[:4096].lower(), "not MIME"
msg = email.message_from_string(raw.decode("utf-8"))
out = []
for part in msg.walk():
    if part.get_content_maintype() == "multipart":
        continue
    payload = part.get_payload(decode=True)
    ctype = part.get_content_type()
    if ctype in ("application/x-gzip", "application/gzip"):
        payload = gzip.decompress(payload)
    if part.get_content_maintype() == "text":
        payload.decode("utf-8", "strict")
    out.append({"ctype": ctype, "filename": part.get_filename() or "", "payload": base64.b64encode(payload).decode()})
json.dump(out, sys.stdout)
`

func walkWithPython(t *testing.T, data []byte) []pythonPart {
	t.Helper()
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not found; it checks the MIME as cloud-init's parser reads it")
	}
	cmd := exec.Command(python, "-c", pythonWalk)
	cmd.Stdin = bytes.NewReader(data)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python's email package rejects the joined user-data: %v: %s\n%s", err, stderr.String(), data)
	}
	var parts []pythonPart
	if err := json.Unmarshal(out, &parts); err != nil {
		t.Fatal(err)
	}
	return parts
}

func assertHarnessLast(t *testing.T, parts []pythonPart) {
	t.Helper()
	if len(parts) == 0 {
		t.Fatal("no parts")
	}
	last := parts[len(parts)-1]
	if last.ContentType != "text/x-shellscript" {
		t.Errorf("harness part type %q, want text/x-shellscript", last.ContentType)
	}
	if last.Filename != HarnessPartFilename {
		t.Errorf("harness part filename %q, want %q", last.Filename, HarnessPartFilename)
	}
	if string(last.Payload) != harness {
		t.Errorf("harness payload %q, want %q", last.Payload, harness)
	}
}

func TestJoinUserDataNone(t *testing.T) {
	joined, err := JoinUserData(nil, []byte(harness))
	if err != nil {
		t.Fatal(err)
	}
	parts := walkWithPython(t, joined)
	if len(parts) != 1 {
		t.Fatalf("got %d parts, want only the harness part", len(parts))
	}
	assertHarnessLast(t, parts)
}

func TestJoinUserDataKeepsUserPart(t *testing.T) {
	for name, user := range map[string]string{
		"cloud-config":  "#cloud-config\nruncmd:\n  - [sh, -c, 'echo user']\nwrite_files:\n  - path: /etc/x\n    content: y\n",
		"script":        "#!/bin/bash\necho user script\n",
		"no final line": "#cloud-config\nbootcmd: [true]",
		"non-ASCII":     "#cloud-config\nwrite_files:\n  - path: /etc/motd\n    content: \"Grüße ✓\"\n",
		"CRLF":          "#cloud-config\r\nruncmd:\r\n  - true\r\n",
		"boothook":      "#cloud-boothook\n#!/bin/sh\necho early\n",
	} {
		t.Run(name, func(t *testing.T) {
			joined, err := JoinUserData([]byte(user), []byte(harness))
			if err != nil {
				t.Fatal(err)
			}
			parts := walkWithPython(t, joined)
			if len(parts) != 2 {
				t.Fatalf("got %d parts, want the user's and the harness", len(parts))
			}
			if parts[0].ContentType != "text/x-not-multipart" {
				t.Errorf("user part type %q, want text/x-not-multipart so that cloud-init detects it from the first line", parts[0].ContentType)
			}
			if string(parts[0].Payload) != user {
				t.Errorf("user part payload %q, want %q", parts[0].Payload, user)
			}
			assertHarnessLast(t, parts)
		})
	}
}

func TestJoinUserDataGzip(t *testing.T) {
	user := "#cloud-config\nruncmd: [true]\n"
	var gz bytes.Buffer
	w := gzip.NewWriter(&gz)
	_, _ = w.Write([]byte(user))
	_ = w.Close()

	joined, err := JoinUserData(gz.Bytes(), []byte(harness))
	if err != nil {
		t.Fatal(err)
	}
	parts := walkWithPython(t, joined)
	if len(parts) != 2 {
		t.Fatalf("got %d parts, want 2", len(parts))
	}
	if parts[0].ContentType != "application/x-gzip" {
		t.Errorf("user part type %q, want application/x-gzip", parts[0].ContentType)
	}
	if string(parts[0].Payload) != user {
		t.Errorf("decompressed user part %q, want %q", parts[0].Payload, user)
	}
	if !strings.Contains(string(joined), base64.StdEncoding.EncodeToString(gz.Bytes())[:60]) {
		t.Errorf("the user's gzip bytes are not carried as they are")
	}
	assertHarnessLast(t, parts)
}

func TestJoinUserDataMultipart(t *testing.T) {
	user := `Content-Type: multipart/mixed; boundary="===============user=="
MIME-Version: 1.0

--===============user==
Content-Type: text/cloud-config; charset="us-ascii"
MIME-Version: 1.0
Content-Transfer-Encoding: 7bit
Content-Disposition: attachment; filename="config.yaml"

#cloud-config
runcmd:
  - echo one
--===============user==
Content-Type: text/x-shellscript; charset="us-ascii"
MIME-Version: 1.0
Content-Transfer-Encoding: 7bit
Content-Disposition: attachment; filename="setup.sh"

#!/bin/sh
echo two
--===============user==--
`
	joined, err := JoinUserData([]byte(user), []byte(harness))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(joined, []byte(user)) {
		t.Errorf("the user's MIME message is not carried byte for byte")
	}
	parts := walkWithPython(t, joined)
	if len(parts) != 3 {
		t.Fatalf("got %d parts, want the user's two and the harness", len(parts))
	}
	want := []pythonPart{
		{ContentType: "text/cloud-config", Filename: "config.yaml", Payload: []byte("#cloud-config\nruncmd:\n  - echo one")},
		{ContentType: "text/x-shellscript", Filename: "setup.sh", Payload: []byte("#!/bin/sh\necho two")},
	}
	for i, w := range want {
		got := parts[i]
		if got.ContentType != w.ContentType || got.Filename != w.Filename || string(got.Payload) != string(w.Payload) {
			t.Errorf("part %d = %s %q %q, want %s %q %q", i, got.ContentType, got.Filename, got.Payload, w.ContentType, w.Filename, w.Payload)
		}
	}
	assertHarnessLast(t, parts)
}

func TestJoinUserDataRejectsNonScriptHarness(t *testing.T) {
	if _, err := JoinUserData(nil, []byte("#cloud-config\nruncmd: [true]\n")); err == nil {
		t.Fatal("a cloud-config harness part was accepted; it would replace the user's runcmd")
	}
}

func TestIsMIMEFirst4096Bytes(t *testing.T) {
	late := strings.Repeat("#\n", 2100) + "MIME-Version: 1.0\n"
	if IsMIME([]byte(late)) {
		t.Errorf("a MIME-Version header after byte 4096 made the data MIME")
	}
	if !IsMIME([]byte("Content-Type: text/plain\nmime-version: 1.0\n\nx")) {
		t.Errorf("a lowercase mime-version header was not recognized")
	}
}
