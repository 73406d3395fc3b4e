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
	networkingv1 "k8s.io/api/networking/v1"
)

// forgeImage marks the suite's own containers (the conventions apply to them, not to NATS).
const forgeImage = "ghcr.io/forgeapps/backbone/"

// conventionsEnv reads the variable names of docs/conventions.md: the shared environment table
// and the "Settings of one service" table.
func conventionsEnv(tb testing.TB) []string {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(tb), "docs", "conventions.md"))
	require.NoError(tb, err)
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "| ") {
			continue
		}
		cells := strings.Split(line, "|")
		first := strings.TrimSpace(cells[1])
		if slices.Contains(serviceNames(), first) && len(cells) > 2 {
			for _, m := range regexp.MustCompile("`([A-Z][A-Z0-9_]+)`").FindAllStringSubmatch(cells[2], -1) {
				out = append(out, m[1])
			}
			continue
		}
		if !strings.HasPrefix(first, "`") {
			continue
		}
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
	require.Contains(tb, out, "FORGE_SANDBOX_GRANT_KEY_FILE", "settings table parsed")
	return out
}

func checkEnvConventions(t *testing.T, s *suite) {
	known := conventionsEnv(t)
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
				var argVars []string
				for _, a := range c.Args {
					for _, m := range argRef.FindAllStringSubmatch(a, -1) {
						argVars = append(argVars, m[1])
					}
				}
				for _, ev := range c.Env {
					if slices.Contains(argVars, ev.Name) {
						continue // expanded into the command line by the kubelet, not read by the binary
					}
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
			buckets := []string{"FORGE_BLOB_URL", "FORGE_BACKUP_BLOB_URL", "FORGE_KEYRING_BACKUP_URL"}
			seen := map[string]string{}
			for _, k := range buckets {
				u, err := url.Parse(cfg[k])
				require.NoError(t, err, k)
				require.Equal(t, "s3", u.Scheme, "%s: durable object storage (a file:// directory in a pod is gone with the pod)", k)
				require.Contains(t, u.Host, region, "%s: the bucket of this region", k)
				require.NotEmpty(t, u.Query().Get("region"), "%s names the cloud region", k)
				// Each its own bucket: live objects, data backups (which the backup job's role
				// writes) and keyring backups (which only secrets-vault's role reaches, so a
				// shred reaches every copy of a tenant key) never share one.
				require.NotContains(t, seen, u.Host, "%s shares bucket %s with %s", k, u.Host, seen[u.Host])
				seen[u.Host] = k
			}
			require.NotContains(t, cfg, "FORGE_KEY_PROVIDER", "key providers are files from each workload's own Secret, never regional configuration")
			issuer, err := url.Parse(cfg["FORGE_OIDC_ISSUER"])
			require.NoError(t, err)
			require.Equal(t, "https", issuer.Scheme, "the identity provider is reached over HTTPS")
			require.NotEmpty(t, cfg["FORGE_OIDC_AUDIENCE"])
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
							refData := data
							if ref.Name != name {
								// Only an entry's own generated ConfigMap besides the regional one
								// (the restore entry's choice of dump).
								cm := r.find(t, "ConfigMap", ref.Name)
								require.False(t, strings.HasPrefix(ref.Name, "forge-region"), "%s: %s: %s refers to a stale regional ConfigMap", e, w, ev.Name)
								refData = cm.Typed.(*corev1.ConfigMap).Data
							}
							require.Contains(t, refData, ref.Key, "%s: %s: key %s", e, w, ref.Key)
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
			for _, k := range []string{"FORGE_REGION", "FORGE_BLOB_URL", "FORGE_BACKUP_BLOB_URL", "FORGE_KEYRING_BACKUP_URL", "FORGE_SANDBOX_DOMAIN"} {
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
		deps := s.get(t, "deps/"+region)
		// databases: each database of the region's Postgres and the Cluster holding it.
		databases := map[string]string{}
		for _, o := range deps.ofKind("Database") {
			d := o.Typed.(*PGDatabase)
			databases[d.Spec.Name] = d.Spec.ClusterRef.Name
		}
		for _, svc := range services() {
			entry := "regions/" + region + "/" + svc.Name
			d := s.get(t, entry).find(t, "Deployment", svc.Name).Typed.(*appsv1.Deployment)
			c := d.Spec.Template.Spec.Containers[0]
			require.Equal(t, []string{"serve"}, c.Args, entry)
			_, hasMigration := envVar(c, "MIGRATION_DATABASE_URL")
			require.False(t, hasMigration, "%s: the server never sees the migration role", entry)
			db, hasDB := envVar(c, "DATABASE_URL")
			require.Equal(t, svc.Postgres != "", hasDB, "%s: DATABASE_URL", entry)
			if svc.Postgres == "" {
				continue
			}
			var roles []string
			for _, role := range deps.find(t, "Cluster", svc.Postgres).Typed.(*PGCluster).Spec.Managed.Roles {
				roles = append(roles, role.Name)
			}
			require.Equal(t, svc.Name+"-database", db.ValueFrom.SecretKeyRef.Name, entry)

			job := s.get(t, entry+"/migrate").find(t, "Job", svc.Name+"-migrate").Typed.(*batchv1.Job)
			jc := job.Spec.Template.Spec.Containers[0]
			require.Equal(t, []string{"migrate"}, jc.Args, entry)
			require.Equal(t, c.Image, jc.Image, "%s: migrations of the same version as the server", entry)
			m, ok := envVar(jc, "MIGRATION_DATABASE_URL")
			require.True(t, ok, entry)
			require.Equal(t, svc.Name+"-migration-database", m.ValueFrom.SecretKeyRef.Name, entry)
			runtimeRole := strings.ReplaceAll(svc.Name, "-", "_") + "_app"
			require.Equal(t, runtimeRole, envValue(t, jc, "FORGE_DB_RUNTIME_ROLE"), "%s: grants to the role the server logs in as", entry)
			require.Contains(t, roles, runtimeRole, "%s: a role of the Postgres cluster holding its database", entry)
			_, runtime := envVar(jc, "DATABASE_URL")
			require.False(t, runtime, "%s: the migration Job runs as the migration role only", entry)
			require.Equal(t, corev1.RestartPolicyNever, job.Spec.Template.Spec.RestartPolicy, entry)
			require.NotNil(t, job.Spec.BackoffLimit, entry)
			require.NotNil(t, job.Spec.ActiveDeadlineSeconds, entry)
			require.Empty(t, workloadKeyProblems(job.Spec.Template.Spec), entry)
		}
		entry := "regions/" + region + "/data-lifecycle"
		r := s.get(t, entry)
		server := r.find(t, "Deployment", "data-lifecycle").Typed.(*appsv1.Deployment).Spec.Template.Spec.Containers[0]
		// The backup CronJobs: one per Postgres cluster, since the binary dumps every target of a
		// run through one server (BACKUP_DATABASE_URL, its path replaced by each database).
		whole := regionWithMigrations(t, s, region)
		nps, eps := policiesOf(whole), endpointsOf(whole)
		var targets []string
		var jobClusters []string
		for _, o := range r.ofKind("CronJob") {
			cj := o.Typed.(*batchv1.CronJob)
			jc := cj.Spec.JobTemplate.Spec.Template.Spec.Containers[0]
			if svc, cmd := forgeService(jc); svc != "data-lifecycle" || cmd != "backup" {
				continue
			}
			require.Equal(t, batchv1.ForbidConcurrent, cj.Spec.ConcurrencyPolicy, "%s: backups never overlap", o.Name)
			require.NotNil(t, cj.Spec.StartingDeadlineSeconds, o.Name)
			require.Len(t, strings.Fields(cj.Spec.Schedule), 5, o.Name)
			require.Equal(t, []string{"backup"}, jc.Args, o.Name)
			require.Equal(t, server.Image, jc.Image, o.Name)
			require.Empty(t, workloadKeyProblems(cj.Spec.JobTemplate.Spec.Template.Spec), "%s: %s", entry, o.Name)
			require.Equal(t, envValue(t, server, "FORGE_BACKUP_RETENTION"), envValue(t, jc, "FORGE_BACKUP_RETENTION"),
				"%s: %s: deletion certificates promise the retention the backup job enforces", entry, o.Name)
			retention, err := time.ParseDuration(envValue(t, jc, "FORGE_BACKUP_RETENTION"))
			require.NoError(t, err)
			require.LessOrEqual(t, retention, 30*24*time.Hour, "backups kept at most 30 days")

			// Each target by its database and schema, every database of the job on one cluster.
			cluster := ""
			for _, part := range strings.Split(envValue(t, jc, "FORGE_BACKUP_TARGETS"), ",") {
				name, rest, ok := strings.Cut(part, "=")
				require.True(t, ok, part)
				database, schema, ok := strings.Cut(rest, "/")
				require.True(t, ok, part)
				svc := serviceByName(t, name)
				require.NotEmpty(t, svc.Postgres, part)
				require.Equal(t, svc.Postgres, databases[database], "%s: database %s is on the service's cluster", part, database)
				require.Equal(t, serviceSchema(t, name), schema, "%s: the service's schema", part)
				if cluster == "" {
					cluster = svc.Postgres
				}
				require.Equal(t, cluster, svc.Postgres, "%s: every target of one job is on one cluster", o.Name)
				targets = append(targets, name)
			}
			require.NotContains(t, jobClusters, cluster, "one backup job per cluster")
			jobClusters = append(jobClusters, cluster)
			// Its pods reach that cluster, and no other.
			var reached []string
			for _, src := range eps {
				if src.Name != o.Name {
					continue
				}
				for _, dst := range eps {
					if dst.Labels["cnpg.io/podRole"] == "instance" &&
						egressAllows(nps, src, func(p networkingv1.NetworkPolicyPeer, ns string) bool { return peerMatchesPod(p, ns, dst) }, 5432, corev1.ProtocolTCP, &dst) &&
						ingressAllows(nps, dst, func(p networkingv1.NetworkPolicyPeer, ns string) bool { return peerMatchesPod(p, ns, src) }, 5432, corev1.ProtocolTCP) {
						reached = append(reached, dst.Name)
					}
				}
			}
			require.Equal(t, []string{cluster}, reached, "%s reaches the cluster it dumps, and no other", o.Name)
		}
		var withDB, clusters []string
		for _, svc := range services() {
			if svc.Postgres != "" {
				withDB = append(withDB, svc.Name)
				if !slices.Contains(clusters, svc.Postgres) {
					clusters = append(clusters, svc.Postgres)
				}
			}
		}
		require.ElementsMatch(t, withDB, targets, "every service database is backed up, once")
		require.ElementsMatch(t, clusters, jobClusters, "a backup job per cluster")

		restoreEntry := entry + "/restore"
		rj := s.get(t, restoreEntry).find(t, "Job", "data-lifecycle-restore").Typed.(*batchv1.Job)
		rc := rj.Spec.Template.Spec.Containers[0]
		require.Equal(t, []string{"restore", "-backup", "$(RESTORE_BACKUP)"}, rc.Args, restoreEntry)
		for _, a := range rc.Args {
			require.NotContains(t, a, "DATABASE_URL", "%s: a database URL holds a password and is never an argument (ps shows it)", restoreEntry)
		}
		require.Equal(t, server.Image, rc.Image, restoreEntry)
		require.Empty(t, workloadKeyProblems(rj.Spec.Template.Spec), restoreEntry)
		into, ok := envVar(rc, "RESTORE_DATABASE_URL")
		require.True(t, ok)
		require.NotNil(t, into.ValueFrom.SecretKeyRef, "%s: the target URL holds a password", restoreEntry)
	}
}

// workloadKeyProblems: a Job (migration, backup, restore) presents no workload certificate, so
// it mounts no workload or edge key: only the CA (ca.crt of forge-trust-bundle) to verify
// Postgres, at /etc/forge/tls where the database URLs' sslrootcert points.
func workloadKeyProblems(spec corev1.PodSpec) []string {
	var p []string
	trust := ""
	for _, v := range spec.Volumes {
		if v.Secret == nil {
			continue
		}
		switch {
		case v.Secret.SecretName == "forge-trust-bundle":
			if len(v.Secret.Items) != 1 || v.Secret.Items[0].Key != "ca.crt" {
				p = append(p, "forge-trust-bundle: project ca.crt only")
			}
			trust = v.Name
		case strings.HasSuffix(v.Secret.SecretName, "-tls"):
			p = append(p, "mounts certificate Secret "+v.Secret.SecretName)
		}
	}
	found := false
	for _, m := range spec.Containers[0].VolumeMounts {
		if m.Name == trust && m.MountPath == "/etc/forge/tls" {
			found = true
		}
	}
	if !found {
		p = append(p, "no trust bundle at /etc/forge/tls")
	}
	return p
}

// serviceSchema reads the Schema constant of a service's internal/postgres package.
func serviceSchema(tb testing.TB, svc string) string {
	tb.Helper()
	matches, err := filepath.Glob(filepath.Join(repoRoot(tb), "services", svc, "internal", "postgres", "*.go"))
	require.NoError(tb, err)
	re := regexp.MustCompile(`(?m)^const Schema = "([a-z_]+)"`)
	for _, m := range matches {
		b, err := os.ReadFile(m)
		require.NoError(tb, err)
		if sm := re.FindSubmatch(b); sm != nil {
			return string(sm[1])
		}
	}
	tb.Fatalf("%s: no Schema constant in internal/postgres", svc)
	return ""
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
