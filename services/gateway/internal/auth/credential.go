// Package auth authenticates people at the edge, and only here: it reads the credential a
// request carries (a session token as a bearer token or in the console's cookie, or an OIDC
// ID token as a bearer token), verifies ID tokens against the configured issuer with
// go-oidc, asks the tenant service who the credential belongs to, and keeps the answers for
// a few seconds in a cache that revocations empty at once.
//
// The result is a Principal: the verified owner (and session) that the edge puts in the
// request context, from which the client interceptors set the reserved gRPC metadata. Nothing
// a client sends is ever taken as the owner.
package auth

import (
	"errors"
	"net/http"
	"regexp"
	"strings"

	"github.com/forgeapps/backbone/pkg/secret"
)

// CookieName is the console's session cookie. The __Host- prefix makes browsers accept it
// only when it is Secure, has Path=/ and no Domain: a sibling subdomain (an app origin) can
// neither set nor overwrite it.
const CookieName = "__Host-forge_session"

// Kind says what a credential is.
type Kind int

// The kinds of credential.
const (
	// KindSession is a session token issued by the tenant service at sign-in.
	KindSession Kind = iota + 1
	// KindIDToken is an OIDC ID token from the configured issuer.
	KindIDToken
)

// Credential is what a request presented. Value never prints.
type Credential struct {
	Kind  Kind
	Value secret.Value
	// FromCookie is set for the console's session cookie: such a request is sent by the
	// browser on its own, so a state-changing one must prove it comes from the console.
	FromCookie bool
}

// ErrMalformed is a credential that cannot be one of ours, whatever its value.
var ErrMalformed = errors.New("malformed credential")

// sessionTokenRE is the shape of a session token ("fgs_" and 43 base64url characters, 256
// bits): anything else is refused without asking the tenant service.
var sessionTokenRE = regexp.MustCompile(`^fgs_[A-Za-z0-9_-]{43}$`)

// jwtRE is the compact serialization shape of a signed JWT (three base64url parts). "none"
// tokens have an empty third part and pass this shape; the verifier refuses them.
var jwtRE = regexp.MustCompile(`^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$`)

// maxIDTokenLen bounds what is parsed as a JWT.
const maxIDTokenLen = 16 << 10

// FromRequest returns the credential of r. ok is false when r carries none. An
// Authorization header wins over the cookie: a request that sets it was built by a script,
// not sent by the browser on its own.
func FromRequest(r *http.Request) (cred Credential, ok bool, err error) {
	if values := r.Header.Values("Authorization"); len(values) > 0 {
		if len(values) > 1 {
			return Credential{}, true, ErrMalformed
		}
		scheme, token, found := strings.Cut(values[0], " ")
		if !found || !strings.EqualFold(scheme, "Bearer") {
			return Credential{}, true, ErrMalformed
		}
		token = strings.TrimSpace(token)
		switch {
		case sessionTokenRE.MatchString(token):
			return Credential{Kind: KindSession, Value: secret.New(token)}, true, nil
		case len(token) <= maxIDTokenLen && jwtRE.MatchString(token):
			return Credential{Kind: KindIDToken, Value: secret.New(token)}, true, nil
		}
		return Credential{}, true, ErrMalformed
	}
	var found []string
	for _, c := range r.Cookies() {
		if c.Name == CookieName {
			found = append(found, c.Value)
		}
	}
	switch {
	case len(found) == 0:
		return Credential{}, false, nil
	case len(found) > 1 || !sessionTokenRE.MatchString(found[0]):
		return Credential{FromCookie: true}, true, ErrMalformed
	}
	return Credential{Kind: KindSession, Value: secret.New(found[0]), FromCookie: true}, true, nil
}

// IsSessionToken reports whether s has the shape of a session token.
func IsSessionToken(s string) bool { return sessionTokenRE.MatchString(s) }
