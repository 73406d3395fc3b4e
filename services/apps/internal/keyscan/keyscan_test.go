package keyscan_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/forgeapps/backbone/services/apps/internal/keyscan"
)

// The keys below are random strings in the providers' formats, made for this test; none of
// them was ever issued.
const (
	openAI     = "sk-proj-u8jzPde0IgxLd6GncfBAepfJBd0Kh8oOOL8dKLzdocJ2isAj"
	anthropic  = "sk-ant-api03-pNxnyVmihA_2O76UMFxFkM_R5Kjp1vRt-1fjORS_6ilI8ihN5KXSc7Tvo_hBKqFYY_kv5ZJr3J1TWDtkwtDDb-xHKas1V"
	aws        = "AKIAUI6D39ZZZZG4ZDME"
	github     = "ghp_nCkhvMdgaKjIg8xNbe3nNyjOq9wMxEhh2FDE"
	githubPAT  = "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"
	slack      = "xoxb-2049-Q7wjJJibaZUPgHV7iB3m03nb"
	google     = "AIzaSUkCnD8zRA9a9SkpXz9w3QlY7Zkuvqdt7s8"
	stripe     = "sk_live_Q7wjJJibaZUPgHV7iB3m03nb"
	stripeRK   = "rk_live_Q7wjJJibaZUPgHV7iB3m03nb"
	highEntopy = "GBLEPH1qhT61qtc4xatws8phP9nhFyJfm5di4PzJ"
)

func TestScanFindsKeys(t *testing.T) {
	tests := []struct {
		name     string
		key      string
		provider string
		upstream string
	}{
		{name: "openai", key: openAI, provider: "OPENAI", upstream: "api.openai.com"},
		{name: "anthropic before openai", key: anthropic, provider: "ANTHROPIC", upstream: "api.anthropic.com"},
		{name: "aws access key id", key: aws, provider: "AWS", upstream: keyscan.UnreachableUpstream},
		{name: "github classic", key: github, provider: "GITHUB", upstream: "api.github.com"},
		{name: "github fine-grained", key: githubPAT, provider: "GITHUB", upstream: "api.github.com"},
		{name: "slack", key: slack, provider: "SLACK", upstream: "slack.com"},
		{name: "google", key: google, provider: "GOOGLE", upstream: "generativelanguage.googleapis.com"},
		{name: "stripe secret", key: stripe, provider: "STRIPE", upstream: "api.stripe.com"},
		{name: "stripe restricted", key: stripeRK, provider: "STRIPE", upstream: "api.stripe.com"},
		{name: "high entropy", key: highEntopy, provider: "SECRET", upstream: keyscan.UnreachableUpstream},
		{name: "private key", key: "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----",
			provider: "PRIVATE_KEY", upstream: keyscan.UnreachableUpstream},
	}
	s := keyscan.New()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := "Build a chat app. Use my key: " + tt.key + ", thanks!"
			found := s.Scan(text)
			require.Len(t, found, 1)
			require.Equal(t, tt.key, text[found[0].Start:found[0].End])
			require.Equal(t, tt.provider, found[0].Provider.Name)
			require.Equal(t, tt.upstream, found[0].Provider.Upstream)
			out := keyscan.Replace(text, found, func(int) string { return "{{secret:X}}" })
			require.Equal(t, "Build a chat app. Use my key: {{secret:X}}, thanks!", out)
			require.NotContains(t, out, tt.key)
		})
	}
}

func TestScanLeavesOrdinaryText(t *testing.T) {
	tests := []struct {
		name string
		text string
	}{
		{name: "prose", text: "Make a todo app with a dark theme, drag and drop, and a calendar view."},
		{name: "uuid", text: "the record 0b0f6a35-6d1f-4c43-9f0f-3f4d2c1b0a99 is the default"},
		{name: "commit hash", text: "revert 3f786850e387550fdab836ed7e6dc881de23001b please"},
		{name: "long identifier", text: "rename ThisIsAVeryLongComponentNameForTheHeader everywhere"},
		{name: "path", text: "edit src/components/Header/HeaderTitle.tsx and src/App.tsx"},
		{name: "url", text: "fetch https://example.com/api/v1/items?page=2&size=50 for the list"},
		{name: "secret reference", text: "call the API with {{secret:OPENAI_API_KEY_X7K2P9}}"},
		{name: "short sk", text: "the sk-ip variable"},
	}
	s := keyscan.New()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Empty(t, s.Scan(tt.text))
		})
	}
}

func TestScanSeveralKeys(t *testing.T) {
	s := keyscan.New()
	text := strings.Join([]string{"a", openAI, "b", github, "c", highEntopy}, " ")
	found := s.Scan(text)
	require.Len(t, found, 3)
	out := keyscan.Replace(text, found, func(i int) string { return []string{"1", "2", "3"}[i] })
	require.Equal(t, "a 1 b 2 c 3", out)
}
