package proxy

import "bytes"

// minHeldAtEnd is the longest prefix of the value an answer may end with and still be sent:
// holding back and then refusing a longer one keeps even most of a value from leaking.
const minHeldAtEnd = 8

// scanner streams an upstream answer while guaranteeing that no byte of a value is written:
// it holds back the longest tail of what it has seen that could still grow into one of the
// patterns, and reports a pattern found in full. Every byte it releases cannot start a match
// (a match starting there would make a longer held tail), so a value is caught before any of
// it is sent, however the answer is split into reads.
type scanner struct {
	pats [][]byte
	held []byte
}

// feed adds a chunk and returns the bytes safe to send, or found when a pattern is complete.
func (s *scanner) feed(chunk []byte) (emit []byte, found bool) {
	if len(s.pats) == 0 {
		return chunk, false
	}
	buf := append(s.held, chunk...)
	if containsAny(buf, s.pats) {
		return nil, true
	}
	k := 0
	for _, p := range s.pats {
		if n := suffixPrefix(buf, p); n > k {
			k = n
		}
	}
	emit = buf[:len(buf)-k]
	s.held = append([]byte(nil), buf[len(buf)-k:]...)
	return emit, false
}

// end returns what is still held once the answer is complete, unless it is a long prefix of
// a value (then ok is false).
func (s *scanner) end() (rest []byte, ok bool) {
	if len(s.held) >= minHeldAtEnd {
		return nil, false
	}
	return s.held, true
}

// suffixPrefix is the length of the longest suffix of b that is a proper prefix of p.
func suffixPrefix(b, p []byte) int {
	from := len(b) - (len(p) - 1)
	if from < 0 {
		from = 0
	}
	for i := from; i < len(b); i++ {
		if b[i] == p[0] && bytes.HasPrefix(p, b[i:]) {
			return len(b) - i
		}
	}
	return 0
}
