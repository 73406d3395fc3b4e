package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/forgeapps/backbone/pkg/database"
	"github.com/forgeapps/backbone/pkg/events"
	"github.com/forgeapps/backbone/pkg/owner"

	"github.com/forgeapps/backbone/services/tenant/internal/tenant"
)

// Options configures a Store.
type Options struct {
	// Region is the region this instance serves (FORGE_REGION).
	Region owner.Region
	// SessionTTL is how long a session lives (tenant.DefaultSessionTTL when 0).
	SessionTTL time.Duration
	// Now is the clock; nil means time.Now. Tests move it to expire sessions.
	Now func() time.Time
}

// Store runs the tenant service's operations against its schema.
type Store struct {
	db     *database.DB
	outbox *events.Outbox
	region owner.Region
	ttl    time.Duration
	now    func() time.Time
}

// NewStore checks opts and returns a Store writing events through outbox (which must stamp
// the same region).
func NewStore(db *database.DB, outbox *events.Outbox, opts Options) (*Store, error) {
	if db == nil || outbox == nil {
		return nil, errors.New("tenant store: a database and an outbox are required")
	}
	if !opts.Region.Valid() {
		return nil, fmt.Errorf("tenant store: unknown region %q", opts.Region)
	}
	if opts.SessionTTL == 0 {
		opts.SessionTTL = tenant.DefaultSessionTTL
	}
	if opts.SessionTTL < tenant.MinSessionTTL || opts.SessionTTL > tenant.MaxSessionTTL {
		return nil, fmt.Errorf("tenant store: session TTL %s outside [%s, %s]", opts.SessionTTL, tenant.MinSessionTTL, tenant.MaxSessionTTL)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Store{db: db, outbox: outbox, region: opts.Region, ttl: opts.SessionTTL, now: opts.Now}, nil
}

// Region is the region this store serves.
func (s *Store) Region() owner.Region { return s.region }

// clock returns the current time at the database's precision (microseconds), so that what a
// caller is told equals what is stored.
func (s *Store) clock() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

// ownerCtx marks ctx as acting for id in this region, for the outbox's consistency check.
func (s *Store) ownerCtx(ctx context.Context, id owner.ID) context.Context {
	return owner.NewContext(ctx, owner.Owner{ID: id, HomeRegion: s.region})
}

// checkHome reads the region directory inside tx: the first statement of every system
// method that names a tenant, so a tenant homed elsewhere is refused before anything is
// written, and a tenant the directory does not know is NotFound.
func (s *Store) checkHome(ctx context.Context, tx database.Tx, id owner.ID) error {
	var home string
	err := tx.QueryRow(ctx, sqlDirectoryHome, id).Scan(&home)
	if errors.Is(err, pgx.ErrNoRows) {
		return tenant.ErrTenantNotFound
	}
	if err != nil {
		return fmt.Errorf("region directory: %w", err)
	}
	if owner.Region(home) != s.region {
		return tenant.WrongRegion(owner.Region(home), s.region)
	}
	return nil
}

// isUniqueViolation reports whether err is a unique violation of the named constraint.
func isUniqueViolation(err error, constraint string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == constraint
}

func scanAccount(row pgx.Row) (tenant.Account, error) {
	var (
		a            tenant.Account
		plan, status string
		region       string
	)
	if err := row.Scan(&a.OwnerID, &a.Email, &a.DisplayName, &a.NotificationEmail, &plan, &region, &status,
		&a.CreateTime, &a.UpdateTime); err != nil {
		return tenant.Account{}, err
	}
	a.Plan, a.HomeRegion, a.Status = tenant.Plan(plan), owner.Region(region), tenant.Status(status)
	a.CreateTime, a.UpdateTime = a.CreateTime.UTC(), a.UpdateTime.UTC()
	return a, nil
}

// notFound turns "no row" into the given fault and wraps anything else.
func notFound(err error, nf error, what string) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return nf
	}
	return fmt.Errorf("%s: %w", what, err)
}
