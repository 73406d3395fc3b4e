package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/forgeapps/backbone/pkg/workload"
)

func TestRun(t *testing.T) {
	tests := []struct {
		name    string
		args    func(dir string) []string
		trust   string
		wantErr bool
	}{
		{name: "defaults", args: func(dir string) []string { return []string{"-dir", dir} }, trust: workload.DefaultTrustDomain},
		{
			name: "trust domain and validity",
			args: func(dir string) []string {
				return []string{"-dir", dir, "-trust-domain", "example.test", "-validity", "2h"}
			},
			trust: "example.test",
		},
		{name: "bad validity", args: func(dir string) []string { return []string{"-dir", dir, "-validity", "-1h"} }, wantErr: true},
		{name: "bad trust domain", args: func(dir string) []string { return []string{"-dir", dir, "-trust-domain", "Bad Domain"} }, wantErr: true},
		{name: "stray argument", args: func(dir string) []string { return []string{"-dir", dir, "extra"} }, wantErr: true},
		{name: "unknown flag", args: func(string) []string { return []string{"-nope"} }, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "certs")
			var out bytes.Buffer
			err := run(context.Background(), tt.args(dir), &out)
			if tt.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.Contains(t, out.String(), dir)

			caPEM, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
			require.NoError(t, err)
			roots := x509.NewCertPool()
			require.True(t, roots.AppendCertsFromPEM(caPEM))

			names := append(workload.Services(), workload.Billing, workload.Builder)
			require.Contains(t, names, workload.Gateway)
			for _, name := range names {
				pair, err := tls.LoadX509KeyPair(filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem"))
				require.NoError(t, err, name)
				id, err := workload.FromCertificate(pair.Leaf)
				require.NoError(t, err)
				require.Equal(t, workload.Must(tt.trust, name), id)
				_, err = pair.Leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: name, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
				require.NoError(t, err, name)
				require.True(t, pair.Leaf.NotAfter.Before(time.Now().Add(25*time.Hour)), "short-lived")
			}
			_, err = tls.LoadX509KeyPair(filepath.Join(dir, "edge.pem"), filepath.Join(dir, "edge-key.pem"))
			require.NoError(t, err)
		})
	}
}

func TestRunCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	dir := filepath.Join(t.TempDir(), "certs")
	require.ErrorIs(t, run(ctx, []string{"-dir", dir}, &bytes.Buffer{}), context.Canceled)
	_, err := os.Stat(dir)
	require.ErrorIs(t, err, os.ErrNotExist)
}
