package edge

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	tenantv1 "github.com/forgeapps/backbone/pkg/gen/forge/tenant/v1"
	"github.com/forgeapps/backbone/pkg/owner"

	"github.com/forgeapps/backbone/services/gateway/internal/auth"
)

// signInFields are the fields of the sign-in body. Like every JSON route of the suite, it
// accepts the proto field name and its lowerCamelCase JSON name, and refuses anything else.
var signInFields = map[string]string{
	"id_token": "idToken", "idToken": "idToken",
	"plan":        "plan",
	"home_region": "homeRegion", "homeRegion": "homeRegion",
}

var plans = map[string]tenantv1.Plan{
	"free": tenantv1.Plan_PLAN_FREE, "pro": tenantv1.Plan_PLAN_PRO, "studio": tenantv1.Plan_PLAN_STUDIO,
	"PLAN_FREE": tenantv1.Plan_PLAN_FREE, "PLAN_PRO": tenantv1.Plan_PLAN_PRO, "PLAN_STUDIO": tenantv1.Plan_PLAN_STUDIO,
}

// signIn handles POST /v1/auth/signin: {"id_token": "...", "plan": "pro", "home_region":
// "us-east"}. The ID token is verified like any other (issuer, audience, keys, expiry), the
// tenant service exchanges the identity for a session (creating the tenant on a first
// sign-in), and the session token is returned in the body and set as the console cookie.
func (e *Edge) signIn(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		methodNotAllowed(w, http.MethodPost)
		return
	}
	// A browser signing in must be the console: a foreign page posting its own ID token
	// would otherwise sign the visitor into the attacker's account (login CSRF).
	if r.Header.Get("Origin") != "" && !e.fromConsole(r) {
		writeStatus(w, http.StatusForbidden, codes.PermissionDenied, "sign-in from this origin is not allowed")
		return
	}
	if !isJSON(r) {
		writeStatus(w, http.StatusUnsupportedMediaType, codes.InvalidArgument, "Content-Type must be application/json")
		return
	}
	limit := e.cfg.SignInBodyLimit
	if !limitBody(r, limit) {
		tooLarge(w, limit)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			tooLarge(w, limit)
			return
		}
		writeStatus(w, http.StatusBadRequest, codes.InvalidArgument, "cannot read the request body")
		return
	}
	in, err := parseSignIn(body)
	if err != nil {
		writeStatus(w, http.StatusBadRequest, codes.InvalidArgument, err.Error())
		return
	}
	in.UserAgent = r.UserAgent()
	resp, err := e.auth.SignIn(r.Context(), in)
	if err != nil {
		writeError(w, err)
		return
	}
	if id, err := owner.Parse(resp.GetAccount().GetOwnerId()); err == nil {
		infoFrom(r.Context()).owner = id
	}
	setSessionCookie(w, resp.GetSessionToken(), resp.GetSession().GetExpireTime().AsTime(), e.cfg.Now())
	writeProto(w, http.StatusOK, resp)
}

func parseSignIn(body []byte) (auth.SignInRequest, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil || raw == nil {
		return auth.SignInRequest{}, errors.New(`the body must be a JSON object like {"id_token": "<ID token>", "plan": "free", "home_region": "us-east"}`)
	}
	got := map[string]string{}
	for k, v := range raw {
		field, ok := signInFields[k]
		if !ok {
			return auth.SignInRequest{}, errors.New("unknown field " + jsonQuote(k) + ": expected id_token, plan and home_region")
		}
		if _, dup := got[field]; dup {
			return auth.SignInRequest{}, errors.New("field " + jsonQuote(k) + " given twice")
		}
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return auth.SignInRequest{}, errors.New("field " + jsonQuote(k) + " must be a string")
		}
		got[field] = s
	}
	in := auth.SignInRequest{IDToken: got["idToken"], HomeRegion: got["homeRegion"]}
	if in.IDToken == "" {
		return auth.SignInRequest{}, errors.New("id_token is required: the ID token from your identity provider")
	}
	if p := got["plan"]; p != "" {
		plan, ok := plans[p]
		if !ok {
			return auth.SignInRequest{}, errors.New("plan must be free, pro or studio")
		}
		in.Plan = plan
	}
	return in, nil
}

func jsonQuote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// signOut handles POST /v1/auth/signout: the session the request was made with is revoked,
// dropped from this edge's cache at once, and the cookie cleared.
func (e *Edge) signOut(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		methodNotAllowed(w, http.MethodPost)
		return
	}
	cred, has, err := auth.FromRequest(r)
	switch {
	case err != nil:
		e.refuseCredential(w, cred, status.Error(codes.Unauthenticated, "invalid credential"))
		return
	case !has:
		unauthenticated(w, "authentication required: sign-out ends the session the request is made with")
		return
	}
	info := infoFrom(r.Context())
	info.authKind = authKindOf(cred)
	if cred.FromCookie && !e.fromConsole(r) {
		writeStatus(w, http.StatusForbidden, codes.PermissionDenied,
			"a request authenticated by the session cookie that changes state must come from the console origin")
		return
	}
	p, err := e.auth.Authenticate(r.Context(), cred)
	if err != nil {
		e.refuseCredential(w, cred, err)
		return
	}
	info.owner = p.Owner.ID
	if p.SessionID == "" {
		writeStatus(w, http.StatusBadRequest, codes.FailedPrecondition,
			"sign-out ends a session, and this request carries an ID token, not a session token")
		return
	}
	ctx := owner.WithSessionID(owner.NewContext(r.Context(), p.Owner), p.SessionID)
	if _, err := e.sessions.RevokeSession(ctx, &tenantv1.RevokeSessionRequest{SessionId: p.SessionID}); err != nil {
		writeError(w, err)
		return
	}
	// The tenant connection drops revoked sessions itself (WatchRevocations); dropping here as
	// well keeps sign-out correct whichever client it was given.
	e.auth.Cache().DropSession(p.SessionID)
	clearSessionCookie(w)
	writeProto(w, http.StatusOK, &emptypb.Empty{})
}

func setSessionCookie(w http.ResponseWriter, token string, expires, now time.Time) {
	http.SetCookie(w, &http.Cookie{
		Name:     auth.CookieName,
		Value:    token,
		Path:     "/",
		Expires:  expires,
		MaxAge:   max(int(expires.Sub(now).Seconds()), 1),
		Secure:   true,
		HttpOnly: true,
		SameSite: http.SameSiteStrictMode,
	})
}

func clearSessionCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{
		Name:     auth.CookieName,
		Value:    "",
		Path:     "/",
		MaxAge:   -1,
		Secure:   true,
		HttpOnly: true,
		SameSite: http.SameSiteStrictMode,
	})
}

func isJSON(r *http.Request) bool {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return err == nil && mt == "application/json"
}
