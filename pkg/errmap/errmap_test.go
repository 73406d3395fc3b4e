package errmap_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/forgeapps/backbone/pkg/errmap"
	"github.com/forgeapps/backbone/pkg/fault"
)

func TestToStatus(t *testing.T) {
	tests := []struct {
		name     string
		err      error
		wantCode codes.Code
		wantMsg  string
	}{
		{name: "not found fault", err: fault.NotFound("app not found"), wantCode: codes.NotFound, wantMsg: "app not found"},
		{name: "wrapped fault", err: fmt.Errorf("get: %w", fault.FailedPrecondition("tenant homed in eu-west")), wantCode: codes.FailedPrecondition, wantMsg: "tenant homed in eu-west"},
		{name: "fault cause stays hidden", err: fault.Unavailable("vault unavailable").Wrap(errors.New("dial tcp 10.0.0.7:443: secret-ish detail")), wantCode: codes.Unavailable, wantMsg: "vault unavailable"},
		{name: "no rows", err: fmt.Errorf("scan: %w", pgx.ErrNoRows), wantCode: codes.NotFound, wantMsg: "not found"},
		{name: "unique violation", err: &pgconn.PgError{Code: "23505", Message: "duplicate key value violates unique constraint \"apps_pkey\""}, wantCode: codes.AlreadyExists, wantMsg: "already exists"},
		{name: "serialization failure", err: &pgconn.PgError{Code: "40001"}, wantCode: codes.Aborted},
		{name: "check violation", err: &pgconn.PgError{Code: "23514"}, wantCode: codes.InvalidArgument},
		{name: "canceled", err: context.Canceled, wantCode: codes.Canceled},
		{name: "deadline", err: fmt.Errorf("x: %w", context.DeadlineExceeded), wantCode: codes.DeadlineExceeded},
		{name: "downstream not found passes", err: status.Error(codes.NotFound, "secret not found"), wantCode: codes.NotFound, wantMsg: "secret not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := status.Convert(errmap.Mapper{}.ToStatus(context.Background(), "/x.v1.S/M", tt.err))
			require.Equal(t, tt.wantCode, st.Code())
			if tt.wantMsg != "" {
				require.Equal(t, tt.wantMsg, st.Message())
			}
			require.NotContains(t, st.Message(), "apps_pkey", "driver text never reaches the client")
		})
	}
}

func TestMaskedInternal(t *testing.T) {
	internalCauses := []error{
		errors.New("open /etc/forge/kek: permission denied"),
		&pgconn.PgError{Code: "42501", Message: "new row violates row-level security policy for table \"apps\""},
		&pgconn.PgError{Code: "42P01", Message: "relation \"secret_values\" does not exist"},
		status.Error(codes.PermissionDenied, "workload spiffe://forge.internal/apps may not call Shred"),
		status.Error(codes.Unknown, "panic in handler"),
	}
	for _, cause := range internalCauses {
		t.Run(cause.Error(), func(t *testing.T) {
			var logs bytes.Buffer
			m := errmap.Mapper{Logger: slog.New(slog.NewJSONHandler(&logs, nil))}
			st := status.Convert(m.ToStatus(context.Background(), "/x.v1.S/M", cause))
			require.Equal(t, codes.Internal, st.Code())
			require.NotContains(t, st.Message(), cause.Error())

			var id string
			for _, d := range st.Details() {
				if info, ok := d.(*errdetails.ErrorInfo); ok {
					id = info.GetMetadata()[errmap.MetadataErrorID]
				}
			}
			require.Len(t, id, 16)
			require.Contains(t, st.Message(), id, "the client sees the error id")
			require.Contains(t, logs.String(), id, "the log holds the same id")
			require.Contains(t, logs.String(), "internal error")
		})
	}
}

func TestAlreadyMaskedDownstreamPassesThrough(t *testing.T) {
	first := errmap.Mapper{}.Internal(context.Background(), "/a", errors.New("boom"))
	again := status.Convert(errmap.Mapper{}.ToStatus(context.Background(), "/b", first.Err()))
	require.Equal(t, first.Message(), again.Message(), "the downstream error id is kept")
}

func TestFieldViolationsAndReason(t *testing.T) {
	f := fault.InvalidField("name", "must not be empty")
	st := status.Convert(errmap.Mapper{}.ToStatus(context.Background(), "/m", f))
	require.Equal(t, codes.InvalidArgument, st.Code())
	var br *errdetails.BadRequest
	for _, d := range st.Details() {
		if b, ok := d.(*errdetails.BadRequest); ok {
			br = b
		}
	}
	require.NotNil(t, br)
	require.Equal(t, "name", br.GetFieldViolations()[0].GetField())

	r := fault.FailedPrecondition("tenant is homed in eu-west").WithReason("WRONG_REGION", map[string]string{"home_region": "eu-west"})
	st = status.Convert(errmap.Mapper{}.ToStatus(context.Background(), "/m", r))
	var info *errdetails.ErrorInfo
	for _, d := range st.Details() {
		if i, ok := d.(*errdetails.ErrorInfo); ok {
			info = i
		}
	}
	require.NotNil(t, info)
	require.Equal(t, "eu-west", info.GetMetadata()["home_region"])
}
