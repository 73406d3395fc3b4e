package events

import (
	"testing"

	"github.com/stretchr/testify/require"

	forgeevents "github.com/forgeapps/backbone/pkg/events"
)

func TestConsumerIsListed(t *testing.T) {
	cfg := NewPurgeConsumer(nil, nil).Config()
	require.True(t, forgeevents.IsListed(cfg), "the durable consumer must be on events.DurableConsumers, or Interest retention drops events published before it first runs")
	require.Equal(t, forgeevents.StreamLifecycle, cfg.Stream)
	require.Equal(t, []string{forgeevents.SubjectPurgeRequested}, cfg.Subjects)
}
