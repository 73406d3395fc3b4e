package auth_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/forgeapps/backbone/services/gateway/internal/auth"
)

func TestFromRequest(t *testing.T) {
	session := "fgs_" + strings.Repeat("A", 43)
	jwt := "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"
	tests := []struct {
		name       string
		auth       []string
		cookies    []string
		wantOK     bool
		wantErr    bool
		wantKind   auth.Kind
		wantCookie bool
	}{
		{name: "nothing"},
		{name: "bearer session", auth: []string{"Bearer " + session}, wantOK: true, wantKind: auth.KindSession},
		{name: "bearer scheme is case-insensitive", auth: []string{"bearer " + session}, wantOK: true, wantKind: auth.KindSession},
		{name: "bearer ID token", auth: []string{"Bearer " + jwt}, wantOK: true, wantKind: auth.KindIDToken},
		{name: "unsigned JWT shape is still an ID token (the verifier refuses it)", auth: []string{"Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."}, wantOK: true, wantKind: auth.KindIDToken},
		{name: "basic", auth: []string{"Basic eDp5"}, wantOK: true, wantErr: true},
		{name: "no scheme", auth: []string{session}, wantOK: true, wantErr: true},
		{name: "short session token", auth: []string{"Bearer fgs_abc"}, wantOK: true, wantErr: true},
		{name: "two Authorization headers", auth: []string{"Bearer " + session, "Bearer " + session}, wantOK: true, wantErr: true},
		{name: "cookie", cookies: []string{session}, wantOK: true, wantKind: auth.KindSession, wantCookie: true},
		{name: "two cookies", cookies: []string{session, session}, wantOK: true, wantErr: true},
		{name: "cookie with an ID token", cookies: []string{jwt}, wantOK: true, wantErr: true},
		{name: "header wins over cookie", auth: []string{"Bearer " + session}, cookies: []string{"junk"}, wantOK: true, wantKind: auth.KindSession},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := http.NewRequest(http.MethodGet, "https://edge.test/v1/account", nil)
			require.NoError(t, err)
			for _, a := range tt.auth {
				r.Header.Add("Authorization", a)
			}
			for _, c := range tt.cookies {
				r.AddCookie(&http.Cookie{Name: auth.CookieName, Value: c})
			}
			cred, ok, err := auth.FromRequest(r)
			require.Equal(t, tt.wantOK, ok)
			if tt.wantErr {
				require.ErrorIs(t, err, auth.ErrMalformed)
				return
			}
			require.NoError(t, err)
			if !tt.wantOK {
				return
			}
			require.Equal(t, tt.wantKind, cred.Kind)
			require.Equal(t, tt.wantCookie, cred.FromCookie)
			require.NotContains(t, cred.Value.String(), "fgs_", "credentials never print")
		})
	}
}
