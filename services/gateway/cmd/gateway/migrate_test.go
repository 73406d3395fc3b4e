package main

import (
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestMigrateNeedsNothing: the gateway owns no database, so `migrate` has nothing to do and
// needs none of serve's settings; serve still refuses to start without them.
func TestMigrateNeedsNothing(t *testing.T) {
	getenv := func(string) string { return "" }
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"migrate"}, getenv, &out))
	require.Contains(t, out.String(), "no database to migrate")
	require.Error(t, run(context.Background(), []string{"serve"}, getenv, io.Discard), "serve needs its own configuration")
}
