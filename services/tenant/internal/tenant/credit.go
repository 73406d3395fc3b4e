package tenant

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"time"

	"github.com/google/uuid"

	"github.com/forgeapps/backbone/pkg/fault"
	"github.com/forgeapps/backbone/pkg/owner"
)

// CreditEntry is one line of a tenant's ledger. Amount is positive for a grant and negative
// for a debit; Seq numbers the owner's entries 1, 2, 3... in the order they were applied.
type CreditEntry struct {
	ID           uuid.UUID
	Seq          int64
	Amount       int64
	Reason       string
	BalanceAfter int64
	CreateTime   time.Time
}

// Limits of a ledger request (the proto's validation says the same).
const (
	MaxCreditAmount   = 100_000_000
	MaxReason         = 200
	MaxIdempotencyKey = 128
)

// LedgerRequest is a grant (Amount > 0) or a debit (Amount < 0) with its idempotency key.
type LedgerRequest struct {
	Amount         int64
	Reason         string
	IdempotencyKey string
}

// GrantRequest is a request to add amount credits.
func GrantRequest(amount int64, reason, key string) LedgerRequest {
	return LedgerRequest{Amount: amount, Reason: reason, IdempotencyKey: key}
}

// DebitRequest is a request to remove amount credits (amount is positive; the entry records
// it negated).
func DebitRequest(amount int64, reason, key string) LedgerRequest {
	return LedgerRequest{Amount: -amount, Reason: reason, IdempotencyKey: key}
}

// Validate checks the request on its own.
func (r LedgerRequest) Validate() error {
	switch {
	case r.Amount == 0 || r.Amount > MaxCreditAmount || r.Amount < -MaxCreditAmount:
		return fault.InvalidField("amount", "must be between 1 and 100000000")
	case r.Reason == "" || len([]rune(r.Reason)) > MaxReason:
		return fault.InvalidField("reason", "1 to 200 characters")
	case r.IdempotencyKey == "" || len([]rune(r.IdempotencyKey)) > MaxIdempotencyKey:
		return fault.InvalidField("idempotency_key", "1 to 128 characters")
	}
	return nil
}

// ErrIdempotencyKeyReused refuses a key already used by the tenant for another request.
var ErrIdempotencyKeyReused = fault.FailedPrecondition("idempotency key already used for a different request")

// ErrInsufficientCredits refuses a debit larger than the balance.
var ErrInsufficientCredits = fault.FailedPrecondition("insufficient credits").
	WithReason("INSUFFICIENT_CREDITS", nil)

// Replay decides what a request whose key the tenant already used gets: the entry first
// recorded when the request is the same (amount, direction included, and reason), so that a
// retry is applied once; a refusal when it differs, since silently answering the first
// request's result to a different one would hide a client bug that moves money.
func (r LedgerRequest) Replay(existing CreditEntry) (CreditEntry, error) {
	if existing.Amount != r.Amount || existing.Reason != r.Reason {
		return CreditEntry{}, ErrIdempotencyKeyReused
	}
	return existing, nil
}

// Page sizes of ListCreditEntries.
const (
	DefaultPageSize = 20
	MaxPageSize     = 100
	RecentEntries   = 10
)

// PageSize applies the default and the bound.
func PageSize(requested int32) int {
	switch {
	case requested <= 0:
		return DefaultPageSize
	case requested > MaxPageSize:
		return MaxPageSize
	}
	return int(requested)
}

// ErrInvalidPageToken is the one answer for a malformed page token and for another tenant's.
var ErrInvalidPageToken = fault.InvalidField("page_token", "not a page token of this listing")

// pageTokenVersion lets the format change without misreading old tokens.
const pageTokenVersion = 1

// PageToken is where the next page of a ledger listing starts: entries with a Seq below
// BeforeSeq. Seq is assigned under the balance row's lock, so it only grows, in commit
// order: a page boundary never moves when entries are added, and no entry is skipped.
type PageToken struct {
	BeforeSeq int64
}

// ownerFingerprint binds a token to the tenant it was issued to, so that a second tenant
// replaying it gets exactly the answer a malformed token gets. It is not a secret: the token
// only ever selects rows of the caller itself, so forging one gains nothing.
func ownerFingerprint(o owner.ID) []byte {
	u := o.UUID()
	h := sha256.Sum256(append([]byte("forge.tenant.v1.credit-page\x00"), u[:]...))
	return h[:8]
}

// Encode returns the opaque token for the owner.
func (t PageToken) Encode(o owner.ID) string {
	b := make([]byte, 0, 1+8+8)
	b = append(b, pageTokenVersion)
	b = binary.BigEndian.AppendUint64(b, uint64(t.BeforeSeq))
	b = append(b, ownerFingerprint(o)...)
	return base64.RawURLEncoding.EncodeToString(b)
}

// DecodePageToken reads a token issued to owner o. The empty token is the first page.
func DecodePageToken(s string, o owner.ID) (PageToken, error) {
	if s == "" {
		return PageToken{}, nil
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil || len(b) != 17 || b[0] != pageTokenVersion {
		return PageToken{}, ErrInvalidPageToken
	}
	if !bytes.Equal(b[9:], ownerFingerprint(o)) {
		return PageToken{}, ErrInvalidPageToken
	}
	seq := int64(binary.BigEndian.Uint64(b[1:9]))
	if seq <= 1 {
		// The listing never hands out a token before the first entry.
		return PageToken{}, ErrInvalidPageToken
	}
	return PageToken{BeforeSeq: seq}, nil
}
