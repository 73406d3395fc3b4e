package archive_test

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/forgeapps/backbone/services/data-lifecycle/internal/archive"
)

// localSealer stands in for secrets-vault in the unit tests of this package's own encryption
// layer only: AES-256-GCM with the binding as associated data, like the vault's contract.
type localSealer struct{ aead cipher.AEAD }

func newLocalSealer(tb testing.TB) *localSealer {
	tb.Helper()
	key := make([]byte, 32)
	_, err := rand.Read(key)
	require.NoError(tb, err)
	block, err := aes.NewCipher(key)
	require.NoError(tb, err)
	aead, err := cipher.NewGCM(block)
	require.NoError(tb, err)
	return &localSealer{aead: aead}
}

func (s *localSealer) Seal(_ context.Context, b archive.Binding, pt []byte) ([]byte, error) {
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return s.aead.Seal(nonce, nonce, pt, []byte(b.Object+"|"+b.Field)), nil
}

func (s *localSealer) Open(_ context.Context, b archive.Binding, ct []byte) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(ct) < n {
		return nil, errors.New("short")
	}
	return s.aead.Open(nil, ct[:n], ct[n:], []byte(b.Object+"|"+b.Field))
}

func seal(t *testing.T, s archive.KeySealer, id string, plain []byte, seg int) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := archive.NewEncryptingWriter(context.Background(), &buf, s, id, seg)
	require.NoError(t, err)
	// Odd write sizes cross segment boundaries.
	for rest := plain; len(rest) > 0; {
		k := min(len(rest), 777)
		_, err := w.Write(rest[:k])
		require.NoError(t, err)
		rest = rest[k:]
	}
	require.NoError(t, w.Close())
	require.EqualValues(t, buf.Len(), w.Written())
	return buf.Bytes()
}

func open(s archive.KeySealer, id string, sealed []byte) ([]byte, error) {
	r, err := archive.NewDecryptingReader(context.Background(), bytes.NewReader(sealed), s, id)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(r)
}

// segments splits a sealed archive into its header and segments.
func segments(t *testing.T, sealed []byte) (header []byte, segs [][]byte) {
	t.Helper()
	keyLen := int(binary.BigEndian.Uint16(sealed[12:14]))
	header = sealed[:14+keyLen]
	rest := sealed[14+keyLen:]
	for len(rest) > 0 {
		l := int(binary.BigEndian.Uint32(rest[:4]))
		segs = append(segs, rest[:4+l])
		rest = rest[4+l:]
	}
	return header, segs
}

func join(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func TestRoundTripAndTampering(t *testing.T) {
	s := newLocalSealer(t)
	const id = "0190d2a4-7e9c-7c1a-9a57-111111111111"
	plain := make([]byte, 10*1000+123)
	_, err := rand.Read(plain)
	require.NoError(t, err)
	sealed := seal(t, s, id, plain, 1000)
	got, err := open(s, id, sealed)
	require.NoError(t, err)
	require.Equal(t, plain, got)
	require.False(t, bytes.Contains(sealed, plain[:64]), "the plaintext does not appear in the archive")

	empty := seal(t, s, id, nil, 1000)
	got, err = open(s, id, empty)
	require.NoError(t, err)
	require.Empty(t, got)

	header, segs := segments(t, sealed)
	require.Len(t, segs, 11)
	other := seal(t, s, "0190d2a4-7e9c-7c1a-9a57-222222222222", plain, 1000)
	oh, osegs := segments(t, other)
	flipped := bytes.Clone(sealed)
	flipped[len(header)+40] ^= 1

	cases := []struct {
		name   string
		sealed []byte
		id     string
	}{
		{"truncated after a middle segment", join(append([][]byte{header}, segs[:5]...)...), id},
		{"final segment dropped", join(append([][]byte{header}, segs[:10]...)...), id},
		{"cut inside a segment", sealed[:len(sealed)-7], id},
		{"segments swapped", join(header, segs[1], segs[0], join(segs[2:]...)), id},
		{"segment duplicated", join(header, segs[0], segs[0], join(segs[1:]...)), id},
		{"data after the final segment", join(sealed, segs[10]), id},
		{"a bit flipped", flipped, id},
		{"another export's segment spliced in", join(header, osegs[0], join(segs[1:]...)), id},
		{"another export's header", join(oh, join(segs...)), id},
		{"opened as another export", sealed, "0190d2a4-7e9c-7c1a-9a57-333333333333"},
		{"not an archive", []byte("PK\x03\x04 a plain zip"), id},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := open(s, tc.id, tc.sealed)
			require.Error(t, err)
		})
	}
	t.Run("key of another tenant", func(t *testing.T) {
		_, err := open(newLocalSealer(t), id, sealed)
		require.Error(t, err)
	})
}

func TestZipManifest(t *testing.T) {
	var buf bytes.Buffer
	b := archive.NewBuilder(&buf, "exp", "own", time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	require.NoError(t, b.AddBytes("apps/a/app.json", []byte(`{"name":"x"}`)))
	fw, err := b.Create("account/credit_entries.jsonl")
	require.NoError(t, err)
	_, err = fw.Write([]byte("{}\n{}\n"))
	require.NoError(t, err)
	require.NoError(t, fw.Close())
	b.Count("apps", 1)
	b.Count("credit_entries", 2)
	for _, bad := range []string{"../x", "/abs", "a//b", "a/./b", "a\\b", "", "manifest.json", "apps/a/app.json"} {
		require.Error(t, b.AddBytes(bad, nil), bad)
	}
	m, err := b.Close()
	require.NoError(t, err)

	zr, err := zip.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	require.NoError(t, err)
	files := map[string][]byte{}
	for _, f := range zr.File {
		rc, err := f.Open()
		require.NoError(t, err)
		files[f.Name], err = io.ReadAll(rc)
		require.NoError(t, err)
	}
	var got archive.Manifest
	require.NoError(t, json.Unmarshal(files[archive.ManifestName], &got))
	require.Equal(t, m.Counts, got.Counts)
	require.Equal(t, map[string]int64{"apps": 1, "credit_entries": 2}, got.Counts)
	require.Len(t, got.Files, 2)
	for _, e := range got.Files {
		sum := sha256.Sum256(files[e.Path])
		require.Equal(t, hex.EncodeToString(sum[:]), e.SHA256, e.Path)
		require.EqualValues(t, len(files[e.Path]), e.Size)
	}
}
