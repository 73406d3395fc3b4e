package apps

import (
	"bytes"
	"encoding/json"
	"mime"
	"path"
	"strings"
	"unicode/utf8"

	"github.com/forgeapps/backbone/pkg/fault"
)

// Limits of what apps stores: a gRPC message is at most 16 MiB (a whole version travels in
// one CreateVersion), and a file or reference is held in memory a few times over while it is
// checked, sealed and stored, hence the per-file and per-version bounds.
const (
	MaxFileBytes       = 4 << 20
	MaxVersionBytes    = 12 << 20
	MaxReferenceBytes  = 4 << 20
	MaxReferencesOfApp = 50
)

// normalizeType lower-cases a media type and drops its parameters; "" when malformed.
func normalizeType(ct string) string {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return ""
	}
	return strings.ToLower(mt)
}

// magic returns whether data starts like the binary format t (true for text types, which
// have no signature and are checked otherwise).
func magic(t string, data []byte) bool {
	switch t {
	case "image/png":
		return bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n"))
	case "image/jpeg":
		return bytes.HasPrefix(data, []byte{0xFF, 0xD8, 0xFF})
	case "image/gif":
		return bytes.HasPrefix(data, []byte("GIF87a")) || bytes.HasPrefix(data, []byte("GIF89a"))
	case "image/webp":
		return len(data) >= 12 && bytes.Equal(data[:4], []byte("RIFF")) && bytes.Equal(data[8:12], []byte("WEBP"))
	case "application/pdf":
		return bytes.HasPrefix(data, []byte("%PDF-"))
	case "image/x-icon":
		return bytes.HasPrefix(data, []byte{0, 0, 1, 0})
	case "font/woff2":
		return bytes.HasPrefix(data, []byte("wOF2"))
	case "font/woff":
		return bytes.HasPrefix(data, []byte("wOFF"))
	case "application/wasm":
		return bytes.HasPrefix(data, []byte("\x00asm"))
	}
	return true
}

// isText reports whether data is text: valid UTF-8 without NUL bytes.
func isText(data []byte) bool {
	return utf8.Valid(data) && bytes.IndexByte(data, 0) < 0
}

// referenceTypes are the accepted reference types; true marks text types.
var referenceTypes = map[string]bool{
	"image/png": false, "image/jpeg": false, "image/gif": false, "image/webp": false,
	"application/pdf": false, "text/plain": true, "text/markdown": true, "text/csv": true,
	"application/json": true,
}

// checkReference validates an upload: an accepted type whose content matches it.
func checkReference(filename, contentType string, data []byte) (string, error) {
	if strings.ContainsAny(filename, "/\\") || strings.TrimSpace(filename) == "" || !utf8.ValidString(filename) ||
		strings.ContainsFunc(filename, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return "", fault.InvalidField("filename", "a file name, without folders or control characters")
	}
	t := normalizeType(contentType)
	text, ok := referenceTypes[t]
	if !ok {
		return "", fault.InvalidField("content_type", "not an accepted reference type")
	}
	if len(data) == 0 || len(data) > MaxReferenceBytes {
		return "", fault.InvalidField("content", "1 byte to 4 MiB")
	}
	if text && !isText(data) || !text && !magic(t, data) {
		return "", fault.InvalidField("content", "does not match content_type")
	}
	if t == "application/json" && !json.Valid(data) {
		return "", fault.InvalidField("content", "does not match content_type")
	}
	return t, nil
}

// versionTypes maps a file extension to its media type; text types are checked as UTF-8.
var versionTypes = map[string]struct {
	mediaType string
	text      bool
}{
	".html": {"text/html", true}, ".htm": {"text/html", true}, ".css": {"text/css", true},
	".js": {"text/javascript", true}, ".mjs": {"text/javascript", true}, ".json": {"application/json", true},
	".map": {"application/json", true}, ".txt": {"text/plain", true}, ".md": {"text/markdown", true},
	".svg": {"image/svg+xml", true}, ".png": {"image/png", false}, ".jpg": {"image/jpeg", false},
	".jpeg": {"image/jpeg", false}, ".gif": {"image/gif", false}, ".webp": {"image/webp", false},
	".ico": {"image/x-icon", false}, ".woff2": {"font/woff2", false}, ".woff": {"font/woff", false},
	".wasm": {"application/wasm", false},
}

// typeAliases are other names clients use for the same types.
var typeAliases = map[string]string{
	"application/javascript":   "text/javascript",
	"application/x-javascript": "text/javascript",
	"image/vnd.microsoft.icon": "image/x-icon",
}

// checkVersionFile validates one file of a version: a clean relative path, an accepted type
// matching its extension, content matching the type. It returns the media type.
func checkVersionFile(i int, p, contentType string, data []byte) (string, error) {
	field := func(f string) string { return "files[" + itoa(i) + "]." + f }
	for _, seg := range strings.Split(p, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return "", fault.InvalidField(field("path"), "a relative path without empty, . or .. segments")
		}
	}
	want, ok := versionTypes[strings.ToLower(path.Ext(p))]
	if !ok {
		return "", fault.InvalidField(field("path"), "not an accepted file type")
	}
	if contentType != "" {
		t := normalizeType(contentType)
		if alias, ok := typeAliases[t]; ok {
			t = alias
		}
		if t != want.mediaType {
			return "", fault.InvalidField(field("content_type"), "does not match the path's extension")
		}
	}
	if len(data) > MaxFileBytes {
		return "", fault.InvalidField(field("content"), "at most 4 MiB")
	}
	if want.text && !isText(data) || !want.text && !magic(want.mediaType, data) {
		return "", fault.InvalidField(field("content"), "does not match the file type")
	}
	return want.mediaType, nil
}

func itoa(i int) string {
	const digits = "0123456789"
	if i < 10 {
		return digits[i : i+1]
	}
	return itoa(i/10) + digits[i%10:i%10+1]
}
