package apps

import (
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/forgeapps/backbone/pkg/fault"
)

var png = []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")

func TestCheckReference(t *testing.T) {
	tests := []struct {
		name, filename, contentType string
		data                        []byte
		want                        string // "" means refused
	}{
		{name: "png", filename: "logo.png", contentType: "image/png", data: png, want: "image/png"},
		{name: "text with charset", filename: "notes.txt", contentType: "text/plain; charset=utf-8", data: []byte("hi"), want: "text/plain"},
		{name: "json", filename: "a.json", contentType: "application/json", data: []byte(`{"a":1}`), want: "application/json"},
		{name: "pdf", filename: "spec.pdf", contentType: "application/pdf", data: []byte("%PDF-1.7\n"), want: "application/pdf"},
		{name: "html refused", filename: "x.html", contentType: "text/html", data: []byte("<script>")},
		{name: "svg refused", filename: "x.svg", contentType: "image/svg+xml", data: []byte("<svg/>")},
		{name: "png that is not", filename: "x.png", contentType: "image/png", data: []byte("<html>")},
		{name: "text that is binary", filename: "x.txt", contentType: "text/plain", data: []byte{0, 1, 2}},
		{name: "json that is not", filename: "x.json", contentType: "application/json", data: []byte("{")},
		{name: "folder in name", filename: "../x.txt", contentType: "text/plain", data: []byte("a")},
		{name: "control character", filename: "x\n.txt", contentType: "text/plain", data: []byte("a")},
		{name: "empty", filename: "x.txt", contentType: "text/plain", data: nil},
		{name: "over the limit", filename: "x.txt", contentType: "text/plain", data: []byte(strings.Repeat("a", MaxReferenceBytes+1))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := checkReference(tt.filename, tt.contentType, tt.data)
			if tt.want == "" {
				require.True(t, fault.Is(err, fault.KindInvalidArgument), "%v", err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestCheckVersionFile(t *testing.T) {
	tests := []struct {
		name, path, contentType string
		data                    []byte
		want                    string
	}{
		{name: "html by extension", path: "index.html", data: []byte("<h1>hi</h1>"), want: "text/html"},
		{name: "js alias", path: "assets/app.js", contentType: "application/javascript", data: []byte("1"), want: "text/javascript"},
		{name: "png", path: "img/a.png", contentType: "image/png", data: png, want: "image/png"},
		{name: "empty text file", path: "empty.css", data: nil, want: "text/css"},
		{name: "dot dot", path: "a/../b.html", data: []byte("x")},
		{name: "dot segment", path: "./b.html", data: []byte("x")},
		{name: "unknown extension", path: "run.sh", data: []byte("x")},
		{name: "type mismatch", path: "a.html", contentType: "image/png", data: []byte("x")},
		{name: "fake png", path: "a.png", data: []byte("<html>")},
		{name: "binary as text", path: "a.js", data: []byte{0xff, 0xfe, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := checkVersionFile(0, tt.path, tt.contentType, tt.data)
			if tt.want == "" {
				require.True(t, fault.Is(err, fault.KindInvalidArgument), "%v", err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestPageTokens(t *testing.T) {
	c := Cursor{Time: time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC), ID: uuid.New(), Seq: 42}
	tok := encodeToken(tokenApps, c)
	got, err := decodeToken(tokenApps, tok)
	require.NoError(t, err)
	require.Equal(t, c, *got)

	none, err := decodeToken(tokenApps, "")
	require.NoError(t, err)
	require.Nil(t, none)
	for name, bad := range map[string]string{
		"other listing": encodeToken(tokenShared, c),
		"garbage":       "not-a-token",
		"truncated":     tok[:10],
	} {
		_, err := decodeToken(tokenApps, bad)
		require.True(t, fault.Is(err, fault.KindInvalidArgument), name)
	}
}

func TestShareTokens(t *testing.T) {
	tok, hash, err := NewShareToken()
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(tok.Reveal(), "fsl_"))
	require.True(t, wellFormedShareToken(tok.Reveal()))
	require.Equal(t, hash, HashShareToken(tok.Reveal()))
	require.Len(t, tok.Reveal(), 4+43, "32 random bytes, base64url")
	require.NotContains(t, tok.String(), tok.Reveal()[4:], "a token prints redacted")
	tok2, _, err := NewShareToken()
	require.NoError(t, err)
	require.NotEqual(t, tok.Reveal(), tok2.Reveal())
	require.False(t, wellFormedShareToken("fsl_short"))
	require.False(t, wellFormedShareToken(strings.TrimPrefix(tok.Reveal(), "fsl_")))
}
