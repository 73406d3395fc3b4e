package vault

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/forgeapps/backbone/pkg/owner"
)

// rewrapBatch bounds the secrets one rewrap transaction moves.
const rewrapBatch = 100

// RewrapSecrets moves up to a batch of stale owners' secrets to their current key version and
// returns how many secrets it moved. The background job calls it until it returns 0.
func (v *Vault) RewrapSecrets(ctx context.Context, owners int) (int, error) {
	stale, err := v.store.StaleOwners(ctx, owners)
	if err != nil {
		return 0, fmt.Errorf("vault: rewrap: %w", err)
	}
	total := 0
	for _, o := range stale {
		n, err := v.rewrapOwner(ctx, o)
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// rewrapOwner moves one owner's stale secrets, a batch per transaction.
func (v *Vault) rewrapOwner(ctx context.Context, o owner.ID) (int, error) {
	actor := Actor{Workload: v.self, Purpose: PurposeRewrap}
	total := 0
	for {
		moved := 0
		err := v.withFreshKeys(ctx, o, false, func(ks *keyset) error {
			moved = 0
			return v.store.Tx(ctx, o, func(ctx context.Context, tx StoreTx) error {
				moved = 0
				stale, err := tx.SecretsBelow(ctx, ks.current, rewrapBatch)
				if err != nil || len(stale) == 0 {
					return err
				}
				versions := []uint32{ks.current}
				oldest := ks.current
				for _, s := range stale {
					b := secretBinding(s.AppID.String(), s.Name)
					pt, ver, err := openWith(ks, o, b, s.Ciphertext)
					if err != nil {
						return fmt.Errorf("vault: rewrap: a stored secret does not open: %w", err)
					}
					ct, err := seal(ks.aeads[ks.current], ks.current, o, b, pt)
					clear(pt)
					if err != nil {
						return err
					}
					if err := tx.RewrapSecret(ctx, s.AppID, s.Name, ct, ks.current); err != nil {
						return err
					}
					versions = append(versions, ver)
					oldest = min(oldest, ver)
				}
				moved = len(stale)
				e := v.entry(actor, ActionSecretRewrap, versionsSubject(versions), moved)
				return v.recordUse(ctx, tx, o, e, UseCheck{OldestVersion: oldest, Current: ks.current})
			})
		})
		total += moved
		if err != nil {
			return total, fmt.Errorf("vault: rewrap owner %s: %w", o, err)
		}
		if moved < rewrapBatch {
			return total, nil
		}
	}
}

// RunRewrap moves the vault's own secrets to their owners' current key versions every
// interval, and at once when wake fires (after a rotation), until ctx ends.
func (v *Vault) RunRewrap(ctx context.Context, interval time.Duration, wake <-chan struct{}) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		for {
			n, err := v.RewrapSecrets(ctx, 100)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				v.log.ErrorContext(ctx, "rewrap failed; retrying at the next tick", slog.Any("error", err))
				break
			}
			if n == 0 {
				break
			}
			v.log.InfoContext(ctx, "secrets rewrapped", slog.Int("secrets", n))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-wake:
		}
	}
}
