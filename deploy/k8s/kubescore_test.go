package k8s

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	networkingv1 "k8s.io/api/networking/v1"
)

// kubeScoreCritical is kube-score's grade for a critical finding (scorecard.GradeCritical).
const kubeScoreCritical = 1

type kubeScoreObject struct {
	ObjectName string `json:"object_name"`
	Checks     []struct {
		Check struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		} `json:"check"`
		Grade    int  `json:"grade"`
		Skipped  bool `json:"skipped"`
		Comments []struct {
			Path    string `json:"path"`
			Summary string `json:"summary"`
		} `json:"comments"`
	} `json:"checks"`
}

// kubeScore runs bin/kube-score (installed by the Makefile's pinned rule) on a rendered
// stream and returns its critical findings.
func kubeScore(tb testing.TB, bin string, rendered []byte, wantScored int) []string {
	tb.Helper()
	cmd := exec.Command(bin, "score", "--output-format", "json", "-")
	cmd.Stdin = bytes.NewReader(rendered)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		require.NoError(tb, err, stderr.String())
	}
	var objs []kubeScoreObject
	require.NoError(tb, json.Unmarshal(stdout.Bytes(), &objs), "kube-score output: %s", stderr.String())
	require.Len(tb, objs, wantScored, "kube-score scored every object of a kind it knows")
	var critical []string
	for _, o := range objs {
		for _, c := range o.Checks {
			if c.Skipped || c.Grade > kubeScoreCritical {
				continue
			}
			var why []string
			for _, cm := range c.Comments {
				why = append(why, strings.TrimSpace(cm.Path+" "+cm.Summary))
			}
			critical = append(critical, o.ObjectName+": "+c.Check.ID+": "+strings.Join(why, "; "))
		}
	}
	return critical
}

// kubeScoreBin is bin/kube-score at the repository root, or "" when it is not installed.
func kubeScoreBin(tb testing.TB) string {
	tb.Helper()
	bin := filepath.Join(repoRoot(tb), "bin", "kube-score")
	if _, err := os.Stat(bin); err != nil {
		return ""
	}
	return bin
}

func checkKubeScore(t *testing.T, s *suite) {
	bin := kubeScoreBin(t)
	if bin == "" {
		t.Skip("bin/kube-score is not installed (make lint-k8s installs it and runs this check)")
	}
	for _, e := range s.entries {
		r := s.get(t, e)
		require.Empty(t, kubeScore(t, bin, r.YAML, scoredKinds(r)), "%s: kube-score critical findings", e)
	}
}

// TestKubeScoreReportsCritical proves the wiring: a Deployment with no probes, limits or
// security context must come back with critical findings.
func TestKubeScoreReportsCritical(t *testing.T) {
	bin := kubeScoreBin(t)
	if bin == "" {
		t.Skip("bin/kube-score is not installed")
	}
	bad := []byte(`apiVersion: apps/v1
kind: Deployment
metadata: {name: bad, namespace: forge}
spec:
  selector: {matchLabels: {app: bad}}
  template:
    metadata: {labels: {app: bad}}
    spec:
      containers: [{name: bad, image: "nginx:latest"}]
`)
	require.NotEmpty(t, kubeScore(t, bin, bad, 1))
}

// scoredKinds counts the objects kube-score scores (it skips custom resources and a few
// built-in kinds it has no checks for).
func scoredKinds(r rendering) int {
	n := 0
	for _, o := range r.Objects {
		switch o.Kind {
		case "Deployment", "StatefulSet", "Job", "CronJob", "Service", "NetworkPolicy", "PodDisruptionBudget", "HorizontalPodAutoscaler":
			n++
		}
	}
	return n
}

// postgresPodLabels are the forge.internal/postgres values the Clusters of a rendering give
// their pods (one per cluster: forge-pg and secrets-vault-pg are told apart).
func postgresPodLabels(r rendering) []string {
	var out []string
	for _, o := range r.ofKind("Cluster") {
		if m := o.Typed.(*PGCluster).Spec.InheritedMetadata; m != nil && m.Labels["forge.internal/postgres"] != "" {
			out = append(out, m.Labels["forge.internal/postgres"])
		}
	}
	return out
}

// checkKubeScoreWaivers: kube-score's per-object waiver is allowed in two places only, both for
// policies whose pods kube-score cannot see in the same rendering: the namespaces' default deny
// (it selects the pods of entries applied later) and the policies of the operator-created
// Postgres pods.
func checkKubeScoreWaivers(t *testing.T, s *suite) {
	for _, e := range s.entries {
		for _, o := range s.get(t, e).Objects {
			meta := o.Typed.(interface{ GetAnnotations() map[string]string })
			v, ok := meta.GetAnnotations()["kube-score/ignore"]
			if !ok {
				continue
			}
			require.Equal(t, "networkpolicy-targets-pod", v, "%s: %s", e, o.key())
			np, isNP := o.Typed.(*networkingv1.NetworkPolicy)
			require.True(t, isNP, "%s: %s", e, o.key())
			sel := np.Spec.PodSelector
			defaultDeny := len(sel.MatchLabels)+len(sel.MatchExpressions) == 0 && len(np.Spec.Ingress)+len(np.Spec.Egress) == 0
			operatorPods := len(sel.MatchExpressions) == 0 && len(sel.MatchLabels) == 1 && slices.Contains(postgresPodLabels(s.get(t, e)), sel.MatchLabels["forge.internal/postgres"])
			require.True(t, defaultDeny || operatorPods, "%s: %s: waiver only on a default deny or the operator-created Postgres pods", e, o.key())
		}
	}
}
