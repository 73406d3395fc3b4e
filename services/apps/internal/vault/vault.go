// Package vault is the apps service's client of secrets-vault: it seals and opens tenant
// content (CryptoService: small fields whole, large objects by envelope encryption under data
// keys the vault issues and wraps), stores keys pasted into prompts as app secrets
// (SecretService) and tells the vault which apps exist (AppRegistryService). Every call acts for one owner: the
// owner context is set here from the owner the domain names, and the client interceptors
// forward it.
package vault

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/forgeapps/backbone/pkg/fault"
	vaultv1 "github.com/forgeapps/backbone/pkg/gen/forge/vault/v1"
	"github.com/forgeapps/backbone/pkg/owner"

	"github.com/forgeapps/backbone/services/apps/internal/apps"
	"github.com/forgeapps/backbone/services/apps/internal/envelope"
)

// Per-call bounds of the vault's CryptoService (500 items) and a payload that keeps each
// message well under the 16 MiB gRPC limit.
const (
	maxItems        = 500
	maxPayloadBytes = 12<<20 + 1<<20
)

// Client implements apps.Crypto, apps.Secrets and apps.Registry.
type Client struct {
	crypto   vaultv1.CryptoServiceClient
	secrets  vaultv1.SecretServiceClient
	registry vaultv1.AppRegistryServiceClient
	region   owner.Region
}

// New returns a client over a connection to secrets-vault. region is the region this
// instance serves (every owner it acts for is homed there).
func New(cc grpc.ClientConnInterface, region owner.Region) *Client {
	return &Client{
		crypto:   vaultv1.NewCryptoServiceClient(cc),
		secrets:  vaultv1.NewSecretServiceClient(cc),
		registry: vaultv1.NewAppRegistryServiceClient(cc),
		region:   region,
	}
}

var (
	_ apps.Crypto   = (*Client)(nil)
	_ apps.Secrets  = (*Client)(nil)
	_ apps.Registry = (*Client)(nil)
)

// as acts for o. In a collaborator's request the context carries the collaborator; the
// vault must see the app's owner, whose key seals the content, and no session of anyone.
func (c *Client) as(ctx context.Context, o owner.ID) context.Context {
	return owner.WithSessionID(owner.NewContext(ctx, owner.Owner{ID: o, HomeRegion: c.region}), "")
}

var purposes = map[apps.Purpose]vaultv1.Purpose{
	apps.PurposeAppContent:             vaultv1.Purpose_PURPOSE_APP_CONTENT,
	apps.PurposePromptOwnerView:        vaultv1.Purpose_PURPOSE_PROMPT_OWNER_VIEW,
	apps.PurposePromptCollaboratorView: vaultv1.Purpose_PURPOSE_PROMPT_COLLABORATOR_VIEW,
	apps.PurposePromptBuild:            vaultv1.Purpose_PURPOSE_PROMPT_BUILD,
	apps.PurposeExport:                 vaultv1.Purpose_PURPOSE_EXPORT,
	apps.PurposeServe:                  vaultv1.Purpose_PURPOSE_SERVE,
}

// chunks splits items into calls the vault accepts.
func chunks(items []apps.CryptoItem) [][]apps.CryptoItem {
	var (
		out   [][]apps.CryptoItem
		start int
		size  int
	)
	for i, it := range items {
		if i > start && (i-start >= maxItems || size+len(it.Data) > maxPayloadBytes) {
			out = append(out, items[start:i])
			start, size = i, 0
		}
		size += len(it.Data)
	}
	return append(out, items[start:])
}

func binding(b apps.Binding) *vaultv1.Binding {
	return &vaultv1.Binding{Object: b.Object, Field: b.Field}
}

// Encrypt seals items for owner o. It returns the oldest key version used (several calls may
// straddle a rotation), which is what a later rewrap must look for.
func (c *Client) Encrypt(ctx context.Context, o owner.ID, p apps.Purpose, items []apps.CryptoItem) ([][]byte, uint32, error) {
	ctx = c.as(ctx, o)
	out := make([][]byte, 0, len(items))
	var version uint32
	for _, chunk := range chunks(items) {
		req := &vaultv1.EncryptRequest{Purpose: purposes[p], Items: make([]*vaultv1.EncryptItem, len(chunk))}
		for i, it := range chunk {
			req.Items[i] = &vaultv1.EncryptItem{Binding: binding(it.Binding), Plaintext: it.Data}
		}
		resp, err := c.crypto.Encrypt(ctx, req)
		if err != nil {
			return nil, 0, mapErr("encrypt", err)
		}
		if len(resp.GetCiphertexts()) != len(chunk) {
			return nil, 0, fmt.Errorf("vault encrypt: %d ciphertexts for %d items", len(resp.GetCiphertexts()), len(chunk))
		}
		out = append(out, resp.GetCiphertexts()...)
		if version == 0 || resp.GetKeyVersion() < version {
			version = resp.GetKeyVersion()
		}
	}
	return out, version, nil
}

// Decrypt opens items for owner o.
func (c *Client) Decrypt(ctx context.Context, o owner.ID, p apps.Purpose, items []apps.CryptoItem) ([][]byte, error) {
	ctx = c.as(ctx, o)
	out := make([][]byte, 0, len(items))
	for _, chunk := range chunks(items) {
		req := &vaultv1.DecryptRequest{Purpose: purposes[p], Items: make([]*vaultv1.DecryptItem, len(chunk))}
		for i, it := range chunk {
			req.Items[i] = &vaultv1.DecryptItem{Binding: binding(it.Binding), Ciphertext: it.Data}
		}
		resp, err := c.crypto.Decrypt(ctx, req)
		if err != nil {
			return nil, mapErr("decrypt", err)
		}
		if len(resp.GetPlaintexts()) != len(chunk) {
			return nil, fmt.Errorf("vault decrypt: %d plaintexts for %d items", len(resp.GetPlaintexts()), len(chunk))
		}
		out = append(out, resp.GetPlaintexts()...)
	}
	return out, nil
}

// SealObjects implements envelope encryption (apps.Crypto): one GenerateDataKey call per
// maxItems items returns a fresh data key per item, in the clear and wrapped under the owner's
// key for the item's binding; each item is sealed here with its key (package envelope) and the
// clear key is zeroed before this method returns. Only the content and the wrapped key leave.
func (c *Client) SealObjects(ctx context.Context, o owner.ID, p apps.Purpose, items []apps.CryptoItem) ([]apps.SealedObject, uint32, error) {
	ctx = c.as(ctx, o)
	out := make([]apps.SealedObject, 0, len(items))
	var version uint32
	for start := 0; start < len(items); start += maxItems {
		chunk := items[start:min(start+maxItems, len(items))]
		req := &vaultv1.GenerateDataKeyRequest{Purpose: purposes[p], Bindings: make([]*vaultv1.Binding, len(chunk))}
		for i, it := range chunk {
			req.Bindings[i] = binding(it.Binding)
		}
		resp, err := c.crypto.GenerateDataKey(ctx, req)
		if err != nil {
			return nil, 0, mapErr("generate data key", err)
		}
		sealed, err := sealWith(resp, o, chunk)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, sealed...)
		if version == 0 || resp.GetKeyVersion() < version {
			version = resp.GetKeyVersion()
		}
	}
	return out, version, nil
}

// sealWith seals each item with its key of resp and zeroes every clear key of resp.
func sealWith(resp *vaultv1.GenerateDataKeyResponse, o owner.ID, items []apps.CryptoItem) ([]apps.SealedObject, error) {
	defer func() {
		for _, k := range resp.GetKeys() {
			clear(k.GetPlaintext())
		}
	}()
	if len(resp.GetKeys()) != len(items) {
		return nil, fmt.Errorf("vault generate data key: %d keys for %d items", len(resp.GetKeys()), len(items))
	}
	out := make([]apps.SealedObject, len(items))
	for i, it := range items {
		k := resp.GetKeys()[i]
		data, err := envelope.Seal(k.GetPlaintext(), envelopeBinding(o, it.Binding), it.Data)
		if err != nil {
			return nil, fmt.Errorf("seal object: %w", err)
		}
		out[i] = apps.SealedObject{Data: data, WrappedKey: k.GetWrapped()}
	}
	return out, nil
}

func envelopeBinding(o owner.ID, b apps.Binding) envelope.Binding {
	return envelope.Binding{Owner: o, Object: b.Object, Field: b.Field}
}

// OpenObjects implements apps.Crypto: the wrapped keys are opened by the vault
// (DecryptDataKey, audited with purpose p) while fetch reads the objects, then each object is
// opened here and its clear key zeroed. An object that does not open fails the whole call.
func (c *Client) OpenObjects(ctx context.Context, o owner.ID, p apps.Purpose, items []apps.ObjectItem,
	fetch func(ctx context.Context, i int) ([]byte, error)) ([][]byte, error) {
	for i, it := range items {
		if len(it.WrappedKey) == 0 {
			// Only rows written before envelope encryption lack a key; none exist in production.
			return nil, fmt.Errorf("object %d has no wrapped data key", i)
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type unwrapped struct {
		keys [][]byte
		err  error
	}
	done := make(chan unwrapped, 1)
	go func() {
		keys, err := c.decryptDataKeys(c.as(ctx, o), p, items)
		done <- unwrapped{keys, err}
	}()
	sealed := make([][]byte, len(items))
	var fetchErr error
	for i := range items {
		if sealed[i], fetchErr = fetch(ctx, i); fetchErr != nil {
			cancel() // the keys are not needed any more
			break
		}
	}
	r := <-done
	defer func() {
		for _, k := range r.keys {
			clear(k)
		}
	}()
	if fetchErr != nil {
		return nil, fetchErr
	}
	if r.err != nil {
		return nil, r.err
	}
	out := make([][]byte, len(items))
	for i, it := range items {
		pt, err := envelope.Open(r.keys[i], envelopeBinding(o, it.Binding), sealed[i])
		if err != nil {
			return nil, fmt.Errorf("open object %d: %w", i, err)
		}
		out[i] = pt
	}
	return out, nil
}

// decryptDataKeys opens wrapped keys in calls the vault accepts.
func (c *Client) decryptDataKeys(ctx context.Context, p apps.Purpose, items []apps.ObjectItem) ([][]byte, error) {
	out := make([][]byte, 0, len(items))
	fail := func(err error) ([][]byte, error) {
		for _, k := range out {
			clear(k)
		}
		return nil, err
	}
	for start := 0; start < len(items); start += maxItems {
		chunk := items[start:min(start+maxItems, len(items))]
		req := &vaultv1.DecryptDataKeyRequest{Purpose: purposes[p], Items: make([]*vaultv1.WrappedDataKey, len(chunk))}
		for i, it := range chunk {
			req.Items[i] = &vaultv1.WrappedDataKey{Binding: binding(it.Binding), Wrapped: it.WrappedKey}
		}
		resp, err := c.crypto.DecryptDataKey(ctx, req)
		if err != nil {
			return fail(mapErr("decrypt data key", err))
		}
		out = append(out, resp.GetPlaintexts()...)
		if len(resp.GetPlaintexts()) != len(chunk) {
			return fail(fmt.Errorf("vault decrypt data key: %d keys for %d items", len(resp.GetPlaintexts()), len(chunk)))
		}
	}
	return out, nil
}

// PutSecret stores a secret of an app of owner o. The value appears in no error.
func (c *Client) PutSecret(ctx context.Context, o owner.ID, s apps.SecretSpec) error {
	inj := &vaultv1.Injection{Kind: vaultv1.Injection_KIND_HEADER, HeaderName: s.Header, Prefix: s.Prefix}
	if s.Query != "" {
		inj = &vaultv1.Injection{Kind: vaultv1.Injection_KIND_QUERY, QueryParam: s.Query}
	}
	_, err := c.secrets.PutSecret(c.as(ctx, o), &vaultv1.PutSecretRequest{
		AppId: s.AppID.String(), Name: s.Name, Value: string(s.Value), UpstreamHost: s.Upstream, Injection: inj,
	})
	if err != nil {
		return mapErr("put secret", err)
	}
	return nil
}

// RegisterApp tells the vault that owner o has the app.
func (c *Client) RegisterApp(ctx context.Context, o owner.ID, appID uuid.UUID) error {
	if _, err := c.registry.RegisterApp(c.as(ctx, o), &vaultv1.RegisterAppRequest{AppId: appID.String()}); err != nil {
		return mapErr("register app", err)
	}
	return nil
}

// UnregisterApp drops the app and its secrets from the vault.
func (c *Client) UnregisterApp(ctx context.Context, o owner.ID, appID uuid.UUID) error {
	if _, err := c.registry.UnregisterApp(c.as(ctx, o), &vaultv1.UnregisterAppRequest{AppId: appID.String()}); err != nil {
		return mapErr("unregister app", err)
	}
	return nil
}

// mapErr keeps what the vault says about the request's conditions and masks what is about
// the wiring between apps and the vault (a bad binding, a refused purpose: defects of this
// service that the end user can do nothing about). The status message is never copied into
// a client-visible error.
func mapErr(op string, err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return fmt.Errorf("vault %s: %w", op, err)
	}
	opaque := errors.New("vault " + op + ": " + st.Code().String() + ": " + st.Message())
	switch st.Code() {
	case codes.Unavailable, codes.DeadlineExceeded, codes.ResourceExhausted, codes.Aborted:
		return fault.Unavailable("the key service is unavailable, retry later").Wrap(opaque)
	case codes.Canceled:
		return fmt.Errorf("vault %s: %w", op, context.Canceled)
	case codes.FailedPrecondition:
		// The owner's keys are gone (shredded) or retired: the content cannot be opened.
		return fault.FailedPrecondition("this content can no longer be decrypted").Wrap(opaque)
	}
	return opaque
}
