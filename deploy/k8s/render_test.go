package k8s

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// object is one rendered object: its identity, its YAML as kustomize produced it, and its
// strictly decoded typed value.
type object struct {
	APIVersion string
	Kind       string
	Namespace  string
	Name       string
	YAML       []byte
	Typed      any
}

func (o object) key() string {
	return fmt.Sprintf("%s/%s %s/%s", o.APIVersion, o.Kind, o.Namespace, o.Name)
}

// rendering is the output of one kustomize entry.
type rendering struct {
	Entry   string // path relative to deploy/k8s, slash-separated
	Objects []object
	YAML    []byte // the whole stream, as `kustomize build` prints it
}

// ofKind returns the objects of kind, in rendering order.
func (r rendering) ofKind(kind string) []object {
	var out []object
	for _, o := range r.Objects {
		if o.Kind == kind {
			out = append(out, o)
		}
	}
	return out
}

// find returns the object of kind and name (any namespace) or fails.
func (r rendering) find(tb testing.TB, kind, name string) object {
	tb.Helper()
	for _, o := range r.Objects {
		if o.Kind == kind && o.Name == name {
			return o
		}
	}
	tb.Fatalf("%s: no %s %q", r.Entry, kind, name)
	return object{}
}

// root is deploy/k8s: the tests run in their package directory.
func root(tb testing.TB) string {
	tb.Helper()
	wd, err := os.Getwd()
	require.NoError(tb, err)
	return wd
}

// repoRoot is the repository root (two levels up).
func repoRoot(tb testing.TB) string {
	tb.Helper()
	return filepath.Clean(filepath.Join(root(tb), "..", ".."))
}

// suite is every entry rendered once: kustomize is the slow part, and every check reads the
// same renderings. Checks never mutate them.
type suite struct {
	entries []string
	renders map[string]rendering
}

func loadSuite(tb testing.TB) *suite {
	tb.Helper()
	s := &suite{entries: entries(tb), renders: map[string]rendering{}}
	require.NotEmpty(tb, s.entries)
	for _, e := range s.entries {
		r, err := renderEntry(filepath.Join(root(tb), filepath.FromSlash(e)))
		require.NoError(tb, err, "render %s", e)
		r.Entry = e
		s.renders[e] = r
	}
	return s
}

// get returns the rendering of entry, which must be one of the suite's entries.
func (s *suite) get(tb testing.TB, entry string) rendering {
	tb.Helper()
	r, ok := s.renders[entry]
	require.True(tb, ok, "no entry %s", entry)
	return r
}

func renderEntry(dir string) (rendering, error) {
	opts := krusty.MakeDefaultOptions() // load restrictions: root only, as the CLI
	k := krusty.MakeKustomizer(opts)
	rm, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return rendering{}, fmt.Errorf("kustomize: %w", err)
	}
	all, err := rm.AsYaml()
	if err != nil {
		return rendering{}, fmt.Errorf("yaml: %w", err)
	}
	r := rendering{YAML: all}
	for _, res := range rm.Resources() {
		y, err := res.AsYAML()
		if err != nil {
			return rendering{}, fmt.Errorf("yaml of %s: %w", res.CurId(), err)
		}
		o := object{APIVersion: res.GetApiVersion(), Kind: res.GetKind(), Namespace: res.GetNamespace(), Name: res.GetName(), YAML: y}
		typed, err := decodeStrict(o.APIVersion, o.Kind, y)
		if err != nil {
			return rendering{}, fmt.Errorf("%s: %w", o.key(), err)
		}
		o.Typed = typed
		r.Objects = append(r.Objects, o)
	}
	return r, nil
}

// decodeStrict decodes y into the Go type registered for apiVersion and kind; a field the
// type does not know, a duplicated field or a kind nobody registered is an error.
func decodeStrict(apiVersion, kind string, y []byte) (any, error) {
	newObj, ok := knownKinds()[apiVersion+"/"+kind]
	if !ok {
		return nil, fmt.Errorf("no strict type registered for %s %s: add one to knownKinds", apiVersion, kind)
	}
	obj := newObj()
	if err := yaml.UnmarshalStrict(y, obj); err != nil {
		return nil, fmt.Errorf("strict decode: %w", err)
	}
	if v, ok := obj.(interface{ validate() error }); ok {
		if err := v.validate(); err != nil {
			return nil, fmt.Errorf("schema: %w", err)
		}
	}
	return obj, nil
}

// entries lists every directory an SRE can build: each directory under regions/ and deps/
// whose kustomization.yaml is a Kustomization (components are building blocks, not entries).
func entries(tb testing.TB) []string {
	tb.Helper()
	var out []string
	for _, top := range []string{"regions", "deps"} {
		err := filepath.WalkDir(filepath.Join(root(tb), top), func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || d.Name() != "kustomization.yaml" {
				return err
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			var head struct{ Kind string }
			if err := yaml.Unmarshal(b, &head); err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			if head.Kind == "Component" {
				return nil
			}
			rel, err := filepath.Rel(root(tb), filepath.Dir(path))
			if err != nil {
				return err
			}
			rel = filepath.ToSlash(rel)
			if rel == "deps/base" || strings.HasPrefix(rel, "deps/base/") {
				return nil // shared by the regions' deps entries, not applied alone
			}
			out = append(out, rel)
			return nil
		})
		require.NoError(tb, err)
	}
	sort.Strings(out)
	return out
}

// regions lists the region overlays (directories under regions/).
func regions(tb testing.TB) []string {
	tb.Helper()
	des, err := os.ReadDir(filepath.Join(root(tb), "regions"))
	require.NoError(tb, err)
	var out []string
	for _, d := range des {
		if d.IsDir() {
			out = append(out, d.Name())
		}
	}
	require.NotEmpty(tb, out)
	return out
}

// regionParts are the directories of a region that are not one service's entry.
var regionParts = []string{"config", "network", "platform"}

func isRegionPart(name string) bool { return slices.Contains(regionParts, name) }

// splitDocs splits a multi-document YAML stream.
func splitDocs(b []byte) [][]byte {
	var out [][]byte
	for _, d := range bytes.Split(b, []byte("\n---\n")) {
		if len(bytes.TrimSpace(d)) > 0 {
			out = append(out, d)
		}
	}
	return out
}

// TestManifests renders every entry once and runs every check on the renderings.
func TestManifests(t *testing.T) {
	s := loadSuite(t)
	checks := []struct {
		name  string
		check func(*testing.T, *suite)
	}{
		{"every entry renders objects", checkNotEmpty},
		{"services match the base list", checkServiceSet},
		{"whole region equals its parts", checkRegionIsUnionOfParts},
		{"workloads are hardened", checkWorkloadHardening},
		{"server workloads probe drain and spread", checkServers},
		{"no secret values inlined", checkNoInlineSecrets},
		{"images pinned", checkImagesPinned},
		{"regional configuration", checkRegionConfig},
		{"environment matches the conventions", checkEnvConventions},
		{"each command gets exactly what it reads", checkWorkloadEnv},
		{"no development switch in any manifest", checkForbiddenEnv},
		{"key files from their own Secrets", checkSecretFiles},
		{"edge certificates", checkEdgeCertificates},
		{"workload certificates", checkCertificates},
		{"default deny and isolation", checkDefaultDeny},
		{"network edges", checkNetworkEdges},
		{"network edges hold on each side", checkEachSideOfTheGRPCEdges},
		{"the edge evaluator sees a widened policy", checkEdgeEvaluatorCatchesAWideningPolicy},
		{"dependencies", checkDependencies},
		{"migrations and backups", checkJobs},
		{"no backup captures the vault's database", checkVaultBackups},
		{"the vault backup check bites", checkVaultBackupCheckBites},
		{"no placeholder survives an overlay", checkNoPlaceholders},
		{"README commands", checkReadme},
		{"README names every Secret", checkReadmeSecrets},
		{"the README check refuses unrendered commands", checkReadmeCheckBites},
		{"kube-score", checkKubeScore},
		{"kube-score waivers", checkKubeScoreWaivers},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) { c.check(t, s) })
	}
}

func checkNotEmpty(t *testing.T, s *suite) {
	for _, e := range s.entries {
		require.NotEmpty(t, s.get(t, e).Objects, e)
	}
}

// TestStrictDecodingRefusesUnknownFields proves the decoder this suite relies on is strict, for
// a built-in kind and for a transcribed custom resource: a misspelt field must fail.
func TestStrictDecodingRefusesUnknownFields(t *testing.T) {
	cases := []struct {
		name, apiVersion, kind, yaml string
	}{
		{"deployment field", "apps/v1", "Deployment", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {replicaz: 2}\n"},
		{"container field", "apps/v1", "Deployment", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {template: {spec: {containers: [{name: a, imagePullPolicyy: Always}]}}}\n"},
		{"certificate field", "cert-manager.io/v1", "Certificate", "apiVersion: cert-manager.io/v1\nkind: Certificate\nmetadata: {name: x}\nspec: {secretName: s, issuerRef: {name: i}, uri: [spiffe://forge.internal/x]}\n"},
		{"cluster field", "postgresql.cnpg.io/v1", "Cluster", "apiVersion: postgresql.cnpg.io/v1\nkind: Cluster\nmetadata: {name: x}\nspec: {instances: 3, storage: {size: 1Gi, storageClassName: x}}\n"},
		{"unregistered kind", "v1", "Pod", "apiVersion: v1\nkind: Pod\nmetadata: {name: x}\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeStrict(tc.apiVersion, tc.kind, []byte(tc.yaml))
			require.Error(t, err)
		})
	}
}
