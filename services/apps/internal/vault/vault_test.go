package vault

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/forgeapps/backbone/services/apps/internal/apps"
)

func TestChunks(t *testing.T) {
	items := func(n, size int) []apps.CryptoItem {
		out := make([]apps.CryptoItem, n)
		for i := range out {
			out[i].Data = make([]byte, size)
		}
		return out
	}
	tests := []struct {
		name  string
		items []apps.CryptoItem
		want  []int
	}{
		{name: "one small call", items: items(100, 10), want: []int{100}},
		{name: "split at the vault's 500 items", items: items(1201, 1), want: []int{500, 500, 201}},
		{name: "split by size", items: items(4, 4<<20), want: []int{3, 1}},
		{name: "one item over the payload bound goes alone", items: items(2, 14<<20), want: []int{1, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []int
			total := 0
			for _, c := range chunks(tt.items) {
				got = append(got, len(c))
				total += len(c)
			}
			require.Equal(t, tt.want, got)
			require.Equal(t, len(tt.items), total)
		})
	}
}
