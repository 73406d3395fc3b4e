package e2e_test

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"

	"github.com/forgeapps/backbone/pkg/events"
	eventsv1 "github.com/forgeapps/backbone/pkg/gen/forge/events/v1"
	lifecyclev1 "github.com/forgeapps/backbone/pkg/gen/forge/lifecycle/v1"
	vaultv1 "github.com/forgeapps/backbone/pkg/gen/forge/vault/v1"
	"github.com/forgeapps/backbone/pkg/owner"
	"github.com/forgeapps/backbone/pkg/testkit/grpctest"
	"github.com/forgeapps/backbone/pkg/workload"

	"github.com/forgeapps/backbone/services/data-lifecycle/internal/archive"
	"github.com/forgeapps/backbone/services/data-lifecycle/internal/backup"
	"github.com/forgeapps/backbone/services/data-lifecycle/internal/keyprovider"
	"github.com/forgeapps/backbone/services/data-lifecycle/internal/lifecycle"
)

// TestExportDeletePurgeRestore is the whole life of a tenant's data across the real services:
// export (NATS killed and restarted during it; the export completes once), download through
// a single-use link, deletion (disabled at once), the purge (data-lifecycle killed at each
// step; a duplicated purge event changes nothing), the signed certificate, a scan of every
// table and object, decrypts that fail, and a backup taken before the purge that, restored,
// yields nothing readable; then the restore drill: the backup restored over the live
// databases, the deletion ledger replayed, and the tenant gone again.
func TestExportDeletePurgeRestore(t *testing.T) {
	s := startStack(t)
	ex, del := s.lifecycle()
	a := s.signUp("a@example.test")
	b := s.signUp("b@example.test")
	appID := s.seed(a)
	s.seed(b)

	// --- Export, with NATS stopped and restarted while it is under way.
	created, err := ex.CreateExport(s.owner(a), &lifecyclev1.CreateExportRequest{})
	require.NoError(t, err)
	expID := created.GetExport().GetExportId()
	s.st.NATS.Shutdown()
	s.st.NATS.Restart()
	eventually(t, "the export to be ready", 90*time.Second, func() bool {
		g, err := ex.GetExport(s.owner(a), &lifecyclev1.GetExportRequest{ExportId: expID})
		return err == nil && g.GetExport().GetState() == lifecyclev1.ExportState_EXPORT_STATE_READY
	})
	var archives []string
	for _, p := range s.scanObjects(a) {
		if strings.HasSuffix(p, ".fgex") {
			archives = append(archives, p)
		}
	}
	require.Len(t, archives, 1, "exactly one archive (the export completed once): %v", archives)
	sealedArchive, err := os.ReadFile(archives[0])
	require.NoError(t, err)

	link, err := ex.CreateDownloadLink(s.owner(a), &lifecyclev1.CreateDownloadLinkRequest{ExportId: expID})
	require.NoError(t, err)
	token := link.GetUrl()[strings.Index(link.GetUrl(), "token=")+len("token="):]
	_, err = download(t, ex, s.owner(b), expID, token)
	require.Equal(t, codes.NotFound, code(err), "another tenant cannot use the link")
	zipBytes, err := download(t, ex, s.owner(a), expID, token)
	require.NoError(t, err)
	_, err = download(t, ex, s.owner(a), expID, token)
	require.Equal(t, codes.NotFound, code(err), "the link is single-use")

	zr, err := zip.NewReader(bytes.NewReader(zipBytes), int64(len(zipBytes)))
	require.NoError(t, err)
	all := map[string][]byte{}
	for _, f := range zr.File {
		rc, err := f.Open()
		require.NoError(t, err)
		all[f.Name], err = io.ReadAll(rc)
		require.NoError(t, err)
	}
	var m archive.Manifest
	require.NoError(t, json.Unmarshal(all[archive.ManifestName], &m))
	require.Equal(t, a.String(), m.OwnerID)
	for _, k := range []string{"accounts", "apps", "prompts", "references", "files", "secrets"} {
		require.Positive(t, m.Counts[k], "manifest counts %s: %v", k, m.Counts)
	}
	joined := string(bytes.Join(mapValues(all), nil))
	for _, c := range []string{canaryPrompt, canaryRef, canaryName, canaryFile, "OPENAI_KEY"} {
		require.Contains(t, joined, c)
	}
	require.NotContains(t, joined, canarySecret, "secret values are never exported")
	require.NotContains(t, joined, b.String(), "nothing of another tenant")

	// A ciphertext of the tenant's, to try after the purge.
	vc := vaultv1.NewCryptoServiceClient(s.st.Dial(t, workload.SecretsVault, dl))
	enc, err := vc.Encrypt(s.owner(a), &vaultv1.EncryptRequest{Purpose: vaultv1.Purpose_PURPOSE_EXPORT,
		Items: []*vaultv1.EncryptItem{{Binding: &vaultv1.Binding{Object: "probe/1", Field: "f"}, Plaintext: []byte("x")}}})
	require.NoError(t, err)

	// --- A backup before the deletion.
	job := s.backupJob()
	backupTime := time.Now().UTC().Add(-time.Second).Truncate(time.Second)
	dumps := s.dumpAll(job)

	// --- Deletion: disabled at once.
	req, err := del.RequestDeletion(s.owner(a), &lifecyclev1.RequestDeletionRequest{Confirm: lifecycle.ConfirmPhrase})
	require.NoError(t, err)
	require.True(t, req.GetDeletion().GetAccountDisabled())
	receipt := req.GetReceiptToken()
	var status string
	require.NoError(t, s.pool(workload.Tenant).QueryRow(s.ctx, `SELECT status FROM tenant.accounts WHERE owner_id = $1`, a).Scan(&status))
	require.Equal(t, "deletion_pending", status)
	var links int
	require.NoError(t, s.pool(workload.Apps).QueryRow(s.ctx, `SELECT count(*) FROM apps.share_links WHERE owner_id = $1`, a).Scan(&links))
	require.Zero(t, links, "share links removed at once")

	// --- The purge, due now (the schedule is moved; the clock tests move the clock itself).
	deletionID := uuid.MustParse(req.GetDeletion().GetDeletionId())
	_, err = s.pool(dl).Exec(s.ctx, `UPDATE lifecycle.deletions SET requested_at = requested_at - interval '30 days',
		purge_due_at = now() - interval '1 second' WHERE owner_id = $1 AND id = $2`, a, deletionID)
	require.NoError(t, err)
	step := func() string {
		var st string
		var done int
		_ = s.pool(dl).QueryRow(s.ctx, `SELECT d.state, (SELECT count(*) FROM lifecycle.purge_stores p
			WHERE p.owner_id = d.owner_id AND p.deletion_id = d.id AND p.done_at IS NOT NULL)
			FROM lifecycle.deletions d WHERE owner_id = $1 AND id = $2`, a, deletionID).Scan(&st, &done)
		return st + "/" + string(rune('0'+done))
	}
	// Killed right after the claim, and again after the first reports: each restart resumes.
	eventually(t, "the claim", 30*time.Second, func() bool { return strings.HasPrefix(step(), "purging") })
	s.st.StopService(dl, true)
	require.NoError(t, s.st.StartService(s.ctx, dl))
	eventually(t, "a first report", 60*time.Second, func() bool { return step() >= "purging/1" || strings.HasPrefix(step(), "completed") })
	s.st.StopService(dl, true)
	require.NoError(t, s.st.StartService(s.ctx, dl))
	var cert *lifecyclev1.GetDeletionByReceiptResponse
	eventually(t, "the purge to complete", 120*time.Second, func() bool {
		r, err := del.GetDeletionByReceipt(s.ctx, &lifecyclev1.GetDeletionByReceiptRequest{ReceiptToken: receipt})
		cert = r
		return err == nil && r.GetCertificate() != nil
	})
	key, err := keyprovider.LoadSigningKey(filepath.Join(s.keyDir, "signing.pem"))
	require.NoError(t, err)
	p, err := lifecycle.Verify(key.Public().(ed25519.PublicKey), lifecycle.Certificate{
		Payload: cert.GetCertificate().GetPayload(), Signature: cert.GetCertificate().GetSignature(), KeyID: cert.GetCertificate().GetKeyId()})
	require.NoError(t, err)
	require.Equal(t, lifecycle.OwnerHash(a), p.OwnerIDSHA256)
	require.NotEmpty(t, p.KeyVersionsDestroyed, "the vault reported the destroyed key versions")
	require.Len(t, p.Stores, len(lifecycle.Registry()))

	// --- Nothing of the tenant anywhere (but the retained records, which hold no content),
	// once every event of the purge was handled (tenant announces `purged` as it finishes).
	s.quiesce("the purge's events to be handled")
	left, canaries := s.contentRows(a), s.canaries(a)
	// Reported all at once (assert, not require) so the rest of the run still shows.
	assert.Empty(t, left, "tables still holding rows of the purged tenant")
	assert.Empty(t, canaries)
	assert.Empty(t, s.scanObjects(a), "no object of the tenant")
	_, err = vc.Decrypt(s.owner(a), &vaultv1.DecryptRequest{Purpose: vaultv1.Purpose_PURPOSE_EXPORT,
		Items: []*vaultv1.DecryptItem{{Binding: &vaultv1.Binding{Object: "probe/1", Field: "f"}, Ciphertext: enc.GetCiphertexts()[0]}}})
	require.Error(t, err, "the tenant's keys are shredded: nothing decrypts")
	sealer := vaultSealer{vc: vc, o: a}
	_, err = archive.NewDecryptingReader(s.ctx, bytes.NewReader(sealedArchive), sealer, expID)
	require.Error(t, err, "a copy of the export archive no longer opens")
	// b is untouched.
	rowsB, _ := s.scanRows(b)
	require.NotEmpty(t, rowsB)

	// A duplicated purge event changes nothing (of what is not retained on purpose).
	before := s.contentRows(a)
	dupe(t, s, a, deletionID)
	eventually(t, "the duplicate to be published", 30*time.Second, func() bool {
		var n int
		_ = s.pool(dl).QueryRow(s.ctx, `SELECT count(*) FROM lifecycle.outbox`).Scan(&n)
		return n == 0
	})
	// Every store answers a duplicate with a report through its own outbox: wait until those
	// are relayed and handled too, or a report still in an outbox counts as a row left.
	s.quiesce("the duplicate to be handled")
	require.Equal(t, before, s.contentRows(a))
	again, err := del.GetDeletionByReceipt(s.ctx, &lifecyclev1.GetDeletionByReceiptRequest{ReceiptToken: receipt})
	require.NoError(t, err)
	require.Equal(t, cert.GetCertificate().GetPayload(), again.GetCertificate().GetPayload())

	// --- The backup taken before the purge, restored into scratch databases: the tenant's
	// rows are there, but nothing readable: no plaintext canary, no key to open the rest.
	for svc, name := range dumps {
		pool := s.restoreScratch(job, svc, name)
		texts, err := pgxCollectAll(s.ctx, pool, schemaOf(svc))
		require.NoError(t, err)
		for _, txt := range texts {
			for _, c := range []string{canaryPrompt, canaryFile, canaryRef, canarySecret, canaryName} {
				require.NotContains(t, txt, c, "%s backup holds readable content", svc)
			}
		}
		if svc == workload.SecretsVault {
			var keys int
			require.NoError(t, pool.QueryRow(s.ctx, `SELECT count(*) FROM tenant_keys`).Scan(&keys))
			require.Zero(t, keys, "wrapped keys are never in a database backup")
		}
	}
	_ = appID

	// --- The restore drill: every database restored in place from the pre-deletion backup
	// (as after a disaster), then the deletion ledger replayed: the tenant is purged again.
	for i := len(services) - 1; i >= 0; i-- {
		s.st.StopService(services[i], false)
	}
	for _, svc := range services {
		mig, _, err := s.st.DatabaseURLs(svc)
		require.NoError(t, err)
		s.emptySchema(mig, schemaOf(svc))
		_, err = job.Restore(s.ctx, dumps[svc], mig)
		require.NoError(t, err, svc)
	}
	for _, svc := range services {
		require.NoError(t, s.st.StartService(s.ctx, svc))
	}
	back, _ := s.scanRows(a)
	require.NotEmpty(t, back["tenant.accounts"], "the restore brought the purged tenant's rows back")
	require.NoError(t, backup.Replay(s.ctx, s.replayDeps(job), backupTime))
	eventually(t, "the replayed purge to complete", 120*time.Second, func() bool {
		var n int
		_ = s.pool(dl).QueryRow(s.ctx, `SELECT count(*) FROM lifecycle.deletions WHERE owner_id = $1 AND state = 'completed'`, a).Scan(&n)
		return n == 1
	})
	s.quiesce("the replayed purge's events to be handled")
	assert.Empty(t, s.contentRows(a), "after the replay, tables still holding rows of the purged tenant")
	assert.Empty(t, s.canaries(a))
}

func mapValues(m map[string][]byte) [][]byte {
	var out [][]byte
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

type vaultSealer struct {
	vc vaultv1.CryptoServiceClient
	o  owner.ID
}

func (v vaultSealer) Seal(context.Context, archive.Binding, []byte) ([]byte, error) {
	panic("not used")
}

func (v vaultSealer) Open(ctx context.Context, b archive.Binding, ct []byte) ([]byte, error) {
	r, err := v.vc.Decrypt(grpctestOwner(ctx, v.o), &vaultv1.DecryptRequest{Purpose: vaultv1.Purpose_PURPOSE_EXPORT,
		Items: []*vaultv1.DecryptItem{{Binding: &vaultv1.Binding{Object: b.Object, Field: b.Field}, Ciphertext: ct}}})
	if err != nil {
		return nil, err
	}
	return r.GetPlaintexts()[0], nil
}

func grpctestOwner(ctx context.Context, o owner.ID) context.Context { return grpctest.AsOwner(ctx, o) }

// dupe publishes the purge event again, through data-lifecycle's own outbox (as a redelivery
// after the duplicate window would arrive).
func dupe(t *testing.T, s *stack, o owner.ID, deletionID uuid.UUID) {
	t.Helper()
	ob, err := events.NewOutbox(events.OutboxConfig{Region: owner.DefaultRegion})
	require.NoError(t, err)
	tx, err := s.pool(dl).Begin(s.ctx)
	require.NoError(t, err)
	_, err = tx.Exec(s.ctx, `SET LOCAL search_path = lifecycle`)
	require.NoError(t, err)
	_, err = ob.Enqueue(s.ctx, tx, &eventsv1.PurgeRequested{Meta: &eventsv1.EventMeta{OwnerId: o.String()}, DeletionId: deletionID.String()})
	require.NoError(t, err)
	require.NoError(t, tx.Commit(s.ctx))
}

func pgxCollectAll(ctx context.Context, p *pgxpool.Pool, schema string) ([]string, error) {
	tables, err := pgxCollect(ctx, p, `SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') ORDER BY 1`, schema)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, tbl := range tables {
		texts, err := pgxCollect(ctx, p, `SELECT t::text FROM `+pgx.Identifier{schema, tbl}.Sanitize()+` t`)
		if err != nil {
			return nil, err
		}
		out = append(out, texts...)
	}
	return out, nil
}

// contentRows is scanRows without the tables the registry retains on purpose.
func (s *stack) contentRows(o owner.ID) map[string]int {
	rows, _ := s.scanRows(o)
	left := map[string]int{}
	for tbl, n := range rows {
		svc, name, _ := strings.Cut(tbl, ".")
		if !retained(svc, name) {
			left[tbl] = n
		}
	}
	return left
}

func (s *stack) canaries(o owner.ID) []string {
	_, c := s.scanRows(o)
	return c
}
