package vault

import (
	"context"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"

	"github.com/google/uuid"

	"github.com/forgeapps/backbone/pkg/fault"
	"github.com/forgeapps/backbone/pkg/owner"
	"github.com/forgeapps/backbone/pkg/secret"
)

// Limits of app secrets.
const (
	MaxSecretsPerApp = 100
	MaxValueBytes    = 8192
	maxNameLen       = 64
	maxHostLen       = 260
)

var (
	nameRE   = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_-]*$`)
	labelRE  = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	headerRE = regexp.MustCompile(`^[A-Za-z0-9-]+$`)
	paramRE  = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)
)

// headers the proxy must never let a secret set: they belong to the transport or to the
// browser's session, not to an upstream API's credentials.
var forbiddenHeaders = map[string]bool{
	"host": true, "cookie": true, "set-cookie": true, "content-length": true, "content-type": true,
	"transfer-encoding": true, "connection": true, "upgrade": true, "te": true, "trailer": true,
	"keep-alive": true, "proxy-authorization": true, "proxy-connection": true, "origin": true,
	"referer": true, "forwarded": true, "x-forwarded-for": true, "x-forwarded-host": true,
}

// ValidateName checks a secret name.
func ValidateName(name string) error {
	if len(name) == 0 || len(name) > maxNameLen || !nameRE.MatchString(name) {
		return fault.InvalidField("name", "1 to 64 characters: a letter, then letters, digits, '_' or '-'")
	}
	return nil
}

// NormalizeUpstreamHost checks the host a secret may be sent to and returns its canonical
// form: a lower-case DNS name with at least two labels and an optional port. IP literals and
// single-label names (localhost, cluster-internal names) are refused, so a secret cannot be
// pointed at the platform's own network.
func NormalizeUpstreamHost(h string) (string, error) {
	bad := func(why string) (string, error) { return "", fault.InvalidField("upstream_host", why) }
	if h == "" || len(h) > maxHostLen {
		return bad("1 to 260 characters")
	}
	if strings.ContainsAny(h, "/@?#[] \t\r\n\\") {
		return bad("a host name with an optional port, no scheme, path or user")
	}
	host, port := strings.ToLower(h), ""
	if i := strings.LastIndexByte(host, ':'); i >= 0 {
		host, port = host[:i], host[i+1:]
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 || port[0] == '0' {
			return bad("port must be 1 to 65535")
		}
	}
	host = strings.TrimSuffix(host, ".")
	if net.ParseIP(host) != nil {
		return bad("IP addresses are not allowed, use a DNS name")
	}
	labels := strings.Split(host, ".")
	if len(labels) < 2 || len(host) > 253 {
		return bad("a fully qualified DNS name")
	}
	for _, l := range labels {
		if !labelRE.MatchString(l) {
			return bad("a fully qualified DNS name")
		}
	}
	if strings.HasSuffix(host, ".localhost") || strings.HasSuffix(host, ".internal") || strings.HasSuffix(host, ".local") {
		return bad("names of local or internal networks are not allowed")
	}
	if port != "" {
		host += ":" + port
	}
	return host, nil
}

// Validate checks an injection.
func (in Injection) Validate() error {
	switch in.Kind {
	case InjectHeader:
		if in.HeaderName == "" || len(in.HeaderName) > 64 || !headerRE.MatchString(in.HeaderName) {
			return fault.InvalidField("injection.header_name", "required for a header injection: letters, digits and '-'")
		}
		if forbiddenHeaders[strings.ToLower(in.HeaderName)] {
			return fault.InvalidField("injection.header_name", "this header cannot carry a secret")
		}
		if in.QueryParam != "" {
			return fault.InvalidField("injection.query_param", "must be empty for a header injection")
		}
	case InjectQuery:
		if in.QueryParam == "" || len(in.QueryParam) > 64 || !paramRE.MatchString(in.QueryParam) {
			return fault.InvalidField("injection.query_param", "required for a query injection: letters, digits, '_', '.' and '-'")
		}
		if in.HeaderName != "" || in.Prefix != "" {
			return fault.InvalidField("injection", "header_name and prefix must be empty for a query injection")
		}
	default:
		return fault.InvalidField("injection.kind", "must be header or query")
	}
	if len(in.Prefix) > 32 {
		return fault.InvalidField("injection.prefix", "at most 32 bytes")
	}
	for _, r := range in.Prefix {
		if r < 0x20 || r > 0x7e {
			return fault.InvalidField("injection.prefix", "printable ASCII only")
		}
	}
	return nil
}

func validateValue(v secret.Value) error {
	if v.IsZero() || v.Len() > MaxValueBytes {
		return fault.InvalidField("value", fmt.Sprintf("1 to %d bytes", MaxValueBytes))
	}
	for _, r := range v.Reveal() {
		// A value goes into a header or a query: control characters would split the request.
		if r < 0x20 || r == 0x7f {
			return fault.InvalidField("value", "must not contain control characters")
		}
	}
	return nil
}

// RegisterApp records that the owner has the app (idempotent). A shredded tenant has no apps.
func (v *Vault) RegisterApp(ctx context.Context, o owner.ID, appID uuid.UUID) error {
	return v.store.Tx(ctx, o, func(ctx context.Context, tx StoreTx) error {
		st, err := tx.Keyring(ctx, false)
		if err == nil && st.Shredded {
			return ErrShredded
		}
		if err != nil && !errors.Is(err, ErrNoKeyring) {
			return err
		}
		return tx.RegisterApp(ctx, appID, v.now())
	})
}

// UnregisterApp deletes the app's secrets and registration (idempotent) and returns how many
// secrets it deleted.
func (v *Vault) UnregisterApp(ctx context.Context, o owner.ID, a Actor, appID uuid.UUID) (int64, error) {
	var n int64
	err := v.store.Tx(ctx, o, func(ctx context.Context, tx StoreTx) error {
		var registered bool
		var err error
		n, registered, err = tx.UnregisterApp(ctx, appID)
		if err != nil || !registered {
			return err
		}
		return tx.Audit(ctx, v.entry(a, ActionAppUnregister, "app "+appID.String(), int(n)))
	})
	return n, err
}

// PutSecret stores a new secret of a registered app of the owner.
func (v *Vault) PutSecret(ctx context.Context, o owner.ID, a Actor, ns NewSecret) (Secret, error) {
	if err := ValidateName(ns.Name); err != nil {
		return Secret{}, err
	}
	if err := validateValue(ns.Value); err != nil {
		return Secret{}, err
	}
	host, err := NormalizeUpstreamHost(ns.UpstreamHost)
	if err != nil {
		return Secret{}, err
	}
	if err := ns.Injection.Validate(); err != nil {
		return Secret{}, err
	}
	// An app the owner has not registered (missing, or another tenant's) answers NotFound
	// before anything is created, the owner's first key included.
	if err := v.requireApp(ctx, o, ns.AppID); err != nil {
		return Secret{}, err
	}
	var out Secret
	err = v.withFreshKeys(ctx, o, true, func(ks *keyset) error {
		ct, err := seal(ks.aeads[ks.current], ks.current, o, secretBinding(ns.AppID.String(), ns.Name), []byte(ns.Value.Reveal()))
		if err != nil {
			return err
		}
		now := v.now()
		out = Secret{AppID: ns.AppID, Name: ns.Name, UpstreamHost: host, Injection: ns.Injection, Created: now, Rotated: now, KeyVersion: ks.current}
		return v.store.Tx(ctx, o, func(ctx context.Context, tx StoreTx) error {
			n, err := tx.CountSecrets(ctx, ns.AppID)
			if err != nil {
				return err
			}
			if n >= MaxSecretsPerApp {
				return fault.ResourceExhausted("an app has at most %d secrets", MaxSecretsPerApp)
			}
			if err := tx.InsertSecret(ctx, StoredSecret{Secret: out, Ciphertext: ct}); err != nil {
				return err
			}
			e := v.entry(a, ActionSecretPut, ns.Name, 1)
			return v.recordUse(ctx, tx, o, e, UseCheck{Current: ks.current})
		})
	})
	if err != nil {
		return Secret{}, err
	}
	return out, nil
}

func (v *Vault) requireApp(ctx context.Context, o owner.ID, appID uuid.UUID) error {
	return v.store.Tx(ctx, o, func(ctx context.Context, tx StoreTx) error {
		ok, err := tx.AppRegistered(ctx, appID)
		if err != nil {
			return err
		}
		if !ok {
			return errAppMissing
		}
		return nil
	})
}

// RotateSecret replaces a secret's value.
func (v *Vault) RotateSecret(ctx context.Context, o owner.ID, a Actor, appID uuid.UUID, name string, value secret.Value) (Secret, error) {
	if err := ValidateName(name); err != nil {
		return Secret{}, err
	}
	if err := validateValue(value); err != nil {
		return Secret{}, err
	}
	var out Secret
	err := v.store.Tx(ctx, o, func(ctx context.Context, tx StoreTx) error {
		s, err := tx.Secret(ctx, appID, name, false)
		if err != nil {
			return err
		}
		out = s.Secret
		return nil
	})
	if err != nil {
		return Secret{}, err
	}
	err = v.withFreshKeys(ctx, o, false, func(ks *keyset) error {
		ct, err := seal(ks.aeads[ks.current], ks.current, o, secretBinding(appID.String(), name), []byte(value.Reveal()))
		if err != nil {
			return err
		}
		return v.store.Tx(ctx, o, func(ctx context.Context, tx StoreTx) error {
			s, err := tx.Secret(ctx, appID, name, true)
			if err != nil {
				return err
			}
			now := v.now()
			if err := tx.UpdateSecretValue(ctx, appID, name, ct, ks.current, now); err != nil {
				return err
			}
			out = s.Secret
			out.Rotated, out.KeyVersion = now, ks.current
			return v.recordUse(ctx, tx, o, v.entry(a, ActionSecretRotate, name, 1), UseCheck{Current: ks.current})
		})
	})
	if errors.Is(err, ErrNoKeyring) {
		return Secret{}, ErrNoSecret
	}
	if err != nil {
		return Secret{}, err
	}
	return out, nil
}

// DeleteSecret deletes a secret.
func (v *Vault) DeleteSecret(ctx context.Context, o owner.ID, a Actor, appID uuid.UUID, name string) error {
	if err := ValidateName(name); err != nil {
		return err
	}
	return v.store.Tx(ctx, o, func(ctx context.Context, tx StoreTx) error {
		ok, err := tx.DeleteSecret(ctx, appID, name)
		if err != nil {
			return err
		}
		if !ok {
			return ErrNoSecret
		}
		return tx.Audit(ctx, v.entry(a, ActionSecretDelete, name, 1))
	})
}

// ListSecrets lists an app's secrets (never values). An app the owner has not registered
// answers NotFound.
func (v *Vault) ListSecrets(ctx context.Context, o owner.ID, appID uuid.UUID) ([]Secret, error) {
	var out []Secret
	err := v.store.Tx(ctx, o, func(ctx context.Context, tx StoreTx) error {
		list, registered, err := tx.ListSecrets(ctx, appID)
		if err != nil {
			return err
		}
		if !registered {
			return errAppMissing
		}
		out = list
		return nil
	})
	return out, err
}

// ExportSecretMetadata returns every secret of the owner, never values, and records the export.
func (v *Vault) ExportSecretMetadata(ctx context.Context, o owner.ID, a Actor) ([]Secret, error) {
	var out []Secret
	err := v.store.Tx(ctx, o, func(ctx context.Context, tx StoreTx) error {
		st, err := tx.Keyring(ctx, false)
		if err == nil && st.Shredded {
			return ErrShredded
		}
		if err != nil && !errors.Is(err, ErrNoKeyring) {
			return err
		}
		if out, err = tx.AllSecrets(ctx); err != nil {
			return err
		}
		return tx.Audit(ctx, v.entry(a, ActionSecretsExport, "all secrets", len(out)))
	})
	return out, err
}

// ResolveSecret returns a secret's value for the request-time proxy. The read, the audit
// entry and the policy check commit in one transaction before the value is returned.
func (v *Vault) ResolveSecret(ctx context.Context, o owner.ID, a Actor, appID uuid.UUID, name string) (Resolved, error) {
	if err := ValidateName(name); err != nil {
		return Resolved{}, err
	}
	ks, err := v.keys(ctx, o, false)
	if errors.Is(err, ErrNoKeyring) {
		return Resolved{}, ErrNoSecret // no key ever: no secret ever
	}
	if err != nil {
		return Resolved{}, err
	}
	var out Resolved
	for attempt := 0; ; attempt++ {
		err = v.store.Tx(ctx, o, func(ctx context.Context, tx StoreTx) error {
			s, err := tx.Secret(ctx, appID, name, false)
			if errors.Is(err, ErrNoSecret) {
				// A purged tenant's rows are gone; its tombstone gives the precise answer.
				if st, kerr := tx.Keyring(ctx, false); kerr == nil && st.Shredded {
					v.cache.drop(o)
					return ErrShredded
				}
			}
			if err != nil {
				return err
			}
			pt, ver, err := openWith(ks, o, secretBinding(appID.String(), name), s.Ciphertext)
			if err != nil {
				if errors.Is(err, ErrRetired) || errors.Is(err, errUnknownVersion) {
					return err
				}
				return fmt.Errorf("vault: stored secret does not open: %w", err)
			}
			if err := v.recordUse(ctx, tx, o, v.entry(a, ActionSecretResolve, name, 1), UseCheck{OldestVersion: ver}); err != nil {
				clear(pt)
				return err
			}
			out = Resolved{Value: secret.New(string(pt)), UpstreamHost: s.UpstreamHost, Injection: s.Injection}
			clear(pt)
			return nil
		})
		if errors.Is(err, errUnknownVersion) && attempt == 0 {
			// Sealed under a version newer than the cached keys (rotated elsewhere): reload once.
			if ks, err = v.load(ctx, o, false); err != nil {
				return Resolved{}, err
			}
			continue
		}
		if err != nil {
			return Resolved{}, err
		}
		return out, nil
	}
}
