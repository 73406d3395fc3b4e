// Package sandboxtest assembles a sandbox origin for tests, the way cmd/sandbox-origin does,
// against a real Postgres (pgtest), real mTLS (grpctest) and real TLS to the browser side,
// with stand-ins for the two services it calls: an apps and a secrets-vault server that speak
// the generated gRPC contracts through the real interceptor chain and whose answers a test
// changes at will (publish, revoke, remove a collaborator).
package sandboxtest

import (
	"context"
	"sync"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	appsv1 "github.com/forgeapps/backbone/pkg/gen/forge/apps/v1"
	vaultv1 "github.com/forgeapps/backbone/pkg/gen/forge/vault/v1"
	"github.com/forgeapps/backbone/pkg/owner"
)

// App is a stand-in app.
type App struct {
	Owner      owner.ID
	Visibility appsv1.Visibility
	Files      map[string]string
	// Viewers are the tenants CheckViewer accepts besides the owner.
	Viewers map[owner.ID]bool
	// Tokens are the share tokens CheckShareToken accepts, with their expiry.
	Tokens map[string]time.Time
	// Unavailable makes GetServableApp fail with Unavailable.
	Unavailable bool
}

// Apps is a stand-in for AppsInternalService.
type Apps struct {
	appsv1.UnimplementedAppsInternalServiceServer

	mu    sync.Mutex
	apps  map[uuid.UUID]*App
	calls map[string]int
}

// NewApps returns an empty stand-in.
func NewApps() *Apps { return &Apps{apps: map[uuid.UUID]*App{}, calls: map[string]int{}} }

// Put adds or replaces an app.
func (a *Apps) Put(id uuid.UUID, app *App) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if app.Viewers == nil {
		app.Viewers = map[owner.ID]bool{}
	}
	if app.Tokens == nil {
		app.Tokens = map[string]time.Time{}
	}
	a.apps[id] = app
}

// Update changes an app under the lock.
func (a *Apps) Update(id uuid.UUID, fn func(*App)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if app, ok := a.apps[id]; ok {
		fn(app)
	}
}

// Delete removes an app.
func (a *Apps) Delete(id uuid.UUID) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.apps, id)
}

// Calls counts the calls of a method ("GetServableApp", ...).
func (a *Apps) Calls(method string) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.calls[method]
}

func (a *Apps) get(method, id string) (*App, uuid.UUID, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls[method]++
	u, err := uuid.Parse(id)
	if err != nil {
		return nil, uuid.Nil, status.Error(codes.InvalidArgument, "app_id")
	}
	app, ok := a.apps[u]
	if !ok {
		return nil, u, status.Error(codes.NotFound, "app not found")
	}
	cp := *app
	return &cp, u, nil
}

// GetServableApp implements the contract.
func (a *Apps) GetServableApp(_ context.Context, req *appsv1.GetServableAppRequest) (*appsv1.GetServableAppResponse, error) {
	app, _, err := a.get("GetServableApp", req.GetAppId())
	if err != nil {
		return nil, err
	}
	if app.Unavailable {
		return nil, status.Error(codes.Unavailable, "down")
	}
	resp := &appsv1.GetServableAppResponse{OwnerId: app.Owner.String(), Visibility: app.Visibility, Version: 1}
	for p, c := range app.Files {
		resp.Files = append(resp.Files, &appsv1.File{Path: p, Content: []byte(c)})
	}
	return resp, nil
}

// CheckViewer implements the contract.
func (a *Apps) CheckViewer(_ context.Context, req *appsv1.CheckViewerRequest) (*appsv1.CheckViewerResponse, error) {
	app, _, err := a.get("CheckViewer", req.GetAppId())
	if err != nil {
		return nil, err
	}
	v, err := owner.Parse(req.GetViewerOwnerId())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, "viewer_owner_id")
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case v == app.Owner:
		return &appsv1.CheckViewerResponse{Role: appsv1.Role_ROLE_OWNER}, nil
	case app.Viewers[v]:
		return &appsv1.CheckViewerResponse{Role: appsv1.Role_ROLE_VIEWER}, nil
	}
	return nil, status.Error(codes.NotFound, "app not found")
}

// CheckShareToken implements the contract.
func (a *Apps) CheckShareToken(_ context.Context, req *appsv1.CheckShareTokenRequest) (*appsv1.CheckShareTokenResponse, error) {
	app, _, err := a.get("CheckShareToken", req.GetAppId())
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	exp, ok := app.Tokens[req.GetToken()]
	if !ok || app.Visibility != appsv1.Visibility_VISIBILITY_LINK {
		return nil, status.Error(codes.NotFound, "link not found")
	}
	return &appsv1.CheckShareTokenResponse{ExpireTime: timestamppb.New(exp)}, nil
}

// Secret is a stand-in secret.
type Secret struct {
	Owner        owner.ID
	Value        string
	UpstreamHost string
	Injection    *vaultv1.Injection
}

// Vault is a stand-in for SecretResolverService: it answers only for the app's owner, as the
// real vault does.
type Vault struct {
	vaultv1.UnimplementedSecretResolverServiceServer

	mu      sync.Mutex
	secrets map[[2]string]Secret
}

// NewVault returns an empty stand-in.
func NewVault() *Vault { return &Vault{secrets: map[[2]string]Secret{}} }

// Put adds a secret of app.
func (v *Vault) Put(app uuid.UUID, name string, s Secret) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.secrets[[2]string{app.String(), name}] = s
}

// ResolveSecret implements the contract.
func (v *Vault) ResolveSecret(ctx context.Context, req *vaultv1.ResolveSecretRequest) (*vaultv1.ResolveSecretResponse, error) {
	o, ok := owner.FromContext(ctx)
	if !ok {
		return nil, status.Error(codes.Unauthenticated, "no owner")
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	s, ok := v.secrets[[2]string{req.GetAppId(), req.GetName()}]
	if !ok || s.Owner != o.ID {
		return nil, status.Error(codes.NotFound, "secret not found")
	}
	return &vaultv1.ResolveSecretResponse{Value: s.Value, UpstreamHost: s.UpstreamHost, Injection: s.Injection}, nil
}

// Clock is a settable clock.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock starts at the current time.
func NewClock() *Clock { return &Clock{now: time.Now()} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}
