package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	tenantv1 "github.com/forgeapps/backbone/pkg/gen/forge/tenant/v1"
	"github.com/forgeapps/backbone/pkg/owner"
)

// Principal is the verified person behind a request.
type Principal struct {
	Owner owner.Owner
	// SessionID is set when the credential was a session token.
	SessionID string
	Status    tenantv1.AccountStatus
}

// PendingDeletion reports whether the tenant asked to delete its account: such a principal
// may only cancel the deletion, read its receipt and sign out.
func (p Principal) PendingDeletion() bool {
	return p.Status == tenantv1.AccountStatus_ACCOUNT_STATUS_DELETION_PENDING
}

// The answers the edge gives. Every refused credential gets the same message, whatever the
// reason (unknown, expired, revoked, tampered, wrong issuer): the caller learns nothing more.
var (
	errInvalidCredential = status.Error(codes.Unauthenticated, "invalid credential")
	errExpiredIDToken    = status.Error(codes.Unauthenticated, "invalid credential: the ID token has expired")
	errNoTenant          = status.Error(codes.Unauthenticated, "no account for this identity: sign in first (POST /v1/auth/signin)")
	errUnavailable       = status.Error(codes.Unavailable, "authentication is temporarily unavailable, try again")
	errEmailNotVerified  = status.Error(codes.FailedPrecondition, "the identity provider has not verified this email address")
)

// Authenticator resolves credentials to principals.
type Authenticator struct {
	sessions tenantv1.SessionServiceClient
	verifier *Verifier
	cache    *Cache
	logger   *slog.Logger
	now      func() time.Time
}

// NewAuthenticator returns an Authenticator asking sessions (the tenant service, dialed as
// the gateway workload) and verifying ID tokens with verifier.
func NewAuthenticator(sessions tenantv1.SessionServiceClient, verifier *Verifier, cache *Cache, logger *slog.Logger) *Authenticator {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Authenticator{sessions: sessions, verifier: verifier, cache: cache, logger: logger, now: time.Now}
}

// Cache is the authenticator's cache (the revocation feed and the edge drop entries from it).
func (a *Authenticator) Cache() *Cache { return a.cache }

// Authenticate returns the principal of cred, or a gRPC status error the edge writes as is
// (Unauthenticated for every refused credential).
func (a *Authenticator) Authenticate(ctx context.Context, cred Credential) (Principal, error) {
	key := keyOf(cred.Kind, cred.Value.Reveal())
	if p, ok := a.cache.Get(key); ok {
		return p, nil
	}
	ticket := a.cache.Begin()
	var (
		req      *tenantv1.AuthenticateRequest
		notAfter time.Time
	)
	switch cred.Kind {
	case KindSession:
		req = &tenantv1.AuthenticateRequest{Credential: &tenantv1.AuthenticateRequest_SessionToken{SessionToken: cred.Value.Reveal()}}
	case KindIDToken:
		id, err := a.verifyIDToken(ctx, cred.Value.Reveal())
		if err != nil {
			return Principal{}, err
		}
		req = &tenantv1.AuthenticateRequest{Credential: &tenantv1.AuthenticateRequest_Identity{Identity: identityProto(id)}}
		notAfter = id.Expiry
	default:
		return Principal{}, errInvalidCredential
	}
	resp, err := a.sessions.Authenticate(ctx, req)
	if err != nil {
		switch status.Code(err) {
		case codes.Unauthenticated, codes.InvalidArgument:
			if cred.Kind == KindIDToken {
				return Principal{}, errNoTenant
			}
			return Principal{}, errInvalidCredential
		case codes.NotFound:
			return Principal{}, errNoTenant
		case codes.Canceled:
			return Principal{}, status.Error(codes.Canceled, "request cancelled")
		}
		a.logger.ErrorContext(ctx, "tenant Authenticate failed", slog.Any("error", err))
		return Principal{}, errUnavailable
	}
	p, err := principalOf(resp)
	if err != nil {
		a.logger.ErrorContext(ctx, "tenant Authenticate answered an unusable principal", slog.Any("error", err))
		return Principal{}, errInvalidCredential
	}
	if t := resp.GetExpireTime(); t != nil && (notAfter.IsZero() || t.AsTime().Before(notAfter)) {
		notAfter = t.AsTime()
	}
	a.cache.Put(key, p, notAfter, ticket)
	return p, nil
}

func principalOf(resp *tenantv1.AuthenticateResponse) (Principal, error) {
	switch resp.GetStatus() {
	case tenantv1.AccountStatus_ACCOUNT_STATUS_ACTIVE, tenantv1.AccountStatus_ACCOUNT_STATUS_DELETION_PENDING:
	default:
		// The contract: any other status is refused as Unauthenticated.
		return Principal{}, fmt.Errorf("account status %s", resp.GetStatus())
	}
	id, err := owner.Parse(resp.GetOwnerId())
	if err != nil {
		return Principal{}, err
	}
	region, err := owner.ParseRegion(resp.GetHomeRegion())
	if err != nil {
		return Principal{}, err
	}
	return Principal{
		Owner:     owner.Owner{ID: id, HomeRegion: region},
		SessionID: resp.GetSessionId(),
		Status:    resp.GetStatus(),
	}, nil
}

func (a *Authenticator) verifyIDToken(ctx context.Context, raw string) (Identity, error) {
	id, err := a.verifier.Verify(ctx, raw)
	switch {
	case err == nil:
	case errors.Is(err, ErrTokenExpired):
		return Identity{}, errExpiredIDToken
	case errors.Is(err, ErrIssuerUnavailable):
		a.logger.ErrorContext(ctx, "identity provider unavailable", slog.Any("error", err))
		return Identity{}, errUnavailable
	case errors.Is(err, context.Canceled):
		return Identity{}, status.Error(codes.Canceled, "request cancelled")
	default:
		// The reason is logged for operators (it names no token) and not told to the client.
		a.logger.InfoContext(ctx, "ID token refused", slog.String("reason", err.Error()))
		return Identity{}, errInvalidCredential
	}
	if !id.EmailVerified {
		return Identity{}, errEmailNotVerified
	}
	return id, nil
}

func identityProto(id Identity) *tenantv1.VerifiedIdentity {
	return &tenantv1.VerifiedIdentity{
		Issuer:        id.Issuer,
		Subject:       id.Subject,
		Email:         id.Email,
		EmailVerified: id.EmailVerified,
	}
}

// SignInRequest is what the sign-in route received.
type SignInRequest struct {
	IDToken    string
	Plan       tenantv1.Plan
	HomeRegion string
	UserAgent  string
}

// SignIn verifies the ID token and exchanges it for a session (creating the tenant on the
// person's first sign-in). Errors are gRPC status errors the edge writes as is.
func (a *Authenticator) SignIn(ctx context.Context, in SignInRequest) (*tenantv1.SignInResponse, error) {
	id, err := a.verifyIDToken(ctx, in.IDToken)
	if err != nil {
		return nil, err
	}
	ua := in.UserAgent
	if len(ua) > 512 {
		ua = ua[:512]
	}
	resp, err := a.sessions.SignIn(ctx, &tenantv1.SignInRequest{
		Identity:   identityProto(id),
		Plan:       in.Plan,
		HomeRegion: in.HomeRegion,
		UserAgent:  ua,
	})
	if err != nil {
		// The tenant service's statuses are already client-safe (errmap masks Internal);
		// a transport failure is not, and becomes a plain Unavailable.
		if s, ok := status.FromError(err); ok && s.Code() != codes.Unavailable && s.Code() != codes.Unknown {
			return nil, err
		}
		a.logger.ErrorContext(ctx, "tenant SignIn failed", slog.Any("error", err))
		return nil, errUnavailable
	}
	return resp, nil
}
