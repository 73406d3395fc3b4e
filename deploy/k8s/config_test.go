package k8s

import (
	"bytes"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
)

// forgeImage marks the suite's own containers (the conventions apply to them, not to NATS).
const forgeImage = "ghcr.io/forgeapps/backbone/"

// pendingEnv are variables the services will read that docs/conventions.md does not list yet
// (the brief of issue 8 names them; their owners may still rename them). Each lives in one
// place per region: regions/<region>/config/region.env, or one secretKeyRef.
var pendingEnv = []string{
	"FORGE_BLOB_URL", "FORGE_BACKUP_BLOB_URL", "FORGE_KEY_PROVIDER", "FORGE_CONSOLE_ORIGIN",
	"FORGE_SANDBOX_DOMAIN", "BACKUP_DATABASE_URL",
}

// conventionsEnv reads the variable names of the environment table in docs/conventions.md.
func conventionsEnv(tb testing.TB) []string {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(tb), "docs", "conventions.md"))
	require.NoError(tb, err)
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		first := strings.SplitN(line, "|", 3)[1]
		for _, m := range regexp.MustCompile("`([A-Z_<>]+)`").FindAllStringSubmatch(first, -1) {
			out = append(out, m[1])
		}
		// The dependency addresses are listed in the meaning column.
		if strings.Contains(first, "<SERVICE>") {
			for _, m := range regexp.MustCompile("`(FORGE_[A-Z]+_ADDR)`").FindAllStringSubmatch(line, -1) {
				out = append(out, m[1])
			}
		}
	}
	require.Contains(tb, out, "FORGE_HEALTH_ADDR", "conventions table parsed")
	return out
}

func checkEnvConventions(t *testing.T, s *suite) {
	known := append(conventionsEnv(t), pendingEnv...)
	grpcPort := map[string]int32{}
	for _, svc := range services() {
		grpcPort[svc.Name] = svc.GRPCPort
	}
	addrEnv := map[string]string{"FORGE_TENANT_ADDR": "tenant", "FORGE_APPS_ADDR": "apps", "FORGE_VAULT_ADDR": "secrets-vault",
		"FORGE_SANDBOX_ADDR": "sandbox-origin", "FORGE_LIFECYCLE_ADDR": "data-lifecycle"}
	for _, e := range s.entries {
		for _, w := range workloadsOf(s.get(t, e)) {
			for _, c := range allContainers(w.template.Spec) {
				if !strings.HasPrefix(c.Image, forgeImage) {
					continue
				}
				for _, ev := range c.Env {
					require.Contains(t, known, ev.Name, "%s: %s sets %s, which docs/conventions.md does not define", e, w, ev.Name)
					if target, ok := addrEnv[ev.Name]; ok {
						want := fmt.Sprintf("%s.forge.svc.cluster.local:%d", target, grpcPort[target])
						require.Equal(t, want, ev.Value, "%s: %s: %s", e, w, ev.Name)
					}
				}
			}
		}
	}
}

// regionConfig returns the data of the forge-region ConfigMap of a rendering.
func regionConfig(tb testing.TB, r rendering) (string, map[string]string) {
	tb.Helper()
	var found []object
	for _, o := range r.ofKind("ConfigMap") {
		if strings.HasPrefix(o.Name, "forge-region-") {
			found = append(found, o)
		}
	}
	require.Len(tb, found, 1, "%s: one forge-region ConfigMap (hash-suffixed, so a change rolls the pods)", r.Entry)
	return found[0].Name, found[0].Typed.(*corev1.ConfigMap).Data
}

// registrable approximates the registrable domain of a host: its last two labels (the
// domains used here have no multi-label public suffix).
func registrable(host string) string {
	parts := strings.Split(strings.TrimSuffix(host, "."), ".")
	if len(parts) < 2 {
		return host
	}
	return strings.Join(parts[len(parts)-2:], ".")
}

func checkRegionConfig(t *testing.T, s *suite) {
	perRegion := map[string]map[string]string{}
	for _, region := range regions(t) {
		t.Run(region, func(t *testing.T) {
			_, cfg := regionConfig(t, s.get(t, "regions/"+region))
			perRegion[region] = cfg
			require.Equal(t, region, cfg["FORGE_REGION"])
			require.Equal(t, "forge.internal", cfg["FORGE_TRUST_DOMAIN"])
			for _, k := range []string{"FORGE_BLOB_URL", "FORGE_BACKUP_BLOB_URL"} {
				u, err := url.Parse(cfg[k])
				require.NoError(t, err, k)
				require.Equal(t, "s3", u.Scheme, k)
				require.Contains(t, u.Host, region, "%s: the bucket of this region", k)
				require.NotEmpty(t, u.Query().Get("region"), "%s names the cloud region", k)
			}
			require.NotEqual(t, cfg["FORGE_BLOB_URL"], cfg["FORGE_BACKUP_BLOB_URL"], "backups live apart from live objects")
			kp, err := url.Parse(cfg["FORGE_KEY_PROVIDER"])
			require.NoError(t, err)
			require.Contains(t, []string{"awskms", "gcpkms", "azurekeyvault", "hashivault"}, kp.Scheme, "a KMS in production, never a key file")
			require.Contains(t, kp.String(), region)
			console, err := url.Parse(cfg["FORGE_CONSOLE_ORIGIN"])
			require.NoError(t, err)
			require.Equal(t, "https", console.Scheme)
			require.Empty(t, strings.Trim(console.Path, "/"), "an origin has no path")
			sandbox := cfg["FORGE_SANDBOX_DOMAIN"]
			require.NotEqual(t, registrable(console.Hostname()), registrable(sandbox), "apps live on a domain separate from the product's")

			// Every key a workload of any entry of the region reads exists in that entry's ConfigMap.
			for _, e := range s.entries {
				if !strings.HasPrefix(e, "regions/"+region+"/") && e != "regions/"+region {
					continue
				}
				r := s.get(t, e)
				if !runsForgeImage(r) {
					continue // the platform: NATS reads no regional service configuration
				}
				name, data := regionConfig(t, r)
				require.Equal(t, cfg, data, "%s: the same regional configuration as the whole region", e)
				for _, w := range workloadsOf(r) {
					for _, c := range allContainers(w.template.Spec) {
						for _, ev := range c.Env {
							if ev.ValueFrom == nil || ev.ValueFrom.ConfigMapKeyRef == nil {
								continue
							}
							ref := ev.ValueFrom.ConfigMapKeyRef
							require.Equal(t, name, ref.Name, "%s: %s: %s refers to the rendered regional ConfigMap", e, w, ev.Name)
							require.Contains(t, data, ref.Key, "%s: %s: key %s", e, w, ref.Key)
							require.True(t, ref.Optional == nil || !*ref.Optional, "%s: %s: %s is required", e, w, ev.Name)
						}
					}
				}
			}
		})
	}
	// What is regional differs between regions.
	rs := regions(t)
	for i := range rs {
		for j := i + 1; j < len(rs); j++ {
			for _, k := range []string{"FORGE_REGION", "FORGE_BLOB_URL", "FORGE_BACKUP_BLOB_URL", "FORGE_KEY_PROVIDER", "FORGE_SANDBOX_DOMAIN"} {
				require.NotEqual(t, perRegion[rs[i]][k], perRegion[rs[j]][k], "%s is regional", k)
			}
		}
	}
}

// checkRegionIsUnionOfParts: applying the whole region is the same as applying its platform
// and each service (and nothing else), so the per-service path an SRE takes cannot drift from
// the whole-region one.
func checkRegionIsUnionOfParts(t *testing.T, s *suite) {
	for _, region := range regions(t) {
		whole := map[string][]byte{}
		for _, o := range s.get(t, "regions/"+region).Objects {
			whole[o.key()] = o.YAML
		}
		parts := map[string][]byte{}
		add := func(entry string) {
			for _, o := range s.get(t, entry).Objects {
				if prev, ok := parts[o.key()]; ok {
					require.Equal(t, string(prev), string(o.YAML), "%s: %s differs between entries", entry, o.key())
				}
				parts[o.key()] = o.YAML
			}
		}
		add("regions/" + region + "/platform")
		for _, svc := range serviceNames() {
			add("regions/" + region + "/" + svc)
		}
		require.Equal(t, len(whole), len(parts), "%s: same objects", region)
		for k, y := range whole {
			require.Contains(t, parts, k, region)
			require.Equal(t, string(y), string(parts[k]), "%s: %s", region, k)
		}
	}
}

func checkCertificates(t *testing.T, s *suite) {
	for _, region := range regions(t) {
		whole := s.get(t, "regions/"+region)
		ca := whole.find(t, "Certificate", "forge-workload-ca").Typed.(*Certificate)
		require.True(t, ca.Spec.IsCA)
		require.Equal(t, "Never", ca.Spec.PrivateKey.RotationPolicy, "the CA keeps its key across renewals, so trust never breaks")
		issuer := whole.find(t, "ClusterIssuer", "forge-workload-ca").Typed.(*Issuer)
		require.NotNil(t, issuer.Spec.CA)
		require.Equal(t, ca.Spec.SecretName, issuer.Spec.CA.SecretName)

		for _, svc := range services() {
			entry := "regions/" + region + "/" + svc.Name
			r := s.get(t, entry)
			cert := r.find(t, "Certificate", svc.Name).Typed.(*Certificate)
			spec := cert.Spec
			require.Equal(t, []string{"spiffe://forge.internal/" + svc.Name}, spec.URIs, entry)
			require.Contains(t, spec.DNSNames, svc.Name, "%s: clients verify the workload name as the DNS name", entry)
			require.NotNil(t, spec.Duration, entry)
			require.LessOrEqual(t, spec.Duration.Duration, 24*time.Hour, "%s: short-lived", entry)
			require.NotNil(t, spec.RenewBefore, entry)
			require.GreaterOrEqual(t, spec.RenewBefore.Duration, spec.Duration.Duration/4, "%s: renewed well before expiry", entry)
			require.Equal(t, "Always", spec.PrivateKey.RotationPolicy, "%s: a fresh key at every renewal", entry)
			require.Subset(t, spec.Usages, []string{"server auth", "client auth"}, entry)
			require.Equal(t, ObjectReference{Name: "forge-workload-ca", Kind: "ClusterIssuer", Group: "cert-manager.io"}, spec.IssuerRef, entry)

			d := r.find(t, "Deployment", svc.Name).Typed.(*appsv1.Deployment)
			assertMountsCertificate(t, entry, d.Spec.Template.Spec, spec.SecretName)
		}
	}
}

// assertMountsCertificate: the Secret is mounted as a directory (no subPath: the kubelet
// swaps the files in place on rotation) and FORGE_TLS_CERT/KEY/CA point into it.
func assertMountsCertificate(t *testing.T, where string, spec corev1.PodSpec, secretName string) {
	t.Helper()
	var vol string
	for _, v := range spec.Volumes {
		if v.Secret != nil && v.Secret.SecretName == secretName {
			vol = v.Name
			require.Empty(t, v.Secret.Items, "%s: the whole Secret (tls.crt, tls.key, ca.crt)", where)
		}
	}
	require.NotEmpty(t, vol, "%s: mounts Secret %s", where, secretName)
	c := spec.Containers[0]
	var dir string
	for _, m := range c.VolumeMounts {
		if m.Name == vol {
			require.Empty(t, m.SubPath, where)
			require.True(t, m.ReadOnly, where)
			dir = m.MountPath
		}
	}
	require.NotEmpty(t, dir, where)
	for env, file := range map[string]string{"FORGE_TLS_CERT": "tls.crt", "FORGE_TLS_KEY": "tls.key", "FORGE_TLS_CA": "ca.crt"} {
		require.Equal(t, dir+"/"+file, envValue(t, c, env), "%s: %s", where, env)
	}
}

func checkJobs(t *testing.T, s *suite) {
	for _, region := range regions(t) {
		for _, svc := range services() {
			entry := "regions/" + region + "/" + svc.Name
			d := s.get(t, entry).find(t, "Deployment", svc.Name).Typed.(*appsv1.Deployment)
			c := d.Spec.Template.Spec.Containers[0]
			require.Equal(t, []string{"serve"}, c.Args, entry)
			_, hasMigration := envVar(c, "MIGRATION_DATABASE_URL")
			require.False(t, hasMigration, "%s: the server never sees the migration role", entry)
			db, hasDB := envVar(c, "DATABASE_URL")
			require.Equal(t, svc.Database, hasDB, "%s: DATABASE_URL", entry)
			if !svc.Database {
				continue
			}
			require.Equal(t, svc.Name+"-database", db.ValueFrom.SecretKeyRef.Name, entry)

			job := s.get(t, entry+"/migrate").find(t, "Job", svc.Name+"-migrate").Typed.(*batchv1.Job)
			jc := job.Spec.Template.Spec.Containers[0]
			require.Equal(t, []string{"migrate"}, jc.Args, entry)
			require.Equal(t, c.Image, jc.Image, "%s: migrations of the same version as the server", entry)
			m, ok := envVar(jc, "MIGRATION_DATABASE_URL")
			require.True(t, ok, entry)
			require.Equal(t, svc.Name+"-migration-database", m.ValueFrom.SecretKeyRef.Name, entry)
			_, runtime := envVar(jc, "DATABASE_URL")
			require.False(t, runtime, "%s: the migration Job runs as the migration role only", entry)
			require.Equal(t, corev1.RestartPolicyNever, job.Spec.Template.Spec.RestartPolicy, entry)
			require.NotNil(t, job.Spec.BackoffLimit, entry)
			require.NotNil(t, job.Spec.ActiveDeadlineSeconds, entry)
		}
		r := s.get(t, "regions/"+region+"/data-lifecycle")
		cj := r.find(t, "CronJob", "data-lifecycle-backup").Typed.(*batchv1.CronJob)
		require.Equal(t, batchv1.ForbidConcurrent, cj.Spec.ConcurrencyPolicy, "backups never overlap")
		require.NotNil(t, cj.Spec.StartingDeadlineSeconds)
		require.Len(t, strings.Fields(cj.Spec.Schedule), 5)
		jc := cj.Spec.JobTemplate.Spec.Template.Spec.Containers[0]
		require.Equal(t, []string{"backup"}, jc.Args)
		d := r.find(t, "Deployment", "data-lifecycle").Typed.(*appsv1.Deployment)
		require.Equal(t, d.Spec.Template.Spec.Containers[0].Image, jc.Image)
		assertMountsCertificate(t, region+" backup", cj.Spec.JobTemplate.Spec.Template.Spec, "data-lifecycle-tls")
	}
}

// placeholders are values the bases carry only until a region overrides them.
var placeholders = []string{"unset", "192.0.2."}

func checkNoPlaceholders(t *testing.T, s *suite) {
	for _, e := range s.entries {
		y := s.get(t, e).YAML
		for _, p := range placeholders {
			require.False(t, bytes.Contains(y, []byte(p)), "%s still carries the base placeholder %q", e, p)
		}
	}
	// And the bases do carry them: otherwise this check proves nothing.
	for _, p := range []string{"base/apps/deployment.yaml", "base/apps/networkpolicy.yaml"} {
		b, err := os.ReadFile(filepath.Join(root(t), p))
		require.NoError(t, err)
		require.True(t, slices.ContainsFunc(placeholders, func(ph string) bool { return bytes.Contains(b, []byte(ph)) }), p)
	}
}

// runsForgeImage: the rendering runs one of the suite's own images.
func runsForgeImage(r rendering) bool {
	for _, w := range workloadsOf(r) {
		for _, c := range allContainers(w.template.Spec) {
			if strings.HasPrefix(c.Image, forgeImage) {
				return true
			}
		}
	}
	return false
}
