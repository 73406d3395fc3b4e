package k8s

import (
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
)

// jetstreamBlock extracts the body of the top-level `jetstream { ... }` block of a NATS
// configuration (comments removed).
func jetstreamBlock(conf string) (string, bool) {
	var lines []string
	for _, l := range strings.Split(conf, "\n") {
		if i := strings.Index(l, "#"); i >= 0 {
			l = l[:i]
		}
		lines = append(lines, l)
	}
	text := strings.Join(lines, "\n")
	m := regexp.MustCompile(`(?m)^jetstream\s*\{`).FindStringIndex(text)
	if m == nil {
		return "", false
	}
	depth := 1
	for i := m[1]; i < len(text); i++ {
		switch text[i] {
		case '{':
			depth++
		case '}':
			depth--
			if depth == 0 {
				return text[m[1]:i], true
			}
		}
	}
	return "", false
}

var syncAlways = regexp.MustCompile(`(?m)^\s*sync_interval\s*[:=]?\s*"?always"?\s*$`)

func TestJetStreamSyncRule(t *testing.T) {
	cases := []struct {
		name, conf string
		ok         bool
	}{
		{"always", "jetstream {\n  store_dir: /data\n  sync_interval: always\n}\n", true},
		{"default interval", "jetstream {\n  store_dir: /data\n}\n", false},
		{"two minutes", "jetstream {\n  sync_interval: 2m\n}\n", false},
		{"commented out", "jetstream {\n  # sync_interval: always\n}\n", false},
		{"outside the block", "sync_interval: always\njetstream {\n  store_dir: /data\n}\n", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body, ok := jetstreamBlock(tc.conf)
			require.True(t, ok)
			require.Equal(t, tc.ok, syncAlways.MatchString(body))
		})
	}
}

func checkDependencies(t *testing.T, s *suite) {
	for _, region := range regions(t) {
		t.Run(region, func(t *testing.T) {
			r := s.get(t, "deps/"+region)

			// NATS: JetStream, three servers, fsync on every write, encrypted volumes.
			sts := r.find(t, "StatefulSet", "nats").Typed.(*appsv1.StatefulSet)
			require.NotNil(t, sts.Spec.Replicas)
			require.Equal(t, int32(3), *sts.Spec.Replicas)
			var conf string
			for _, o := range r.ofKind("ConfigMap") {
				if strings.HasPrefix(o.Name, "nats-config-") {
					conf = o.Typed.(*corev1.ConfigMap).Data["nats.conf"]
				}
			}
			require.NotEmpty(t, conf, "the rendered NATS configuration")
			body, ok := jetstreamBlock(conf)
			require.True(t, ok, "JetStream is enabled")
			require.Regexp(t, syncAlways, body, "sync_interval: always")
			for i := 0; i < 3; i++ {
				require.Contains(t, conf, "nats-"+string(rune('0'+i))+".nats-headless", "route to every server")
			}
			require.Len(t, sts.Spec.VolumeClaimTemplates, 1)
			require.Equal(t, "forge-encrypted", *sts.Spec.VolumeClaimTemplates[0].Spec.StorageClassName)
			require.Contains(t, conf, "authorization", "no anonymous clients")
			// A NATS user for every service that connects (each reads NATS_URL from <service>-nats),
			// its password from nats-users.
			for _, svc := range services() {
				m := regexp.MustCompile(`\{user: ` + regexp.QuoteMeta(svc.Name) + `, password: \$([A-Z_]+)\}`).FindStringSubmatch(conf)
				require.NotNil(t, m, "%s: a NATS user for %s", region, svc.Name)
				env, ok := envVar(sts.Spec.Template.Spec.Containers[0], m[1])
				require.True(t, ok, "%s: %s is set", region, m[1])
				require.Equal(t, "nats-users", env.ValueFrom.SecretKeyRef.Name)
				require.Equal(t, svc.Name, env.ValueFrom.SecretKeyRef.Key)
			}

			// Postgres: two clusters, forge-pg and secrets-vault's own, each of three instances
			// across zones, synchronous, encrypted, TLS from the region's CA. forge-pg is backed up
			// for at most 30 days; the vault's cluster never physically (vaultbackup_test.go).
			sc := r.find(t, "StorageClass", "forge-encrypted").Typed.(*storagev1.StorageClass)
			require.Equal(t, "true", sc.Parameters["encrypted"])
			require.Regexp(t, `^arn:aws:kms:[a-z0-9-]+:\d{12}:(alias|key)/`+regexp.QuoteMeta("forge-"+region), sc.Parameters["kmsKeyId"], "the region's own volume key")
			var clusterNames []string
			for _, o := range r.ofKind("Cluster") {
				clusterNames = append(clusterNames, o.Name)
			}
			require.ElementsMatch(t, []string{mainPostgres, vaultPostgres}, clusterNames)
			podLabels := map[string]string{}
			for _, name := range clusterNames {
				pg := r.find(t, "Cluster", name).Typed.(*PGCluster)
				require.Equal(t, 3, pg.Spec.Instances, name)
				require.Equal(t, "topology.kubernetes.io/zone", pg.Spec.Affinity.TopologyKey, name)
				require.Equal(t, "required", pg.Spec.Affinity.PodAntiAffinityType, name)
				require.NotNil(t, pg.Spec.PostgresConfiguration.Synchronous, name)
				require.Equal(t, "required", pg.Spec.PostgresConfiguration.Synchronous.DataDurability, name)
				require.Equal(t, "TLSv1.3", pg.Spec.PostgresConfiguration.Parameters["ssl_min_protocol_version"], name)
				require.Equal(t, "forge-encrypted", *pg.Spec.StorageConfiguration.StorageClass, name)
				require.Equal(t, "forge-encrypted", *pg.Spec.WalStorage.StorageClass, name)
				require.NotNil(t, pg.Spec.EnableSuperuserAccess, name)
				require.False(t, *pg.Spec.EnableSuperuserAccess, name)
				require.NotNil(t, pg.Spec.Certificates, name)
				cert := r.find(t, "Certificate", name+"-server").Typed.(*Certificate)
				require.Equal(t, cert.Spec.SecretName, pg.Spec.Certificates.ServerTLSSecret, name)
				require.Contains(t, cert.Spec.DNSNames, name+"-rw.forge-data.svc", name)
				require.Equal(t, "forge-workload-ca", cert.Spec.IssuerRef.Name, name)
				// The label the network policies select a cluster's pods by: its own per cluster.
				l := pg.Spec.InheritedMetadata.Labels["forge.internal/postgres"]
				require.NotEmpty(t, l, name)
				require.NotContains(t, podLabels, l, "%s: its pods are told apart from the other cluster's", name)
				podLabels[l] = name
			}

			pg := r.find(t, "Cluster", mainPostgres).Typed.(*PGCluster)
			require.Len(t, pg.Spec.Plugins, 1)
			plugin := pg.Spec.Plugins[0]
			require.True(t, plugin.IsWALArchiver != nil && *plugin.IsWALArchiver, "WAL is archived continuously")
			store := r.find(t, "ObjectStore", plugin.Parameters["barmanObjectName"]).Typed.(*BarmanObjectStore)
			require.Contains(t, store.Spec.Configuration.DestinationPath, region, "the region's own backup bucket")
			require.Regexp(t, `^([1-9]|[12][0-9]|30)d$|^[1-4]w$|^1m$`, store.Spec.RetentionPolicy, "backups kept at most 30 days")
			require.NotEmpty(t, store.Spec.Configuration.Wal.Encryption)
			require.NotEmpty(t, store.Spec.Configuration.Data.Encryption)
			require.True(t, store.Spec.Configuration.S3Credentials.InheritFromIAMRole, "no key material referenced")
			sb := r.find(t, "ScheduledBackup", "forge-pg-daily").Typed.(*PGScheduledBackup)
			require.Equal(t, mainPostgres, sb.Spec.Cluster.Name)
			require.Equal(t, plugin.Name, sb.Spec.PluginConfiguration.Name)

			// Roles: on the cluster holding its database, a migration and a runtime role per
			// service that owns data; neither may bypass RLS.
			roles := map[string]map[string]PGRoleConfiguration{}
			for _, name := range clusterNames {
				roles[name] = map[string]PGRoleConfiguration{}
				for _, role := range r.find(t, "Cluster", name).Typed.(*PGCluster).Spec.Managed.Roles {
					roles[name][role.Name] = role
					require.False(t, role.Superuser, role.Name)
					require.NotNil(t, role.PasswordSecret, "%s: password from a Secret", role.Name)
				}
			}
			type placed struct{ cluster, owner string }
			dbs := map[string]placed{}
			for _, o := range r.ofKind("Database") {
				d := o.Typed.(*PGDatabase)
				dbs[d.Spec.Name] = placed{d.Spec.ClusterRef.Name, d.Spec.Owner}
			}
			for _, svc := range services() {
				u := strings.ReplaceAll(svc.Name, "-", "_")
				if svc.Postgres == "" {
					require.NotContains(t, dbs, u)
					continue
				}
				on := roles[svc.Postgres]
				require.Contains(t, on, u+"_migrate", svc.Name)
				require.Contains(t, on, u+"_app", svc.Name)
				require.False(t, on[u+"_app"].BypassRLS, "%s runtime role", svc.Name)
				// The migration role owns the reviewed SECURITY DEFINER functions (the outbox
				// relay, the schedulers' due rows...), which must see every tenant's rows under
				// FORCE ROW LEVEL SECURITY, and it is the restore target (COPY FROM refuses a
				// table under RLS): pkg/database's Bootstrap gives it BYPASSRLS for the same reason.
				require.True(t, on[u+"_migrate"].BypassRLS, "%s migration role", svc.Name)
				require.Equal(t, placed{svc.Postgres, u + "_migrate"}, dbs[u], "%s's database is on %s, owned by its migration role", svc.Name, svc.Postgres)
			}

			// Restore: a new cluster from this region's archive, archiving under its own name.
			rr := s.get(t, "deps/"+region+"/restore")
			rc := rr.find(t, "Cluster", "forge-pg-restore").Typed.(*PGCluster)
			require.NotNil(t, rc.Spec.Bootstrap.Recovery)
			src := rc.Spec.ExternalClusters[0]
			require.Equal(t, rc.Spec.Bootstrap.Recovery.Source, src.Name)
			require.Equal(t, "forge-pg", src.Plugin.Parameters["serverName"], "restores forge-pg's history")
			require.Equal(t, plugin.Parameters["barmanObjectName"], src.Plugin.Parameters["barmanObjectName"])
			require.NotEqual(t, "forge-pg", rc.Spec.Plugins[0].Parameters["serverName"], "never archives into the history it restores from")
			rcert := rr.find(t, "Certificate", "forge-pg-restore-server").Typed.(*Certificate)
			require.Equal(t, rcert.Spec.SecretName, rc.Spec.Certificates.ServerTLSSecret)
		})
	}
}
