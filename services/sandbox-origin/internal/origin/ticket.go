package origin

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"time"

	"github.com/google/uuid"

	"github.com/forgeapps/backbone/pkg/owner"
	"github.com/forgeapps/backbone/pkg/secret"
)

// Ticket is a redeemed view ticket: one app, one viewer, until Expiry.
type Ticket struct {
	App    uuid.UUID
	Viewer owner.ID
	Expiry time.Time
}

// ErrNoTicket is returned when redeeming a ticket that is unknown or already used.
var ErrNoTicket = errors.New("no such view ticket")

// TicketBytes is the entropy of a view ticket: 256 bits.
const TicketBytes = 32

// ticketLen is the length of a ticket's text form (unpadded base64url of TicketBytes).
var ticketLen = base64.RawURLEncoding.EncodedLen(TicketBytes)

// ErrBadTicket is returned for a string that cannot be a ticket.
var ErrBadTicket = errors.New("malformed view ticket")

// NewTicket returns a fresh view ticket and the hash under which it is stored. The ticket
// itself is returned once, to the console, and never stored.
func NewTicket() (secret.Value, [sha256.Size]byte, error) {
	b := make([]byte, TicketBytes)
	if _, err := rand.Read(b); err != nil {
		return secret.Value{}, [sha256.Size]byte{}, err
	}
	t := base64.RawURLEncoding.EncodeToString(b)
	return secret.New(t), sha256.Sum256([]byte(t)), nil
}

// HashTicket returns the storage hash of a ticket presented at an app's origin, or
// ErrBadTicket when it is not shaped like one (nothing is looked up for garbage).
func HashTicket(t string) ([sha256.Size]byte, error) {
	if len(t) != ticketLen {
		return [sha256.Size]byte{}, ErrBadTicket
	}
	if _, err := base64.RawURLEncoding.DecodeString(t); err != nil {
		return [sha256.Size]byte{}, ErrBadTicket
	}
	return sha256.Sum256([]byte(t)), nil
}
