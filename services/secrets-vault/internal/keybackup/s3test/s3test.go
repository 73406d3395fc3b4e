// Package s3test serves an in-memory S3 (gofakes3 with its s3mem backend, which keeps object
// versions like S3 does) over HTTP on loopback, for tests that open the keyring bucket through
// the production s3:// URL and the AWS SDK rather than through a Go fake. Only tests import it.
package s3test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync/atomic"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/stretchr/testify/require"
)

// Server is a running in-memory S3.
type Server struct {
	backend *s3mem.Backend
	srv     *httptest.Server
	// denyVersioningRead makes GetBucketVersioning answer AccessDenied, as S3 does when the
	// caller's role lacks s3:GetBucketVersioning.
	denyVersioningRead atomic.Bool
}

// Start starts a server that lives until the test ends. It points the AWS SDK's default
// credential chain at dummy static keys and turns off the EC2 metadata lookup, so nothing
// outside the test is asked; it uses t.Setenv, so the test cannot run in parallel.
func Start(tb testing.TB) *Server {
	tb.Helper()
	tb.Setenv("AWS_ACCESS_KEY_ID", "s3test")
	tb.Setenv("AWS_SECRET_ACCESS_KEY", "s3test")
	tb.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	s := &Server{backend: s3mem.New()}
	fake := gofakes3.New(s.backend).Server()
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := r.URL.Query()["versioning"]; ok && r.Method == http.MethodGet && s.denyVersioningRead.Load() {
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusForbidden)
			_, _ = w.Write([]byte(`<?xml version="1.0" encoding="UTF-8"?>` +
				`<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>`))
			return
		}
		fake.ServeHTTP(w, r)
	}))
	tb.Cleanup(s.srv.Close)
	return s
}

// CreateBucket creates a bucket that never had versioning and returns its s3:// URL, as
// FORGE_KEYRING_BACKUP_URL would name it.
func (s *Server) CreateBucket(tb testing.TB, name string) string {
	tb.Helper()
	require.NoError(tb, s.backend.CreateBucket(name))
	q := url.Values{"region": {"us-east-1"}, "endpoint": {s.srv.URL}, "use_path_style": {"true"}}
	return "s3://" + name + "?" + q.Encode()
}

// SetVersioning sets the bucket's versioning status: Enabled, or Suspended (which S3 records
// only for a bucket that had it Enabled, so enable it first).
func (s *Server) SetVersioning(tb testing.TB, bucket string, status gofakes3.VersioningStatus) {
	tb.Helper()
	require.NoError(tb, s.backend.SetVersioningConfiguration(bucket, gofakes3.VersioningConfiguration{Status: status}))
	got, err := s.backend.VersioningConfiguration(bucket)
	require.NoError(tb, err)
	require.Equal(tb, status, got.Status, "versioning status set")
}

// DenyVersioningRead makes every later GetBucketVersioning fail with AccessDenied.
func (s *Server) DenyVersioningRead() { s.denyVersioningRead.Store(true) }
