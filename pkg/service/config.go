// Package service is the common main of every service: it reads the settings all services
// share, then runs `serve` (telemetry, mTLS, the runtime database pool and its posture check,
// NATS and the outbox relay, the gRPC server, the service's own workers, a graceful stop) or
// `migrate` (the embedded migrations, as the migration role). Each service's cmd/<name>/main.go
// only wires its own handlers into it, so no service can forget a piece or do it differently.
package service

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/forgeapps/backbone/pkg/mtls"
	"github.com/forgeapps/backbone/pkg/owner"
	"github.com/forgeapps/backbone/pkg/secret"
	"github.com/forgeapps/backbone/pkg/telemetry"
	"github.com/forgeapps/backbone/pkg/workload"
)

// Base is the configuration every service shares (docs/conventions.md lists the variables).
// A service's internal/config calls LoadBase with its getenv and adds its own settings.
type Base struct {
	Name        string
	Region      owner.Region
	TrustDomain string
	GRPCAddr    string
	HealthAddr  string
	TLS         mtls.Files
	// DatabaseURL is the runtime role's URL; MigrationDatabaseURL the migration role's (read
	// by `migrate` only). Both may hold passwords, hence secret.Value.
	DatabaseURL          secret.Value
	MigrationDatabaseURL secret.Value
	// RuntimeRole is the role `migrate` grants table privileges to.
	RuntimeRole  string
	NATSURL      string
	LogLevel     slog.Level
	OTLPEndpoint string
	// DevMode turns on development conveniences (the gateway's development identity
	// provider). Never set in production manifests.
	DevMode       bool
	ShutdownGrace time.Duration
}

// LoadBase reads the shared settings of service name through getenv. What only `serve` needs
// (addresses, certificates) is checked by CheckServe, and what only `migrate` needs by Main,
// so a migration Job needs no certificate and no listen address.
func LoadBase(name string, getenv func(string) string) (Base, error) {
	var problems []string
	req := func(key string) string { return strings.TrimSpace(getenv(key)) }
	def := func(key, fallback string) string {
		if v := strings.TrimSpace(getenv(key)); v != "" {
			return v
		}
		return fallback
	}
	b := Base{
		Name:        name,
		TrustDomain: def("FORGE_TRUST_DOMAIN", workload.DefaultTrustDomain),
		GRPCAddr:    req("FORGE_GRPC_ADDR"),
		HealthAddr:  getenv("FORGE_HEALTH_ADDR"),
		TLS: mtls.Files{
			CertFile: req("FORGE_TLS_CERT"),
			KeyFile:  req("FORGE_TLS_KEY"),
			CAFile:   req("FORGE_TLS_CA"),
		},
		DatabaseURL:          secret.New(getenv("DATABASE_URL")),
		MigrationDatabaseURL: secret.New(getenv("MIGRATION_DATABASE_URL")),
		RuntimeRole:          getenv("FORGE_DB_RUNTIME_ROLE"),
		NATSURL:              getenv("NATS_URL"),
		LogLevel:             telemetry.ParseLevel(def("FORGE_LOG_LEVEL", "info")),
		OTLPEndpoint:         getenv("OTEL_EXPORTER_OTLP_ENDPOINT"),
		DevMode:              getenv("FORGE_DEV_MODE") == "1",
		ShutdownGrace:        20 * time.Second,
	}
	region, err := owner.ParseRegion(def("FORGE_REGION", owner.DefaultRegion.String()))
	if err != nil {
		problems = append(problems, "FORGE_REGION: "+err.Error())
	}
	b.Region = region
	if v := getenv("FORGE_SHUTDOWN_GRACE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			problems = append(problems, "FORGE_SHUTDOWN_GRACE: want a positive duration like 20s")
		}
		b.ShutdownGrace = d
	}
	if len(problems) > 0 {
		return Base{}, fmt.Errorf("%s configuration: %s", name, strings.Join(problems, "; "))
	}
	return b, nil
}

// CheckServe reports the settings `serve` needs that are missing.
func (b Base) CheckServe() error {
	var missing []string
	for key, v := range map[string]string{
		"FORGE_GRPC_ADDR": b.GRPCAddr, "FORGE_TLS_CERT": b.TLS.CertFile,
		"FORGE_TLS_KEY": b.TLS.KeyFile, "FORGE_TLS_CA": b.TLS.CAFile,
	} {
		if v == "" {
			missing = append(missing, key)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	slices.Sort(missing)
	return fmt.Errorf("%s configuration: %s required to serve", b.Name, strings.Join(missing, ", "))
}

// LogValue keeps URLs with passwords out of logs when a Base is logged.
func (b Base) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("name", b.Name), slog.String("region", b.Region.String()),
		slog.String("grpc_addr", b.GRPCAddr), slog.String("health_addr", b.HealthAddr),
		slog.Bool("database", !b.DatabaseURL.IsZero()), slog.Bool("nats", b.NATSURL != ""),
		slog.Bool("dev_mode", b.DevMode),
	)
}

// errUsage answers a command neither pkg/service nor the service's own main knows (a service
// may add commands before calling Main: data-lifecycle's backup and restore, the vault's
// restore-keyring; its README lists them).
var errUsage = errors.New("usage: <service> [serve|migrate|<a command of the service, see its README>]")
