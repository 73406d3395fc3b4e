package main

import (
	"testing"

	"github.com/forgeapps/backbone/pkg/testkit/pgtest"

	"github.com/forgeapps/backbone/services/tenant/internal/postgres"
)

// TestMigrateNeedsOnlyItsVariables: `migrate` runs with the migration Job's two variables
// alone, and serve still refuses to start without its own configuration.
func TestMigrateNeedsOnlyItsVariables(t *testing.T) {
	pgtest.CheckMigrateCommand(t, run, postgres.Schema, "accounts")
}
