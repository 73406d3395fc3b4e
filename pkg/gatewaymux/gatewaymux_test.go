package gatewaymux_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/grpc-ecosystem/grpc-gateway/v2/utilities"
	"github.com/stretchr/testify/require"
	"google.golang.org/genproto/googleapis/api/httpbody"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/forgeapps/backbone/pkg/authz"
	"github.com/forgeapps/backbone/pkg/gatewaymux"
	tenantv1 "github.com/forgeapps/backbone/pkg/gen/forge/tenant/v1"
	"github.com/forgeapps/backbone/pkg/owner"
	"github.com/forgeapps/backbone/pkg/testkit/grpctest"
	"github.com/forgeapps/backbone/pkg/workload"
)

type accounts struct {
	tenantv1.UnimplementedAccountServiceServer
}

func (accounts) GetAccount(ctx context.Context, _ *tenantv1.GetAccountRequest) (*tenantv1.GetAccountResponse, error) {
	o, ok := owner.FromContext(ctx)
	if !ok {
		return nil, errors.New("no owner")
	}
	// The service reports what it received of the client's headers, to prove none arrive.
	md, _ := metadata.FromIncomingContext(ctx)
	seen := strings.Join(append(append(md.Get("authorization"), md.Get("cookie")...), md.Get("x-forwarded-host")...), ",")
	return &tenantv1.GetAccountResponse{Account: &tenantv1.Account{OwnerId: o.ID.String(), DisplayName: seen}}, nil
}

func (accounts) UpdateAccount(ctx context.Context, req *tenantv1.UpdateAccountRequest) (*tenantv1.UpdateAccountResponse, error) {
	o, _ := owner.FromContext(ctx)
	return &tenantv1.UpdateAccountResponse{Account: &tenantv1.Account{OwnerId: o.ID.String(), DisplayName: req.GetDisplayName()}}, nil
}

// edge stands in for the gateway's authentication: a request with "Authorization: Bearer A"
// acts as owner A; anything else is anonymous.
func edge(t *testing.T, a owner.ID) http.Handler {
	t.Helper()
	pki := grpctest.NewPKI(t)
	addr := pki.Start(t, grpctest.Server{
		Name: workload.Tenant,
		Table: authz.Table{
			tenantv1.AccountService_GetAccount_FullMethodName:    authz.Owner(workload.Gateway),
			tenantv1.AccountService_UpdateAccount_FullMethodName: authz.Owner(workload.Gateway),
		},
		Register: func(r grpc.ServiceRegistrar) { tenantv1.RegisterAccountServiceServer(r, accounts{}) },
	})
	mux := gatewaymux.New()
	require.NoError(t, tenantv1.RegisterAccountServiceHandler(context.Background(), mux, pki.Dial(t, addr, workload.Gateway, workload.Tenant)))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "Bearer A" {
			r = r.WithContext(grpctest.AsOwner(r.Context(), a))
		}
		gatewaymux.StripClientHeaders(r)
		mux.ServeHTTP(w, r)
	})
}

func do(t *testing.T, h http.Handler, method, path, body string, headers map[string]string) (int, map[string]any) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	raw, _ := io.ReadAll(rec.Body)
	var out map[string]any
	require.NoError(t, json.Unmarshal(raw, &out), string(raw))
	return rec.Code, out
}

func TestClientHeadersCannotSetTheOwner(t *testing.T) {
	a, victim := owner.New(), owner.New()
	h := edge(t, a)
	spoofs := map[string]string{
		"Grpc-Metadata-X-Forge-Owner-Id":     victim.String(),
		"Grpc-Metadata-X-Forge-Owner-Region": "us-east",
		"X-Forge-Owner-Id":                   victim.String(),
		"X-Forge-Owner-Region":               "us-east",
		"Grpc-Metadata-X-Forge-Session-Id":   "s",
		"Cookie":                             "__Host-forge_session=x",
		"X-Forwarded-Host":                   "evil.test",
	}

	code, _ := do(t, h, http.MethodGet, "/v1/account", "", spoofs)
	require.Equal(t, http.StatusUnauthorized, code, "anonymous with spoofed owner headers is refused")

	withAuth := map[string]string{"Authorization": "Bearer A"}
	for k, v := range spoofs {
		withAuth[k] = v
	}
	code, body := do(t, h, http.MethodGet, "/v1/account", "", withAuth)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, a.String(), body["account"].(map[string]any)["ownerId"], "the request acts as the authenticated tenant")
	seen := body["account"].(map[string]any)["displayName"].(string)
	for _, leaked := range []string{"Bearer", "__Host-forge_session", "evil.test"} {
		require.NotContains(t, seen, leaked, "no credential or client-forwarded header reaches the service")
	}
}

func TestUnroutableMethodIs405(t *testing.T) {
	h := edge(t, owner.New())
	code, body := do(t, h, http.MethodPut, "/v1/account", "{}", map[string]string{"Authorization": "Bearer A"})
	require.Equal(t, http.StatusMethodNotAllowed, code)
	require.NotEmpty(t, body["message"])
}

func TestOwnerInBodyOrQueryIsRefused(t *testing.T) {
	a := owner.New()
	h := edge(t, a)
	auth := map[string]string{"Authorization": "Bearer A"}

	code, body := do(t, h, http.MethodPatch, "/v1/account", `{"displayName":"x","ownerId":"`+owner.New().String()+`"}`, auth)
	require.Equal(t, http.StatusBadRequest, code, "an unknown body field is an error, not silently dropped")
	require.EqualValues(t, 3, body["code"], "google.rpc.Status JSON with INVALID_ARGUMENT")

	// A request message without fields has no query parser: the parameter has no effect.
	code, body = do(t, h, http.MethodGet, "/v1/account?owner_id="+owner.New().String(), "", auth)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, a.String(), body["account"].(map[string]any)["ownerId"])

	code, body = do(t, h, http.MethodPatch, "/v1/account", `{"displayName": 7}`, auth)
	require.Equal(t, http.StatusBadRequest, code, "wrong JSON type")
	require.NotEmpty(t, body["message"])

	code, _ = do(t, h, http.MethodPatch, "/v1/account", `{"displayName":`, auth)
	require.Equal(t, http.StatusBadRequest, code, "malformed JSON")
}

func TestUnknownQueryParametersAreRefused(t *testing.T) {
	gatewaymux.New() // installs the strict parser
	tests := []struct {
		query   string
		wantErr bool
	}{
		{query: "page_size=10&pageToken=abc"},
		{query: "owner_id=" + owner.New().String(), wantErr: true},
		{query: "page_size.x=1", wantErr: true},
		{query: "pageSize=1000", wantErr: false}, // range is checked by validation, not parsing
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			values, err := url.ParseQuery(tt.query)
			require.NoError(t, err)
			err = runtime.PopulateQueryParameters(&tenantv1.ListCreditEntriesRequest{}, values, utilities.NewDoubleArray(nil))
			if tt.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
		})
	}
}

func TestCORSAllowsOnlyTheConsole(t *testing.T) {
	h := gatewaymux.CORS([]string{"https://console.localhost"}, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	tests := []struct {
		origin string
		allow  bool
	}{
		{origin: "https://console.localhost", allow: true},
		{origin: "https://a1b2c3.apps.localhost"},
		{origin: "https://console.localhost.evil.test"},
		{origin: "null"},
	}
	for _, tt := range tests {
		t.Run(tt.origin, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodOptions, "/v1/account", nil)
			req.Header.Set("Origin", tt.origin)
			req.Header.Set("Access-Control-Request-Method", http.MethodPatch)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			got := rec.Header().Get("Access-Control-Allow-Origin")
			if tt.allow {
				require.Equal(t, tt.origin, got)
				require.Equal(t, "true", rec.Header().Get("Access-Control-Allow-Credentials"))
			} else {
				require.Empty(t, got)
			}
		})
	}
}

// TestStreamedHttpBodyIsTheBodyExactly: a server stream of google.api.HttpBody (an export
// archive) reaches the client as the concatenated chunks, byte for byte, with the first
// chunk's content type: grpc-gateway's default stream delimiter would put a newline after
// every chunk and corrupt the file.
func TestStreamedHttpBodyIsTheBodyExactly(t *testing.T) {
	mux := gatewaymux.New()
	chunks := []*httpbody.HttpBody{
		{ContentType: "application/zip", Data: []byte("PK\x03\x04first")},
		{Data: []byte("\n")}, // a chunk that is itself a newline
		{Data: []byte("last\x00")},
	}
	req := httptest.NewRequest(http.MethodGet, "/v1/exports/x/archive?token=t", nil)
	req.Header.Set("Accept", "*/*")
	_, out := runtime.MarshalerForRequest(mux, req)
	rec := httptest.NewRecorder()
	ctx := runtime.NewServerMetadataContext(context.Background(), runtime.ServerMetadata{})
	i := 0
	runtime.ForwardResponseStream(ctx, mux, out, rec, req, func() (proto.Message, error) {
		if i == len(chunks) {
			return nil, io.EOF
		}
		i++
		return chunks[i-1], nil
	})
	require.Equal(t, http.StatusOK, rec.Code)
	require.Equal(t, "application/zip", rec.Header().Get("Content-Type"))
	require.Equal(t, "PK\x03\x04first\nlast\x00", rec.Body.String(), "the chunks and nothing else")
}

// TestStreamErrorIsAStatus: a stream that fails before its first chunk (a used download
// link) answers the google.rpc.Status JSON every other error is, with the matching HTTP
// status (grpc-gateway would wrap it in {"error": ...}).
func TestStreamErrorIsAStatus(t *testing.T) {
	mux := gatewaymux.New()
	req := httptest.NewRequest(http.MethodGet, "/v1/exports/x/archive?token=t", nil)
	_, out := runtime.MarshalerForRequest(mux, req)
	rec := httptest.NewRecorder()
	ctx := runtime.NewServerMetadataContext(context.Background(), runtime.ServerMetadata{})
	runtime.ForwardResponseStream(ctx, mux, out, rec, req, func() (proto.Message, error) {
		return nil, status.Error(codes.NotFound, "download link not found or already used")
	})
	require.Equal(t, http.StatusNotFound, rec.Code)
	require.Equal(t, "application/json", rec.Header().Get("Content-Type"))
	var got map[string]any
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &got), rec.Body.String())
	require.Equal(t, float64(codes.NotFound), got["code"], rec.Body.String())
	require.Equal(t, "download link not found or already used", got["message"])
}
