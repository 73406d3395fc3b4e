package k8s

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// drainSeconds is how long a service's gRPC server drains in-flight RPCs after SIGTERM: the
// FORGE_SHUTDOWN_GRACE every Deployment sets (pkg/service's default too).
const drainSeconds = 20

// workload is one pod template of a rendering and the object that owns it.
type workload struct {
	obj      object
	template corev1.PodTemplateSpec
}

func (w workload) String() string { return w.obj.Kind + "/" + w.obj.Name }

func workloadsOf(r rendering) []workload {
	var out []workload
	for _, o := range r.Objects {
		switch v := o.Typed.(type) {
		case *appsv1.Deployment:
			out = append(out, workload{o, v.Spec.Template})
		case *appsv1.StatefulSet:
			out = append(out, workload{o, v.Spec.Template})
		case *batchv1.Job:
			out = append(out, workload{o, v.Spec.Template})
		case *batchv1.CronJob:
			out = append(out, workload{o, v.Spec.JobTemplate.Spec.Template})
		}
	}
	return out
}

func allContainers(spec corev1.PodSpec) []corev1.Container {
	return append(slices.Clone(spec.InitContainers), spec.Containers...)
}

// hardeningProblems lists what is missing from a pod template's hardening; empty means hardened.
// It is a function of the template alone so the negative tests can prove each rule bites.
func hardeningProblems(tpl corev1.PodTemplateSpec) []string {
	var p []string
	spec := tpl.Spec
	psc := spec.SecurityContext
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	if spec.HostNetwork || spec.HostPID || spec.HostIPC {
		p = append(p, "host namespaces")
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		p = append(p, "pod automountServiceAccountToken is not false")
	}
	if spec.ServiceAccountName == "" || spec.ServiceAccountName == "default" {
		p = append(p, "no own ServiceAccount")
	}
	for _, v := range spec.Volumes {
		if v.HostPath != nil {
			p = append(p, "hostPath volume "+v.Name)
		}
	}
	for _, c := range allContainers(spec) {
		sc := c.SecurityContext
		if sc == nil {
			p = append(p, c.Name+": no securityContext")
			continue
		}
		nonRoot := (sc.RunAsNonRoot != nil && *sc.RunAsNonRoot) || (sc.RunAsNonRoot == nil && psc.RunAsNonRoot != nil && *psc.RunAsNonRoot)
		if !nonRoot {
			p = append(p, c.Name+": runAsNonRoot")
		}
		if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			p = append(p, c.Name+": readOnlyRootFilesystem")
		}
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			p = append(p, c.Name+": allowPrivilegeEscalation")
		}
		if sc.Privileged != nil && *sc.Privileged {
			p = append(p, c.Name+": privileged")
		}
		if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0 {
			p = append(p, c.Name+": capabilities must drop ALL and add none")
		}
		seccomp := sc.SeccompProfile
		if seccomp == nil {
			seccomp = psc.SeccompProfile
		}
		if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
			p = append(p, c.Name+": seccompProfile RuntimeDefault")
		}
		for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			if _, ok := c.Resources.Requests[res]; !ok {
				p = append(p, fmt.Sprintf("%s: no %s request", c.Name, res))
			}
			if _, ok := c.Resources.Limits[res]; !ok {
				p = append(p, fmt.Sprintf("%s: no %s limit", c.Name, res))
			}
		}
		for _, m := range c.VolumeMounts {
			if m.SubPath != "" || m.SubPathExpr != "" {
				// A subPath mount never sees a Secret's or ConfigMap's update: a rotated
				// certificate would never arrive.
				p = append(p, c.Name+": subPath mount "+m.Name)
			}
		}
	}
	return p
}

func checkWorkloadHardening(t *testing.T, s *suite) {
	for _, e := range s.entries {
		r := s.get(t, e)
		users := map[string][]string{}
		for _, w := range workloadsOf(r) {
			require.Empty(t, hardeningProblems(w.template), "%s: %s", e, w)
			sa := w.template.Spec.ServiceAccountName
			users[sa] = append(users[sa], w.String())
			o := r.find(t, "ServiceAccount", sa)
			acc := o.Typed.(*corev1.ServiceAccount)
			require.NotNil(t, acc.AutomountServiceAccountToken, "%s: ServiceAccount %s", e, sa)
			require.False(t, *acc.AutomountServiceAccountToken, "%s: ServiceAccount %s mounts no token", e, sa)
		}
		for sa, ws := range users {
			require.Len(t, ws, 1, "%s: ServiceAccount %s is shared by %v: each workload has its own", e, sa, ws)
		}
	}
}

// TestHardeningRulesBite breaks one property at a time on a hardened template and expects
// hardeningProblems to name it: the checks above cannot pass vacuously.
func TestHardeningRulesBite(t *testing.T) {
	good := func() corev1.PodTemplateSpec {
		yes, no := true, false
		return corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			ServiceAccountName:           "x",
			AutomountServiceAccountToken: &no,
			SecurityContext:              &corev1.PodSecurityContext{RunAsNonRoot: &yes, SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}},
			Containers: []corev1.Container{{
				Name: "x",
				SecurityContext: &corev1.SecurityContext{
					ReadOnlyRootFilesystem: &yes, AllowPrivilegeEscalation: &no,
					Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
				},
				Resources: corev1.ResourceRequirements{
					Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("64Mi")},
					Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourceMemory: resource.MustParse("64Mi")},
				},
				VolumeMounts: []corev1.VolumeMount{{Name: "tls", MountPath: "/etc/forge/tls"}},
			}},
		}}
	}
	require.Empty(t, hardeningProblems(good()))
	yes, no := true, false
	cases := []struct {
		name   string
		break_ func(*corev1.PodTemplateSpec)
	}{
		{"root allowed", func(p *corev1.PodTemplateSpec) { p.Spec.SecurityContext.RunAsNonRoot = &no }},
		{"writable root", func(p *corev1.PodTemplateSpec) { p.Spec.Containers[0].SecurityContext.ReadOnlyRootFilesystem = &no }},
		{"escalation", func(p *corev1.PodTemplateSpec) { p.Spec.Containers[0].SecurityContext.AllowPrivilegeEscalation = &yes }},
		{"capabilities kept", func(p *corev1.PodTemplateSpec) { p.Spec.Containers[0].SecurityContext.Capabilities.Drop = nil }},
		{"capability added", func(p *corev1.PodTemplateSpec) {
			p.Spec.Containers[0].SecurityContext.Capabilities.Add = []corev1.Capability{"NET_ADMIN"}
		}},
		{"no seccomp", func(p *corev1.PodTemplateSpec) { p.Spec.SecurityContext.SeccompProfile = nil }},
		{"no memory limit", func(p *corev1.PodTemplateSpec) { delete(p.Spec.Containers[0].Resources.Limits, corev1.ResourceMemory) }},
		{"no cpu request", func(p *corev1.PodTemplateSpec) { delete(p.Spec.Containers[0].Resources.Requests, corev1.ResourceCPU) }},
		{"token mounted", func(p *corev1.PodTemplateSpec) { p.Spec.AutomountServiceAccountToken = nil }},
		{"default account", func(p *corev1.PodTemplateSpec) { p.Spec.ServiceAccountName = "" }},
		{"subPath certificate", func(p *corev1.PodTemplateSpec) { p.Spec.Containers[0].VolumeMounts[0].SubPath = "tls.crt" }},
		{"privileged", func(p *corev1.PodTemplateSpec) { p.Spec.Containers[0].SecurityContext.Privileged = &yes }},
		{"host network", func(p *corev1.PodTemplateSpec) { p.Spec.HostNetwork = true }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := good()
			tc.break_(&p)
			require.NotEmpty(t, hardeningProblems(p))
		})
	}
}

// checkServers: every long-running workload has startup, readiness and liveness probes, a PDB,
// zone spread and a graceful stop; each service's probes are native gRPC probes on its
// plaintext health port, and its replicas belong to an autoscaler.
func checkServers(t *testing.T, s *suite) {
	for _, e := range s.entries {
		r := s.get(t, e)
		for _, w := range workloadsOf(r) {
			if w.obj.Kind != "Deployment" && w.obj.Kind != "StatefulSet" {
				continue
			}
			name := fmt.Sprintf("%s: %s", e, w)
			spec := w.template.Spec
			require.Len(t, spec.Containers, 1, name)
			c := spec.Containers[0]
			require.NotNil(t, c.StartupProbe, "%s: startupProbe", name)
			require.NotNil(t, c.ReadinessProbe, "%s: readinessProbe", name)
			require.NotNil(t, c.LivenessProbe, "%s: livenessProbe", name)
			require.NotEqual(t, c.ReadinessProbe, c.LivenessProbe, "%s: readiness and liveness must differ (kube-score does not compare gRPC probes)", name)

			require.True(t, hasZoneSpread(spec, w.template.Labels), "%s: spread across zones", name)
			pdbs := selectingPDBs(r, w.template.Labels)
			require.Len(t, pdbs, 1, "%s: exactly one PodDisruptionBudget", name)
			require.True(t, pdbs[0].Spec.MaxUnavailable != nil || pdbs[0].Spec.MinAvailable != nil, name)

			require.NotNil(t, c.Lifecycle, "%s: preStop", name)
			require.NotNil(t, c.Lifecycle.PreStop, "%s: preStop", name)
			require.NotNil(t, spec.TerminationGracePeriodSeconds, "%s: terminationGracePeriodSeconds", name)

			if w.obj.Kind != "Deployment" {
				continue
			}
			svc := serviceByName(t, w.obj.Name)
			for probe, p := range map[string]*corev1.Probe{"startup": c.StartupProbe, "readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
				require.NotNil(t, p.GRPC, "%s: %s probe is a native gRPC probe", name, probe)
				require.Equal(t, svc.HealthPort, p.GRPC.Port, "%s: %s probe on the health port", name, probe)
			}
			// Liveness and readiness read the same health status: pkg/grpcserver serves only the
			// overall status ("") and the registered services' names, and flips them together
			// (SetServing). So liveness is told apart by tolerance alone: readiness takes a pod
			// out of the endpoints within seconds, liveness restarts it only after a minute of
			// NOT_SERVING, longer than a drain (the status is NOT_SERVING from SIGTERM on), so a
			// stopping pod is never killed mid-drain and a short outage never restarts pods.
			for probe, p := range map[string]*corev1.Probe{"startup": c.StartupProbe, "readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
				require.True(t, p.GRPC.Service == nil || *p.GRPC.Service == "", "%s: %s probe asks for the overall status (no other name is served)", name, probe)
			}
			window := func(p *corev1.Probe) int32 { return p.PeriodSeconds * p.FailureThreshold }
			require.GreaterOrEqual(t, window(c.LivenessProbe), int32(60), "%s: liveness tolerates a minute", name)
			require.Greater(t, window(c.LivenessProbe), 3*window(c.ReadinessProbe), "%s: liveness far more tolerant than readiness", name)
			require.Greater(t, window(c.LivenessProbe), int32(drainSeconds), "%s: liveness never fires during a drain", name)
			require.Equal(t, fmt.Sprintf(":%d", svc.HealthPort), envValue(t, c, "FORGE_HEALTH_ADDR"), name)
			require.Equal(t, fmt.Sprintf("%ds", drainSeconds), envValue(t, c, "FORGE_SHUTDOWN_GRACE"), "%s: the drain the grace period is sized for", name)
			require.Equal(t, fmt.Sprintf(":%d", svc.GRPCPort), envValue(t, c, "FORGE_GRPC_ADDR"), name)
			if svc.HTTPPort != 0 {
				require.Equal(t, fmt.Sprintf(":%d", svc.HTTPPort), envValue(t, c, "FORGE_HTTP_ADDR"), name)
			}
			require.ElementsMatch(t, expectedPorts(svc), containerPorts(c), "%s: container ports", name)

			// Drain: the preStop sleep lets endpoints stop routing here, then the server drains
			// in-flight RPCs; both must fit in the grace period or the kubelet kills mid-RPC.
			require.NotNil(t, c.Lifecycle.PreStop.Sleep, "%s: preStop sleep (distroless has no shell)", name)
			need := c.Lifecycle.PreStop.Sleep.Seconds + drainSeconds
			require.Greater(t, *spec.TerminationGracePeriodSeconds, need, "%s: grace period covers preStop and drain", name)

			d := w.obj.Typed.(*appsv1.Deployment)
			require.Nil(t, d.Spec.Replicas, "%s: the autoscaler owns the replica count", name)
			hpa := hpaFor(t, r, w.obj.Name)
			require.NotNil(t, hpa.Spec.MinReplicas, name)
			require.GreaterOrEqual(t, *hpa.Spec.MinReplicas, int32(2), "%s: at least two replicas, so the PDB can let one go", name)
			require.NotEmpty(t, hpa.Spec.Metrics, name)
		}
	}
}

func expectedPorts(s service) []string {
	out := []string{fmt.Sprintf("grpc:%d", s.GRPCPort), fmt.Sprintf("health:%d", s.HealthPort)}
	if s.HTTPPort != 0 {
		out = append(out, fmt.Sprintf("http:%d", s.HTTPPort))
	}
	return out
}

func containerPorts(c corev1.Container) []string {
	var out []string
	for _, p := range c.Ports {
		out = append(out, fmt.Sprintf("%s:%d", p.Name, p.ContainerPort))
	}
	return out
}

func hasZoneSpread(spec corev1.PodSpec, podLabels map[string]string) bool {
	for _, c := range spec.TopologySpreadConstraints {
		if c.TopologyKey != "topology.kubernetes.io/zone" || c.WhenUnsatisfiable != corev1.DoNotSchedule || c.LabelSelector == nil {
			continue
		}
		sel, err := metav1.LabelSelectorAsSelector(c.LabelSelector)
		if err == nil && sel.Matches(labels.Set(podLabels)) {
			return true
		}
	}
	return false
}

func selectingPDBs(r rendering, podLabels map[string]string) []*policyv1.PodDisruptionBudget {
	var out []*policyv1.PodDisruptionBudget
	for _, o := range r.ofKind("PodDisruptionBudget") {
		pdb := o.Typed.(*policyv1.PodDisruptionBudget)
		sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
		if err == nil && !sel.Empty() && sel.Matches(labels.Set(podLabels)) {
			out = append(out, pdb)
		}
	}
	return out
}

func hpaFor(tb testing.TB, r rendering, deployment string) *autoscalingv2.HorizontalPodAutoscaler {
	tb.Helper()
	var found []*autoscalingv2.HorizontalPodAutoscaler
	for _, o := range r.ofKind("HorizontalPodAutoscaler") {
		h := o.Typed.(*autoscalingv2.HorizontalPodAutoscaler)
		if h.Spec.ScaleTargetRef.Kind == "Deployment" && h.Spec.ScaleTargetRef.Name == deployment {
			found = append(found, h)
		}
	}
	require.Len(tb, found, 1, "%s: one HorizontalPodAutoscaler for Deployment %s", r.Entry, deployment)
	return found[0]
}

// envValue returns the literal value of env var name; it fails when the var is absent or not a
// literal.
func envValue(tb testing.TB, c corev1.Container, name string) string {
	tb.Helper()
	for _, e := range c.Env {
		if e.Name == name {
			require.Nil(tb, e.ValueFrom, "%s: %s is a literal", c.Name, name)
			return e.Value
		}
	}
	tb.Fatalf("%s: no env %s", c.Name, name)
	return ""
}

func envVar(c corev1.Container, name string) (corev1.EnvVar, bool) {
	for _, e := range c.Env {
		if e.Name == name {
			return e, true
		}
	}
	return corev1.EnvVar{}, false
}

// secretEnv names the variables that carry credentials: they must come from a Secret.
var secretEnv = regexp.MustCompile(`(^|_)(DATABASE_URL|NATS_URL|PASSWORD|TOKEN|SECRET)$`)

// userinfoURL matches a URL that carries credentials (scheme://user:password@host).
var userinfoURL = regexp.MustCompile(`[a-z][a-z0-9+.-]*://[^/\s@]+:[^/\s@]*@`)

func checkNoInlineSecrets(t *testing.T, s *suite) {
	for _, e := range s.entries {
		r := s.get(t, e)
		require.Empty(t, r.ofKind("Secret"), "%s: Secrets come from the region's secret manager, never from this repository", e)
		for _, o := range r.ofKind("ConfigMap") {
			for k, v := range o.Typed.(*corev1.ConfigMap).Data {
				require.NotRegexp(t, userinfoURL, v, "%s: ConfigMap %s key %s holds a credential", e, o.Name, k)
				require.NotRegexp(t, `(?i)password\s*[:=]\s*[^$\s]`, v, "%s: ConfigMap %s key %s holds a password", e, o.Name, k)
			}
		}
		for _, w := range workloadsOf(r) {
			for _, c := range allContainers(w.template.Spec) {
				for _, ef := range c.EnvFrom {
					require.Nil(t, ef.SecretRef, "%s: %s: env from secretKeyRef only, never a whole Secret", e, w)
				}
				for _, ev := range c.Env {
					require.NotRegexp(t, userinfoURL, ev.Value, "%s: %s: %s inlines a credential", e, w, ev.Name)
					if secretEnv.MatchString(ev.Name) {
						require.Empty(t, ev.Value, "%s: %s: %s is a literal", e, w, ev.Name)
						require.NotNil(t, ev.ValueFrom, "%s: %s: %s", e, w, ev.Name)
						require.NotNil(t, ev.ValueFrom.SecretKeyRef, "%s: %s: %s comes from a Secret", e, w, ev.Name)
					}
				}
			}
		}
	}
}

// pinnedImage: a digest, or an explicit version tag (major.minor at least, as PostgreSQL
// numbers its releases); never latest, a floating major, or a bare name.
var pinnedImage = regexp.MustCompile(`^[a-z0-9.-]+(?::[0-9]+)?(?:/[a-z0-9._-]+)*(?::v?[0-9]+\.[0-9]+(?:\.[0-9]+)?(?:-[a-z0-9.]+)?)?(?:@sha256:[0-9a-f]{64})?$`)

func imagePinned(image string) bool {
	if !pinnedImage.MatchString(image) {
		return false
	}
	return strings.Contains(image, "@sha256:") || regexp.MustCompile(`:v?[0-9]+\.[0-9]+(?:\.[0-9]+)?(?:-[a-z0-9.]+)?$`).MatchString(image)
}

func TestImagePinnedRule(t *testing.T) {
	cases := []struct {
		image string
		ok    bool
	}{
		{"ghcr.io/forgeapps/backbone/apps:v0.1.0", true},
		{"nats:2.15.2-alpine", true},
		{"ghcr.io/forgeapps/backbone/apps@sha256:" + strings.Repeat("a", 64), true},
		{"ghcr.io/forgeapps/backbone/apps:latest", false},
		{"ghcr.io/forgeapps/backbone/apps", false},
		{"ghcr.io/cloudnative-pg/postgresql:15.14", true},
		{"nats:2", false},
		{"nats:alpine", false},
	}
	for _, tc := range cases {
		t.Run(tc.image, func(t *testing.T) { require.Equal(t, tc.ok, imagePinned(tc.image)) })
	}
}

func checkImagesPinned(t *testing.T, s *suite) {
	for _, e := range s.entries {
		r := s.get(t, e)
		for _, w := range workloadsOf(r) {
			for _, c := range allContainers(w.template.Spec) {
				require.True(t, imagePinned(c.Image), "%s: %s: image %q is not pinned", e, w, c.Image)
			}
		}
		for _, o := range r.ofKind("Cluster") {
			img := o.Typed.(*PGCluster).Spec.ImageName
			require.True(t, imagePinned(img), "%s: Cluster %s image %q", e, o.Name, img)
		}
	}
}
