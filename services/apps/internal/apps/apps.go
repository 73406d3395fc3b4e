// Package apps is the apps service's domain: apps, their prompts, references and versions,
// and the rules of who may see what (owner, collaborators, share links, Discover, the builder
// and the system workloads). It holds the rules and orchestrates the stores; it imports no
// gRPC or database driver. Every tenant-authored field goes through Crypto (secrets-vault)
// before it reaches Store or Blobs, bound to its owner, object and field.
package apps

import (
	"context"
	"encoding/hex"
	"log/slog"
	"time"

	"github.com/google/uuid"

	"github.com/forgeapps/backbone/pkg/fault"
	"github.com/forgeapps/backbone/pkg/owner"
	"github.com/forgeapps/backbone/pkg/workload"

	"github.com/forgeapps/backbone/services/apps/internal/keyscan"
)

// Role is what a caller is to an app (values match forge.apps.v1.Role).
type Role int

// The roles.
const (
	RoleNone Role = iota
	RoleOwner
	RoleEditor
	RoleViewer
)

// CanRead reports whether the role sees the app, its versions and prompts.
func (r Role) CanRead() bool { return r == RoleOwner || r == RoleEditor || r == RoleViewer }

// CanWrite reports whether the role adds versions and prompts.
func (r Role) CanWrite() bool { return r == RoleOwner || r == RoleEditor }

// Visibility says who may open the built app (values match forge.apps.v1.Visibility).
type Visibility int

// The visibilities, narrowest first.
const (
	VisibilityUnspecified Visibility = iota
	VisibilityPrivate
	VisibilityLink
	VisibilityPublic
)

// AccessReason says why access to an app changed (the AppAccessChanged event).
type AccessReason int

// The reasons (values match forge.events.v1.AppAccessChanged.Reason).
const (
	AccessUnpublished AccessReason = iota + 1
	AccessLinkRevoked
	AccessVisibilityChanged
	AccessDeleted
	AccessOwnerDisabled
	AccessVersionChanged
	AccessCollaboratorRemoved
)

// Caller is who makes a request: the verified owner (zero for anonymous Discover callers and
// for system methods) and the verified workload.
type Caller struct {
	Owner    owner.ID
	Workload string
}

// IsBuilder reports whether the builder workload is calling (acting for the owner).
func (c Caller) IsBuilder() bool { return c.Workload == workload.Builder }

// Access is a resolved right of a caller on one app: whose app it is and what the caller is.
type Access struct {
	AppID  uuid.UUID
	Owner  owner.ID
	Role   Role
	Caller Caller
}

// author names who wrote a prompt or version under this access.
func (a Access) author() string {
	switch {
	case a.Caller.IsBuilder():
		return AuthorBuilder
	case a.Role == RoleOwner:
		return AuthorOwner
	}
	return AuthorCollaborator
}

// The authors of prompts and versions.
const (
	AuthorOwner        = "owner"
	AuthorCollaborator = "collaborator"
	AuthorBuilder      = "builder"
)

// App is an app as a caller sees it.
type App struct {
	ID             uuid.UUID
	Owner          owner.ID
	Name           string
	Description    string
	Visibility     Visibility
	CurrentVersion int32
	Created        time.Time
	Updated        time.Time
	Role           Role
	Published      bool
}

// Config is what a Service needs.
type Config struct {
	Store    Store
	Crypto   Crypto
	Blobs    Blobs
	Secrets  Secrets
	Registry Registry
	Tenants  Tenants
	Logger   *slog.Logger
	// Region is the region this instance serves (every owner it acts for is homed here).
	Region owner.Region
	// SandboxDomain is the apps' parent domain with an optional port ("apps.localhost:8090"):
	// an app opens at https://<label>.<SandboxDomain>/, label = the app ID without dashes.
	SandboxDomain string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Service is the apps domain.
type Service struct {
	store         Store
	crypto        Crypto
	blobs         Blobs
	secrets       Secrets
	registry      Registry
	tenants       Tenants
	log           *slog.Logger
	region        owner.Region
	sandboxDomain string
	now           func() time.Time
	scanner       *keyscan.Scanner
}

// New checks cfg and returns a Service.
func New(cfg Config) (*Service, error) {
	switch {
	case cfg.Store == nil, cfg.Crypto == nil, cfg.Blobs == nil, cfg.Secrets == nil, cfg.Registry == nil, cfg.Tenants == nil:
		return nil, errMissingDependency
	case !cfg.Region.Valid():
		return nil, errBadRegion
	}
	s := &Service{
		store: cfg.Store, crypto: cfg.Crypto, blobs: cfg.Blobs, secrets: cfg.Secrets,
		registry: cfg.Registry, tenants: cfg.Tenants, log: cfg.Logger, region: cfg.Region,
		sandboxDomain: cfg.SandboxDomain, now: cfg.Now, scanner: keyscan.New(),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	return s, nil
}

// errNotFound is the one answer for an app (or anything in it) that does not exist or that the
// caller may not see: the two must be indistinguishable.
func errNotFound() error { return fault.NotFound("app not found") }

// AppURL is where an app opens on its own origin: the label is the app ID's 32 hex digits
// (the UUID without its dashes), as sandbox-origin serves it.
func (s *Service) AppURL(appID uuid.UUID) string {
	if s.sandboxDomain == "" {
		return ""
	}
	return "https://" + hex.EncodeToString(appID[:]) + "." + s.sandboxDomain + "/"
}

// asOwner returns ctx acting for o, for calls to other services made on o's behalf (the
// vault takes the owner from the forwarded owner context).
func (s *Service) asOwner(ctx context.Context, o owner.ID) context.Context {
	if cur, ok := owner.FromContext(ctx); ok && cur.ID == o {
		return ctx
	}
	return owner.NewContext(ctx, owner.Owner{ID: o, HomeRegion: s.region})
}
