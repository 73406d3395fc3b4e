// Package grpcapi is the tenant service's gRPC API: thin handlers that read the verified
// owner (or, for system methods, the owner named in the request), call the store, and turn
// domain values into messages. Authorization, owner extraction, region refusal of owner
// calls, request validation and error mapping are done by the pkg/interceptors chain, driven
// by the workload table declared here.
package grpcapi

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/forgeapps/backbone/pkg/authz"
	"github.com/forgeapps/backbone/pkg/fault"
	tenantv1 "github.com/forgeapps/backbone/pkg/gen/forge/tenant/v1"
	"github.com/forgeapps/backbone/pkg/owner"
	"github.com/forgeapps/backbone/pkg/workload"

	"github.com/forgeapps/backbone/services/tenant/internal/postgres"
	"github.com/forgeapps/backbone/services/tenant/internal/tenant"
)

// Table is the tenant service's workload table: who may call each method, and whether the
// call carries an owner the caller asserts (owner methods) or names one in the request
// (system methods, which the owner interceptor refuses any asserted owner on).
func Table() authz.Table {
	return authz.Table{
		// apps reads the owner's plan (collaborator invites are a Studio feature), asserting
		// the owner it acts for; only the edge changes an account.
		tenantv1.AccountService_GetAccount_FullMethodName:    authz.Owner(workload.Gateway, workload.Apps),
		tenantv1.AccountService_UpdateAccount_FullMethodName: authz.Owner(workload.Gateway),

		// Sign-in and authentication happen before there is an owner: the edge only.
		tenantv1.SessionService_SignIn_FullMethodName:            authz.SystemMethod(workload.Gateway),
		tenantv1.SessionService_Authenticate_FullMethodName:      authz.SystemMethod(workload.Gateway),
		tenantv1.SessionService_ListSessions_FullMethodName:      authz.Owner(workload.Gateway),
		tenantv1.SessionService_RevokeSession_FullMethodName:     authz.Owner(workload.Gateway),
		tenantv1.SessionService_RevokeAllSessions_FullMethodName: authz.Owner(workload.Gateway),

		// The builder reads the balance before a build and debits for it, for its owner.
		tenantv1.CreditService_GetCreditBalance_FullMethodName:  authz.Owner(workload.Gateway, workload.Builder),
		tenantv1.CreditService_ListCreditEntries_FullMethodName: authz.Owner(workload.Gateway),
		tenantv1.CreditService_GrantCredits_FullMethodName:      authz.SystemMethod(workload.Billing),
		tenantv1.CreditService_DebitCredits_FullMethodName:      authz.Owner(workload.Builder),

		tenantv1.TenantAdminService_ChangePlan_FullMethodName: authz.SystemMethod(workload.Billing),
		tenantv1.TenantAdminService_LookupHomeRegion_FullMethodName: authz.SystemMethod(
			workload.Gateway, workload.Apps, workload.DataLifecycle),
		tenantv1.TenantAdminService_ResolveEmail_FullMethodName:  authz.SystemMethod(workload.Apps),
		tenantv1.TenantAdminService_DisableTenant_FullMethodName: authz.SystemMethod(workload.DataLifecycle),
		tenantv1.TenantAdminService_RestoreTenant_FullMethodName: authz.SystemMethod(workload.DataLifecycle),
		tenantv1.TenantAdminService_ExportTenant_FullMethodName:  authz.SystemMethod(workload.DataLifecycle),
		tenantv1.TenantAdminService_PurgeTenant_FullMethodName:   authz.SystemMethod(workload.DataLifecycle),
	}
}

// API implements the tenant service's four gRPC services over a Store.
type API struct {
	store *postgres.Store
}

// New returns the API over store.
func New(store *postgres.Store) *API { return &API{store: store} }

// Register adds the four services to a server.
func (a *API) Register(r grpc.ServiceRegistrar) {
	tenantv1.RegisterAccountServiceServer(r, &accountServer{store: a.store})
	tenantv1.RegisterSessionServiceServer(r, &sessionServer{store: a.store})
	tenantv1.RegisterCreditServiceServer(r, &creditServer{store: a.store})
	tenantv1.RegisterTenantAdminServiceServer(r, &adminServer{store: a.store})
}

// callerOwner is the verified owner of an owner method. The interceptor chain never runs an
// owner method without one; the check keeps a table mistake from becoming an ownerless call.
func callerOwner(ctx context.Context) (owner.ID, error) {
	o, ok := owner.FromContext(ctx)
	if !ok {
		return owner.ID{}, fault.Unauthenticated("no verified owner")
	}
	return o.ID, nil
}

// namedOwner reads the owner a system method names in its request.
func namedOwner(s string) (owner.ID, error) {
	id, err := owner.Parse(s)
	if err != nil {
		return owner.ID{}, fault.InvalidField("owner_id", "not an owner ID").Wrap(err)
	}
	return id, nil
}

var planToProto = map[tenant.Plan]tenantv1.Plan{
	tenant.PlanFree:   tenantv1.Plan_PLAN_FREE,
	tenant.PlanPro:    tenantv1.Plan_PLAN_PRO,
	tenant.PlanStudio: tenantv1.Plan_PLAN_STUDIO,
}

// planFromProto maps a plan; PLAN_UNSPECIFIED is "" (the caller decides what it means).
func planFromProto(p tenantv1.Plan) (tenant.Plan, error) {
	if p == tenantv1.Plan_PLAN_UNSPECIFIED {
		return "", nil
	}
	for k, v := range planToProto {
		if v == p {
			return k, nil
		}
	}
	return "", fault.InvalidField("plan", "unknown plan")
}

var statusToProto = map[tenant.Status]tenantv1.AccountStatus{
	tenant.StatusActive:          tenantv1.AccountStatus_ACCOUNT_STATUS_ACTIVE,
	tenant.StatusDeletionPending: tenantv1.AccountStatus_ACCOUNT_STATUS_DELETION_PENDING,
	tenant.StatusPurged:          tenantv1.AccountStatus_ACCOUNT_STATUS_PURGED,
}

func accountToProto(a tenant.Account) *tenantv1.Account {
	return &tenantv1.Account{
		OwnerId:           a.OwnerID.String(),
		Email:             a.Email,
		DisplayName:       a.DisplayName,
		NotificationEmail: a.NotificationEmail,
		Plan:              planToProto[a.Plan],
		HomeRegion:        a.HomeRegion.String(),
		Status:            statusToProto[a.Status],
		CreateTime:        timestamppb.New(a.CreateTime),
		UpdateTime:        timestamppb.New(a.UpdateTime),
	}
}

func sessionToProto(s tenant.Session, current bool) *tenantv1.Session {
	return &tenantv1.Session{
		SessionId:  s.ID.String(),
		CreateTime: timestamppb.New(s.CreateTime),
		ExpireTime: timestamppb.New(s.ExpireTime),
		UserAgent:  s.UserAgent,
		Current:    current,
	}
}

func entryToProto(e tenant.CreditEntry) *tenantv1.CreditEntry {
	return &tenantv1.CreditEntry{
		EntryId:    e.ID.String(),
		Amount:     e.Amount,
		Reason:     e.Reason,
		CreateTime: timestamppb.New(e.CreateTime),
	}
}

func entriesToProto(es []tenant.CreditEntry) []*tenantv1.CreditEntry {
	out := make([]*tenantv1.CreditEntry, 0, len(es))
	for _, e := range es {
		out = append(out, entryToProto(e))
	}
	return out
}
