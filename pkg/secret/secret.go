// Package secret is the type for values that must never be printed: API keys of apps, session
// tokens, key material. Every way Go has of turning a value into text (fmt verbs, JSON, text
// marshalling, log/slog) yields "REDACTED"; the value is reachable only through Reveal, which
// makes each place that handles the plaintext easy to find in review.
package secret

import (
	"crypto/subtle"
	"fmt"
	"log/slog"
)

// Redacted is what every printed form of a secret shows.
const Redacted = "REDACTED"

// Value holds a secret string. The zero value is the empty secret.
type Value struct {
	// p points at the plaintext. fmt cannot call Format on a Value stored in an unexported
	// field of another struct and prints such fields raw; through a pointer, the raw form is
	// an address, never the text.
	p *string
}

// New wraps s.
func New(s string) Value { return Value{p: &s} }

// Reveal returns the plaintext. Call it only where the value leaves for its one legitimate
// use (the upstream request, the cipher), never to build a message.
func (s Value) Reveal() string {
	if s.p == nil {
		return ""
	}
	return *s.p
}

// IsZero reports whether the secret is empty.
func (s Value) IsZero() bool { return s.Reveal() == "" }

// Len is the length of the secret, safe to log or validate against.
func (s Value) Len() int { return len(s.Reveal()) }

// Equal compares two secrets in constant time.
func (s Value) Equal(o Value) bool {
	return subtle.ConstantTimeCompare([]byte(s.Reveal()), []byte(o.Reveal())) == 1
}

// String implements fmt.Stringer.
func (s Value) String() string { return Redacted }

// GoString implements fmt.GoStringer (%#v).
func (s Value) GoString() string { return "secret.Value(" + Redacted + ")" }

// Format implements fmt.Formatter so every verb (%s %v %q %x %d ...) prints REDACTED.
func (s Value) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(Redacted)) }

// LogValue implements slog.LogValuer.
func (s Value) LogValue() slog.Value { return slog.StringValue(Redacted) }

// MarshalJSON implements json.Marshaler.
func (s Value) MarshalJSON() ([]byte, error) { return []byte(`"` + Redacted + `"`), nil }

// MarshalText implements encoding.TextMarshaler.
func (s Value) MarshalText() ([]byte, error) { return []byte(Redacted), nil }
