package devstack

import (
	"net"
	"strconv"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestPortPoolHandsOutDistinctPorts: every port a stack's pool hands out is distinct across
// all its services, and every one is free again once the pool is released.
func TestPortPoolHandsOutDistinctPorts(t *testing.T) {
	var p portPool
	seen := map[int]string{}
	for round := range 20 {
		for _, sp := range Specs() {
			sp, err := p.assign(sp)
			require.NoError(t, err)
			ports := []int{sp.GRPCPort, sp.HealthPort}
			if sp.HTTPPort != 0 {
				ports = append(ports, sp.HTTPPort)
			}
			for _, port := range ports {
				require.NotContains(t, seen, port, "round %d, %s", round, sp.Name)
				seen[port] = sp.Name
			}
		}
	}
	p.release()
	for port := range seen {
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		require.NoError(t, err, "port %d is free after release", port)
		require.NoError(t, l.Close())
	}
}
