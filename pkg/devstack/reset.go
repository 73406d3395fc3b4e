package devstack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/forgeapps/backbone/pkg/database"
)

// ResetConfig is what Reset needs.
type ResetConfig struct {
	// StateDir is the local stack's state (Root/.dev for `make run`).
	StateDir string
	// AdminURL is a PostgreSQL administrator URL; empty finds or starts one, as Start does.
	AdminURL string
	// DatabaseSuffix selects the databases of one stack (empty: those of `make run`).
	DatabaseSuffix string
	Logger         *slog.Logger
}

// stateToReset are the directories of StateDir that hold the local stack's data: object
// storage, the root key and the other generated keys, the embedded NATS store. The
// development certificates (certs) and a throwaway PostgreSQL cluster (pgdata) stay: they
// hold no data of the suite, and the next `make run` reuses them.
var stateToReset = []string{"blob", "keys", "nats"}

// Reset deletes everything the local stack keeps between runs, so that the next `make run`
// starts from nothing: every service's database and roles, and the stack's data directories.
// The databases and the keys go together on purpose: the data is sealed under the root key
// in keys, and a database kept without it could not be read again. It refuses while a stack
// answers on the development ports: stop `make run` first.
func Reset(ctx context.Context, cfg ResetConfig) error {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.StateDir == "" {
		return errors.New("devstack: reset: no state directory")
	}
	if cfg.DatabaseSuffix == "" {
		for _, sp := range Specs() {
			if Answers(loopback(sp.HealthPort)) {
				return fmt.Errorf("devstack: reset: %s answers on %s: stop `make run` first", sp.Name, loopback(sp.HealthPort))
			}
		}
	}
	adminURL, stop, err := Deps{Logger: cfg.Logger, StateDir: cfg.StateDir}.EnsurePostgres(ctx, cfg.AdminURL)
	if err != nil {
		return fmt.Errorf("devstack: reset: %w", err)
	}
	defer stop()
	for _, sp := range Specs() {
		if sp.Schema == "" {
			continue
		}
		spec := sp.DatabaseSpec(cfg.DatabaseSuffix)
		if err := database.Drop(ctx, adminURL, spec); err != nil {
			return fmt.Errorf("devstack: reset: %s: %w", sp.Name, err)
		}
		cfg.Logger.Info("dropped", "service", sp.Name, "database", spec.Database)
	}
	for _, dir := range stateToReset {
		path := filepath.Join(cfg.StateDir, dir)
		if err := os.RemoveAll(path); err != nil {
			return fmt.Errorf("devstack: reset: %w", err)
		}
		cfg.Logger.Info("removed", "dir", path)
	}
	return nil
}
