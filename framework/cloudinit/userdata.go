package cloudinit

import (
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
)

// HarnessPartFilename is the Content-Disposition filename of the harness
// part. cloud-init stores a shell-script part under that name in
// /var/lib/cloud/instance/scripts/ and runs it in the final stage
// (cc_scripts_user).
const HarnessPartFilename = "vmnet-e2e-evidence.sh"

// JoinUserData returns user-data that makes cloud-init do everything user
// asks for and also run harness, a shell script starting with "#!".
//
// The result is always a MIME multipart/mixed message: the user's data first,
// then harness as a text/x-shellscript part. The harness is a script and never
// a second cloud-config, because cloud-init 22.4.2 merges cloud-config parts
// with "dict(replace)+list()+str()" (cloudinit/handlers/cloud_config.py,
// DEF_MERGERS), so a second part's runcmd, bootcmd or write_files would
// replace the user's.
//
// cloud-init 22.4.2 reads user-data in cloudinit/user_data.py. convert_string
// gunzips the blob, then treats it as MIME when "mime-version:" occurs in its
// first 4096 bytes. Otherwise the blob is one part whose type comes from its
// first line (handlers.type_from_starts_with). The user's data is carried so
// that cloud-init reaches the same parts:
//   - none (KubeVirt writes an empty user-data when only networkData is set):
//     only the harness part.
//   - MIME, possibly gzipped: the user's message, decompressed, becomes a
//     nested part with its own headers and boundary, byte for byte.
//     cloud-init walks nested multiparts (Message.walk), so every user part is
//     handled as before, in the same order.
//   - gzipped non-MIME data: one application/x-gzip part, base64 encoded;
//     cloud-init decompresses it and detects the type from the content.
//   - any other data (#cloud-config, #!, #include, #cloud-boothook, jinja, ...):
//     one text/x-not-multipart part, so cloud-init detects the type from the
//     first line exactly as for a lone blob. ASCII data is carried verbatim;
//     other data is base64 encoded, because Python's email package would
//     re-encode non-ASCII text in a 7bit or 8bit part as Latin-1 and
//     cloud-init's UTF-8 decoding of the part would then fail.
//
// The user's part comes first, so cloud-init numbers it part-001 as it would
// a lone blob.
func JoinUserData(user, harness []byte) ([]byte, error) {
	if !bytes.HasPrefix(harness, []byte("#!")) {
		return nil, errors.New("cloudinit: the harness part must be a shell script starting with \"#!\"")
	}

	boundary, err := newBoundary(user, harness)
	if err != nil {
		return nil, err
	}

	var msg bytes.Buffer
	fmt.Fprintf(&msg, "Content-Type: multipart/mixed; boundary=\"%s\"\n", boundary)
	msg.WriteString("MIME-Version: 1.0\n")
	msg.WriteString("\n")

	if len(user) > 0 {
		part, err := userPart(user)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(&msg, "--%s\n", boundary)
		msg.Write(part)
		// The line break before a delimiter belongs to the delimiter
		// (RFC 2046, 5.1.1), so the part keeps its own trailing newline.
		msg.WriteString("\n")
	}

	fmt.Fprintf(&msg, "--%s\n", boundary)
	msg.WriteString("Content-Type: text/x-shellscript; charset=\"us-ascii\"\n")
	msg.WriteString("MIME-Version: 1.0\n")
	fmt.Fprintf(&msg, "Content-Disposition: attachment; filename=\"%s\"\n", HarnessPartFilename)
	msg.WriteString("\n")
	msg.Write(harness)
	msg.WriteString("\n")
	fmt.Fprintf(&msg, "--%s--\n", boundary)
	return msg.Bytes(), nil
}

// userPart returns the user's data as one MIME entity (headers and body).
func userPart(user []byte) ([]byte, error) {
	content := user
	compressed := isGzip(user)
	if compressed {
		plain, err := gunzip(user)
		if err != nil {
			return nil, fmt.Errorf("cloudinit: user-data starts like gzip but does not decompress: %w", err)
		}
		content = plain
	}

	if IsMIME(content) {
		return content, nil
	}

	var part bytes.Buffer
	switch {
	case compressed:
		part.WriteString("Content-Type: application/x-gzip\n")
		part.WriteString("MIME-Version: 1.0\n")
		part.WriteString("Content-Transfer-Encoding: base64\n\n")
		writeBase64Lines(&part, user)

	case isASCII(user):
		part.WriteString("Content-Type: text/x-not-multipart\n")
		part.WriteString("MIME-Version: 1.0\n\n")
		part.Write(user)

	default:
		// cloud-init decodes the part as UTF-8 (util.fully_decoded_payload);
		// data that is not UTF-8 fails there just as the lone blob would.
		part.WriteString("Content-Type: text/x-not-multipart; charset=\"utf-8\"\n")
		part.WriteString("MIME-Version: 1.0\n")
		part.WriteString("Content-Transfer-Encoding: base64\n\n")
		writeBase64Lines(&part, user)
	}
	return part.Bytes(), nil
}

// IsMIME reports whether cloud-init 22.4.2 parses data (already
// decompressed) as a MIME message: "mime-version:" in its first 4096 bytes,
// in any case (cloudinit/user_data.py, convert_string).
func IsMIME(data []byte) bool {
	head := data
	if len(head) > 4096 {
		head = head[:4096]
	}
	return bytes.Contains(bytes.ToLower(head), []byte("mime-version:"))
}

func isGzip(data []byte) bool {
	return len(data) >= 2 && data[0] == 0x1f && data[1] == 0x8b
}

func gunzip(data []byte) ([]byte, error) {
	r, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

func isASCII(data []byte) bool {
	for _, b := range data {
		if b >= 0x80 || b == 0 {
			return false
		}
	}
	return true
}

func writeBase64Lines(w *bytes.Buffer, data []byte) {
	encoded := base64.StdEncoding.EncodeToString(data)
	for len(encoded) > 76 {
		w.WriteString(encoded[:76])
		w.WriteString("\n")
		encoded = encoded[76:]
	}
	w.WriteString(encoded)
}

// newBoundary returns a random MIME boundary that occurs in neither input.
func newBoundary(parts ...[]byte) (string, error) {
	for range 8 {
		var raw [12]byte
		if _, err := rand.Read(raw[:]); err != nil {
			return "", fmt.Errorf("cloudinit: read random boundary: %w", err)
		}
		boundary := "===============vmnet-e2e-" + hex.EncodeToString(raw[:]) + "=="
		clash := false
		for _, p := range parts {
			clash = clash || strings.Contains(string(p), boundary)
		}
		if !clash {
			return boundary, nil
		}
	}
	return "", errors.New("cloudinit: could not find a MIME boundary absent from the user-data")
}
