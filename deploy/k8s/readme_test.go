package k8s

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// readmeCommands returns the command lines of the README's sh code blocks.
func readmeCommands(text string) []string {
	var out []string
	in := false
	for _, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "```") {
			in = !in && trimmed == "```sh"
			continue
		}
		if in && trimmed != "" && !strings.HasPrefix(trimmed, "#") {
			out = append(out, trimmed)
		}
	}
	return out
}

// kubectlKinds maps the resource names the README uses to kinds.
var kubectlKinds = map[string]string{
	"deployment": "Deployment", "job": "Job", "cronjob": "CronJob", "hpa": "HorizontalPodAutoscaler",
	"certificate": "Certificate", "cluster": "Cluster", "statefulset": "StatefulSet", "service": "Service",
}

// readmeProblems checks each command against the renderings: kustomize paths must be entries
// the tests render, and every object a command names must exist, in the namespace given, in
// some rendering.
func readmeProblems(s *suite, commands []string) []string {
	var p []string
	exists := func(ns, kind, name string) bool {
		for _, e := range s.entries {
			for _, o := range s.renders[e].Objects {
				if o.Kind == kind && o.Name == name && o.Namespace == ns {
					return true
				}
			}
		}
		return false
	}
	pathRE := regexp.MustCompile(`^deploy/k8s/(.+)$`)
	for _, c := range commands {
		f := strings.Fields(c)
		switch f[0] {
		case "kustomize", "kubectl", "cmctl", "go":
		default:
			p = append(p, c+": only kustomize, kubectl, cmctl and go commands, which the tests can check")
			continue
		}
		ns := ""
		for i, w := range f {
			if (w == "-n" || w == "--namespace") && i+1 < len(f) {
				ns = f[i+1]
			}
		}
		for i, w := range f {
			if m := pathRE.FindStringSubmatch(w); m != nil && f[0] != "go" {
				if !slices.Contains(s.entries, m[1]) {
					p = append(p, c+": "+w+" is not an entry the tests render")
				}
				if f[0] == "kubectl" && (i == 0 || f[i-1] != "-k") {
					p = append(p, c+": kubectl takes the entry with -k")
				}
			}
			w = strings.TrimPrefix(w, "--from=")
			if kind, name, ok := strings.Cut(w, "/"); ok && f[0] == "kubectl" {
				if k, known := kubectlKinds[kind]; known {
					if ns == "" || !exists(ns, k, name) {
						p = append(p, c+": no "+k+" "+name+" in namespace "+ns)
					}
				}
			}
		}
		if f[0] == "kubectl" {
			p = append(p, kubectlVerbProblems(c, f, ns, exists)...)
		}
		if f[0] == "cmctl" {
			if len(f) < 2 || f[1] != "renew" || ns == "" || !exists(ns, "Certificate", f[len(f)-1]) {
				p = append(p, c+": cmctl renew -n <namespace> <certificate> of a rendered Certificate")
			}
		}
	}
	return p
}

// kubectlVerbProblems: objects are named as kind/name (checked by the caller), except after
// `delete <kind> <name>` and `create job`, checked here; a bare name is refused.
func kubectlVerbProblems(c string, f []string, ns string, exists func(ns, kind, name string) bool) []string {
	var p []string
	for i := 1; i+1 < len(f); i++ {
		next := f[i+1]
		switch f[i] {
		case "delete":
			k, known := kubectlKinds[next]
			if !known || i+2 >= len(f) || !exists(ns, k, f[i+2]) {
				p = append(p, c+": delete names a rendered object as <kind> <name>")
			}
		case "create":
			if next != "job" {
				p = append(p, c+": only `create job --from=cronjob/<name>`")
			}
		case "rollout":
			if next != "status" && next != "restart" {
				p = append(p, c+": rollout status|restart")
			}
		case "get", "describe", "patch", "wait", "logs":
			if !strings.Contains(next, "/") && !strings.HasPrefix(next, "-") {
				p = append(p, c+": name objects as kind/name")
			}
		}
	}
	return p
}

func readme(tb testing.TB) string {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(root(tb), "README.md"))
	require.NoError(tb, err)
	return string(b)
}

func checkReadme(t *testing.T, s *suite) {
	cmds := readmeCommands(readme(t))
	require.Greater(t, len(cmds), 10, "the README's commands were found")
	require.Empty(t, readmeProblems(s, cmds))
	// It covers what an SRE must do.
	text := readme(t)
	for _, section := range []string{"## Deploy one service in one region", "## Run migrations", "## Rotate a certificate", "## Scale a service",
		"## Back up and restore a database", "### Secrets an SRE creates in each region", "## Probes", "## Known gaps before production"} {
		require.Contains(t, text, section)
	}
}

// checkReadmeCheckBites: a command naming a missing entry or object is refused.
func checkReadmeCheckBites(t *testing.T, s *suite) {
	cases := []string{
		"kubectl apply -k deploy/k8s/regions/eu-west/billing",
		"kustomize build deploy/k8s/regions/ap-south",
		"kubectl -n forge rollout status deployment/billing",
		"kubectl -n forge-data get certificate/apps",
		"kubectl -n forge delete job gateway-migrate",
		"cmctl renew -n forge billing",
		"helm install forge ./chart",
		"kubectl apply -f deploy/k8s/regions/eu-west/apps",
	}
	for _, c := range cases {
		t.Run(c, func(t *testing.T) {
			require.NotEmpty(t, readmeProblems(s, []string{c}))
		})
	}
	require.Empty(t, readmeProblems(s, []string{"kubectl apply -k deploy/k8s/regions/eu-west/apps"}))
}

// readmeSecretProblems: every Secret a rendered workload or Postgres role refers to is named in
// the README (literally, or as a `<service>-...` / `pg-<service>-...` pattern), so the table an
// SRE follows to create a region's Secrets is complete; and the development switches are named
// as never to be set.
func readmeSecretProblems(s *suite, text string) []string {
	var names []string
	add := func(n string) {
		if n != "" && !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	for _, e := range s.entries {
		r := s.renders[e]
		for _, w := range workloadsOf(r) {
			for _, v := range w.template.Spec.Volumes {
				if v.Secret != nil {
					add(v.Secret.SecretName)
				}
			}
			for _, c := range allContainers(w.template.Spec) {
				for _, ev := range c.Env {
					if ev.ValueFrom != nil && ev.ValueFrom.SecretKeyRef != nil {
						add(ev.ValueFrom.SecretKeyRef.Name)
					}
				}
			}
		}
		for _, o := range r.ofKind("Cluster") {
			for _, role := range o.Typed.(*PGCluster).Spec.Managed.Roles {
				if role.PasswordSecret != nil {
					add(role.PasswordSecret.Name)
				}
			}
		}
	}
	var p []string
	for _, n := range names {
		if strings.Contains(text, "`"+n+"`") {
			continue
		}
		found := false
		for _, svc := range serviceNames() {
			if i := strings.Index(n, svc); i >= 0 {
				pattern := n[:i] + "<service>" + n[i+len(svc):]
				if strings.Contains(text, "`"+pattern+"`") {
					found = true
				}
			}
		}
		if !found {
			p = append(p, "README names no Secret "+n)
		}
	}
	for _, v := range forbiddenEnv {
		if !strings.Contains(text, "`"+v+"`") {
			p = append(p, "README does not warn against "+v)
		}
	}
	return p
}

func checkReadmeSecrets(t *testing.T, s *suite) {
	text := readme(t)
	require.Empty(t, readmeSecretProblems(s, text))
	// The check bites: without the table's rows, the Secrets it names are reported.
	cut := strings.ReplaceAll(text, "`secrets-vault-root-key`", "")
	cut = strings.ReplaceAll(cut, "`<service>-nats`", "")
	got := readmeSecretProblems(s, cut)
	require.Contains(t, got, "README names no Secret secrets-vault-root-key")
	require.Contains(t, got, "README names no Secret gateway-nats")
}
