package fault_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/forgeapps/backbone/pkg/fault"
)

func TestKindSurvivesWrapping(t *testing.T) {
	base := fault.NotFound("app not found")
	wrapped := fmt.Errorf("get app: %w", base)
	require.Equal(t, fault.KindNotFound, fault.KindOf(wrapped))
	require.True(t, fault.Is(wrapped, fault.KindNotFound))
	require.False(t, fault.Is(wrapped, fault.KindInvalidArgument))
	require.Equal(t, fault.KindUnknown, fault.KindOf(errors.New("boom")))
	require.False(t, fault.Is(nil, fault.KindUnknown))
}

func TestWrapKeepsCauseOutOfMessage(t *testing.T) {
	cause := errors.New("pq: relation secret_table does not exist")
	f := fault.FailedPrecondition("tenant keys were shredded").Wrap(cause)
	require.Equal(t, "tenant keys were shredded", f.Message, "the client-safe message has no cause text")
	require.ErrorIs(t, f, cause, "the cause is kept for logging")
}

func TestInvalidField(t *testing.T) {
	f := fault.InvalidField("name", "must not be empty")
	require.Equal(t, fault.KindInvalidArgument, f.Kind)
	require.Equal(t, []fault.FieldViolation{{Field: "name", Description: "must not be empty"}}, f.Violations)
}

func TestWithReasonCopies(t *testing.T) {
	base := fault.FailedPrecondition("tenant is homed elsewhere")
	r := base.WithReason("WRONG_REGION", map[string]string{"home_region": "eu-west"})
	require.Empty(t, base.Reason, "the original is not changed")
	require.Equal(t, "WRONG_REGION", r.Reason)
}
