package tenant_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/forgeapps/backbone/pkg/fault"
	"github.com/forgeapps/backbone/pkg/owner"
	"github.com/forgeapps/backbone/pkg/secret"

	"github.com/forgeapps/backbone/services/tenant/internal/tenant"
)

func TestSignUpComplete(t *testing.T) {
	tests := []struct {
		name   string
		in     tenant.SignUp
		here   owner.Region
		want   tenant.SignUp
		kind   fault.Kind
		reason string
	}{
		{name: "defaults", here: owner.USEast, want: tenant.SignUp{Plan: tenant.PlanFree, HomeRegion: owner.USEast}},
		{name: "pro us-east", in: tenant.SignUp{Plan: tenant.PlanPro}, here: owner.USEast, want: tenant.SignUp{Plan: tenant.PlanPro, HomeRegion: owner.USEast}},
		{name: "studio eu-west here", in: tenant.SignUp{Plan: tenant.PlanStudio, HomeRegion: owner.EUWest}, here: owner.EUWest,
			want: tenant.SignUp{Plan: tenant.PlanStudio, HomeRegion: owner.EUWest}},
		{name: "free eu-west", in: tenant.SignUp{HomeRegion: owner.EUWest}, here: owner.EUWest, kind: fault.KindFailedPrecondition},
		{name: "pro eu-west", in: tenant.SignUp{Plan: tenant.PlanPro, HomeRegion: owner.EUWest}, here: owner.USEast, kind: fault.KindFailedPrecondition},
		{name: "studio eu-west elsewhere", in: tenant.SignUp{Plan: tenant.PlanStudio, HomeRegion: owner.EUWest}, here: owner.USEast,
			kind: fault.KindFailedPrecondition, reason: tenant.ReasonWrongRegion},
		{name: "default region elsewhere", here: owner.EUWest, kind: fault.KindFailedPrecondition, reason: tenant.ReasonWrongRegion},
		{name: "unknown region", in: tenant.SignUp{HomeRegion: "ap-south"}, here: owner.USEast, kind: fault.KindInvalidArgument},
		{name: "unknown plan", in: tenant.SignUp{Plan: "enterprise"}, here: owner.USEast, kind: fault.KindInvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.in.Complete(tt.here)
			if tt.kind == fault.KindUnknown {
				require.NoError(t, err)
				require.Equal(t, tt.want, got)
				return
			}
			require.Equal(t, tt.kind, fault.KindOf(err), "%v", err)
			var f *fault.Error
			require.ErrorAs(t, err, &f)
			require.Equal(t, tt.reason, f.Reason)
		})
	}
}

func TestCheckPlanChange(t *testing.T) {
	require.NoError(t, tenant.CheckPlanChange(owner.USEast, tenant.PlanFree))
	require.NoError(t, tenant.CheckPlanChange(owner.EUWest, tenant.PlanStudio))
	require.True(t, fault.Is(tenant.CheckPlanChange(owner.EUWest, tenant.PlanPro), fault.KindFailedPrecondition))
	require.True(t, fault.Is(tenant.CheckPlanChange(owner.USEast, "gold"), fault.KindInvalidArgument))
}

func TestAccountUpdateValidate(t *testing.T) {
	s := func(v string) *string { return &v }
	tests := []struct {
		name string
		in   tenant.AccountUpdate
		ok   bool
	}{
		{name: "nothing", in: tenant.AccountUpdate{}},
		{name: "name", in: tenant.AccountUpdate{DisplayName: s("Ada")}, ok: true},
		{name: "name of 100 runes", in: tenant.AccountUpdate{DisplayName: s(strings.Repeat("é", 100))}, ok: true},
		{name: "name of 101 runes", in: tenant.AccountUpdate{DisplayName: s(strings.Repeat("é", 101))}},
		{name: "blank name", in: tenant.AccountUpdate{DisplayName: s(" \t")}},
		{name: "newline in name", in: tenant.AccountUpdate{DisplayName: s("a\nb")}},
		{name: "email", in: tenant.AccountUpdate{NotificationEmail: s("a@b.example")}, ok: true},
		{name: "email with space", in: tenant.AccountUpdate{NotificationEmail: s("a @b.example")}},
		{name: "empty email", in: tenant.AccountUpdate{NotificationEmail: s("")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.in.Validate()
			if tt.ok {
				require.NoError(t, err)
				return
			}
			require.True(t, fault.Is(err, fault.KindInvalidArgument), "%v", err)
		})
	}
}

func TestSessionTokens(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		tok, hash, err := tenant.NewSessionToken()
		require.NoError(t, err)
		require.Len(t, tok.Reveal(), tenant.TokenLen)
		require.False(t, seen[tok.Reveal()])
		seen[tok.Reveal()] = true
		parsed, err := tenant.ParseSessionToken(tok)
		require.NoError(t, err)
		require.Equal(t, hash, parsed)
		require.Equal(t, secret.Redacted, tok.String(), "a token never prints")
	}
	for _, bad := range []string{"", "fgs_", "fgs_" + strings.Repeat("A", 42), "fgs_" + strings.Repeat("+", 43), "FGS_" + strings.Repeat("A", 43)} {
		_, err := tenant.ParseSessionToken(secret.New(bad))
		require.ErrorIs(t, err, tenant.ErrInvalidSession, bad)
	}
}

func TestPageTokens(t *testing.T) {
	a, b := owner.New(), owner.New()
	tok := tenant.PageToken{BeforeSeq: 42}.Encode(a)
	got, err := tenant.DecodePageToken(tok, a)
	require.NoError(t, err)
	require.EqualValues(t, 42, got.BeforeSeq)

	_, err = tenant.DecodePageToken(tok, b)
	require.ErrorIs(t, err, tenant.ErrInvalidPageToken, "another tenant's token")
	for _, bad := range []string{"x", tok + "A", tok[:len(tok)-1], tenant.PageToken{BeforeSeq: 1}.Encode(a), tenant.PageToken{BeforeSeq: -7}.Encode(a)} {
		_, err := tenant.DecodePageToken(bad, a)
		require.ErrorIs(t, err, tenant.ErrInvalidPageToken, bad)
	}
	first, err := tenant.DecodePageToken("", a)
	require.NoError(t, err)
	require.Zero(t, first.BeforeSeq)
}

func TestLedgerReplay(t *testing.T) {
	orig := tenant.CreditEntry{Amount: -5, Reason: "build", BalanceAfter: 10}
	got, err := tenant.DebitRequest(5, "build", "k").Replay(orig)
	require.NoError(t, err)
	require.Equal(t, orig, got)
	for _, r := range []tenant.LedgerRequest{tenant.DebitRequest(6, "build", "k"), tenant.GrantRequest(5, "build", "k"), tenant.DebitRequest(5, "other", "k")} {
		_, err := r.Replay(orig)
		require.ErrorIs(t, err, tenant.ErrIdempotencyKeyReused)
	}
	require.Error(t, tenant.DebitRequest(0, "r", "k").Validate())
	require.Error(t, tenant.GrantRequest(tenant.MaxCreditAmount+1, "r", "k").Validate())
	require.NoError(t, tenant.DebitRequest(tenant.MaxCreditAmount, "r", "k").Validate())
}

func TestCleanUserAgent(t *testing.T) {
	require.Equal(t, "curl/8", tenant.CleanUserAgent("curl/8\r\n"))
	require.Len(t, []rune(tenant.CleanUserAgent(strings.Repeat("ü", 600))), tenant.MaxUserAgent)
	require.Equal(t, "ab", tenant.CleanUserAgent("a\xffb"))
}
