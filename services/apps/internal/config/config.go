// Package config reads the apps service's configuration from the environment, in one place,
// and checks it at start: the settings every service shares (service.LoadBase) plus the
// service's own (object storage, the addresses of secrets-vault and tenant, the sandbox
// domain that share links point to).
package config

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/forgeapps/backbone/pkg/service"
	"github.com/forgeapps/backbone/pkg/workload"
)

// Config is the apps service's configuration.
type Config struct {
	service.Base
	// BlobURL is the gocloud.dev bucket URL of app objects (FORGE_BLOB_URL): file:///abs/dir
	// in development, s3://bucket?region=... in production. Required to serve.
	BlobURL string
	// VaultAddr and TenantAddr are the gRPC addresses of secrets-vault (FORGE_VAULT_ADDR) and
	// tenant (FORGE_TENANT_ADDR). Required to serve.
	VaultAddr, TenantAddr string
	// SandboxDomain is where apps open (FORGE_SANDBOX_DOMAIN, host[:port]): an app's origin is
	// https://<label>.<SandboxDomain>/ (label: the app ID without dashes). Optional: without
	// it answers carry no URLs.
	SandboxDomain string
}

// Load reads the configuration through getenv.
func Load(getenv func(string) string) (Config, error) {
	base, err := service.LoadBase(workload.Apps, getenv)
	if err != nil {
		return Config{}, err
	}
	c := Config{
		Base:          base,
		BlobURL:       strings.TrimSpace(getenv("FORGE_BLOB_URL")),
		VaultAddr:     strings.TrimSpace(getenv("FORGE_VAULT_ADDR")),
		TenantAddr:    strings.TrimSpace(getenv("FORGE_TENANT_ADDR")),
		SandboxDomain: strings.TrimSpace(getenv("FORGE_SANDBOX_DOMAIN")),
	}
	var problems []string
	if u, err := url.Parse(c.BlobURL); c.BlobURL != "" && (err != nil || u.Scheme == "") {
		problems = append(problems, "FORGE_BLOB_URL: want a bucket URL such as file:///absolute/dir or s3://bucket")
	}
	if c.SandboxDomain != "" && (strings.ContainsAny(c.SandboxDomain, "/?#@ ") || strings.HasPrefix(c.SandboxDomain, ".")) {
		problems = append(problems, "FORGE_SANDBOX_DOMAIN: want host[:port], like apps.localhost:8090")
	}
	if len(problems) > 0 {
		return Config{}, fmt.Errorf("apps configuration: %s", strings.Join(problems, "; "))
	}
	return c, nil
}

// RequireServe checks what `serve` needs beyond what `migrate` does.
func (c Config) RequireServe() error {
	var problems []string
	if c.BlobURL == "" {
		problems = append(problems, "FORGE_BLOB_URL is required")
	}
	if c.VaultAddr == "" {
		problems = append(problems, "FORGE_VAULT_ADDR is required")
	}
	if c.TenantAddr == "" {
		problems = append(problems, "FORGE_TENANT_ADDR is required")
	}
	if len(problems) > 0 {
		return fmt.Errorf("apps configuration: %s", strings.Join(problems, "; "))
	}
	return nil
}
