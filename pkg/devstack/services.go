// Package devstack runs the whole suite on one machine for a newcomer (`make run`) and makes
// sure the real dependencies the tests talk to are up (`make test`): PostgreSQL, NATS
// JetStream, development certificates, and every service as its own process with its own
// workload certificate, migrations applied, on loopback ports.
//
// It only ever uses what a production deployment uses (mTLS, the runtime and migration roles,
// the `migrate` subcommand): the local stack is the real suite, configured for one machine.
package devstack

import (
	"fmt"
	"strings"

	"github.com/forgeapps/backbone/pkg/database"
	"github.com/forgeapps/backbone/pkg/workload"
)

// ServiceSpec is how the local stack runs one service.
type ServiceSpec struct {
	Name string
	// Schema is the service's Postgres schema; empty for services without a database.
	Schema string
	// GRPCPort, HealthPort and HTTPPort (0 when none) are loopback ports.
	GRPCPort, HealthPort, HTTPPort int
	// Blob says the service keeps objects (a local directory stands in for the bucket).
	Blob bool
	// KeyFile says the service reads the region's root key (secrets-vault only).
	KeyFile bool
}

// Specs lists the services in start-up order (dependencies first). Ports follow
// docs/conventions.md.
func Specs() []ServiceSpec {
	return []ServiceSpec{
		{Name: workload.SecretsVault, Schema: "vault", GRPCPort: 9103, HealthPort: 9203, KeyFile: true},
		{Name: workload.Tenant, Schema: "tenant", GRPCPort: 9101, HealthPort: 9201},
		{Name: workload.Apps, Schema: "apps", GRPCPort: 9102, HealthPort: 9202, Blob: true},
		{Name: workload.SandboxOrigin, Schema: "sandbox", GRPCPort: 9104, HealthPort: 9204, HTTPPort: 8090},
		{Name: workload.DataLifecycle, Schema: "lifecycle", GRPCPort: 9105, HealthPort: 9205, Blob: true},
		{Name: workload.Gateway, GRPCPort: 9100, HealthPort: 9200, HTTPPort: 8080},
	}
}

// DatabaseSpec names the database, schema and roles of a service in the local stack; suffix
// (empty for `make run`) keeps the databases of parallel test stacks apart.
func (s ServiceSpec) DatabaseSpec(suffix string) database.Spec {
	snake := strings.ReplaceAll(s.Name, "-", "_") + suffix
	return database.Spec{
		Database:      "forge_" + snake,
		Schema:        s.Schema,
		MigrationRole: "forge_" + snake + "_migrator",
		RuntimeRole:   "forge_" + snake + "_app",
	}
}

// AddrEnv names the variable carrying a service's gRPC address for its clients ("" for the
// gateway, which nobody dials).
func AddrEnv(service string) string {
	switch service {
	case workload.Tenant:
		return "FORGE_TENANT_ADDR"
	case workload.Apps:
		return "FORGE_APPS_ADDR"
	case workload.SecretsVault:
		return "FORGE_VAULT_ADDR"
	case workload.SandboxOrigin:
		return "FORGE_SANDBOX_ADDR"
	case workload.DataLifecycle:
		return "FORGE_LIFECYCLE_ADDR"
	}
	return ""
}

func loopback(port int) string { return fmt.Sprintf("127.0.0.1:%d", port) }
