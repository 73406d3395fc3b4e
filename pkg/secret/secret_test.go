package secret_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/forgeapps/backbone/pkg/secret"
)

const canary = "sk-canary-7b1e0d2c9f"

func TestNoPrintedFormRevealsTheValue(t *testing.T) {
	s := secret.New(canary)
	holder := struct {
		Name  string
		Value secret.Value
		Ptr   *secret.Value
	}{Name: "k", Value: s, Ptr: &s}

	var forms []string
	for _, verb := range []string{"%s", "%v", "%+v", "%#v", "%q", "%x", "%X", "%d", "%T"} {
		forms = append(forms, fmt.Sprintf(verb, s), fmt.Sprintf(verb, holder), fmt.Sprintf(verb, &s))
	}
	hidden := struct{ v secret.Value }{v: s}
	forms = append(forms, fmt.Sprint(s), fmt.Sprintln(holder), fmt.Sprintf("%v %+v %#v", hidden, hidden, hidden))

	j, err := json.Marshal(holder)
	require.NoError(t, err)
	forms = append(forms, string(j))

	var logs bytes.Buffer
	l := slog.New(slog.NewJSONHandler(&logs, nil))
	l.Info("put secret", "value", s, "holder", holder)
	tl := slog.New(slog.NewTextHandler(&logs, nil))
	tl.Info("put secret", slog.Any("value", s))
	forms = append(forms, logs.String())

	for _, f := range forms {
		require.NotContains(t, f, canary)
		require.NotContains(t, strings.ToLower(f), fmt.Sprintf("%x", canary))
	}
	require.Contains(t, logs.String(), secret.Redacted)
	require.Equal(t, canary, s.Reveal())
}

func TestEqual(t *testing.T) {
	require.True(t, secret.New("a").Equal(secret.New("a")))
	require.False(t, secret.New("a").Equal(secret.New("b")))
	require.True(t, secret.Value{}.IsZero())
	require.Equal(t, 3, secret.New("abc").Len())
}
