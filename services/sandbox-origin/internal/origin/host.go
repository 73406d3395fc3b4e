package origin

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/google/uuid"
)

// Domain is the sandbox domain: every app is served at https://<label>.<host>[:<port>].
type Domain struct {
	host string // lower case, no trailing dot
	port string // "" when the default HTTPS port is used
}

// ParseDomain reads FORGE_SANDBOX_DOMAIN: a DNS name of at least two labels with an optional
// port ("apps.localhost:8090", "forgeusercontent.app").
func ParseDomain(s string) (Domain, error) {
	host, port := s, ""
	if i := strings.LastIndexByte(s, ':'); i >= 0 {
		host, port = s[:i], s[i+1:]
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != port {
			return Domain{}, fmt.Errorf("sandbox domain %q: bad port", s)
		}
		if n == 443 {
			port = ""
		}
	}
	labels := strings.Split(host, ".")
	if len(labels) < 2 {
		return Domain{}, fmt.Errorf("sandbox domain %q: want at least two labels", s)
	}
	for _, l := range labels {
		if !dnsLabel(l) {
			return Domain{}, fmt.Errorf("sandbox domain %q: %q is not a lower-case DNS label", s, l)
		}
	}
	return Domain{host: host, port: port}, nil
}

// dnsLabel accepts a lower-case LDH label (punycode "xn--" labels included, as a domain
// configured by an operator may be one).
func dnsLabel(l string) bool {
	if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// Label is the DNS label of an app's origin: the 32 lower-case hex digits of its ID.
func Label(app uuid.UUID) string { return hex.EncodeToString(app[:]) }

// Host is the Host header of an app's origin.
func (d Domain) Host(app uuid.UUID) string {
	h := Label(app) + "." + d.host
	if d.port != "" {
		h += ":" + d.port
	}
	return h
}

// Origin is the serialized origin of an app ("https://<label>.<domain>[:port]").
func (d Domain) Origin(app uuid.UUID) string { return "https://" + d.Host(app) }

// ErrUnknownHost is returned for every Host that does not name exactly one app.
var ErrUnknownHost = errors.New("host names no app")

// App returns the app a Host header names. Only the exact canonical form is accepted: one
// label of 32 lower-case hex digits, then the sandbox domain as configured, then the
// configured port (none when it is 443). Upper case, a trailing dot, another or a missing
// port, extra labels, IDN or punycode, IP literals and the bare domain are refused: browsers
// treat such variants as other origins (a trailing dot splits the cookie jar), so accepting
// them would give one app several origins.
func (d Domain) App(host string) (uuid.UUID, error) {
	name, port := host, ""
	if i := strings.IndexByte(host, ':'); i >= 0 {
		name, port = host[:i], host[i+1:]
		if port == "" {
			return uuid.Nil, ErrUnknownHost
		}
	}
	if port != d.port {
		return uuid.Nil, ErrUnknownHost
	}
	label, rest, ok := strings.Cut(name, ".")
	if !ok || rest != d.host || len(label) != 32 {
		return uuid.Nil, ErrUnknownHost
	}
	var id uuid.UUID
	for i := 0; i < 32; i++ {
		c := label[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return uuid.Nil, ErrUnknownHost
		}
	}
	if _, err := hex.Decode(id[:], []byte(label)); err != nil {
		return uuid.Nil, ErrUnknownHost
	}
	return id, nil
}
