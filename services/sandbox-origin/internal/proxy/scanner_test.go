package proxy

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/forgeapps/backbone/pkg/secret"
)

// TestScannerNeverEmitsTheValue splits an answer holding the value at every possible pair of
// cut points and checks that the scanner reports it before writing any of its bytes.
func TestScannerNeverEmitsTheValue(t *testing.T) {
	value := "sk-live-abcabcabd-0123456789"
	body := []byte("prefix sk-live-abcab sk-live-abcabcabcabd " + value + " suffix")
	at := bytes.Index(body, []byte(value))
	for i := 0; i <= len(body); i++ {
		for j := i; j <= len(body); j++ {
			s := &scanner{pats: patterns(secret.New(value))}
			var out []byte
			found := false
			for _, chunk := range [][]byte{body[:i], body[i:j], body[j:]} {
				emit, f := s.feed(chunk)
				if f {
					found = true
					break
				}
				out = append(out, emit...)
			}
			require.True(t, found, "cuts %d %d", i, j)
			require.LessOrEqual(t, len(out), at, "cuts %d %d: bytes of the value were written", i, j)
		}
	}
}

func TestScannerPassesOtherAnswers(t *testing.T) {
	value := "sk-live-0123456789"
	body := []byte("sk-live- is how keys start; sk-live-0123 is a prefix, and so is the end sk-li")
	s := &scanner{pats: patterns(secret.New(value))}
	var out []byte
	for i := 0; i < len(body); i += 7 {
		emit, found := s.feed(body[i:min(i+7, len(body))])
		require.False(t, found)
		out = append(out, emit...)
	}
	rest, ok := s.end()
	require.True(t, ok)
	require.Equal(t, string(body), string(append(out, rest...)))

	s = &scanner{pats: patterns(secret.New(value))}
	emit, found := s.feed([]byte("the answer ends with sk-live-01234567"))
	require.False(t, found)
	require.Equal(t, "the answer ends with ", string(emit))
	_, ok = s.end()
	require.False(t, ok, "a long prefix of the value at the end is refused")
}
