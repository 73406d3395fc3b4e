package owner_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/forgeapps/backbone/pkg/owner"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr bool
	}{
		{name: "canonical", in: "0b0f6a35-6d1f-4c43-9f0f-3f4d2c1b0a99"},
		{name: "upper case is read", in: "0B0F6A35-6D1F-4C43-9F0F-3F4D2C1B0A99"},
		{name: "empty", in: "", wantErr: true},
		{name: "nil uuid", in: "00000000-0000-0000-0000-000000000000", wantErr: true},
		{name: "braced", in: "{0b0f6a35-6d1f-4c43-9f0f-3f4d2c1b0a99}", wantErr: true},
		{name: "urn form", in: "urn:uuid:0b0f6a35-6d1f-4c43-9f0f-3f4d2c1b0a99", wantErr: true},
		{name: "email", in: "alice@example.com", wantErr: true},
		{name: "sql", in: "' OR 1=1 --", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := owner.Parse(tt.in)
			if tt.wantErr {
				require.Error(t, err)
				require.True(t, id.IsZero())
				return
			}
			require.NoError(t, err)
			require.Equal(t, "0b0f6a35-6d1f-4c43-9f0f-3f4d2c1b0a99", id.String())
		})
	}
}

func TestNewIsRandom(t *testing.T) {
	seen := map[owner.ID]bool{}
	for range 1000 {
		id := owner.New()
		require.False(t, id.IsZero())
		require.False(t, seen[id], "duplicate owner id")
		seen[id] = true
	}
}

func TestContext(t *testing.T) {
	_, ok := owner.FromContext(context.Background())
	require.False(t, ok, "a bare context has no owner")

	_, ok = owner.FromContext(owner.NewContext(context.Background(), owner.Owner{}))
	require.False(t, ok, "a zero owner is no owner")

	o := owner.Owner{ID: owner.New(), HomeRegion: owner.EUWest}
	got, ok := owner.FromContext(owner.NewContext(context.Background(), o))
	require.True(t, ok)
	require.Equal(t, o, got)
}

func TestValueAndScan(t *testing.T) {
	id := owner.New()
	v, err := id.Value()
	require.NoError(t, err)
	var back owner.ID
	require.NoError(t, back.Scan(v))
	require.Equal(t, id, back)

	v, err = owner.ID{}.Value()
	require.NoError(t, err)
	require.Nil(t, v, "the zero owner is NULL, which matches no row")
}

func TestJSON(t *testing.T) {
	id := owner.New()
	b, err := json.Marshal(struct{ Owner owner.ID }{id})
	require.NoError(t, err)
	var back struct{ Owner owner.ID }
	require.NoError(t, json.Unmarshal(b, &back))
	require.Equal(t, id, back.Owner)
}

func TestRegion(t *testing.T) {
	for _, r := range owner.Regions() {
		got, err := owner.ParseRegion(r.String())
		require.NoError(t, err)
		require.Equal(t, r, got)
	}
	for _, bad := range []string{"", "US-EAST", "eu-central", "us-east "} {
		_, err := owner.ParseRegion(bad)
		require.Error(t, err, bad)
	}
	require.Error(t, owner.Owner{ID: owner.New(), HomeRegion: "mars"}.Validate())
	require.NoError(t, owner.Owner{ID: owner.New(), HomeRegion: owner.DefaultRegion}.Validate())
}

func TestReservedKeys(t *testing.T) {
	for _, k := range append(owner.ForwardedKeys(), owner.MDSessionID, "X-Forge-Owner-Id") {
		require.True(t, owner.IsReserved(k), k)
	}
	require.False(t, owner.IsReserved("authorization"))
	require.False(t, owner.IsReserved("x-forgery"))
}
