package origin_test

import (
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/forgeapps/backbone/pkg/owner"
	"github.com/forgeapps/backbone/pkg/secret"

	"github.com/forgeapps/backbone/services/sandbox-origin/internal/origin"
)

func TestDomainApp(t *testing.T) {
	app := uuid.MustParse("0b9f1c2e-7a44-4d8e-9c1a-5e2f3a4b6c7d")
	label := "0b9f1c2e7a444d8e9c1a5e2f3a4b6c7d"
	dev, err := origin.ParseDomain("apps.localhost:8090")
	require.NoError(t, err)
	prod, err := origin.ParseDomain("forgeusercontent.app")
	require.NoError(t, err)
	require.Equal(t, label, origin.Label(app))
	require.Equal(t, "https://"+label+".apps.localhost:8090", dev.Origin(app))
	require.Equal(t, "https://"+label+".forgeusercontent.app", prod.Origin(app))

	cases := []struct {
		name   string
		domain origin.Domain
		host   string
		ok     bool
	}{
		{"dev canonical", dev, label + ".apps.localhost:8090", true},
		{"prod canonical", prod, label + ".forgeusercontent.app", true},
		{"dev without port", dev, label + ".apps.localhost", false},
		{"dev other port", dev, label + ".apps.localhost:8091", false},
		{"dev port with leading zero", dev, label + ".apps.localhost:08090", false},
		{"dev empty port", dev, label + ".apps.localhost:", false},
		{"prod explicit 443", prod, label + ".forgeusercontent.app:443", false},
		{"prod with a port", prod, label + ".forgeusercontent.app:8443", false},
		{"upper-case label", dev, strings.ToUpper(label) + ".apps.localhost:8090", false},
		{"upper-case domain", dev, label + ".APPS.localhost:8090", false},
		{"trailing dot", prod, label + ".forgeusercontent.app.", false},
		{"trailing dot with port", dev, label + ".apps.localhost.:8090", false},
		{"bare domain", dev, "apps.localhost:8090", false},
		{"bare domain prod", prod, "forgeusercontent.app", false},
		{"extra label in front", dev, "www." + label + ".apps.localhost:8090", false},
		{"extra label between", dev, label + ".x.apps.localhost:8090", false},
		{"other domain", dev, label + ".localhost:8090", false},
		{"suffix trick", prod, label + ".forgeusercontent.app.evil.com", false},
		{"prefix trick", prod, label + ".evilforgeusercontent.app", false},
		{"short label", dev, label[:31] + ".apps.localhost:8090", false},
		{"long label", dev, label + "0.apps.localhost:8090", false},
		{"uuid with dashes", dev, app.String() + ".apps.localhost:8090", false},
		{"non-hex label", dev, "0b9f1c2e7a444d8e9c1a5e2f3a4b6c7g.apps.localhost:8090", false},
		{"punycode label", dev, "xn--0b9f1c2e7a444d8e9c1a5e2f3a4b.apps.localhost:8090", false},
		{"unicode label", dev, "0b9f1c2e7a444d8e9c1a5e2f3a4b6cé.apps.localhost:8090", false},
		{"fullwidth digit", dev, "０b9f1c2e7a444d8e9c1a5e2f3a4b6c7.apps.localhost:8090", false},
		{"empty", dev, "", false},
		{"ip literal", dev, "127.0.0.1:8090", false},
		{"ipv6 literal", dev, "[::1]:8090", false},
		{"user info", dev, "user@" + label + ".apps.localhost:8090", false},
		{"percent-encoded", dev, "%30b9f1c2e7a444d8e9c1a5e2f3a4b6c7d.apps.localhost:8090", false},
		{"space", dev, " " + label + ".apps.localhost:8090", false},
		{"double dot", dev, label + "..apps.localhost:8090", false},
		{"two ports", dev, label + ".apps.localhost:8090:8090", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.domain.App(tc.host)
			if !tc.ok {
				require.ErrorIs(t, err, origin.ErrUnknownHost)
				require.Equal(t, uuid.Nil, got)
				return
			}
			require.NoError(t, err)
			require.Equal(t, app, got)
		})
	}
}

func TestParseDomain(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"apps.localhost:8090", true},
		{"forgeusercontent.app", true},
		{"localhost", false},
		{"Apps.localhost", false},
		{"apps.localhost.", false},
		{"apps.localhost:0", false},
		{"apps.localhost:99999", false},
		{"apps..localhost", false},
		{"*.apps.localhost", false},
	} {
		t.Run(tc.in, func(t *testing.T) {
			_, err := origin.ParseDomain(tc.in)
			require.Equal(t, tc.ok, err == nil, "%v", err)
		})
	}
}

func TestTicket(t *testing.T) {
	tk, hash, err := origin.NewTicket()
	require.NoError(t, err)
	require.Len(t, tk.Reveal(), 43, "256 bits in unpadded base64url")
	got, err := origin.HashTicket(tk.Reveal())
	require.NoError(t, err)
	require.Equal(t, hash, got)
	tk2, hash2, err := origin.NewTicket()
	require.NoError(t, err)
	require.NotEqual(t, tk.Reveal(), tk2.Reveal())
	require.NotEqual(t, hash, hash2)
	for _, bad := range []string{"", "short", tk.Reveal() + "A", strings.Repeat("*", 43), tk.Reveal()[:42] + "="} {
		_, err := origin.HashTicket(bad)
		require.ErrorIs(t, err, origin.ErrBadTicket, bad)
	}
}

func TestGrant(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { return now }
	key := secret.New(strings.Repeat("k", 32))
	s, err := origin.NewSealer(key, clock)
	require.NoError(t, err)
	other, err := origin.NewSealer(secret.New(strings.Repeat("o", 32)), clock)
	require.NoError(t, err)
	appA, appB := uuid.New(), uuid.New()
	viewer := owner.New()

	name, view, err := s.Seal(origin.Grant{Kind: origin.GrantView, App: appA, Viewer: viewer, Expiry: now.Add(time.Minute)})
	require.NoError(t, err)
	require.Equal(t, origin.ViewCookie, name)
	g, err := s.Open(origin.GrantView, appA, view)
	require.NoError(t, err)
	require.Equal(t, viewer, g.Viewer)

	name, share, err := s.Seal(origin.Grant{Kind: origin.GrantShare, App: appA, Token: secret.New("tok-123"), Expiry: now.Add(time.Minute)})
	require.NoError(t, err)
	require.Equal(t, origin.ShareCookie, name)
	require.NotContains(t, share, "tok-123")
	g, err = s.Open(origin.GrantShare, appA, share)
	require.NoError(t, err)
	require.Equal(t, "tok-123", g.Token.Reveal())

	_, expired, err := s.Seal(origin.Grant{Kind: origin.GrantView, App: appA, Viewer: viewer, Expiry: now})
	require.NoError(t, err)
	flipped := []byte(view)
	flipped[len(flipped)/2] ^= 1

	for _, tc := range []struct {
		name  string
		open  func() error
		valid bool
	}{
		{"view at its app", func() error { _, err := s.Open(origin.GrantView, appA, view); return err }, true},
		{"view at another app", func() error { _, err := s.Open(origin.GrantView, appB, view); return err }, false},
		{"share at another app", func() error { _, err := s.Open(origin.GrantShare, appB, share); return err }, false},
		{"share presented as view", func() error { _, err := s.Open(origin.GrantView, appA, share); return err }, false},
		{"view presented as share", func() error { _, err := s.Open(origin.GrantShare, appA, view); return err }, false},
		{"expired", func() error { _, err := s.Open(origin.GrantView, appA, expired); return err }, false},
		{"tampered", func() error { _, err := s.Open(origin.GrantView, appA, string(flipped)); return err }, false},
		{"other key", func() error { _, err := other.Open(origin.GrantView, appA, view); return err }, false},
		{"garbage", func() error { _, err := s.Open(origin.GrantView, appA, "not-a-grant"); return err }, false},
		{"empty", func() error { _, err := s.Open(origin.GrantView, appA, ""); return err }, false},
		{"oversize", func() error { _, err := s.Open(origin.GrantView, appA, strings.Repeat("A", 5000)); return err }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.open()
			if tc.valid {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, origin.ErrBadGrant)
			}
		})
	}
	_, err = origin.NewSealer(secret.New("short"), clock)
	require.Error(t, err)
}

func TestMayOpen(t *testing.T) {
	none, viewer, share := origin.Credentials{}, origin.Credentials{Viewer: true}, origin.Credentials{Share: true}
	for _, tc := range []struct {
		name string
		v    origin.Visibility
		c    origin.Credentials
		want bool
	}{
		{"public anonymous", origin.VisibilityPublic, none, true},
		{"link anonymous", origin.VisibilityLink, none, false},
		{"link share", origin.VisibilityLink, share, true},
		{"link viewer", origin.VisibilityLink, viewer, true},
		{"private anonymous", origin.VisibilityPrivate, none, false},
		{"private share", origin.VisibilityPrivate, share, false},
		{"private viewer", origin.VisibilityPrivate, viewer, true},
		{"unknown viewer", origin.VisibilityUnknown, viewer, false},
	} {
		t.Run(tc.name, func(t *testing.T) { require.Equal(t, tc.want, origin.MayOpen(tc.v, tc.c)) })
	}
}

func TestContentType(t *testing.T) {
	for p, want := range map[string]string{
		"index.html":       "text/html; charset=utf-8",
		"assets/app.JS":    "text/javascript; charset=utf-8",
		"style.css":        "text/css; charset=utf-8",
		"logo.svg":         "image/svg+xml",
		"data.json":        "application/json",
		"noext":            "application/octet-stream",
		"evil.html.exe":    "application/octet-stream",
		"a.php":            "application/octet-stream",
		"font.woff2":       "font/woff2",
		"module.wasm":      "application/wasm",
		"dir.html/file.sh": "application/octet-stream",
	} {
		require.Equal(t, want, origin.ContentType(p), p)
	}
}
