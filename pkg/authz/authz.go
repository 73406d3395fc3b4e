// Package authz is the workload authorization table of a service: for each gRPC method,
// which mTLS peer identities may call it, and whether the call carries a tenant (an owner
// the caller asserts) or is a system method that runs without one.
//
// Every service declares its table next to its server; the server refuses to start if a
// registered method is missing from it, and refuses at run time every call from a workload
// the table does not list for that method. Deny is the default.
package authz

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"google.golang.org/grpc"

	"github.com/forgeapps/backbone/pkg/workload"
)

// OwnerMode says what a method requires of the owner context.
type OwnerMode int

// The owner modes.
const (
	// OwnerRequired methods act for a tenant: the caller must assert a verified owner, and
	// the handler never runs without one.
	OwnerRequired OwnerMode = iota + 1
	// OwnerOptional methods serve anonymous callers too (Discover): an owner is used when the
	// caller asserts one.
	OwnerOptional
	// System methods run without an owner (for example the purge of one tenant, named in the
	// request): a caller asserting an owner on them is refused, so an owner context can never
	// be confused with a system call.
	System
)

// String names the mode.
func (m OwnerMode) String() string {
	switch m {
	case OwnerRequired:
		return "owner"
	case OwnerOptional:
		return "owner-optional"
	case System:
		return "system"
	}
	return "invalid"
}

// Rule is the entry of one method.
type Rule struct {
	Mode OwnerMode
	// Callers are the workload names allowed to call the method. For owner methods, each of
	// them may assert an owner; for system methods none may.
	Callers []string
	// AnyPeer lets every verified workload of the trust domain call the method (health
	// checks and reflection only).
	AnyPeer bool
}

// Owner is a method acting for the owner asserted by one of callers.
func Owner(callers ...string) Rule { return Rule{Mode: OwnerRequired, Callers: callers} }

// OptionalOwner is a method open to anonymous callers that uses the owner when one is asserted.
func OptionalOwner(callers ...string) Rule { return Rule{Mode: OwnerOptional, Callers: callers} }

// SystemMethod is a method called by workloads without an owner context.
func SystemMethod(callers ...string) Rule { return Rule{Mode: System, Callers: callers} }

// Table maps full gRPC method names ("/forge.tenant.v1.AccountService/GetAccount") to rules.
type Table map[string]Rule

// Decision is the outcome of authorizing one call.
type Decision struct {
	Rule Rule
	// MayAssertOwner says whether the caller may carry an owner on this method.
	MayAssertOwner bool
}

// ErrNotAllowed is returned for a caller the table does not list.
var ErrNotAllowed = errors.New("workload not allowed")

// Authorize decides whether caller may call method.
func (t Table) Authorize(method string, caller workload.ID) (Decision, error) {
	rule, ok := t[method]
	if !ok {
		return Decision{}, fmt.Errorf("%w: method %s is not in the workload table", ErrNotAllowed, method)
	}
	if caller.IsZero() {
		return Decision{}, fmt.Errorf("%w: no verified workload", ErrNotAllowed)
	}
	if !rule.AnyPeer && !slices.Contains(rule.Callers, caller.Name()) {
		return Decision{}, fmt.Errorf("%w: %s may not call %s", ErrNotAllowed, caller, method)
	}
	return Decision{Rule: rule, MayAssertOwner: !rule.AnyPeer && rule.Mode != System}, nil
}

// WithStandardServices adds the health and reflection services, callable by every verified
// workload of the trust domain and never with an owner.
func (t Table) WithStandardServices() Table {
	out := make(Table, len(t)+4)
	for k, v := range t {
		out[k] = v
	}
	for _, m := range []string{
		"/grpc.health.v1.Health/Check",
		"/grpc.health.v1.Health/Watch",
		"/grpc.health.v1.Health/List",
		"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
		"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
	} {
		out[m] = Rule{Mode: System, AnyPeer: true}
	}
	return out
}

// Validate checks the table itself: every rule has a mode and callers, and callers are
// workload names.
func (t Table) Validate() error {
	var problems []string
	for m, r := range t {
		if r.Mode < OwnerRequired || r.Mode > System {
			problems = append(problems, m+": no owner mode")
		}
		if !r.AnyPeer && len(r.Callers) == 0 {
			problems = append(problems, m+": no callers")
		}
		for _, c := range r.Callers {
			if _, err := workload.New(workload.DefaultTrustDomain, c); err != nil {
				problems = append(problems, fmt.Sprintf("%s: caller %q is not a workload name", m, c))
			}
		}
	}
	return joinProblems("workload table", problems)
}

// Covers checks that every method registered on srv has an entry, so that adding an RPC
// without deciding who may call it fails at start-up (and in tests), not in production.
func (t Table) Covers(srv interface {
	GetServiceInfo() map[string]grpc.ServiceInfo
}) error {
	var missing []string
	for svc, info := range srv.GetServiceInfo() {
		for _, m := range info.Methods {
			full := "/" + svc + "/" + m.Name
			if _, ok := t[full]; !ok {
				missing = append(missing, full)
			}
		}
	}
	return joinProblems("methods missing from the workload table", missing)
}

func joinProblems(what string, problems []string) error {
	if len(problems) == 0 {
		return nil
	}
	sort.Strings(problems)
	return fmt.Errorf("%s: %s", what, strings.Join(problems, "; "))
}
