package grpcapi

import (
	"context"

	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/forgeapps/backbone/pkg/fault"
	tenantv1 "github.com/forgeapps/backbone/pkg/gen/forge/tenant/v1"
	"github.com/forgeapps/backbone/pkg/owner"
	"github.com/forgeapps/backbone/pkg/secret"

	"github.com/forgeapps/backbone/services/tenant/internal/postgres"
	"github.com/forgeapps/backbone/services/tenant/internal/tenant"
)

type sessionServer struct {
	tenantv1.UnimplementedSessionServiceServer
	store *postgres.Store
}

func (s *sessionServer) SignIn(ctx context.Context, req *tenantv1.SignInRequest) (*tenantv1.SignInResponse, error) {
	ident, err := identityFromProto(req.GetIdentity())
	if err != nil {
		return nil, err
	}
	plan, err := planFromProto(req.GetPlan())
	if err != nil {
		return nil, err
	}
	res, err := s.store.SignIn(ctx, ident, tenant.SignUp{Plan: plan, HomeRegion: owner.Region(req.GetHomeRegion())}, req.GetUserAgent())
	if err != nil {
		return nil, err
	}
	return &tenantv1.SignInResponse{
		// The one place the token leaves the service: the edge's sign-in response.
		SessionToken: res.Token.Reveal(),
		Session:      sessionToProto(res.Session, true),
		Account:      accountToProto(res.Account),
		Created:      res.Created,
	}, nil
}

// identityFromProto reads a verified identity. The validation interceptor refuses these
// cases already; an unverified email must never reach a tenant even if a rule is lost.
func identityFromProto(ident *tenantv1.VerifiedIdentity) (tenant.Identity, error) {
	if ident.GetIssuer() == "" || ident.GetSubject() == "" || ident.GetEmail() == "" {
		return tenant.Identity{}, fault.InvalidField("identity", "issuer, subject and email are required")
	}
	if !ident.GetEmailVerified() {
		return tenant.Identity{}, fault.InvalidField("identity.email_verified", "the email must be verified")
	}
	return tenant.Identity{Issuer: ident.GetIssuer(), Subject: ident.GetSubject(), Email: ident.GetEmail()}, nil
}

func (s *sessionServer) Authenticate(ctx context.Context, req *tenantv1.AuthenticateRequest) (*tenantv1.AuthenticateResponse, error) {
	var (
		as  tenant.AuthenticatedSession
		err error
	)
	switch cred := req.GetCredential().(type) {
	case *tenantv1.AuthenticateRequest_SessionToken:
		as, err = s.store.Authenticate(ctx, secret.New(cred.SessionToken))
	case *tenantv1.AuthenticateRequest_Identity:
		var ident tenant.Identity
		if ident, err = identityFromProto(cred.Identity); err == nil {
			as, err = s.store.AuthenticateIdentity(ctx, ident)
		}
	default:
		err = fault.InvalidField("credential", "a session token or a verified identity is required")
	}
	if err != nil {
		return nil, err
	}
	resp := &tenantv1.AuthenticateResponse{
		OwnerId:    as.OwnerID.String(),
		HomeRegion: as.HomeRegion.String(),
		Status:     statusToProto[as.Status],
	}
	if as.SessionID != uuid.Nil {
		resp.SessionId = as.SessionID.String()
		resp.ExpireTime = timestamppb.New(as.ExpireTime)
	}
	return resp, nil
}

func (s *sessionServer) ListSessions(ctx context.Context, _ *tenantv1.ListSessionsRequest) (*tenantv1.ListSessionsResponse, error) {
	id, err := callerOwner(ctx)
	if err != nil {
		return nil, err
	}
	sessions, err := s.store.ListSessions(ctx, id)
	if err != nil {
		return nil, err
	}
	// The edge asserts the session it authenticated the request with, next to the owner.
	current, _ := owner.SessionIDFromContext(ctx)
	out := &tenantv1.ListSessionsResponse{Sessions: make([]*tenantv1.Session, 0, len(sessions))}
	for _, sess := range sessions {
		out.Sessions = append(out.Sessions, sessionToProto(sess, current != "" && sess.ID.String() == current))
	}
	return out, nil
}

func (s *sessionServer) RevokeSession(ctx context.Context, req *tenantv1.RevokeSessionRequest) (*tenantv1.RevokeSessionResponse, error) {
	id, err := callerOwner(ctx)
	if err != nil {
		return nil, err
	}
	sid, err := uuid.Parse(req.GetSessionId())
	if err != nil {
		return nil, fault.InvalidField("session_id", "not a session ID").Wrap(err)
	}
	if err := s.store.RevokeSession(ctx, id, sid); err != nil {
		return nil, err
	}
	return &tenantv1.RevokeSessionResponse{}, nil
}

func (s *sessionServer) RevokeAllSessions(ctx context.Context, _ *tenantv1.RevokeAllSessionsRequest) (*tenantv1.RevokeAllSessionsResponse, error) {
	id, err := callerOwner(ctx)
	if err != nil {
		return nil, err
	}
	n, err := s.store.RevokeAllSessions(ctx, id)
	if err != nil {
		return nil, err
	}
	return &tenantv1.RevokeAllSessionsResponse{Revoked: int32(min(n, 1<<31-1))}, nil
}
