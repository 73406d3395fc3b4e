package apps

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"

	"github.com/forgeapps/backbone/pkg/fault"
	"github.com/forgeapps/backbone/pkg/owner"
)

// Reference is an uploaded file's metadata.
type Reference struct {
	ID          uuid.UUID
	Filename    string
	ContentType string
	Size        int64
	SHA256      string
	Created     time.Time
}

// referenceMeta is what of a reference is encrypted as one field: the name a person gave it
// and the content's hash (which would let anyone confirm a guessed file).
type referenceMeta struct {
	Filename string `json:"f"`
	SHA256   string `json:"h"`
}

func decodeReferenceMeta(b []byte) (referenceMeta, error) {
	var m referenceMeta
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("reference meta: %w", err)
	}
	return m, nil
}

// UploadReference stores a file for an app (owner only). A refused upload leaves nothing: the
// checks run before anything is written, and the object is deleted if the row is not.
func (s *Service) UploadReference(ctx context.Context, c Caller, appID uuid.UUID, filename, contentType string, data []byte) (Reference, error) {
	t, err := checkReference(filename, contentType, data)
	if err != nil {
		return Reference{}, err
	}
	a, err := s.resolveOwner(ctx, c, appID)
	if err != nil {
		return Reference{}, err
	}
	sum := sha256.Sum256(data)
	ref := Reference{ID: uuid.New(), Filename: filename, ContentType: t, Size: int64(len(data)),
		SHA256: hex.EncodeToString(sum[:]), Created: s.clock()}
	meta, err := json.Marshal(referenceMeta{Filename: ref.Filename, SHA256: ref.SHA256})
	if err != nil {
		return Reference{}, fmt.Errorf("reference meta: %w", err)
	}
	// The metadata is a small field (sealed whole by the vault, like names); the content is
	// sealed here under a fresh data key.
	cts, metaVer, err := s.crypto.Encrypt(ctx, a.Owner, PurposeAppContent, []CryptoItem{
		{Binding: referenceBinding(ref.ID, "meta"), Data: meta},
	})
	if err != nil {
		return Reference{}, fmt.Errorf("seal reference: %w", err)
	}
	sealed, ver, err := s.crypto.SealObjects(ctx, a.Owner, PurposeAppContent, []CryptoItem{
		{Binding: referenceBinding(ref.ID, "content"), Data: data},
	})
	if err != nil {
		return Reference{}, fmt.Errorf("seal reference: %w", err)
	}
	ver = min(ver, metaVer) // what a rewrap after a rotation must look for
	key := referenceKey(a.Owner, appID, ref.ID)
	if err := s.blobs.Put(ctx, key, sealed[0].Data); err != nil {
		return Reference{}, fmt.Errorf("store reference: %w", err)
	}
	err = s.store.Tx(ctx, a.Owner, func(ctx context.Context, tx StoreTx) error {
		if _, err := tx.App(ctx, appID, true); err != nil {
			return err
		}
		n, err := tx.CountReferences(ctx, appID)
		if err != nil {
			return err
		}
		if n >= MaxReferencesOfApp {
			return fault.ResourceExhausted("an app holds at most %d references", MaxReferencesOfApp)
		}
		return tx.InsertReference(ctx, ReferenceRecord{ID: ref.ID, AppID: appID, Meta: cts[0], ContentType: t,
			Size: ref.Size, ObjectKey: key, WrappedKey: sealed[0].WrappedKey, KeyVersion: ver, Created: ref.Created})
	})
	if err != nil {
		s.deleteObjects(ctx, []string{key})
		return Reference{}, ensureFound(err)
	}
	return ref, nil
}

func (s *Service) openReferences(ctx context.Context, a Access, p Purpose, recs []ReferenceRecord) ([]Reference, error) {
	if len(recs) == 0 {
		return nil, nil
	}
	items := make([]CryptoItem, len(recs))
	for i, r := range recs {
		items[i] = CryptoItem{Binding: referenceBinding(r.ID, "meta"), Data: r.Meta}
	}
	pts, err := s.crypto.Decrypt(ctx, a.Owner, p, items)
	if err != nil {
		return nil, fmt.Errorf("open references: %w", err)
	}
	out := make([]Reference, len(recs))
	for i, r := range recs {
		var m referenceMeta
		if err := json.Unmarshal(pts[i], &m); err != nil {
			return nil, fmt.Errorf("reference %s meta: %w", r.ID, err)
		}
		out[i] = Reference{ID: r.ID, Filename: m.Filename, ContentType: r.ContentType, Size: r.Size, SHA256: m.SHA256, Created: r.Created}
	}
	return out, nil
}

// referencePurpose is the vault purpose of reading references: the builder builds with them.
func referencePurpose(a Access) Purpose {
	if a.Caller.IsBuilder() {
		return PurposePromptBuild
	}
	return PurposeAppContent
}

// ListReferences lists an app's references (owner and builder).
func (s *Service) ListReferences(ctx context.Context, c Caller, appID uuid.UUID) ([]Reference, error) {
	a, err := s.resolveOwner(ctx, c, appID)
	if err != nil {
		return nil, err
	}
	var recs []ReferenceRecord
	err = s.store.Tx(ctx, a.Owner, func(ctx context.Context, tx StoreTx) error {
		if _, err := tx.App(ctx, appID, false); err != nil {
			return err
		}
		recs, err = tx.References(ctx, appID)
		return err
	})
	if err != nil {
		return nil, ensureFound(err)
	}
	return s.openReferences(ctx, a, referencePurpose(a), recs)
}

// GetReference returns a reference with its content (owner and builder).
func (s *Service) GetReference(ctx context.Context, c Caller, appID, refID uuid.UUID) (Reference, []byte, error) {
	a, err := s.resolveOwner(ctx, c, appID)
	if err != nil {
		return Reference{}, nil, err
	}
	var rec ReferenceRecord
	err = s.store.Tx(ctx, a.Owner, func(ctx context.Context, tx StoreTx) error {
		rec, err = tx.Reference(ctx, appID, refID)
		return err
	})
	if err != nil {
		return Reference{}, nil, err
	}
	ref, content, err := s.openReference(ctx, a.Owner, referencePurpose(a), rec)
	if err != nil {
		return Reference{}, nil, err
	}
	return ref, content, nil
}

// openReference opens a reference's metadata (the vault) and its content (envelope).
func (s *Service) openReference(ctx context.Context, o owner.ID, p Purpose, rec ReferenceRecord) (Reference, []byte, error) {
	pts, err := s.crypto.Decrypt(ctx, o, p, []CryptoItem{{Binding: referenceBinding(rec.ID, "meta"), Data: rec.Meta}})
	if err != nil {
		return Reference{}, nil, fmt.Errorf("open reference: %w", err)
	}
	m, err := decodeReferenceMeta(pts[0])
	if err != nil {
		return Reference{}, nil, err
	}
	content, err := s.crypto.OpenObjects(ctx, o, p, []ObjectItem{{Binding: referenceBinding(rec.ID, "content"), WrappedKey: rec.WrappedKey}},
		func(ctx context.Context, _ int) ([]byte, error) {
			ct, err := s.blobs.Get(ctx, rec.ObjectKey)
			if err != nil {
				return nil, fmt.Errorf("read reference object: %w", err)
			}
			return ct, nil
		})
	if err != nil {
		return Reference{}, nil, fmt.Errorf("open reference: %w", err)
	}
	return Reference{ID: rec.ID, Filename: m.Filename, ContentType: rec.ContentType, Size: rec.Size, SHA256: m.SHA256,
		Created: rec.Created}, content[0], nil
}

// DeleteReference deletes a reference and its object (owner only).
func (s *Service) DeleteReference(ctx context.Context, c Caller, appID, refID uuid.UUID) error {
	a, err := s.resolveOwner(ctx, c, appID)
	if err != nil {
		return err
	}
	if c.IsBuilder() {
		return fault.PermissionDenied("the builder does not delete references")
	}
	var key string
	err = s.store.Tx(ctx, a.Owner, func(ctx context.Context, tx StoreTx) error {
		rec, err := tx.Reference(ctx, appID, refID)
		if err != nil {
			return err
		}
		key = rec.ObjectKey
		return tx.DeleteReference(ctx, appID, refID)
	})
	if err != nil {
		return err
	}
	if s.deleteObjects(ctx, []string{key}) {
		s.log.WarnContext(ctx, "a deleted reference's object remains until the owner's purge", slog.String("reference_id", refID.String()))
	}
	return nil
}
