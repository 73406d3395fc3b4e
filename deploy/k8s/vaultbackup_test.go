package k8s

// The promise "hard delete after 30 days, backups included" rests on crypto-shredding: a shred
// deletes a tenant's wrapped keys from secrets-vault's tenant_keys table and from the vault's
// keyring backups, so every other copy of the tenant's data is ciphertext nobody can open. A
// physical backup of the vault's database (a base backup, archived WAL, a volume snapshot)
// would keep the wrapped keys beyond the shred, for as long as the backup is kept, and nothing
// can delete one tenant's rows from it. So no physical backup may ever capture the vault's
// database; its logical dump (data-lifecycle) may, because the binary leaves tenant_keys' rows
// out of it. The checks below find every way a rendering could break that.

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// vaultServiceName is the backup target name for which data-lifecycle's binary leaves the key
// table's rows out (services/data-lifecycle/internal/config.ParseTargets): a dump of the vault's
// database under any other name would hold the wrapped keys.
const vaultServiceName = "secrets-vault"

// isVaultName reports whether a Postgres database or role name is secrets-vault's: its
// database secrets_vault, a copy being restored (secrets_vault_restored), its roles
// secrets_vault_migrate, secrets_vault_app and the dump's reader secrets_vault_backup.
func isVaultName(name string) bool {
	return name == "secrets_vault" || strings.HasPrefix(name, "secrets_vault_")
}

// vaultClusters names, sorted, the Clusters of a rendering that hold or are made ready to hold
// secrets-vault's data: a Database of the vault on them, an initdb database or owner of the
// vault, or a managed role of the vault (roles are created where the vault's data will live).
func vaultClusters(r rendering) []string {
	set := map[string]bool{}
	for _, o := range r.ofKind("Database") {
		d := o.Typed.(*PGDatabase)
		if isVaultName(d.Spec.Name) || isVaultName(d.Spec.Owner) {
			set[d.Spec.ClusterRef.Name] = true
		}
	}
	for _, o := range r.ofKind("Cluster") {
		c := o.Typed.(*PGCluster)
		if b := c.Spec.Bootstrap; b != nil && b.InitDB != nil && (isVaultName(b.InitDB.Database) || isVaultName(b.InitDB.Owner)) {
			set[o.Name] = true
		}
		if c.Spec.Managed != nil {
			for _, role := range c.Spec.Managed.Roles {
				if isVaultName(role.Name) {
					set[o.Name] = true
				}
			}
		}
	}
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// vaultBackupProblems lists every way, in rendering r, that a backup could capture
// secrets-vault's database:
//   - a Cluster holding it archives WAL or takes base backups (any CNPG-I plugin, the in-tree
//     Barman object store, archive_* parameters) or volume snapshots;
//   - a ScheduledBackup or Backup names such a Cluster, or a VolumeSnapshot one of its claims;
//   - another Cluster recovers or replicates from such a Cluster's archive;
//   - a data-lifecycle backup dumps the vault's database under a service name other than
//     secrets-vault (the binary then dumps tenant_keys' rows too);
//   - the vault's pods may connect to a Postgres cluster that does not hold its database (the
//     physically backed-up one), whatever URL their Secrets hold;
//   - a Postgres pod holding the vault's database may send to an address outside the cluster
//     other than the Kubernetes API (where a WAL archive or base backup would go).
func vaultBackupProblems(r rendering, exts []external) []string {
	var p []string
	vault := vaultClusters(r)
	held := func(cluster string) bool { return slices.Contains(vault, cluster) }

	for _, o := range r.ofKind("Cluster") {
		c := o.Typed.(*PGCluster)
		if held(o.Name) {
			for _, pl := range c.Spec.Plugins {
				if pl.IsWALArchiver != nil && *pl.IsWALArchiver {
					p = append(p, fmt.Sprintf("Cluster %s holds the vault's database and archives WAL through plugin %s", o.Name, pl.Name))
				} else {
					p = append(p, fmt.Sprintf("Cluster %s holds the vault's database and loads plugin %s, which can take its base backups", o.Name, pl.Name))
				}
			}
			if b := c.Spec.Backup; b != nil {
				if b.BarmanObjectStore != nil {
					p = append(p, fmt.Sprintf("Cluster %s holds the vault's database and archives WAL and base backups to %s", o.Name, b.BarmanObjectStore.DestinationPath))
				}
				if b.VolumeSnapshot != nil {
					p = append(p, fmt.Sprintf("Cluster %s holds the vault's database and is set up for volume snapshots", o.Name))
				}
				if b.BarmanObjectStore == nil && b.VolumeSnapshot == nil {
					p = append(p, fmt.Sprintf("Cluster %s holds the vault's database and has a backup section", o.Name))
				}
			}
			for k := range c.Spec.PostgresConfiguration.Parameters {
				if strings.HasPrefix(k, "archive_") {
					p = append(p, fmt.Sprintf("Cluster %s holds the vault's database and sets %s", o.Name, k))
				}
			}
		}
		for _, ext := range c.Spec.ExternalClusters {
			if ext.Plugin != nil && held(ext.Plugin.Parameters["serverName"]) {
				p = append(p, fmt.Sprintf("Cluster %s reads the archive of %s, which holds the vault's database", o.Name, ext.Plugin.Parameters["serverName"]))
			}
		}
	}
	for _, o := range r.ofKind("ScheduledBackup") {
		if b := o.Typed.(*PGScheduledBackup); held(b.Spec.Cluster.Name) {
			p = append(p, fmt.Sprintf("ScheduledBackup %s (method %q) backs up %s, which holds the vault's database", o.Name, b.Spec.Method, b.Spec.Cluster.Name))
		}
	}
	for _, o := range r.ofKind("Backup") {
		if b := o.Typed.(*PGBackup); held(b.Spec.Cluster.Name) {
			p = append(p, fmt.Sprintf("Backup %s (method %q) backs up %s, which holds the vault's database", o.Name, b.Spec.Method, b.Spec.Cluster.Name))
		}
	}
	for _, o := range r.ofKind("VolumeSnapshot") {
		v := o.Typed.(*VolumeSnapshot)
		if v.Spec.Source.PersistentVolumeClaimName == nil {
			continue
		}
		// CloudNativePG names an instance's claims <cluster>-<n> and <cluster>-<n>-wal.
		claim := *v.Spec.Source.PersistentVolumeClaimName
		for _, c := range vault {
			if strings.HasPrefix(claim, c+"-") {
				p = append(p, fmt.Sprintf("VolumeSnapshot %s copies claim %s of %s, which holds the vault's database", o.Name, claim, c))
			}
		}
	}

	// Logical dumps: only under the vault's own service name, which leaves tenant_keys out.
	for _, w := range workloadsOf(r) {
		for _, c := range allContainers(w.template.Spec) {
			if svc, cmd := forgeService(c); svc != "data-lifecycle" || cmd != "backup" {
				continue
			}
			ev, ok := envVar(c, "FORGE_BACKUP_TARGETS")
			if !ok || ev.ValueFrom != nil {
				p = append(p, fmt.Sprintf("%s: FORGE_BACKUP_TARGETS is not a literal, so what it dumps cannot be checked", w))
				continue
			}
			for _, part := range strings.Split(ev.Value, ",") {
				name, rest, _ := strings.Cut(strings.TrimSpace(part), "=")
				database, _, _ := strings.Cut(rest, "/")
				if isVaultName(database) && name != vaultServiceName {
					p = append(p, fmt.Sprintf("%s dumps the vault's database %s as %q: only as %q does the binary leave tenant_keys out", w, database, name, vaultServiceName))
				}
			}
		}
	}

	// The network: where the vault's pods may write, and where its Postgres may send.
	nps := policiesOf(r)
	eps := endpointsOf(r)
	for _, src := range eps {
		if src.Namespace != "forge" || src.Labels["app.kubernetes.io/name"] != vaultServiceName {
			continue
		}
		for _, dst := range eps {
			if dst.Labels["cnpg.io/podRole"] != "instance" || held(dst.Name) {
				continue
			}
			if egressAllows(nps, src, func(pp networkingv1.NetworkPolicyPeer, ns string) bool { return peerMatchesPod(pp, ns, dst) }, 5432, corev1.ProtocolTCP, &dst) {
				p = append(p, fmt.Sprintf("%s (%s) may connect to Postgres %s, which does not hold the vault's database", src.Name, src.Labels["app.kubernetes.io/component"], dst.Name))
			}
		}
	}
	for _, src := range eps {
		if src.Labels["cnpg.io/podRole"] != "instance" || !held(src.Name) {
			continue
		}
		for _, x := range exts {
			if x.Name == "kube-apiserver" {
				continue
			}
			for _, port := range probePorts {
				if egressAllows(nps, src, func(pp networkingv1.NetworkPolicyPeer, _ string) bool { return peerMatchesAddr(pp, x.Addr) }, port, corev1.ProtocolTCP, nil) {
					p = append(p, fmt.Sprintf("Postgres %s holds the vault's database and may send to %s:%d", src.Name, x.Name, port))
				}
			}
		}
	}
	return p
}

// regionOf is the region of an entry (regions/<region>/... or deps/<region>/...).
func regionOf(entry string) string {
	parts := strings.Split(entry, "/")
	if len(parts) < 2 {
		return ""
	}
	return parts[1]
}

// vaultRegion is everything that can run in a region at once: the whole region, its
// migrations and restore Job (regionWithMigrations), and the physical restore of forge-pg.
func vaultRegion(tb testing.TB, s *suite, region string) rendering {
	tb.Helper()
	r := regionWithMigrations(tb, s, region)
	r.Objects = append(slices.Clone(r.Objects), s.get(tb, "deps/"+region+"/restore").Objects...)
	return r
}

// checkVaultBackups: in every region secrets-vault's database lives on its own cluster alone,
// and nothing (whole region, migrations, restores, or any entry on its own) lets a backup
// capture it.
func checkVaultBackups(t *testing.T, s *suite) {
	for _, region := range regions(t) {
		t.Run(region, func(t *testing.T) {
			r := vaultRegion(t, s, region)
			require.Equal(t, []string{vaultPostgres}, vaultClusters(r), "the vault's database and roles live on its own cluster only")
			require.Equal(t, vaultPostgres, serviceByName(t, vaultServiceName).Postgres)
			require.Empty(t, vaultBackupProblems(r, externals(region)))
			// Not vacuous: the main cluster is backed up, and the vault's dump exists.
			require.NotEmpty(t, r.find(t, "Cluster", mainPostgres).Typed.(*PGCluster).Spec.Plugins, "forge-pg keeps its physical backups")
			dumped := false
			for _, w := range workloadsOf(r) {
				c := w.template.Spec.Containers[0]
				if svc, cmd := forgeService(c); svc == "data-lifecycle" && cmd == "backup" {
					dumped = dumped || strings.Contains(envValue(t, c, "FORGE_BACKUP_TARGETS"), vaultServiceName+"=secrets_vault/")
				}
			}
			require.True(t, dumped, "data-lifecycle dumps the vault's database (without tenant_keys)")
		})
	}
	for _, e := range s.entries {
		require.Empty(t, vaultBackupProblems(s.get(t, e), externals(regionOf(e))), e)
	}
}

// changed returns a copy of r whose object kind/name is a fresh decoding of its YAML, changed
// by change (the suite's renderings are shared and never mutated).
func changed(tb testing.TB, r rendering, kind, name string, change func(any)) rendering {
	tb.Helper()
	out := rendering{Entry: r.Entry + " (changed)", Objects: slices.Clone(r.Objects)}
	for i, o := range out.Objects {
		if o.Kind != kind || o.Name != name {
			continue
		}
		typed, err := decodeStrict(o.APIVersion, o.Kind, o.YAML)
		require.NoError(tb, err)
		change(typed)
		out.Objects[i].Typed = typed
		return out
	}
	tb.Fatalf("%s: no %s %s", r.Entry, kind, name)
	return out
}

// withObject returns a copy of r with one more object.
func withObject(r rendering, kind, name string, typed any) rendering {
	return rendering{Entry: r.Entry + " (with " + kind + ")", Objects: append(slices.Clone(r.Objects), object{Kind: kind, Name: name, Namespace: "forge-data", Typed: typed})}
}

// checkVaultBackupCheckBites breaks the rendered us-east one way at a time, for every way a
// backup could reach the vault's database, and expects vaultBackupProblems to name it.
func checkVaultBackupCheckBites(t *testing.T, s *suite) {
	r := vaultRegion(t, s, "us-east")
	exts := externals("us-east")
	require.Empty(t, vaultBackupProblems(r, exts))

	yes := true
	vaultCluster := func(change func(*PGCluster)) rendering {
		return changed(t, r, "Cluster", vaultPostgres, func(o any) { change(o.(*PGCluster)) })
	}
	meta := func(name string) metav1.ObjectMeta { return metav1.ObjectMeta{Name: name, Namespace: "forge-data"} }
	claim := vaultPostgres + "-1"
	setTargets := func(value string) func(any) {
		return func(o any) {
			env := o.(*batchv1.CronJob).Spec.JobTemplate.Spec.Template.Spec.Containers[0].Env
			for i := range env {
				if env[i].Name == "FORGE_BACKUP_TARGETS" {
					env[i].Value = value
				}
			}
		}
	}
	cases := []struct {
		name string
		r    rendering
	}{
		{"WAL archived by the Barman plugin", vaultCluster(func(c *PGCluster) {
			c.Spec.Plugins = append(c.Spec.Plugins, PGPluginConfiguration{Name: "barman-cloud.cloudnative-pg.io", IsWALArchiver: &yes,
				Parameters: map[string]string{"barmanObjectName": "forge-pg-backups", "serverName": vaultPostgres}})
		})},
		{"Barman plugin for base backups only", vaultCluster(func(c *PGCluster) {
			c.Spec.Plugins = append(c.Spec.Plugins, PGPluginConfiguration{Name: "barman-cloud.cloudnative-pg.io",
				Parameters: map[string]string{"barmanObjectName": "forge-pg-backups"}})
		})},
		{"in-tree Barman object store", vaultCluster(func(c *PGCluster) {
			c.Spec.Backup = &PGBackupConfiguration{BarmanObjectStore: &BarmanConfiguration{DestinationPath: "s3://forge-us-east-pg-backups/"}}
		})},
		{"volume snapshots configured", vaultCluster(func(c *PGCluster) {
			c.Spec.Backup = &PGBackupConfiguration{VolumeSnapshot: &PGVolumeSnapshotConfiguration{ClassName: "ebs-csi"}}
		})},
		{"archive parameters", vaultCluster(func(c *PGCluster) { c.Spec.PostgresConfiguration.Parameters["archive_mode"] = "on" })},
		{"scheduled base backup", withObject(r, "ScheduledBackup", "vault-daily", &PGScheduledBackup{ObjectMeta: meta("vault-daily"), Spec: PGScheduledBackupSpec{
			Schedule: "0 0 3 * * *", Cluster: PGLocalObjectReference{Name: vaultPostgres}, Method: "plugin",
			PluginConfiguration: &PGBackupPluginConfig{Name: "barman-cloud.cloudnative-pg.io"}}})},
		{"scheduled volume snapshot", withObject(r, "ScheduledBackup", "vault-snap", &PGScheduledBackup{ObjectMeta: meta("vault-snap"), Spec: PGScheduledBackupSpec{
			Schedule: "0 0 3 * * *", Cluster: PGLocalObjectReference{Name: vaultPostgres}, Method: "volumeSnapshot"}})},
		{"one-off backup", withObject(r, "Backup", "vault-now", &PGBackup{ObjectMeta: meta("vault-now"), Spec: PGBackupSpec{
			Cluster: PGLocalObjectReference{Name: vaultPostgres}, Method: "volumeSnapshot"}})},
		{"volume snapshot of an instance's claim", withObject(r, "VolumeSnapshot", "vault-1-snap", &VolumeSnapshot{ObjectMeta: meta("vault-1-snap"),
			Spec: VolumeSnapshotSpec{Source: VolumeSnapshotSource{PersistentVolumeClaimName: &claim}}})},
		{"vault database moved to forge-pg", changed(t, r, "Database", "secrets-vault-pg-secrets-vault", func(o any) {
			o.(*PGDatabase).Spec.ClusterRef.Name = mainPostgres
		})},
		{"restored copy of the vault database on forge-pg", withObject(r, "Database", "forge-pg-secrets-vault-restored", &PGDatabase{ObjectMeta: meta("forge-pg-secrets-vault-restored"),
			Spec: PGDatabaseSpec{ClusterRef: PGLocalObjectReference{Name: mainPostgres}, Name: "secrets_vault_restored", Owner: "secrets_vault_migrate"}})},
		{"vault roles on forge-pg", changed(t, r, "Cluster", mainPostgres, func(o any) {
			c := o.(*PGCluster)
			c.Spec.Managed.Roles = append(c.Spec.Managed.Roles, PGRoleConfiguration{Name: "secrets_vault_app", Login: true,
				PasswordSecret: &PGLocalObjectReference{Name: "pg-secrets-vault-app"}})
		})},
		{"a cluster recovered from the vault cluster's archive", changed(t, r, "Cluster", "forge-pg-restore", func(o any) {
			o.(*PGCluster).Spec.ExternalClusters[0].Plugin.Parameters["serverName"] = vaultPostgres
		})},
		{"vault dumped under another service name", changed(t, r, "CronJob", "data-lifecycle-vault-backup", setTargets("vault=secrets_vault/vault"))},
		{"vault dumped by the main job under another name", changed(t, r, "CronJob", "data-lifecycle-backup",
			setTargets("tenant=tenant/tenant,keys=secrets_vault/vault"))},
		{"the vault may reach forge-pg", changed(t, r, "NetworkPolicy", "secrets-vault", func(o any) {
			np := o.(*networkingv1.NetworkPolicy)
			for _, rule := range np.Spec.Egress {
				for _, to := range rule.To {
					if to.PodSelector != nil && to.PodSelector.MatchLabels["forge.internal/postgres"] != "" {
						to.PodSelector.MatchLabels = nil
						to.PodSelector.MatchExpressions = []metav1.LabelSelectorRequirement{{Key: "forge.internal/postgres", Operator: metav1.LabelSelectorOpExists}}
					}
				}
			}
		})},
		{"the vault's migration may reach forge-pg", changed(t, r, "NetworkPolicy", "secrets-vault-migrate", func(o any) {
			np := o.(*networkingv1.NetworkPolicy)
			np.Spec.Egress = append(np.Spec.Egress, networkingv1.NetworkPolicyEgressRule{To: []networkingv1.NetworkPolicyPeer{{
				NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": "forge-data"}},
				PodSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"forge.internal/postgres": "true"}},
			}}})
		})},
		{"the vault's Postgres may reach object storage", changed(t, r, "NetworkPolicy", vaultPostgres+"-kube-apiserver", func(o any) {
			np := o.(*networkingv1.NetworkPolicy)
			np.Spec.Egress = append(np.Spec.Egress, networkingv1.NetworkPolicyEgressRule{To: []networkingv1.NetworkPolicyPeer{{
				IPBlock: &networkingv1.IPBlock{CIDR: "10.10.240.0/22"}}}})
		})},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			require.NotEmpty(t, vaultBackupProblems(tc.r, exts))
		})
	}
}
