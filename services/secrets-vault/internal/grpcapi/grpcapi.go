// Package grpcapi is the vault's gRPC surface: the workload table saying who may call each
// method, the purposes each caller may declare, and thin handlers that convert messages,
// check the caller's purpose and call the vault domain. Validation (protovalidate), workload
// authorization and the owner context are done by the interceptor chain before any handler
// runs; errors are mapped to statuses by that chain too.
package grpcapi

import (
	"context"
	"log/slog"
	"slices"

	"google.golang.org/grpc"

	"github.com/forgeapps/backbone/pkg/authz"
	"github.com/forgeapps/backbone/pkg/fault"
	vaultv1 "github.com/forgeapps/backbone/pkg/gen/forge/vault/v1"
	"github.com/forgeapps/backbone/pkg/owner"
	"github.com/forgeapps/backbone/pkg/workload"

	"github.com/forgeapps/backbone/services/secrets-vault/internal/vault"
)

// Table is the vault's workload table.
func Table() authz.Table {
	return authz.Table{
		// The owner's own management of secrets, through the edge; apps also stores a key the
		// owner pasted into a prompt as a secret of the app, asserting that owner.
		vaultv1.SecretService_PutSecret_FullMethodName:    authz.Owner(workload.Gateway, workload.Apps),
		vaultv1.SecretService_ListSecrets_FullMethodName:  authz.Owner(workload.Gateway),
		vaultv1.SecretService_RotateSecret_FullMethodName: authz.Owner(workload.Gateway),
		vaultv1.SecretService_DeleteSecret_FullMethodName: authz.Owner(workload.Gateway),
		// apps tells the vault which apps an owner has.
		vaultv1.AppRegistryService_RegisterApp_FullMethodName:   authz.Owner(workload.Apps),
		vaultv1.AppRegistryService_UnregisterApp_FullMethodName: authz.Owner(workload.Apps),
		// The request-time secret proxy, asserting the owner of the app it serves.
		vaultv1.SecretResolverService_ResolveSecret_FullMethodName: authz.Owner(workload.SandboxOrigin),
		// Encryption of tenant content for the services that store it (purposes: Purposes).
		vaultv1.CryptoService_Encrypt_FullMethodName: authz.Owner(workload.Apps, workload.DataLifecycle),
		vaultv1.CryptoService_Decrypt_FullMethodName: authz.Owner(workload.Apps, workload.DataLifecycle),
		vaultv1.CryptoService_Rewrap_FullMethodName:  authz.Owner(workload.Apps, workload.DataLifecycle),
		// Envelope encryption of large content: the same callers and purposes as Encrypt/Decrypt.
		vaultv1.CryptoService_GenerateDataKey_FullMethodName: authz.Owner(workload.Apps, workload.DataLifecycle),
		vaultv1.CryptoService_DecryptDataKey_FullMethodName:  authz.Owner(workload.Apps, workload.DataLifecycle),
		// The owner's key management, through the edge.
		vaultv1.KeyService_ListAudit_FullMethodName:         authz.Owner(workload.Gateway),
		vaultv1.KeyService_RotateKey_FullMethodName:         authz.Owner(workload.Gateway),
		vaultv1.KeyService_RetireKeyVersions_FullMethodName: authz.Owner(workload.Gateway),
		// The data lifecycle's system methods (owner_id in the request).
		vaultv1.KeyService_ExportSecretMetadata_FullMethodName: authz.SystemMethod(workload.DataLifecycle),
		vaultv1.KeyService_ShredTenant_FullMethodName:          authz.SystemMethod(workload.DataLifecycle),
	}
}

// Purposes lists, per calling workload, the purposes it may declare on CryptoService. A
// purpose outside its list is refused with PermissionDenied before any key is touched.
func Purposes() map[string][]vaultv1.Purpose {
	return map[string][]vaultv1.Purpose{
		workload.Apps: {
			vaultv1.Purpose_PURPOSE_APP_CONTENT,
			vaultv1.Purpose_PURPOSE_PROMPT_OWNER_VIEW,
			vaultv1.Purpose_PURPOSE_PROMPT_COLLABORATOR_VIEW,
			vaultv1.Purpose_PURPOSE_PROMPT_BUILD,
			vaultv1.Purpose_PURPOSE_SERVE,
			vaultv1.Purpose_PURPOSE_EXPORT,
			vaultv1.Purpose_PURPOSE_REWRAP,
		},
		workload.DataLifecycle: {
			vaultv1.Purpose_PURPOSE_EXPORT,
			vaultv1.Purpose_PURPOSE_REWRAP,
		},
	}
}

// Server implements every vault service.
type Server struct {
	vaultv1.UnsafeSecretServiceServer
	vaultv1.UnsafeAppRegistryServiceServer
	vaultv1.UnsafeSecretResolverServiceServer
	vaultv1.UnsafeCryptoServiceServer
	vaultv1.UnsafeKeyServiceServer

	vault    *vault.Vault
	log      *slog.Logger
	purposes map[string][]vaultv1.Purpose
}

// New returns the server over v.
func New(v *vault.Vault, log *slog.Logger) *Server {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{vault: v, log: log, purposes: Purposes()}
}

// Register registers every service of s on r.
func Register(r grpc.ServiceRegistrar, s *Server) {
	vaultv1.RegisterSecretServiceServer(r, s)
	vaultv1.RegisterAppRegistryServiceServer(r, s)
	vaultv1.RegisterSecretResolverServiceServer(r, s)
	vaultv1.RegisterCryptoServiceServer(r, s)
	vaultv1.RegisterKeyServiceServer(r, s)
}

// ownerOf returns the verified owner; the chain guarantees one on owner methods.
func ownerOf(ctx context.Context) (owner.ID, error) {
	o, ok := owner.FromContext(ctx)
	if !ok {
		return owner.ID{}, fault.Unauthenticated("no verified owner")
	}
	return o.ID, nil
}

func callerOf(ctx context.Context) workload.ID {
	id, _ := workload.FromContext(ctx)
	return id
}

// actor is the verified caller with the purpose it declared (or the one the vault records).
func actor(ctx context.Context, p vault.Purpose) vault.Actor {
	return vault.Actor{Workload: callerOf(ctx).String(), Purpose: p}
}

// declaredActor checks the caller may declare p and returns the actor.
func (s *Server) declaredActor(ctx context.Context, p vaultv1.Purpose) (vault.Actor, error) {
	caller := callerOf(ctx)
	if !slices.Contains(s.purposes[caller.Name()], p) {
		return vault.Actor{}, fault.PermissionDenied("workload %s may not declare purpose %s", caller.Name(), p)
	}
	dp, ok := purposeToDomain[p]
	if !ok {
		return vault.Actor{}, fault.PermissionDenied("purpose %s cannot be declared", p)
	}
	return vault.Actor{Workload: caller.String(), Purpose: dp}, nil
}

var purposeToDomain = map[vaultv1.Purpose]vault.Purpose{
	vaultv1.Purpose_PURPOSE_APP_CONTENT:              vault.PurposeAppContent,
	vaultv1.Purpose_PURPOSE_PROMPT_OWNER_VIEW:        vault.PurposePromptOwnerView,
	vaultv1.Purpose_PURPOSE_PROMPT_COLLABORATOR_VIEW: vault.PurposePromptCollaboratorVw,
	vaultv1.Purpose_PURPOSE_PROMPT_BUILD:             vault.PurposePromptBuild,
	vaultv1.Purpose_PURPOSE_EXPORT:                   vault.PurposeExport,
	vaultv1.Purpose_PURPOSE_SERVE:                    vault.PurposeServe,
	vaultv1.Purpose_PURPOSE_REWRAP:                   vault.PurposeRewrap,
}

func purposeToProto(p vault.Purpose) vaultv1.Purpose {
	for k, v := range purposeToDomain {
		if v == p {
			return k
		}
	}
	if p == vault.PurposeSecretManagement {
		return vaultv1.Purpose_PURPOSE_SECRET_MANAGEMENT
	}
	return vaultv1.Purpose_PURPOSE_UNSPECIFIED
}
