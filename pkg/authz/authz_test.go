package authz_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/forgeapps/backbone/pkg/authz"
	"github.com/forgeapps/backbone/pkg/workload"
)

func id(name string) workload.ID { return workload.Must(workload.DefaultTrustDomain, name) }

func TestAuthorize(t *testing.T) {
	table := authz.Table{
		"/s.v1.S/Get":   authz.Owner(workload.Gateway),
		"/s.v1.S/Purge": authz.SystemMethod(workload.DataLifecycle),
		"/s.v1.S/List":  authz.OptionalOwner(workload.Gateway),
	}.WithStandardServices()
	require.NoError(t, table.Validate())

	tests := []struct {
		name       string
		method     string
		caller     workload.ID
		wantErr    bool
		wantAssert bool
	}{
		{name: "listed owner caller", method: "/s.v1.S/Get", caller: id(workload.Gateway), wantAssert: true},
		{name: "unlisted caller", method: "/s.v1.S/Get", caller: id(workload.Apps), wantErr: true},
		{name: "system caller may not assert", method: "/s.v1.S/Purge", caller: id(workload.DataLifecycle)},
		{name: "gateway may not call system", method: "/s.v1.S/Purge", caller: id(workload.Gateway), wantErr: true},
		{name: "optional owner", method: "/s.v1.S/List", caller: id(workload.Gateway), wantAssert: true},
		{name: "unknown method", method: "/s.v1.S/Nope", caller: id(workload.Gateway), wantErr: true},
		{name: "no caller", method: "/s.v1.S/Get", wantErr: true},
		{name: "health from any peer", method: "/grpc.health.v1.Health/Check", caller: id(workload.Billing)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := table.Authorize(tt.method, tt.caller)
			if tt.wantErr {
				require.True(t, errors.Is(err, authz.ErrNotAllowed), "got %v", err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.wantAssert, d.MayAssertOwner)
		})
	}
}

func TestValidate(t *testing.T) {
	require.Error(t, authz.Table{"/a/B": {Mode: authz.OwnerRequired}}.Validate(), "no callers")
	require.Error(t, authz.Table{"/a/B": {Callers: []string{"gateway"}}}.Validate(), "no mode")
	require.Error(t, authz.Table{"/a/B": authz.Owner("Not A Name")}.Validate())
}

func TestCovers(t *testing.T) {
	srv := grpc.NewServer()
	healthpb.RegisterHealthServer(srv, health.NewServer())
	require.Error(t, authz.Table{}.Covers(srv), "health is registered but not listed")
	require.NoError(t, authz.Table{}.WithStandardServices().Covers(srv))
}
