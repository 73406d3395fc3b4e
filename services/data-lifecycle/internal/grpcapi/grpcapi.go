// Package grpcapi serves data-lifecycle's gRPC API: thin handlers that take the verified owner
// from the context (the interceptors validated the request), call the workflows and map the
// stored values to the contract. Missing and foreign IDs answer the same NotFound.
package grpcapi

import (
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/forgeapps/backbone/pkg/authz"
	lifecyclev1 "github.com/forgeapps/backbone/pkg/gen/forge/lifecycle/v1"
	"github.com/forgeapps/backbone/pkg/workload"

	"github.com/forgeapps/backbone/services/data-lifecycle/internal/lifecycle"
	"github.com/forgeapps/backbone/services/data-lifecycle/internal/postgres"
	"github.com/forgeapps/backbone/services/data-lifecycle/internal/workflow"
)

// Table is the workload table: the gateway calls every method, for the owner it
// authenticated, except the receipt lookup, which runs without an owner (the account may be
// gone; the receipt is the credential).
func Table() authz.Table {
	return authz.Table{
		lifecyclev1.ExportService_CreateExport_FullMethodName:           authz.Owner(workload.Gateway),
		lifecyclev1.ExportService_GetExport_FullMethodName:              authz.Owner(workload.Gateway),
		lifecyclev1.ExportService_ListExports_FullMethodName:            authz.Owner(workload.Gateway),
		lifecyclev1.ExportService_CreateDownloadLink_FullMethodName:     authz.Owner(workload.Gateway),
		lifecyclev1.ExportService_CancelExport_FullMethodName:           authz.Owner(workload.Gateway),
		lifecyclev1.ExportService_DownloadExport_FullMethodName:         authz.Owner(workload.Gateway),
		lifecyclev1.DeletionService_RequestDeletion_FullMethodName:      authz.Owner(workload.Gateway),
		lifecyclev1.DeletionService_GetDeletion_FullMethodName:          authz.Owner(workload.Gateway),
		lifecyclev1.DeletionService_CancelDeletion_FullMethodName:       authz.Owner(workload.Gateway),
		lifecyclev1.DeletionService_GetDeletionByReceipt_FullMethodName: authz.SystemMethod(workload.Gateway),
	}
}

// Register registers both services on s.
func Register(s grpc.ServiceRegistrar, w *workflow.Workflows) {
	lifecyclev1.RegisterExportServiceServer(s, &exportServer{w: w})
	lifecyclev1.RegisterDeletionServiceServer(s, &deletionServer{w: w})
}

func exportPB(e postgres.Export) *lifecyclev1.Export {
	out := &lifecyclev1.Export{
		ExportId:        e.ID.String(),
		State:           exportState(e.State),
		ProgressPercent: int32(e.Progress),
		SizeBytes:       e.SizeBytes,
		CreateTime:      timestamppb.New(e.Created),
	}
	if e.Ready != nil {
		out.ReadyTime = timestamppb.New(*e.Ready)
	}
	if e.Expire != nil {
		out.ExpireTime = timestamppb.New(*e.Expire)
	}
	return out
}

func exportState(s lifecycle.ExportState) lifecyclev1.ExportState {
	switch s {
	case lifecycle.ExportPending:
		return lifecyclev1.ExportState_EXPORT_STATE_PENDING
	case lifecycle.ExportRunning:
		return lifecyclev1.ExportState_EXPORT_STATE_RUNNING
	case lifecycle.ExportReady:
		return lifecyclev1.ExportState_EXPORT_STATE_READY
	case lifecycle.ExportFailed:
		return lifecyclev1.ExportState_EXPORT_STATE_FAILED
	case lifecycle.ExportCancelled:
		return lifecyclev1.ExportState_EXPORT_STATE_CANCELLED
	case lifecycle.ExportExpired:
		return lifecyclev1.ExportState_EXPORT_STATE_EXPIRED
	}
	return lifecyclev1.ExportState_EXPORT_STATE_UNSPECIFIED
}

func deletionPB(d postgres.Deletion) *lifecyclev1.Deletion {
	out := &lifecyclev1.Deletion{
		DeletionId:      d.ID.String(),
		RequestTime:     timestamppb.New(d.Requested),
		PurgeDueTime:    timestamppb.New(d.Due),
		StoresPending:   d.StoresPending,
		AccountDisabled: d.Disabled != nil,
		PurgeAttempts:   int32(d.Attempts),
	}
	switch d.State {
	case lifecycle.DeletionPending:
		out.State = lifecyclev1.DeletionState_DELETION_STATE_PENDING
	case lifecycle.DeletionCancelled:
		out.State = lifecyclev1.DeletionState_DELETION_STATE_CANCELLED
	case lifecycle.DeletionPurging:
		out.State = lifecyclev1.DeletionState_DELETION_STATE_PURGING
	case lifecycle.DeletionCompleted:
		out.State = lifecyclev1.DeletionState_DELETION_STATE_COMPLETED
	}
	if d.Completed != nil {
		out.CompleteTime = timestamppb.New(*d.Completed)
	}
	return out
}
