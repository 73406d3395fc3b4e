package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// nonPublic lists every range an upstream may not be in: loopback, private, shared (CGNAT),
// link-local, multicast, reserved, documentation and benchmarking ranges, and the IPv6 forms
// that embed or translate to IPv4 (mapped, compatible, NAT64, 6to4, Teredo), through which an
// internal IPv4 address could be reached in disguise.
var nonPublic = func() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range []string{
		"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
		"172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16",
		"198.18.0.0/15", "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4",
		"::/96", "::1/128", "::ffff:0:0/96", "64:ff9b::/96", "64:ff9b:1::/48", "100::/64",
		"2001::/23", "2001:db8::/32", "2002::/16", "fc00::/7", "fe80::/10", "fec0::/10", "ff00::/8",
	} {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}()

// Public reports whether ip is a public unicast address an upstream may have.
func Public(ip netip.Addr) bool {
	if !ip.IsValid() || ip.Zone() != "" {
		return false
	}
	for _, p := range nonPublic {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}

// errDestinationRefused is returned by the dialer for an address it will not connect to.
var errDestinationRefused = errors.New("upstream address refused")

// dialGuard connects to upstreams only at public addresses (or, for the hosts configured for
// development and tests, at any address). The check runs after DNS resolution on every
// address, and again in the socket's Control hook on the exact address being connected, so a
// name that resolves to a public address for the check and a private one for the connection
// (DNS rebinding) cannot get through: the connection is made to the checked address itself.
type dialGuard struct {
	allow map[string]bool // lower-case "host" or "host:port"
	// pin resolves an allowed host to a fixed address (development and tests: a name the
	// vault accepts, served by a loopback test server).
	pin      map[string]netip.Addr
	resolver *net.Resolver
	timeout  time.Duration
}

func (g *dialGuard) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", network, err)
	}
	host = strings.ToLower(host)
	portNum, err := strconv.ParseUint(port, 10, 16)
	if err != nil || portNum == 0 {
		return nil, errDestinationRefused
	}
	hostPort := net.JoinHostPort(host, port)
	allowPrivate := g.allow[host] || g.allow[hostPort]
	var ips []netip.Addr
	if ip, ok := g.pin[hostPort]; ok {
		ips = []netip.Addr{ip}
	} else if ip, ok := g.pin[host]; ok {
		ips = []netip.Addr{ip}
	} else if ip, err := netip.ParseAddr(host); err == nil {
		if ip.Is4In6() || ip.Zone() != "" {
			// A literal IPv4-mapped address says one thing and means another: refused.
			return nil, errDestinationRefused
		}
		ips = []netip.Addr{ip}
	} else {
		resolved, err := g.resolver.LookupNetIP(ctx, "ip", host)
		if err != nil {
			return nil, fmt.Errorf("resolve upstream: %w", err)
		}
		for _, ip := range resolved {
			// The resolver returns A records in the IPv4-mapped form at times.
			ips = append(ips, ip.Unmap())
		}
	}
	var lastErr error = errDestinationRefused
	for _, ip := range ips {
		if !allowPrivate && !Public(ip) {
			continue
		}
		d := net.Dialer{
			Timeout: g.timeout,
			Control: func(_, address string, _ syscall.RawConn) error {
				ap, err := netip.ParseAddrPort(address)
				if err != nil || (!allowPrivate && !Public(ap.Addr().Unmap())) {
					return errDestinationRefused
				}
				return nil
			},
		}
		conn, err := d.DialContext(ctx, network, netip.AddrPortFrom(ip, uint16(portNum)).String())
		if err == nil {
			return conn, nil
		}
		lastErr = err
	}
	return nil, lastErr
}
