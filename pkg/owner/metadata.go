package owner

import "strings"

// The reserved gRPC metadata keys. They are set only by interceptors from verified values:
// the edge strips any client-supplied header that would map onto one of them, and a server
// accepts an owner from a peer only when its workload table allows that peer to assert one.
const (
	// ReservedPrefix starts every reserved key. No client header may produce a key with it.
	ReservedPrefix = "x-forge-"
	// MDOwnerID carries the owner ID asserted by the calling workload.
	MDOwnerID = "x-forge-owner-id"
	// MDOwnerRegion carries the owner's home region, asserted together with the owner ID.
	MDOwnerRegion = "x-forge-owner-region"
	// MDSessionID carries the ID of the session the edge authenticated (tenant service only).
	MDSessionID = "x-forge-session-id"
	// MDRequestID carries the edge's request ID for log correlation.
	MDRequestID = "x-forge-request-id"
)

// ForwardedKeys is the allowlist of reserved keys a client interceptor puts on outgoing
// calls, each from a verified context value. Everything else of the incoming metadata stays
// where it arrived.
func ForwardedKeys() []string {
	return []string{MDOwnerID, MDOwnerRegion, MDSessionID, MDRequestID}
}

// IsReserved reports whether a metadata key (any case) belongs to the reserved namespace.
func IsReserved(key string) bool {
	return strings.HasPrefix(strings.ToLower(key), ReservedPrefix)
}
