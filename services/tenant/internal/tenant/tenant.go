// Package tenant holds the tenant service's nouns and rules: accounts and their plans, home
// regions and statuses, sessions and their tokens, the credit ledger and its idempotency, and
// the errors a caller may see. It has no transport or database imports, so every rule here
// is stated once and read the same by the gRPC API, the Postgres store and the consumers.
package tenant

import (
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/forgeapps/backbone/pkg/fault"
	"github.com/forgeapps/backbone/pkg/owner"
)

// Plan is a tenant's commercial plan, spelled as it is stored and announced in events.
type Plan string

// The plans.
const (
	PlanFree   Plan = "free"
	PlanPro    Plan = "pro"
	PlanStudio Plan = "studio"
)

// DefaultPlan is the plan of a sign-up that chose none.
const DefaultPlan = PlanFree

// Valid reports whether p is a known plan.
func (p Plan) Valid() bool {
	switch p {
	case PlanFree, PlanPro, PlanStudio:
		return true
	}
	return false
}

// Status is the lifecycle state of a tenant.
type Status string

// The statuses. StatusPurged is only ever announced: the purge removes the account row.
const (
	StatusActive          Status = "active"
	StatusDeletionPending Status = "deletion_pending"
	StatusPurged          Status = "purged"
)

// Account is a tenant as its owner sees it.
type Account struct {
	OwnerID           owner.ID
	Email             string
	DisplayName       string
	NotificationEmail string
	Plan              Plan
	HomeRegion        owner.Region
	Status            Status
	CreateTime        time.Time
	UpdateTime        time.Time
}

// Identity is what the edge learned from a verified OIDC ID token. A tenant is found by
// (Issuer, Subject) only: the email never finds or links a tenant.
type Identity struct {
	Issuer  string
	Subject string
	Email   string
}

// SignUp is what a first sign-in may choose. The zero value is the default: free, us-east.
type SignUp struct {
	Plan       Plan
	HomeRegion owner.Region
}

// ReasonWrongRegion is the ErrorInfo reason of a refusal for a tenant homed in another region.
// It is the same string as pkg/interceptors.ReasonWrongRegion (a test checks), so the edge
// handles the owner interceptor's refusals and this service's in one way.
const ReasonWrongRegion = "WRONG_REGION"

// WrongRegion is the refusal of a request about a tenant homed elsewhere: FailedPrecondition
// naming the home region in the message and in the ErrorInfo metadata.
func WrongRegion(home, here owner.Region) error {
	return fault.FailedPrecondition("tenant is homed in %s; this is %s", home, here).
		WithReason(ReasonWrongRegion, map[string]string{"home_region": home.String()})
}

// Complete applies the defaults of a sign-up and checks it against the rules and against the
// region this instance serves:
//
//   - no plan means free, no region means us-east;
//   - eu-west is for the studio plan only (FailedPrecondition);
//   - a tenant is created only in the region that will hold it: a sign-up for a region this
//     instance does not serve is refused with WrongRegion, so the edge sends it to that
//     region's instance instead (creating it here and moving it later would put its data,
//     however briefly, in the wrong region).
func (s SignUp) Complete(here owner.Region) (SignUp, error) {
	if s.Plan == "" {
		s.Plan = DefaultPlan
	}
	if s.HomeRegion == "" {
		s.HomeRegion = owner.DefaultRegion
	}
	if !s.Plan.Valid() {
		return SignUp{}, fault.InvalidField("plan", "unknown plan")
	}
	if !s.HomeRegion.Valid() {
		return SignUp{}, fault.InvalidField("home_region", `want "us-east" or "eu-west"`)
	}
	if s.HomeRegion == owner.EUWest && s.Plan != PlanStudio {
		return SignUp{}, fault.FailedPrecondition("home region eu-west is available on the studio plan only")
	}
	if s.HomeRegion != here {
		return SignUp{}, WrongRegion(s.HomeRegion, here)
	}
	return s, nil
}

// CheckPlanChange refuses a plan that the tenant's home region does not allow: an eu-west
// tenant stays on studio (leaving eu-west is the separate, consented move workflow).
func CheckPlanChange(home owner.Region, to Plan) error {
	if !to.Valid() {
		return fault.InvalidField("plan", "unknown plan")
	}
	if home == owner.EUWest && to != PlanStudio {
		return fault.FailedPrecondition("a tenant homed in eu-west must stay on the studio plan")
	}
	return nil
}

// AccountUpdate is a change of the owner-editable fields; nil leaves a field as it is.
type AccountUpdate struct {
	DisplayName       *string
	NotificationEmail *string
}

// Limits of the owner-editable fields (the proto's validation says the same; these hold for
// every caller of the domain).
const (
	MaxDisplayName = 100
	MaxEmail       = 254
)

// Validate checks an update: at least one field, a display name of printable text, an email
// of sane length (its syntax is checked at the API edge).
func (u AccountUpdate) Validate() error {
	if u.DisplayName == nil && u.NotificationEmail == nil {
		return fault.InvalidArgument("nothing to update: set display_name and/or notification_email")
	}
	if u.DisplayName != nil {
		n := *u.DisplayName
		switch {
		case strings.TrimSpace(n) == "":
			return fault.InvalidField("display_name", "must not be blank")
		case !utf8.ValidString(n) || utf8.RuneCountInString(n) > MaxDisplayName:
			return fault.InvalidField("display_name", fmt.Sprintf("at most %d characters", MaxDisplayName))
		case strings.IndexFunc(n, unicode.IsControl) >= 0:
			return fault.InvalidField("display_name", "must not contain control characters")
		}
	}
	if u.NotificationEmail != nil {
		e := *u.NotificationEmail
		if e == "" || len(e) > MaxEmail || strings.IndexFunc(e, unicode.IsSpace) >= 0 || !strings.Contains(e, "@") {
			return fault.InvalidField("notification_email", "not an email address")
		}
	}
	return nil
}

// The errors callers see. Missing and foreign rows answer the same NotFound, word for word.
var (
	ErrAccountNotFound = fault.NotFound("account not found")
	ErrTenantNotFound  = fault.NotFound("tenant not found")
	ErrSessionNotFound = fault.NotFound("session not found")
	ErrEmailNotFound   = fault.NotFound("no active tenant with that email")
	// ErrInvalidSession is the one answer for an unknown, malformed, expired or revoked token.
	ErrInvalidSession = fault.Unauthenticated("invalid session")
	// ErrNoTenantForIdentity answers Authenticate for a verified identity that never signed up.
	ErrNoTenantForIdentity = fault.Unauthenticated("no tenant for this identity; sign in first")
	ErrPendingDeletion     = fault.FailedPrecondition("the account is pending deletion")
	ErrNotPendingDeletion  = fault.FailedPrecondition("the tenant is not pending deletion")
)
