// Package errmap is the one place where errors become gRPC statuses: domain faults (package
// fault), Postgres and pgx errors, context errors, and statuses returned by downstream calls.
//
// Anything that is not a recognised client error becomes Internal, masked: the client gets a
// fixed message and an error ID, and the original error is logged once, here, with that ID.
// A driver's error text or err.Error() never reaches a client.
package errmap

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"

	"github.com/forgeapps/backbone/pkg/fault"
)

// Domain is the ErrorInfo domain of every error the suite returns.
const Domain = "forge.internal"

// ReasonInternal is the ErrorInfo reason of a masked internal error.
const ReasonInternal = "INTERNAL"

// MetadataErrorID is the ErrorInfo metadata key holding the error ID of a masked error.
const MetadataErrorID = "error_id"

// Mapper converts handler errors to gRPC status errors, logging what it masks.
type Mapper struct {
	Logger *slog.Logger
}

// ToStatus returns the status error a client should see for err (nil for nil). method is
// the full gRPC method, for the log line.
func (m Mapper) ToStatus(ctx context.Context, method string, err error) error {
	if err == nil {
		return nil
	}
	if st, ok := m.classify(err); ok {
		return st.Err()
	}
	return m.Internal(ctx, method, err).Err()
}

// Internal masks err: it logs the original with a fresh error ID and returns the status
// the client sees, which holds only the ID. The recovery interceptor uses it for panics.
func (m Mapper) Internal(ctx context.Context, method string, err error) *status.Status {
	id := NewErrorID()
	if m.Logger != nil {
		m.Logger.ErrorContext(ctx, "internal error",
			slog.String("error_id", id), slog.String("grpc.method", method), slog.Any("error", err))
	}
	st := status.New(codes.Internal, "internal error (error id "+id+")")
	if withDetails, derr := st.WithDetails(&errdetails.ErrorInfo{
		Reason: ReasonInternal, Domain: Domain, Metadata: map[string]string{MetadataErrorID: id},
	}); derr == nil {
		st = withDetails
	}
	return st
}

// classify returns the client status for errors that are safe to describe.
func (m Mapper) classify(err error) (*status.Status, bool) {
	var f *fault.Error
	if errors.As(err, &f) {
		if code, ok := faultCodes[f.Kind]; ok {
			return faultStatus(code, f), true
		}
		return nil, false
	}
	switch {
	case errors.Is(err, context.Canceled):
		return status.New(codes.Canceled, "request canceled"), true
	case errors.Is(err, context.DeadlineExceeded):
		return status.New(codes.DeadlineExceeded, "deadline exceeded"), true
	case errors.Is(err, pgx.ErrNoRows):
		return status.New(codes.NotFound, "not found"), true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		code, msg, ok := postgresCode(pgErr)
		if !ok {
			return nil, false
		}
		return status.New(code, msg), true
	}
	if pgconn.SafeToRetry(err) || pgconn.Timeout(err) {
		return status.New(codes.Unavailable, "database unavailable, retry later"), true
	}
	// A status from a downstream gRPC call: pass through what describes the request, mask
	// what describes the wiring between workloads (the end user is not the one lacking a
	// permission when one service may not call another).
	if st, ok := status.FromError(err); ok {
		switch st.Code() {
		case codes.OK, codes.Unknown, codes.Internal, codes.Unauthenticated, codes.PermissionDenied,
			codes.Unimplemented, codes.DataLoss:
			if st.Code() == codes.Internal && hasErrorID(st) {
				return st, true // already masked by the downstream service
			}
			return nil, false
		}
		return st, true
	}
	return nil, false
}

var faultCodes = map[fault.Kind]codes.Code{
	fault.KindInvalidArgument:    codes.InvalidArgument,
	fault.KindNotFound:           codes.NotFound,
	fault.KindAlreadyExists:      codes.AlreadyExists,
	fault.KindFailedPrecondition: codes.FailedPrecondition,
	fault.KindPermissionDenied:   codes.PermissionDenied,
	fault.KindUnauthenticated:    codes.Unauthenticated,
	fault.KindResourceExhausted:  codes.ResourceExhausted,
	fault.KindAborted:            codes.Aborted,
	fault.KindUnavailable:        codes.Unavailable,
}

func faultStatus(code codes.Code, f *fault.Error) *status.Status {
	st := status.New(code, f.Message)
	var details []protoadapt.MessageV1
	if len(f.Violations) > 0 {
		br := &errdetails.BadRequest{}
		for _, v := range f.Violations {
			br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{
				Field: v.Field, Description: v.Description,
			})
		}
		details = append(details, br)
	}
	if f.Reason != "" {
		details = append(details, &errdetails.ErrorInfo{Reason: f.Reason, Domain: Domain, Metadata: f.Metadata})
	}
	if len(details) == 0 {
		return st
	}
	if withDetails, err := st.WithDetails(details...); err == nil {
		return withDetails
	}
	return st
}

// postgresCode maps the SQLSTATEs that describe the request rather than a defect. Anything
// else (including an RLS WITH CHECK violation, which only a bug can cause) is internal.
func postgresCode(e *pgconn.PgError) (codes.Code, string, bool) {
	switch e.Code {
	case "23505": // unique_violation
		return codes.AlreadyExists, "already exists", true
	case "23503": // foreign_key_violation: the referenced row is missing (or not the owner's)
		return codes.FailedPrecondition, "a referenced resource does not exist", true
	case "23514", "22001", "22003", "22P02", "22007", "22008": // check, too long, out of range, bad text, bad datetime
		return codes.InvalidArgument, "invalid value", true
	case "40001", "40P01": // serialization_failure, deadlock_detected
		return codes.Aborted, "concurrent update, retry", true
	case "55P03": // lock_not_available
		return codes.Aborted, "resource busy, retry", true
	case "57014": // query_canceled
		return codes.Canceled, "request canceled", true
	case "53300", "57P01", "57P02", "57P03", "08000", "08003", "08006", "08001", "08004":
		return codes.Unavailable, "database unavailable, retry later", true
	}
	return codes.Unknown, "", false
}

func hasErrorID(st *status.Status) bool {
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetMetadata()[MetadataErrorID] != "" {
			return true
		}
	}
	return false
}

// NewErrorID returns a random ID for a masked error (16 hex characters).
func NewErrorID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
