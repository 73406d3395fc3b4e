// Package remote is the sandbox origin's side of its two gRPC dependencies: apps (what to
// serve and who may see it, system methods of this workload) and secrets-vault (a secret's
// value at request time, asserted for the app's owner). It turns their answers into the
// service's own types and their NotFound into the service's "not served" / "no secret".
package remote

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	appsv1 "github.com/forgeapps/backbone/pkg/gen/forge/apps/v1"
	vaultv1 "github.com/forgeapps/backbone/pkg/gen/forge/vault/v1"
	"github.com/forgeapps/backbone/pkg/owner"
	"github.com/forgeapps/backbone/pkg/secret"

	"github.com/forgeapps/backbone/services/sandbox-origin/internal/appcache"
	"github.com/forgeapps/backbone/services/sandbox-origin/internal/origin"
	"github.com/forgeapps/backbone/services/sandbox-origin/internal/proxy"
)

// Client calls apps and secrets-vault.
type Client struct {
	Apps  appsv1.AppsInternalServiceClient
	Vault vaultv1.SecretResolverServiceClient
	// Region is this instance's region: the home region of every owner whose apps it serves.
	Region owner.Region
	// CallTimeout bounds each call; 0 means 5s.
	CallTimeout time.Duration
}

// system is ctx without an owner: the methods of apps this service calls are system methods,
// which refuse a caller asserting an owner, and a ticket request arrives with the viewer's.
func system(ctx context.Context) context.Context { return owner.NewContext(ctx, owner.Owner{}) }

func (c *Client) timeout(ctx context.Context) (context.Context, context.CancelFunc) {
	d := c.CallTimeout
	if d == 0 {
		d = 5 * time.Second
	}
	return context.WithTimeout(ctx, d)
}

// Fetch asks apps for the app to serve.
func (c *Client) Fetch(ctx context.Context, app uuid.UUID) (*appcache.App, error) {
	ctx, cancel := c.timeout(system(ctx))
	defer cancel()
	resp, err := c.Apps.GetServableApp(ctx, &appsv1.GetServableAppRequest{AppId: app.String()})
	if code := status.Code(err); code == codes.NotFound || code == codes.FailedPrecondition {
		return nil, appcache.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get servable app: %w", err)
	}
	o, err := owner.Parse(resp.GetOwnerId())
	if err != nil {
		return nil, fmt.Errorf("get servable app: %w", err)
	}
	a := &appcache.App{ID: app, Owner: o, Version: resp.GetVersion(), Files: map[string]*appcache.File{}}
	switch resp.GetVisibility() {
	case appsv1.Visibility_VISIBILITY_PRIVATE:
		a.Visibility = origin.VisibilityPrivate
	case appsv1.Visibility_VISIBILITY_LINK:
		a.Visibility = origin.VisibilityLink
	case appsv1.Visibility_VISIBILITY_PUBLIC:
		a.Visibility = origin.VisibilityPublic
	default:
		a.Visibility = origin.VisibilityUnknown
	}
	for _, f := range resp.GetFiles() {
		a.Files[f.GetPath()] = appcache.NewFile(f.GetPath(), f.GetContentType(), f.GetContent())
	}
	return a, nil
}

// CheckViewer asks apps whether viewer is the owner or a collaborator of app.
func (c *Client) CheckViewer(ctx context.Context, app uuid.UUID, viewer owner.ID) (bool, error) {
	ctx, cancel := c.timeout(system(ctx))
	defer cancel()
	resp, err := c.Apps.CheckViewer(ctx, &appsv1.CheckViewerRequest{AppId: app.String(), ViewerOwnerId: viewer.String()})
	if status.Code(err) == codes.NotFound {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("check viewer: %w", err)
	}
	return resp.GetRole() != appsv1.Role_ROLE_UNSPECIFIED, nil
}

// CheckShareToken asks apps whether token opens app, and until when.
func (c *Client) CheckShareToken(ctx context.Context, app uuid.UUID, token secret.Value) (time.Time, bool, error) {
	ctx, cancel := c.timeout(system(ctx))
	defer cancel()
	resp, err := c.Apps.CheckShareToken(ctx, &appsv1.CheckShareTokenRequest{AppId: app.String(), Token: token.Reveal()})
	if code := status.Code(err); code == codes.NotFound || code == codes.InvalidArgument {
		return time.Time{}, false, nil
	}
	if err != nil {
		return time.Time{}, false, fmt.Errorf("check share token: %w", err)
	}
	if !resp.GetExpireTime().IsValid() {
		return time.Time{}, false, nil
	}
	return resp.GetExpireTime().AsTime(), true, nil
}

// ResolveSecret asks secrets-vault for a secret of app, asserting the app's owner.
func (c *Client) ResolveSecret(ctx context.Context, o owner.ID, app uuid.UUID, name string) (proxy.Secret, error) {
	ctx, cancel := c.timeout(ctx)
	defer cancel()
	ctx = owner.NewContext(ctx, owner.Owner{ID: o, HomeRegion: c.Region})
	resp, err := c.Vault.ResolveSecret(ctx, &vaultv1.ResolveSecretRequest{AppId: app.String(), Name: name})
	if code := status.Code(err); code == codes.NotFound || code == codes.InvalidArgument {
		return proxy.Secret{}, proxy.ErrNoSecret
	}
	if err != nil {
		// The status message is the vault's, never the value; keep only the code anyway.
		return proxy.Secret{}, fmt.Errorf("resolve secret: %s", status.Code(err))
	}
	s := proxy.Secret{
		Value:        secret.New(resp.GetValue()),
		UpstreamHost: resp.GetUpstreamHost(),
		HeaderName:   resp.GetInjection().GetHeaderName(),
		Prefix:       resp.GetInjection().GetPrefix(),
		QueryParam:   resp.GetInjection().GetQueryParam(),
	}
	switch resp.GetInjection().GetKind() {
	case vaultv1.Injection_KIND_HEADER:
		s.Kind = proxy.InjectHeader
	case vaultv1.Injection_KIND_QUERY:
		s.Kind = proxy.InjectQuery
	}
	return s, nil
}
