package apps

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/forgeapps/backbone/pkg/fault"
	"github.com/forgeapps/backbone/pkg/owner"
)

// Servable is what the sandbox origin needs to serve an app.
type Servable struct {
	Owner      owner.ID
	Visibility Visibility
	Version    int32
	Files      []File
}

// GetServableApp returns the owner, visibility and current files of an app, for the sandbox
// origin, which decides who may open it. An app of a disabled owner is not served at all.
func (s *Service) GetServableApp(ctx context.Context, appID uuid.UUID) (Servable, error) {
	o, err := s.store.AppOwner(ctx, appID)
	if err != nil {
		return Servable{}, err
	}
	var (
		rec   AppRecord
		frecs []FileRecord
	)
	err = s.store.Tx(ctx, o, func(ctx context.Context, tx StoreTx) error {
		if rec, err = tx.App(ctx, appID, false); err != nil {
			return err
		}
		if rec.CurrentVersion == 0 {
			return nil
		}
		frecs, err = tx.VersionFiles(ctx, appID, rec.CurrentVersion)
		return err
	})
	if err != nil {
		return Servable{}, ensureFound(err)
	}
	files, err := s.openFiles(ctx, Access{AppID: appID, Owner: o, Role: RoleOwner}, PurposeServe, rec.CurrentVersion, frecs)
	if err != nil {
		return Servable{}, err
	}
	return Servable{Owner: o, Visibility: rec.Visibility, Version: rec.CurrentVersion, Files: files}, nil
}

// CheckViewer says what viewer is to an app (owner or collaborator), for view tickets. Anyone
// else, and every viewer of a disabled owner's app, gets NotFound.
func (s *Service) CheckViewer(ctx context.Context, appID uuid.UUID, viewer owner.ID) (Role, owner.ID, error) {
	o, role, disabled, err := s.store.Resolve(ctx, viewer, appID)
	if disabled {
		return RoleNone, owner.ID{}, errNotFound()
	}
	if err != nil {
		return RoleNone, owner.ID{}, err
	}
	if role == RoleOwner {
		// The owner path reads under RLS and does not look at the disabled mark.
		if _, err := s.store.AppOwner(ctx, appID); err != nil {
			return RoleNone, owner.ID{}, err
		}
	}
	return role, o, nil
}

// CheckShareToken says whether a share token opens an app.
func (s *Service) CheckShareToken(ctx context.Context, appID uuid.UUID, token string) (time.Time, owner.ID, error) {
	if !wellFormedShareToken(token) {
		return time.Time{}, owner.ID{}, errNotFound()
	}
	o, exp, err := s.store.ShareLinkOwner(ctx, appID, HashShareToken(token))
	if err != nil {
		return time.Time{}, owner.ID{}, err
	}
	return exp, o, nil
}

// ExportItem is one item of an owner's export; exactly one field is set.
type ExportItem struct {
	App       *App
	AppID     uuid.UUID
	Prompt    *Prompt
	Reference *Reference
	Content   []byte
	Version   int32
	File      *File
}

// ExportOwner streams every app of an owner, each followed by its prompts (audited with the
// export purpose), references and version files.
func (s *Service) ExportOwner(ctx context.Context, o owner.ID, emit func(ExportItem) error) error {
	var after *Cursor
	for {
		var recs []AppRecord
		err := s.store.Tx(ctx, o, func(ctx context.Context, tx StoreTx) error {
			var err error
			recs, err = tx.Apps(ctx, after, 50)
			return err
		})
		if err != nil {
			return err
		}
		apps, err := s.openApps(ctx, o, recs, RoleOwner)
		if err != nil {
			return err
		}
		for _, app := range apps {
			if err := s.exportApp(ctx, o, app, emit); err != nil {
				return err
			}
		}
		if len(recs) < 50 {
			return nil
		}
		last := recs[len(recs)-1]
		after = &Cursor{Time: last.Created, ID: last.ID}
	}
}

func (s *Service) exportApp(ctx context.Context, o owner.ID, app App, emit func(ExportItem) error) error {
	if err := emit(ExportItem{App: &app, AppID: app.ID}); err != nil {
		return err
	}
	a := Access{AppID: app.ID, Owner: o, Role: RoleOwner, Caller: Caller{Workload: "data-lifecycle"}}
	var (
		prompts  []PromptRecord
		refs     []ReferenceRecord
		versions []VersionRecord
	)
	err := s.store.Tx(ctx, o, func(ctx context.Context, tx StoreTx) error {
		var err error
		if prompts, err = tx.AllPrompts(ctx, app.ID); err != nil {
			return err
		}
		if len(prompts) > 0 {
			r := s.promptRead(a, ReadExport, len(prompts))
			r.Reader = owner.ID{}
			if err := tx.InsertPromptRead(ctx, r); err != nil {
				return err
			}
		}
		if refs, err = tx.References(ctx, app.ID); err != nil {
			return err
		}
		if versions, err = tx.Versions(ctx, app.ID); err != nil {
			return err
		}
		// The version list carries no object keys; read them per version.
		for i := range versions {
			if versions[i].Files, err = tx.VersionFiles(ctx, app.ID, versions[i].Version); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for start := 0; start < len(prompts); start += 500 {
		batch, err := s.openPrompts(ctx, o, PurposeExport, prompts[start:min(start+500, len(prompts))])
		if err != nil {
			return err
		}
		for i := range batch {
			if err := emit(ExportItem{AppID: app.ID, Prompt: &batch[i]}); err != nil {
				return err
			}
		}
	}
	for _, r := range refs {
		ref, content, err := s.openReference(ctx, o, PurposeExport, r)
		if err != nil {
			return fmt.Errorf("export reference: %w", err)
		}
		if err := emit(ExportItem{AppID: app.ID, Reference: &ref, Content: content}); err != nil {
			return err
		}
	}
	for _, v := range versions {
		for _, fr := range v.Files {
			files, err := s.openFiles(ctx, a, PurposeExport, v.Version, []FileRecord{fr})
			if err != nil {
				return err
			}
			if err := emit(ExportItem{AppID: app.ID, Version: v.Version, File: &files[0]}); err != nil {
				return err
			}
		}
	}
	return nil
}

// DisableOwner removes an owner's public copies at once (listings, share links), makes every
// app private and unreachable to collaborators and the sandbox origin, and refuses new ones
// until RestoreOwner. Idempotent.
func (s *Service) DisableOwner(ctx context.Context, o owner.ID) (listings, links int, err error) {
	var keys []string
	err = s.store.Tx(ctx, o, func(ctx context.Context, tx StoreTx) error {
		listings, links, keys, err = tx.Disable(ctx, s.clock())
		if err != nil {
			return err
		}
		return tx.AccessChanged(ctx, uuid.Nil, AccessOwnerDisabled)
	})
	if err != nil {
		return 0, 0, err
	}
	s.deleteObjects(ctx, keys)
	s.deletePrefix(ctx, o.String()+"/listings/")
	return listings, links, nil
}

// RestoreOwner undoes DisableOwner (the deletion was cancelled). Removed listings and links
// stay removed.
func (s *Service) RestoreOwner(ctx context.Context, o owner.ID) error {
	return s.store.Tx(ctx, o, func(ctx context.Context, tx StoreTx) error {
		return tx.Restore(ctx)
	})
}

// DefaultPurgeBatch is the batch size of PurgeOwner when the caller gives none.
const DefaultPurgeBatch = 1000

// PurgeOwner deletes one bounded batch of a disabled owner's objects and rows. Call it until
// Done. An owner with nothing left is done at once.
func (s *Service) PurgeOwner(ctx context.Context, o owner.ID, batch int) (PurgeCount, error) {
	if batch <= 0 {
		batch = DefaultPurgeBatch
	}
	var disabled, anything bool
	err := s.store.Tx(ctx, o, func(ctx context.Context, tx StoreTx) error {
		var err error
		if disabled, err = tx.Disabled(ctx); err != nil {
			return err
		}
		anything, err = tx.Holds(ctx)
		return err
	})
	if err != nil {
		return PurgeCount{}, err
	}
	if !disabled && anything {
		return PurgeCount{}, fault.FailedPrecondition("only a disabled owner is purged: call DisableOwner first")
	}
	var out PurgeCount
	keys, err := s.blobs.List(ctx, o.String()+"/", batch)
	if err != nil {
		return PurgeCount{}, fmt.Errorf("purge: list objects: %w", err)
	}
	for _, k := range keys {
		if err := s.blobs.Delete(ctx, k); err != nil {
			return out, fmt.Errorf("purge: delete object: %w", err)
		}
		out.Objects++
	}
	budget := batch - len(keys)
	if budget <= 0 {
		return out, nil
	}
	n, err := s.store.PurgePromptReads(ctx, o, budget)
	if err != nil {
		return out, err
	}
	out.Rows += n
	budget -= int(n)
	if budget <= 0 {
		return out, nil
	}
	err = s.store.Tx(ctx, o, func(ctx context.Context, tx StoreTx) error {
		n, done, err := tx.PurgeRows(ctx, budget)
		out.Rows += n
		out.Done = done
		return err
	})
	return out, err
}

// Purge deletes everything of an owner (the lifecycle.purge.requested consumer): it
// disables the owner first (the request is the authority), purges in batches and reports
// completion through the outbox.
func (s *Service) Purge(ctx context.Context, o owner.ID, deletionID uuid.UUID) error {
	if _, _, err := s.DisableOwner(ctx, o); err != nil {
		return err
	}
	var total PurgeCount
	for {
		n, err := s.PurgeOwner(ctx, o, DefaultPurgeBatch)
		if err != nil {
			return err
		}
		total.Rows += n.Rows
		total.Objects += n.Objects
		if n.Done {
			break
		}
	}
	return s.store.Tx(ctx, o, func(ctx context.Context, tx StoreTx) error {
		return tx.PurgeCompleted(ctx, deletionID, total.Rows, total.Objects)
	})
}
