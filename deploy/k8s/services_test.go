package k8s

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// service is what the manifests must say about one service: the contract of
// docs/conventions.md (ports) and of the design (who calls it, what it stores).
type service struct {
	Name       string
	GRPCPort   int32
	HealthPort int32
	HTTPPort   int32 // 0: no HTTP listener
	// Postgres is the CloudNativePG Cluster holding the service's database ("" when it owns
	// none, as the gateway); a service with a database has a migration Job, a runtime and a
	// migration role. secrets-vault has a cluster of its own, which is never physically backed
	// up (vaultbackup_test.go).
	Postgres string
	// Callers are the in-cluster workloads whose gRPC calls the service accepts (its workload
	// table, internal/grpcapi); External are the table's callers from outside the cluster.
	Callers, External []string
}

// The region's two Postgres clusters: forge-pg (physical backups) and secrets-vault's own.
const (
	mainPostgres  = "forge-pg"
	vaultPostgres = "secrets-vault-pg"
)

// services is the base list: one kustomize base per entry, no more, no fewer.
func services() []service {
	return []service{
		{Name: "gateway", GRPCPort: 9100, HealthPort: 9200, HTTPPort: 8080},
		{Name: "tenant", GRPCPort: 9101, HealthPort: 9201, Postgres: mainPostgres, Callers: []string{"gateway", "apps", "data-lifecycle"},
			External: []string{"billing", "builder"}},
		{Name: "apps", GRPCPort: 9102, HealthPort: 9202, Postgres: mainPostgres, Callers: []string{"gateway", "sandbox-origin", "data-lifecycle"},
			External: []string{"builder"}},
		{Name: "secrets-vault", GRPCPort: 9103, HealthPort: 9203, Postgres: vaultPostgres,
			Callers: []string{"gateway", "apps", "sandbox-origin", "data-lifecycle"}},
		{Name: "sandbox-origin", GRPCPort: 9104, HealthPort: 9204, HTTPPort: 8090, Postgres: mainPostgres, Callers: []string{"gateway"}},
		{Name: "data-lifecycle", GRPCPort: 9105, HealthPort: 9205, Postgres: mainPostgres, Callers: []string{"gateway"}},
	}
}

func serviceNames() []string {
	var out []string
	for _, s := range services() {
		out = append(out, s.Name)
	}
	return out
}

func serviceByName(tb testing.TB, name string) service {
	tb.Helper()
	for _, s := range services() {
		if s.Name == name {
			return s
		}
	}
	tb.Fatalf("unknown service %q", name)
	return service{}
}

// baseList is the set of service bases under base/ (namespace and pki are not services).
func baseList(tb testing.TB) []string {
	tb.Helper()
	des, err := os.ReadDir(filepath.Join(root(tb), "base"))
	require.NoError(tb, err)
	var out []string
	for _, d := range des {
		if d.IsDir() && d.Name() != "namespace" && d.Name() != "pki" {
			out = append(out, d.Name())
		}
	}
	return out
}

// TestServiceTableMatchesConventions reads the ports out of docs/conventions.md, so that the
// table above (and through it every manifest) cannot drift from the contract.
func TestServiceTableMatchesConventions(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "docs", "conventions.md"))
	require.NoError(t, err)
	doc := string(b)
	grpcLine := regexp.MustCompile(`gRPC:([^.]*)`).FindStringSubmatch(strings.Join(strings.Fields(doc), " "))
	require.NotNil(t, grpcLine, "conventions.md lists the gRPC ports")
	probeLine := regexp.MustCompile(`Probe ports:([^.]*)`).FindStringSubmatch(strings.Join(strings.Fields(doc), " "))
	require.NotNil(t, probeLine, "conventions.md lists the probe ports")
	portOf := func(line, name string) int32 {
		m := regexp.MustCompile(`(?:^|[ ,])` + regexp.QuoteMeta(name) + ` (\d+)`).FindStringSubmatch(line)
		require.NotNil(t, m, "%s in %q", name, line)
		p, err := strconv.Atoi(m[1])
		require.NoError(t, err)
		return int32(p)
	}
	flat := strings.Join(strings.Fields(doc), " ")
	for _, s := range services() {
		t.Run(s.Name, func(t *testing.T) {
			require.Equal(t, portOf(grpcLine[1], s.Name), s.GRPCPort, "gRPC port")
			require.Equal(t, portOf(probeLine[1], s.Name), s.HealthPort, "probe port")
			if s.HTTPPort != 0 {
				require.Contains(t, flat, s.Name+" HTTP "+strconv.Itoa(int(s.HTTPPort)), "HTTP port")
			}
		})
	}
}

// checkServiceSet: the base list, the service table, the services in the repository, every
// region overlay and every per-service entry name exactly the same services.
func checkServiceSet(t *testing.T, s *suite) {
	names := serviceNames()
	slices.Sort(names)
	require.Equal(t, names, baseList(t), "base/ holds one base per service of the table")

	des, err := os.ReadDir(filepath.Join(repoRoot(t), "services"))
	require.NoError(t, err)
	var repo []string
	for _, d := range des {
		if d.IsDir() {
			repo = append(repo, d.Name())
		}
	}
	require.Equal(t, names, repo, "every service of the repository has a base, and every base a service")

	for _, region := range regions(t) {
		t.Run(region, func(t *testing.T) {
			require.ElementsMatch(t, names, deploymentsIn(s.get(t, "regions/"+region)), "the whole region renders every service once")

			des, err := os.ReadDir(filepath.Join(root(t), "regions", region))
			require.NoError(t, err)
			for _, d := range des {
				if d.IsDir() && !isRegionPart(d.Name()) {
					require.Contains(t, names, d.Name(), "regions/%s/%s is not a service of the base list", region, d.Name())
				}
			}
			for _, svc := range services() {
				entry := "regions/" + region + "/" + svc.Name
				require.Equal(t, []string{svc.Name}, deploymentsIn(s.get(t, entry)), "%s renders its service alone", entry)
				migrate := entry + "/migrate"
				if svc.Postgres != "" {
					r := s.get(t, migrate)
					require.Len(t, r.ofKind("Job"), 1, migrate)
					require.Empty(t, r.ofKind("Deployment"), migrate)
				} else {
					require.NotContains(t, s.entries, migrate, "%s owns no database", svc.Name)
				}
			}
		})
	}
}

// deploymentsIn names the service Deployments of a rendering (by their name label).
func deploymentsIn(r rendering) []string {
	var out []string
	for _, o := range r.ofKind("Deployment") {
		out = append(out, o.Name)
	}
	return out
}

// workloadNames maps pkg/workload's constants to workload names.
var workloadNames = map[string]string{
	"Gateway": "gateway", "Tenant": "tenant", "Apps": "apps", "SecretsVault": "secrets-vault",
	"SandboxOrigin": "sandbox-origin", "DataLifecycle": "data-lifecycle", "Billing": "billing", "Builder": "builder",
}

// tableCallers reads the workloads a service's workload table names: every workload.X inside
// its Table function (the gateway's table is the empty literal in its main).
func tableCallers(tb testing.TB, svc string) []string {
	tb.Helper()
	dir := filepath.Join(repoRoot(tb), "services", svc, "internal", "grpcapi")
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	require.NoError(tb, err)
	var body string
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		require.NoError(tb, err)
		text := string(b)
		i := strings.Index(text, "\nfunc Table() authz.Table {")
		if i < 0 {
			continue
		}
		end := strings.Index(text[i:], "\n}\n")
		require.Positive(tb, end, "%s: end of Table", f)
		body = text[i : i+end]
	}
	if svc == "gateway" {
		b, err := os.ReadFile(filepath.Join(repoRoot(tb), "services", "gateway", "cmd", "gateway", "main.go"))
		require.NoError(tb, err)
		require.Contains(tb, string(b), "Table:  authz.Table{},", "the gateway serves no API of its own")
		return nil
	}
	require.NotEmpty(tb, body, "%s: no Table function in internal/grpcapi", svc)
	var out []string
	for _, m := range regexp.MustCompile(`workload\.([A-Z][A-Za-z]+)`).FindAllStringSubmatch(body, -1) {
		name, ok := workloadNames[m[1]]
		require.True(tb, ok, "%s: unknown workload constant %s", svc, m[1])
		if !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	return out
}

// TestCallersMatchTheWorkloadTables holds the service table (and through it every
// NetworkPolicy edge) to the services' own workload tables: a caller added to or removed from
// a table fails here until the policies follow.
func TestCallersMatchTheWorkloadTables(t *testing.T) {
	for _, s := range services() {
		t.Run(s.Name, func(t *testing.T) {
			got := tableCallers(t, s.Name)
			want := append(slices.Clone(s.Callers), s.External...)
			require.ElementsMatch(t, want, got, "callers of %s", s.Name)
			for _, x := range s.External {
				require.NotContains(t, serviceNames(), x, "%s is outside the cluster", x)
			}
		})
	}
}
