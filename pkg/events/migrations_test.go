package events

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/forgeapps/backbone/pkg/database"
)

// The events source passes the start-up posture check when the service lists its definer
// functions (the relay's and the unowned dead letter's), and only then: they are SECURITY DEFINER paths that must be reviewed.
func TestMigrationsPassPostureWithTheirDefinerFunctions(t *testing.T) {
	env := newPG(t)
	ctx := context.Background()
	require.NoError(t, database.CheckPosture(ctx, env.DB, database.Posture{
		Schema: env.Names.Schema, DefinerFunctions: SecurityDefinerFunctions(),
	}))

	err := database.CheckPosture(ctx, env.DB, database.Posture{Schema: env.Names.Schema})
	var perr *database.PostureError
	require.True(t, errors.As(err, &perr), "unlisted definer functions must be refused: %v", err)
	var unlisted []string
	for _, v := range perr.Violations {
		if v.Rule == database.RuleUnlistedDefiner {
			unlisted = append(unlisted, v.Object)
		}
	}
	assert.Len(t, unlisted, 3, "%v", perr.Violations)
}
