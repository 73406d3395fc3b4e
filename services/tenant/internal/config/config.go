// Package config is the only place the tenant service reads its environment: the settings
// every service shares (pkg/service.LoadBase) and the tenant's own, checked at start so a bad
// value stops the process instead of surfacing later.
package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/forgeapps/backbone/pkg/service"
	"github.com/forgeapps/backbone/pkg/workload"

	"github.com/forgeapps/backbone/services/tenant/internal/tenant"
)

// Config is the tenant service's configuration.
type Config struct {
	Base service.Base
	// SessionTTL is how long a session lives after sign-in (FORGE_SESSION_TTL, a Go
	// duration between 5m and 2160h; default 168h).
	SessionTTL time.Duration
	// PurgeBatchSize bounds the rows one purge transaction deletes (FORGE_PURGE_BATCH_SIZE,
	// 1 to 10000; default 1000).
	PurgeBatchSize int
}

// The tenant service's own variables.
const (
	EnvSessionTTL     = "FORGE_SESSION_TTL"
	EnvPurgeBatchSize = "FORGE_PURGE_BATCH_SIZE"
)

// Load reads the configuration through getenv.
func Load(getenv func(string) string) (Config, error) {
	base, err := service.LoadBase(workload.Tenant, getenv)
	if err != nil {
		return Config{}, err
	}
	cfg := Config{Base: base, SessionTTL: tenant.DefaultSessionTTL, PurgeBatchSize: 1000}
	var problems []string
	if v := strings.TrimSpace(getenv(EnvSessionTTL)); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < tenant.MinSessionTTL || d > tenant.MaxSessionTTL {
			problems = append(problems, fmt.Sprintf("%s: want a duration between %s and %s", EnvSessionTTL, tenant.MinSessionTTL, tenant.MaxSessionTTL))
		} else {
			cfg.SessionTTL = d
		}
	}
	if v := strings.TrimSpace(getenv(EnvPurgeBatchSize)); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 10000 {
			problems = append(problems, EnvPurgeBatchSize+": want an integer from 1 to 10000")
		} else {
			cfg.PurgeBatchSize = n
		}
	}
	if len(problems) > 0 {
		return Config{}, fmt.Errorf("tenant configuration: %s", strings.Join(problems, "; "))
	}
	return cfg, nil
}
