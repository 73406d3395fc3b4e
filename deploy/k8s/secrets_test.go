package k8s

import (
	"fmt"
	"net/url"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
)

// mountedFile is where a file a workload reads comes from.
type mountedFile struct {
	Secret string // the Secret mounted at the file's directory ("" when none)
	Key    string // the Secret's key that becomes the file
	Mode   int32  // the volume's defaultMode (or the item's mode)
	Whole  bool   // the whole Secret is mounted (no items)
}

// fileSource finds the Secret volume that holds file in container c of spec: mounted at the
// file's directory, read-only, without subPath (so the kubelet can update it in place).
func fileSource(spec corev1.PodSpec, c corev1.Container, file string) (mountedFile, bool) {
	dir, base := path.Split(file)
	dir = strings.TrimSuffix(dir, "/")
	for _, m := range c.VolumeMounts {
		if m.MountPath != dir || !m.ReadOnly || m.SubPath != "" {
			continue
		}
		for _, v := range spec.Volumes {
			if v.Name != m.Name || v.Secret == nil {
				continue
			}
			mode := int32(0o644)
			if v.Secret.DefaultMode != nil {
				mode = *v.Secret.DefaultMode
			}
			if len(v.Secret.Items) == 0 {
				return mountedFile{Secret: v.Secret.SecretName, Key: base, Mode: mode, Whole: true}, true
			}
			for _, it := range v.Secret.Items {
				if it.Path == base {
					if it.Mode != nil {
						mode = *it.Mode
					}
					return mountedFile{Secret: v.Secret.SecretName, Key: it.Key, Mode: mode}, true
				}
			}
		}
	}
	return mountedFile{}, false
}

// keyFile returns the file a `file:///abs/path` key provider names, or "" when it is not one.
func keyFile(provider string) string {
	u, err := url.Parse(provider)
	if err != nil || u.Scheme != "file" || u.Host != "" || u.RawQuery != "" || !path.IsAbs(u.Path) {
		return ""
	}
	return u.Path
}

// secretFileRule says which Secret a key file must come from, for one command of one service.
type secretFileRule struct {
	Service, Command, Env, Secret, Key string
	KeyProvider                        bool // the variable is a file:// URL (the only provider built in), not a path
}

var secretFileRules = []secretFileRule{
	{"secrets-vault", "serve", "FORGE_KEY_PROVIDER", "secrets-vault-root-key", "root.key", true},
	{"data-lifecycle", "backup", "FORGE_KEY_PROVIDER", "data-lifecycle-backup-key", "backup.key", true},
	{"data-lifecycle", "restore", "FORGE_KEY_PROVIDER", "data-lifecycle-backup-key", "backup.key", true},
	{"data-lifecycle", "serve", "FORGE_CERT_SIGNING_KEY", "data-lifecycle-signing-key", "key.pem", false},
	{"sandbox-origin", "serve", "FORGE_SANDBOX_GRANT_KEY_FILE", "sandbox-origin-grant-key", "key", false},
	{"secrets-vault", "restore-keyring", "FORGE_KEY_PROVIDER", "secrets-vault-root-key", "root.key", true},
}

// secretFileProblems: every key file comes from its own Secret, mounted read-only as a
// directory, readable by no other user; the region's root key (KEK) is mounted by
// secrets-vault's server and its keyring restore Job and by nothing else, and only the backup
// and restore jobs hold the backup key.
func secretFileProblems(r rendering) []string {
	var p []string
	for _, w := range workloadsOf(r) {
		spec := w.template.Spec
		for _, c := range allContainers(spec) {
			svc, cmd := forgeService(c)
			for _, rule := range secretFileRules {
				if rule.Service != svc || rule.Command != cmd {
					continue
				}
				ev, ok := envVar(c, rule.Env)
				if !ok || ev.ValueFrom != nil {
					p = append(p, fmt.Sprintf("%s: %s is not a literal path", w, rule.Env))
					continue
				}
				file := ev.Value
				if rule.KeyProvider {
					if file = keyFile(ev.Value); file == "" {
						p = append(p, fmt.Sprintf("%s: %s %q is not file:///absolute/path, the only provider the binary builds in", w, rule.Env, ev.Value))
						continue
					}
				}
				src, ok := fileSource(spec, c, file)
				switch {
				case !ok:
					p = append(p, fmt.Sprintf("%s: %s (%s) is not in a read-only Secret directory mount", w, rule.Env, file))
				case src.Secret != rule.Secret || src.Key != rule.Key:
					p = append(p, fmt.Sprintf("%s: %s comes from %s/%s, want %s/%s", w, rule.Env, src.Secret, src.Key, rule.Secret, rule.Key))
				case src.Mode&0o007 != 0:
					p = append(p, fmt.Sprintf("%s: %s is readable by other users (mode %04o)", w, rule.Env, src.Mode))
				}
			}
		}
		var runs []string
		for _, c := range allContainers(spec) {
			svc, cmd := forgeService(c)
			runs = append(runs, svc+" "+cmd)
		}
		for _, v := range spec.Volumes {
			if v.Secret == nil {
				continue
			}
			switch v.Secret.SecretName {
			case "secrets-vault-root-key":
				if !slices.Equal(runs, []string{"secrets-vault serve"}) && !slices.Equal(runs, []string{"secrets-vault restore-keyring"}) {
					p = append(p, fmt.Sprintf("%s mounts the root key (only secrets-vault's server and keyring restore may)", w))
				}
			case "data-lifecycle-backup-key":
				if !slices.Equal(runs, []string{"data-lifecycle backup"}) && !slices.Equal(runs, []string{"data-lifecycle restore"}) {
					p = append(p, fmt.Sprintf("%s mounts the backup key (only the backup and restore jobs may)", w))
				}
			}
		}
	}
	return p
}

func checkSecretFiles(t *testing.T, s *suite) {
	for _, e := range s.entries {
		require.Empty(t, secretFileProblems(s.get(t, e)), e)
	}
	require.NotEqual(t, secretFileRules[0].Secret, secretFileRules[1].Secret, "the backup key is never the root key")
}

// TestSecretFileCheckBites breaks the rendered data-lifecycle and secrets-vault entries one
// way at a time and expects secretFileProblems to name it.
func TestSecretFileCheckBites(t *testing.T) {
	render := func(tb testing.TB, entry string) rendering {
		r, err := renderEntry(filepath.Join(root(tb), filepath.FromSlash(entry)))
		require.NoError(tb, err)
		return r
	}
	lifecycle := render(t, "regions/us-east/data-lifecycle")
	vault := render(t, "regions/us-east/secrets-vault")
	require.Empty(t, secretFileProblems(lifecycle))
	require.Empty(t, secretFileProblems(vault))

	// podSpec returns a fresh, mutable copy of the pod spec of the workload named kind/name.
	mutate := func(tb testing.TB, r rendering, kind, name string, change func(*corev1.PodSpec)) rendering {
		tb.Helper()
		out := rendering{Objects: slices.Clone(r.Objects)}
		for i, o := range out.Objects {
			if o.Kind != kind || o.Name != name {
				continue
			}
			typed, err := decodeStrict(o.APIVersion, o.Kind, o.YAML)
			require.NoError(tb, err)
			switch v := typed.(type) {
			case *appsv1.Deployment:
				change(&v.Spec.Template.Spec)
			case *batchv1.CronJob:
				change(&v.Spec.JobTemplate.Spec.Template.Spec)
			}
			out.Objects[i].Typed = typed
			return out
		}
		tb.Fatalf("no %s/%s", kind, name)
		return out
	}
	setEnv := func(name, value string) func(*corev1.PodSpec) {
		return func(spec *corev1.PodSpec) {
			for i, e := range spec.Containers[0].Env {
				if e.Name == name {
					spec.Containers[0].Env[i] = corev1.EnvVar{Name: name, Value: value}
				}
			}
		}
	}
	secretOf := func(from, to string) func(*corev1.PodSpec) {
		return func(spec *corev1.PodSpec) {
			for _, v := range spec.Volumes {
				if v.Secret != nil && v.Secret.SecretName == from {
					v.Secret.SecretName = to
				}
			}
		}
	}
	cases := []struct {
		name string
		r    rendering
	}{
		{"backup key is the root key", mutate(t, lifecycle, "CronJob", "data-lifecycle-backup", secretOf("data-lifecycle-backup-key", "secrets-vault-root-key"))},
		{"backup provider points at an unmounted file", mutate(t, lifecycle, "CronJob", "data-lifecycle-backup", setEnv("FORGE_KEY_PROVIDER", "file:///etc/forge/root-key/root.key"))},
		{"a KMS the binary does not build in", mutate(t, vault, "Deployment", "secrets-vault", setEnv("FORGE_KEY_PROVIDER", "awskms:///alias/forge-us-east-root"))},
		{"server holds the backup key", mutate(t, lifecycle, "Deployment", "data-lifecycle", secretOf("data-lifecycle-signing-key", "data-lifecycle-backup-key"))},
		{"root key readable by others", mutate(t, vault, "Deployment", "secrets-vault", func(spec *corev1.PodSpec) {
			for _, v := range spec.Volumes {
				if v.Secret != nil && v.Secret.SecretName == "secrets-vault-root-key" {
					mode := int32(0o444)
					v.Secret.DefaultMode = &mode
				}
			}
		})},
		{"root key by subPath", mutate(t, vault, "Deployment", "secrets-vault", func(spec *corev1.PodSpec) {
			for i, m := range spec.Containers[0].VolumeMounts {
				if m.Name == "root-key" {
					spec.Containers[0].VolumeMounts[i].MountPath = "/etc/forge/root-key/root.key"
					spec.Containers[0].VolumeMounts[i].SubPath = "root.key"
				}
			}
		})},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { require.NotEmpty(t, secretFileProblems(tc.r)) })
	}
}

// checkEdgeCertificates: the gateway and the sandbox origin serve browsers with a certificate
// from the public issuer for the region's names, mounted as a whole directory (the server
// re-reads it on renewal), behind a load balancer that passes TCP through.
func checkEdgeCertificates(t *testing.T, s *suite) {
	for _, region := range regions(t) {
		_, cfg := regionConfig(t, s.get(t, "regions/"+region))
		console, err := url.Parse(cfg["FORGE_CONSOLE_ORIGIN"])
		require.NoError(t, err)
		sandboxHost := strings.Split(cfg["FORGE_SANDBOX_DOMAIN"], ":")[0]
		for _, name := range []string{"gateway", "sandbox-origin"} {
			entry := "regions/" + region + "/" + name
			r := s.get(t, entry)
			d := r.find(t, "Deployment", name).Typed.(*appsv1.Deployment)
			spec := d.Spec.Template.Spec
			c := spec.Containers[0]
			certFile, keyFile := envValue(t, c, "FORGE_EDGE_CERT"), envValue(t, c, "FORGE_EDGE_KEY")
			cert, ok := fileSource(spec, c, certFile)
			require.True(t, ok, "%s: FORGE_EDGE_CERT from a Secret directory", entry)
			key, ok := fileSource(spec, c, keyFile)
			require.True(t, ok, "%s: FORGE_EDGE_KEY from a Secret directory", entry)
			require.True(t, cert.Whole, "%s: the whole Secret, so a renewal swaps certificate and key together", entry)
			require.Equal(t, cert.Secret, key.Secret, entry)
			require.Equal(t, []string{"tls.crt", "tls.key"}, []string{cert.Key, key.Key}, entry)
			require.NotEqual(t, name+"-tls", cert.Secret, "%s: browsers never see the workload certificate", entry)

			crt := r.find(t, "Certificate", name+"-edge").Typed.(*Certificate)
			require.Equal(t, cert.Secret, crt.Spec.SecretName, entry)
			require.Equal(t, "ClusterIssuer", crt.Spec.IssuerRef.Kind, entry)
			require.NotEqual(t, "forge-workload-ca", crt.Spec.IssuerRef.Name, "%s: a publicly trusted issuer", entry)
			require.Empty(t, crt.Spec.URIs, "%s: no workload identity on a public certificate", entry)
			require.Contains(t, crt.Spec.Usages, "server auth", entry)
			require.NotContains(t, crt.Spec.Usages, "client auth", entry)
			require.NotEmpty(t, crt.Spec.DNSNames, entry)
			if name == "sandbox-origin" {
				require.Equal(t, []string{"*." + sandboxHost}, crt.Spec.DNSNames, "%s: every app origin under FORGE_SANDBOX_DOMAIN", entry)
			} else {
				for _, n := range crt.Spec.DNSNames {
					require.Equal(t, registrable(console.Hostname()), registrable(n), "%s: %s is on the product domain", entry, n)
					require.NotEqual(t, registrable(sandboxHost), registrable(n), "%s: %s is not on the sandbox domain", entry, n)
				}
			}

			var public *corev1.Service
			for _, o := range r.ofKind("Service") {
				svc := o.Typed.(*corev1.Service)
				if svc.Spec.Type == corev1.ServiceTypeLoadBalancer {
					require.Nil(t, public, "%s: one public Service", entry)
					public = svc
				}
			}
			require.NotNil(t, public, "%s: a public Service", entry)
			require.Len(t, public.Spec.Ports, 1, "%s: only the HTTPS port is public", entry)
			require.Equal(t, int32(443), public.Spec.Ports[0].Port, entry)
			require.Equal(t, "http", public.Spec.Ports[0].TargetPort.StrVal, entry)
			require.Equal(t, "true", strings.TrimPrefix(public.Annotations["service.beta.kubernetes.io/aws-load-balancer-target-group-attributes"], "preserve_client_ip.enabled="),
				"%s: the balancer keeps the client address (rate limits)", entry)
		}
	}
}
