// Package keyscan finds API keys pasted into prompt text: the well-known formats of the
// providers people build apps against, and long high-entropy tokens that look like keys of
// unknown origin. It exists so that a key typed into a conversation is stored as a secret of
// the app (where only the running app can use it, through the secret proxy) and never in the
// prompt store, a log or a response.
package keyscan

import (
	"math"
	"regexp"
	"sort"
	"strings"
)

// UnreachableUpstream is the upstream host recorded for a key of unknown origin. The .invalid
// top-level domain is reserved (RFC 2606) and never resolves, so the secret proxy can never
// send such a key anywhere until the owner sets the real upstream host of the secret.
const UnreachableUpstream = "unset-upstream.invalid"

// Provider describes where keys of one format are used.
type Provider struct {
	// Name is used in the secret's name (OPENAI, ANTHROPIC, ...; UNKNOWN for high-entropy
	// tokens).
	Name string
	// Upstream is the only host the secret proxy may send the key to.
	Upstream string
	// Header and Prefix say how the key goes into the outbound request ("Authorization",
	// "Bearer "); Query names a query parameter instead.
	Header, Prefix, Query string
}

// Known reports whether the provider is a recognised format (not a high-entropy guess).
func (p Provider) Known() bool { return p.Upstream != UnreachableUpstream }

// Finding is one key in a text: text[Start:End].
type Finding struct {
	Start, End int
	Provider   Provider
}

type pattern struct {
	re       *regexp.Regexp
	provider Provider
}

func bearer(name, host string) Provider {
	return Provider{Name: name, Upstream: host, Header: "Authorization", Prefix: "Bearer "}
}

func unknown(name string) Provider {
	return Provider{Name: name, Upstream: UnreachableUpstream, Header: "Authorization", Prefix: "Bearer "}
}

// Scanner holds the compiled patterns. Build one with New and share it: it is read-only.
type Scanner struct {
	patterns []pattern
	token    *regexp.Regexp
}

// New compiles the patterns.
func New() *Scanner {
	// Order matters where prefixes overlap: the first pattern that matches a span wins, so
	// the Anthropic format (sk-ant-) comes before OpenAI's (sk-).
	p := func(expr string, pr Provider) pattern { return pattern{re: regexp.MustCompile(expr), provider: pr} }
	return &Scanner{
		patterns: []pattern{
			p(`-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----`, unknown("PRIVATE_KEY")),
			p(`\bsk-ant-[A-Za-z0-9_-]{20,}`, Provider{Name: "ANTHROPIC", Upstream: "api.anthropic.com", Header: "x-api-key"}),
			p(`\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}`, bearer("OPENAI", "api.openai.com")),
			p(`\b(?:AKIA|ASIA)[0-9A-Z]{16}\b`, unknown("AWS")),
			p(`\bgithub_pat_[A-Za-z0-9_]{22,255}`, bearer("GITHUB", "api.github.com")),
			p(`\bgh[pousr]_[A-Za-z0-9]{36,255}`, bearer("GITHUB", "api.github.com")),
			p(`\bxox[abposr]-[A-Za-z0-9-]{10,}`, bearer("SLACK", "slack.com")),
			p(`\bAIza[0-9A-Za-z_-]{35}`, Provider{Name: "GOOGLE", Upstream: "generativelanguage.googleapis.com", Header: "x-goog-api-key"}),
			p(`\b(?:sk|rk)_(?:live|test)_[0-9A-Za-z]{16,}`, bearer("STRIPE", "api.stripe.com")),
			p(`\bhf_[A-Za-z0-9]{30,}`, bearer("HUGGINGFACE", "api-inference.huggingface.co")),
			p(`\bgsk_[A-Za-z0-9]{40,}`, bearer("GROQ", "api.groq.com")),
			p(`\bxai-[A-Za-z0-9]{40,}`, bearer("XAI", "api.x.ai")),
			p(`\br8_[A-Za-z0-9]{30,}`, bearer("REPLICATE", "api.replicate.com")),
			p(`\bSG\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}`, bearer("SENDGRID", "api.sendgrid.com")),
			p(`\bglpat-[A-Za-z0-9_-]{20,}`, Provider{Name: "GITLAB", Upstream: "gitlab.com", Header: "PRIVATE-TOKEN"}),
			p(`\bnpm_[A-Za-z0-9]{36}\b`, bearer("NPM", "registry.npmjs.org")),
		},
		// Candidate tokens for the entropy test: the alphabets of base64, base64url and hex
		// plus the separators keys use. Anything else (spaces, quotes, colons, braces) ends one.
		token: regexp.MustCompile(`[A-Za-z0-9_\-+/=.]{24,}`),
	}
}

// minEntropyBits is the least Shannon entropy per character of a high-entropy token. Random
// base64 of 24+ characters scores about 4.3 to 5; English identifiers, paths and words stay
// below 4; hex (16 symbols) can never exceed 4, so commit hashes and UUIDs are not keys.
const minEntropyBits = 4.2

// Scan returns the keys found in text, in order, without overlaps.
func (s *Scanner) Scan(text string) []Finding {
	var found []Finding
	taken := func(start, end int) bool {
		for _, f := range found {
			if start < f.End && f.Start < end {
				return true
			}
		}
		return false
	}
	for _, p := range s.patterns {
		for _, m := range p.re.FindAllStringIndex(text, -1) {
			if !taken(m[0], m[1]) {
				found = append(found, Finding{Start: m[0], End: m[1], Provider: p.provider})
			}
		}
	}
	for _, m := range s.token.FindAllStringIndex(text, -1) {
		tok := strings.Trim(text[m[0]:m[1]], ".=")
		if taken(m[0], m[1]) || !highEntropy(tok) {
			continue
		}
		start := m[0] + strings.Index(text[m[0]:m[1]], tok)
		found = append(found, Finding{Start: start, End: start + len(tok), Provider: unknown("SECRET")})
	}
	sort.Slice(found, func(i, j int) bool { return found[i].Start < found[j].Start })
	return found
}

// highEntropy reports whether tok looks like a random key: long enough, mixing upper case,
// lower case and digits, and with enough entropy per character.
func highEntropy(tok string) bool {
	if len(tok) < 24 {
		return false
	}
	var upper, lower, digit bool
	counts := map[rune]int{}
	for _, r := range tok {
		switch {
		case r >= 'A' && r <= 'Z':
			upper = true
		case r >= 'a' && r <= 'z':
			lower = true
		case r >= '0' && r <= '9':
			digit = true
		}
		counts[r]++
	}
	if !upper || !lower || !digit {
		return false
	}
	n := float64(len(tok))
	bits := 0.0
	for _, c := range counts {
		p := float64(c) / n
		bits -= p * math.Log2(p)
	}
	return bits >= minEntropyBits
}

// Replace returns text with each finding replaced by repl(i) (findings as returned by Scan).
func Replace(text string, findings []Finding, repl func(i int) string) string {
	var b strings.Builder
	last := 0
	for i, f := range findings {
		b.WriteString(text[last:f.Start])
		b.WriteString(repl(i))
		last = f.End
	}
	b.WriteString(text[last:])
	return b.String()
}
