package k8s

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// commandEnv is what one command of a service binary reads from its environment (its
// internal/config and pkg/service.LoadBase). A manifest running the command must set every
// Required variable and may set nothing outside Required and Optional: a variable the binary
// never reads is a setting an SRE believes in and nothing obeys.
//
// Required is what the code refuses to start without, plus what a deployment must not leave
// to the code's development default: FORGE_REGION (the default is us-east, wrong in eu-west),
// FORGE_HEALTH_ADDR (the probes), the gateway's optional backends (a backend left unset is not
// served), apps' FORGE_SANDBOX_DOMAIN (answers would carry no app URLs), sandbox-origin's grant
// key file (without it each replica seals cookies with its own random key) and data-lifecycle's
// signing key path and backup targets (stated, so the tests can compare them).
type commandEnv struct {
	Required, Optional []string
}

// forbiddenEnv are development and test switches no manifest may set: the development identity
// provider and generated keys, and the sandbox proxy's way to reach private addresses or trust
// extra roots.
var forbiddenEnv = []string{"FORGE_DEV_MODE", "FORGE_PROXY_ALLOW_HOSTS", "FORGE_PROXY_ROOT_CAS"}

// serveShared is what pkg/service reads for `serve` in every service.
var serveShared = commandEnv{
	Required: []string{"FORGE_REGION", "FORGE_GRPC_ADDR", "FORGE_HEALTH_ADDR", "FORGE_TLS_CERT", "FORGE_TLS_KEY", "FORGE_TLS_CA", "NATS_URL"},
	Optional: []string{"FORGE_TRUST_DOMAIN", "FORGE_LOG_LEVEL", "OTEL_EXPORTER_OTLP_ENDPOINT", "FORGE_SHUTDOWN_GRACE"},
}

// migrateEnv is what `<service> migrate` needs: the migration role and the runtime role it
// grants to, nothing of serve.
var migrateEnv = commandEnv{
	Required: []string{"MIGRATION_DATABASE_URL", "FORGE_DB_RUNTIME_ROLE"},
	Optional: []string{"FORGE_LOG_LEVEL"},
}

func serveWith(required, optional []string) commandEnv {
	return commandEnv{
		Required: append(slices.Clone(serveShared.Required), required...),
		Optional: append(slices.Clone(serveShared.Optional), optional...),
	}
}

// binaryEnv is the table, per service and command (services/<name>/internal/config).
func binaryEnv() map[string]map[string]commandEnv {
	db := []string{"DATABASE_URL"}
	backupOptional := []string{"FORGE_LOG_LEVEL", "FORGE_BACKUP_RETENTION", "FORGE_BACKUP_TARGETS"}
	return map[string]map[string]commandEnv{
		"gateway": {
			"serve": serveWith(
				[]string{"FORGE_HTTP_ADDR", "FORGE_EDGE_CERT", "FORGE_EDGE_KEY", "FORGE_CONSOLE_ORIGIN", "FORGE_OIDC_ISSUER", "FORGE_OIDC_AUDIENCE",
					"FORGE_TENANT_ADDR", "FORGE_APPS_ADDR", "FORGE_VAULT_ADDR", "FORGE_SANDBOX_ADDR", "FORGE_LIFECYCLE_ADDR"},
				[]string{"FORGE_OIDC_CA", "FORGE_AUTH_CACHE_TTL", "FORGE_AUTH_CACHE_SIZE", "FORGE_RATE_IP_RPS", "FORGE_RATE_IP_BURST",
					"FORGE_RATE_TENANT_RPS", "FORGE_RATE_TENANT_BURST", "FORGE_MAX_BODY_BYTES", "FORGE_MAX_UPLOAD_BYTES"}),
		},
		"tenant": {
			"serve":   serveWith(db, []string{"FORGE_SESSION_TTL", "FORGE_PURGE_BATCH_SIZE"}),
			"migrate": migrateEnv,
		},
		"apps": {
			"serve":   serveWith(append(slices.Clone(db), "FORGE_BLOB_URL", "FORGE_VAULT_ADDR", "FORGE_TENANT_ADDR", "FORGE_SANDBOX_DOMAIN"), nil),
			"migrate": migrateEnv,
		},
		"secrets-vault": {
			"serve": serveWith(append(slices.Clone(db), "FORGE_KEY_PROVIDER", "FORGE_KEYRING_BACKUP_URL"),
				[]string{"FORGE_VAULT_KEY_CACHE_SIZE", "FORGE_VAULT_KEY_CACHE_TTL", "FORGE_VAULT_REWRAP_INTERVAL"}),
			"migrate": migrateEnv,
			// restore-keyring loads the wrapped keys back from the keyring backups into a
			// restored database, as the migration role; nothing of serve.
			"restore-keyring": {
				Required: []string{"MIGRATION_DATABASE_URL", "FORGE_KEY_PROVIDER", "FORGE_KEYRING_BACKUP_URL"},
			},
		},
		"sandbox-origin": {
			"serve": serveWith(append(slices.Clone(db), "FORGE_HTTP_ADDR", "FORGE_SANDBOX_DOMAIN", "FORGE_CONSOLE_ORIGIN", "FORGE_EDGE_CERT",
				"FORGE_EDGE_KEY", "FORGE_APPS_ADDR", "FORGE_VAULT_ADDR", "FORGE_SANDBOX_GRANT_KEY_FILE"),
				[]string{"FORGE_SANDBOX_TICKET_TTL", "FORGE_SANDBOX_GRANT_TTL", "FORGE_SANDBOX_CACHE_TTL", "FORGE_SANDBOX_CACHE_MAX_BYTES",
					"FORGE_SANDBOX_CACHE_MAX_APPS", "FORGE_PROXY_MAX_REQUEST_BYTES", "FORGE_PROXY_MAX_RESPONSE_BYTES", "FORGE_PROXY_TIMEOUT",
					"FORGE_PROXY_HEADER_TIMEOUT", "FORGE_PROXY_RATE", "FORGE_PROXY_BURST"}),
			"migrate": migrateEnv,
		},
		"data-lifecycle": {
			"serve": serveWith(append(slices.Clone(db), "FORGE_TENANT_ADDR", "FORGE_APPS_ADDR", "FORGE_VAULT_ADDR", "FORGE_BLOB_URL",
				"FORGE_BACKUP_BLOB_URL", "FORGE_CERT_SIGNING_KEY"),
				[]string{"FORGE_LIFECYCLE_TICK", "FORGE_PURGE_RETRY_AFTER", "FORGE_BACKUP_RETENTION"}),
			"migrate": migrateEnv,
			"backup": {
				Required: []string{"BACKUP_DATABASE_URL", "FORGE_BACKUP_BLOB_URL", "FORGE_KEY_PROVIDER", "FORGE_BACKUP_TARGETS"},
				Optional: backupOptional,
			},
			// restore takes the dump as a flag and the target database from
			// RESTORE_DATABASE_URL (a password is never an argument); it connects to no backup
			// database.
			"restore": {
				Required: []string{"RESTORE_DATABASE_URL", "FORGE_BACKUP_BLOB_URL", "FORGE_KEY_PROVIDER"},
				Optional: []string{"FORGE_LOG_LEVEL"},
			},
		},
	}
}

// envLiteral matches a string literal that names an environment variable.
var envLiteral = regexp.MustCompile(`"([A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)"`)

// configSourceEnv returns the variable names spelled as string literals in files (relative to
// the repository root).
func configSourceEnv(tb testing.TB, files ...string) []string {
	tb.Helper()
	var out []string
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(repoRoot(tb), filepath.FromSlash(f)))
		require.NoError(tb, err)
		for _, m := range envLiteral.FindAllStringSubmatch(string(b), -1) {
			if !slices.Contains(out, m[1]) {
				out = append(out, m[1])
			}
		}
	}
	return out
}

// configSources are the files where a service reads its environment.
func configSources(tb testing.TB, svc string) []string {
	tb.Helper()
	matches, err := filepath.Glob(filepath.Join(repoRoot(tb), "services", svc, "internal", "config", "*.go"))
	require.NoError(tb, err)
	var out []string
	for _, m := range matches {
		if !strings.HasSuffix(m, "_test.go") {
			rel, err := filepath.Rel(repoRoot(tb), m)
			require.NoError(tb, err)
			out = append(out, filepath.ToSlash(rel))
		}
	}
	require.NotEmpty(tb, out, "%s: internal/config", svc)
	if svc == "data-lifecycle" {
		out = append(out, "services/data-lifecycle/internal/backup/main.go") // reads FORGE_LOG_LEVEL
	}
	return out
}

// TestBinaryEnvTableMatchesTheCode holds the table above to the services' configuration code:
// it names no variable the code does not spell, and every variable a service's own
// configuration reads is in its table (or forbidden). A service that adds, renames or drops a
// variable fails here until the table, and through it every manifest, follows.
func TestBinaryEnvTableMatchesTheCode(t *testing.T) {
	shared := configSourceEnv(t, "pkg/service/config.go")
	// Names the gateway's config builds on (FORGE_RATE_IP + "_RPS") rather than reads.
	prefixes := []string{"FORGE_RATE_IP", "FORGE_RATE_TENANT"}
	var everyName []string
	for svc, cmds := range binaryEnv() {
		t.Run(svc, func(t *testing.T) {
			own := configSourceEnv(t, configSources(t, svc)...)
			var names []string
			for _, c := range cmds {
				names = append(names, c.Required...)
				names = append(names, c.Optional...)
			}
			everyName = append(everyName, names...)
			for _, n := range names {
				require.True(t, slices.Contains(own, n) || slices.Contains(shared, n), "%s: the table lists %s, which its configuration never reads", svc, n)
				require.NotContains(t, forbiddenEnv, n)
			}
			for _, n := range own {
				if slices.Contains(prefixes, n) || slices.Contains(forbiddenEnv, n) {
					continue
				}
				require.Contains(t, names, n, "%s reads %s: add it to binaryEnv", svc, n)
			}
		})
	}
	for _, n := range shared {
		if !slices.Contains(forbiddenEnv, n) {
			require.Contains(t, everyName, n, "pkg/service reads %s", n)
		}
	}
}

// forgeService names the service whose image c runs ("" for other images) and the command.
func forgeService(c corev1.Container) (svc, cmd string) {
	if !strings.HasPrefix(c.Image, forgeImage) {
		return "", ""
	}
	name := strings.TrimPrefix(c.Image, forgeImage)
	if i := strings.IndexAny(name, ":@"); i >= 0 {
		name = name[:i]
	}
	cmd = "serve"
	if len(c.Args) > 0 {
		cmd = c.Args[0]
	}
	return name, cmd
}

// argRef matches a $(VAR) reference the kubelet expands in args.
var argRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// envProblems lists how the environment of container c departs from what its command reads.
func envProblems(c corev1.Container) []string {
	svc, cmd := forgeService(c)
	if svc == "" {
		return nil
	}
	want, ok := binaryEnv()[svc][cmd]
	if !ok {
		return []string{svc + " has no command " + cmd}
	}
	var p []string
	var set []string
	for _, ev := range c.Env {
		if slices.Contains(set, ev.Name) {
			p = append(p, ev.Name+" is set twice")
		}
		set = append(set, ev.Name)
	}
	var refs []string
	for _, a := range c.Args {
		for _, m := range argRef.FindAllStringSubmatch(a, -1) {
			refs = append(refs, m[1])
			if !slices.Contains(set, m[1]) {
				p = append(p, "args use $("+m[1]+"), which is not set")
			}
		}
	}
	for _, n := range want.Required {
		if !slices.Contains(set, n) {
			p = append(p, svc+" "+cmd+" requires "+n)
		}
	}
	for _, n := range set {
		if slices.Contains(forbiddenEnv, n) {
			p = append(p, n+" is a development switch, never set in a manifest")
			continue
		}
		if !slices.Contains(want.Required, n) && !slices.Contains(want.Optional, n) && !slices.Contains(refs, n) {
			p = append(p, svc+" "+cmd+" does not read "+n)
		}
	}
	return p
}

// checkWorkloadEnv: every container of the suite's images sets exactly what its command reads.
func checkWorkloadEnv(t *testing.T, s *suite) {
	seen := map[string]bool{}
	for _, e := range s.entries {
		for _, w := range workloadsOf(s.get(t, e)) {
			for _, c := range allContainers(w.template.Spec) {
				require.Empty(t, envProblems(c), "%s: %s", e, w)
				if svc, cmd := forgeService(c); svc != "" {
					seen[svc+" "+cmd] = true
				}
			}
		}
	}
	// Every command of the table runs somewhere (so no row is dead).
	for svc, cmds := range binaryEnv() {
		for cmd := range cmds {
			require.True(t, seen[svc+" "+cmd], "no manifest runs %s %s", svc, cmd)
		}
	}
}

// checkForbiddenEnv: no manifest of any entry sets a development switch, in any container
// (the suite's or another image's), as a literal, from a ConfigMap or from a Secret; and no
// ConfigMap carries one for envFrom.
func checkForbiddenEnv(t *testing.T, s *suite) {
	for _, e := range s.entries {
		require.Empty(t, forbiddenEnvIn(s.get(t, e)), e)
	}
}

func forbiddenEnvIn(r rendering) []string {
	var p []string
	for _, w := range workloadsOf(r) {
		for _, c := range allContainers(w.template.Spec) {
			for _, ev := range c.Env {
				if slices.Contains(forbiddenEnv, ev.Name) {
					p = append(p, w.String()+" sets "+ev.Name)
				}
			}
		}
	}
	for _, o := range r.ofKind("ConfigMap") {
		for k := range o.Typed.(*corev1.ConfigMap).Data {
			if slices.Contains(forbiddenEnv, k) {
				p = append(p, "ConfigMap "+o.Name+" carries "+k)
			}
		}
	}
	return p
}

// TestForbiddenEnvCheckBites sets each development switch on a rendered workload (and in the
// regional ConfigMap) and expects both checks to refuse it.
func TestForbiddenEnvCheckBites(t *testing.T) {
	entry := "regions/us-east/sandbox-origin"
	r, err := renderEntry(filepath.Join(root(t), filepath.FromSlash(entry)))
	require.NoError(t, err)
	require.Empty(t, forbiddenEnvIn(r))
	for _, name := range forbiddenEnv {
		t.Run(name, func(t *testing.T) {
			for i, o := range r.Objects {
				switch v := o.Typed.(type) {
				case *corev1.ConfigMap:
					cm := v.DeepCopy()
					cm.Data = map[string]string{name: "1"}
					broken := rendering{Objects: []object{{Kind: "ConfigMap", Name: o.Name, Typed: cm}}}
					require.NotEmpty(t, forbiddenEnvIn(broken))
				}
				if o.Kind != "Deployment" {
					continue
				}
				d := cloneDeployment(t, o)
				c := &d.Spec.Template.Spec.Containers[0]
				c.Env = append(c.Env, corev1.EnvVar{Name: name, Value: "1"})
				broken := rendering{Objects: slices.Clone(r.Objects)}
				broken.Objects[i].Typed = d
				require.NotEmpty(t, forbiddenEnvIn(broken))
				require.NotEmpty(t, envProblems(*c))
			}
		})
	}
}

// TestEnvCheckBites: a missing required variable, one the command does not read, and an args
// reference to nothing are each refused.
func TestEnvCheckBites(t *testing.T) {
	r, err := renderEntry(filepath.Join(root(t), "regions", "us-east", "secrets-vault", "migrate"))
	require.NoError(t, err)
	job := r.find(t, "Job", "secrets-vault-migrate")
	c := workloadsOf(rendering{Objects: []object{job}})[0].template.Spec.Containers[0]
	require.Empty(t, envProblems(c))
	cases := []struct {
		name   string
		break_ func(*corev1.Container)
	}{
		{"runtime role missing", func(c *corev1.Container) {
			c.Env = slices.DeleteFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == "FORGE_DB_RUNTIME_ROLE" })
		}},
		{"serve variable on migrate", func(c *corev1.Container) {
			c.Env = append(c.Env, corev1.EnvVar{Name: "FORGE_TLS_CA", Value: "/etc/forge/tls/ca.crt"})
		}},
		{"variable nobody reads", func(c *corev1.Container) { c.Env = append(c.Env, corev1.EnvVar{Name: "FORGE_KMS_URI", Value: "x"}) }},
		{"args reference unset", func(c *corev1.Container) { c.Args = append(c.Args, "$(NOPE)") }},
		{"unknown command", func(c *corev1.Container) { c.Args = []string{"backup"} }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cc := *c.DeepCopy()
			tc.break_(&cc)
			require.NotEmpty(t, envProblems(cc))
		})
	}
}

// cloneDeployment decodes a fresh copy of a rendered Deployment, for tests that break it.
func cloneDeployment(tb testing.TB, o object) *appsv1.Deployment {
	tb.Helper()
	typed, err := decodeStrict(o.APIVersion, o.Kind, o.YAML)
	require.NoError(tb, err)
	return typed.(*appsv1.Deployment)
}
