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
	// Database: the service owns a database (and so a migration Job, a runtime and a
	// migration role) and consumes JetStream. The gateway owns no data.
	Database bool
	// Callers are the workloads whose gRPC calls the service accepts (its workload table).
	Callers []string
}

// services is the base list: one kustomize base per entry, no more, no fewer.
func services() []service {
	return []service{
		{Name: "gateway", GRPCPort: 9100, HealthPort: 9200, HTTPPort: 8080},
		{Name: "tenant", GRPCPort: 9101, HealthPort: 9201, Database: true, Callers: []string{"gateway", "data-lifecycle"}},
		{Name: "apps", GRPCPort: 9102, HealthPort: 9202, Database: true, Callers: []string{"gateway", "sandbox-origin", "data-lifecycle"}},
		{Name: "secrets-vault", GRPCPort: 9103, HealthPort: 9203, Database: true,
			Callers: []string{"gateway", "tenant", "apps", "sandbox-origin", "data-lifecycle"}},
		{Name: "sandbox-origin", GRPCPort: 9104, HealthPort: 9204, HTTPPort: 8090, Database: true, Callers: []string{"gateway"}},
		{Name: "data-lifecycle", GRPCPort: 9105, HealthPort: 9205, Database: true, Callers: []string{"gateway"}},
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
				if svc.Database {
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
