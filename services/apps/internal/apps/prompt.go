package apps

import (
	"context"
	"crypto/rand"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/forgeapps/backbone/pkg/fault"
	"github.com/forgeapps/backbone/pkg/owner"
	"github.com/forgeapps/backbone/services/apps/internal/keyscan"
)

// Prompt is a prompt entry as a reader sees it.
type Prompt struct {
	ID      uuid.UUID
	Seq     int64
	Kind    PromptKind
	Text    string
	Author  string
	Created time.Time
}

// AddPrompt appends an entry to an app's conversation. People (the owner, editors) add
// prompts; the builder adds responses. API keys found in the text are stored as secrets of
// the app in the vault and replaced by {{secret:NAME}} before the text is encrypted and
// stored; the names are returned.
func (s *Service) AddPrompt(ctx context.Context, c Caller, appID uuid.UUID, kind PromptKind, text string) (Prompt, []string, error) {
	switch {
	case c.IsBuilder() && kind != KindResponse:
		return Prompt{}, nil, fault.InvalidField("kind", "the builder adds KIND_RESPONSE entries")
	case !c.IsBuilder() && kind != KindPrompt:
		return Prompt{}, nil, fault.InvalidField("kind", "people add KIND_PROMPT entries")
	}
	a, err := s.resolveWriter(ctx, c, appID)
	if err != nil {
		return Prompt{}, nil, err
	}
	stored, names, err := s.extractKeys(ctx, a, text)
	if err != nil {
		return Prompt{}, nil, err
	}
	rec := PromptRecord{ID: uuid.New(), AppID: appID, Kind: kind, Author: a.author(), Created: s.clock()}
	cts, ver, err := s.crypto.Encrypt(ctx, a.Owner, PurposeAppContent,
		[]CryptoItem{{Binding: promptBinding(rec.ID), Data: []byte(stored)}})
	if err != nil {
		return Prompt{}, nil, fmt.Errorf("seal prompt: %w", err)
	}
	rec.Text, rec.KeyVersion = cts[0], ver
	err = s.store.Tx(ctx, a.Owner, func(ctx context.Context, tx StoreTx) error {
		seq, err := tx.NextPromptSeq(ctx, appID)
		if err != nil {
			return err
		}
		rec.Seq = seq
		return tx.InsertPrompt(ctx, rec)
	})
	if err != nil {
		return Prompt{}, nil, err
	}
	return Prompt{ID: rec.ID, Seq: rec.Seq, Kind: kind, Text: stored, Author: rec.Author, Created: rec.Created}, names, nil
}

// extractKeys stores every key found in text as a secret of the app and returns the text
// with references in their place. The keys live only in the vault from here on: never in an
// error, a log line or the answer.
func (s *Service) extractKeys(ctx context.Context, a Access, text string) (string, []string, error) {
	found := s.scanner.Scan(text)
	if len(found) == 0 {
		return text, nil, nil
	}
	names := make([]string, len(found))
	for i, f := range found {
		name, err := secretName(f.Provider)
		if err != nil {
			return "", nil, err
		}
		spec := SecretSpec{AppID: a.AppID, Name: name, Value: []byte(text[f.Start:f.End]), Upstream: f.Provider.Upstream,
			Header: f.Provider.Header, Prefix: f.Provider.Prefix, Query: f.Provider.Query}
		if err := s.secrets.PutSecret(ctx, a.Owner, spec); err != nil {
			// The error names the secret, never the value.
			return "", nil, fmt.Errorf("store pasted key as secret %s: %w", name, err)
		}
		names[i] = name
	}
	return keyscan.Replace(text, found, func(i int) string { return "{{secret:" + names[i] + "}}" }), names, nil
}

// secretName is PROVIDER_API_KEY_ plus 6 random characters: unique within the app, and
// derived from nothing of the key.
func secretName(p keyscan.Provider) (string, error) {
	const alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("secret name: %w", err)
	}
	var sb strings.Builder
	sb.WriteString(p.Name)
	sb.WriteString("_API_KEY_")
	for _, c := range b {
		sb.WriteByte(alphabet[int(c)%len(alphabet)])
	}
	return sb.String(), nil
}

// readPurpose is the audit purpose of a prompt read under access a.
func readPurpose(a Access) (ReadPurpose, Purpose) {
	switch {
	case a.Caller.IsBuilder():
		return ReadBuild, PurposePromptBuild
	case a.Role == RoleOwner:
		return ReadOwnerView, PurposePromptOwnerView
	}
	return ReadCollaboratorView, PurposePromptCollaboratorView
}

// ListPrompts pages through an app's conversation in order (owner, collaborators, builder).
// The read is audited in the owner's prompt-read log, in the same transaction that reads the
// rows, before any text is decrypted.
func (s *Service) ListPrompts(ctx context.Context, c Caller, appID uuid.UUID, size int32, token string) ([]Prompt, string, error) {
	after, err := decodeToken(tokenPrompts, token)
	if err != nil {
		return nil, "", err
	}
	a, err := s.resolve(ctx, c, appID)
	if err != nil {
		return nil, "", err
	}
	afterSeq := int64(0)
	if after != nil {
		afterSeq = after.Seq
	}
	limit := pageSize(size)
	purpose, vaultPurpose := readPurpose(a)
	var recs []PromptRecord
	err = s.store.Tx(ctx, a.Owner, func(ctx context.Context, tx StoreTx) error {
		if _, err := tx.App(ctx, appID, false); err != nil {
			return err
		}
		recs, err = tx.Prompts(ctx, appID, afterSeq, limit+1)
		if err != nil {
			return err
		}
		n := min(len(recs), limit)
		if n == 0 {
			return nil
		}
		return tx.InsertPromptRead(ctx, s.promptRead(a, purpose, n))
	})
	if err != nil {
		return nil, "", ensureFound(err)
	}
	next := ""
	if len(recs) > limit {
		recs = recs[:limit]
		next = encodeToken(tokenPrompts, Cursor{Seq: recs[limit-1].Seq})
	}
	out, err := s.openPrompts(ctx, a.Owner, vaultPurpose, recs)
	return out, next, err
}

func (s *Service) promptRead(a Access, p ReadPurpose, n int) PromptRead {
	r := PromptRead{ID: uuid.New(), AppID: a.AppID, Purpose: p, Workload: a.Caller.Workload, PromptCount: n, Time: s.clock()}
	if !a.Caller.IsBuilder() {
		r.Reader = a.Caller.Owner
	}
	return r
}

func (s *Service) openPrompts(ctx context.Context, o owner.ID, p Purpose, recs []PromptRecord) ([]Prompt, error) {
	if len(recs) == 0 {
		return nil, nil
	}
	items := make([]CryptoItem, len(recs))
	for i, r := range recs {
		items[i] = CryptoItem{Binding: promptBinding(r.ID), Data: r.Text}
	}
	pts, err := s.crypto.Decrypt(ctx, o, p, items)
	if err != nil {
		return nil, fmt.Errorf("open prompts: %w", err)
	}
	out := make([]Prompt, len(recs))
	for i, r := range recs {
		out[i] = Prompt{ID: r.ID, Seq: r.Seq, Kind: r.Kind, Text: string(pts[i]), Author: r.Author, Created: r.Created}
	}
	return out, nil
}

// ListPromptReads pages through the audit of an app's prompt reads, newest first (owner only).
func (s *Service) ListPromptReads(ctx context.Context, c Caller, appID uuid.UUID, size int32, token string) ([]PromptRead, string, error) {
	after, err := decodeToken(tokenReads, token)
	if err != nil {
		return nil, "", err
	}
	a, err := s.resolveOwner(ctx, c, appID)
	if err != nil {
		return nil, "", err
	}
	limit := pageSize(size)
	var reads []PromptRead
	err = s.store.Tx(ctx, a.Owner, func(ctx context.Context, tx StoreTx) error {
		reads, err = tx.PromptReads(ctx, appID, after, limit+1)
		return err
	})
	if err != nil {
		return nil, "", err
	}
	next := ""
	if len(reads) > limit {
		reads = reads[:limit]
		last := reads[limit-1]
		next = encodeToken(tokenReads, Cursor{Time: last.Time, ID: last.ID})
	}
	return reads, next, nil
}
