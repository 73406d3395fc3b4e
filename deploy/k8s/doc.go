// Package k8s holds the Kubernetes manifests of the suite (kustomize bases per service,
// overlays per region, the regional dependencies) and the tests that prove them: every
// overlay and every per-service entry is rendered with the kustomize library, every object is
// decoded strictly into its Kubernetes type (or a strict transcription of its custom
// resource's API), and the hardening, probe, certificate and network rules are asserted on
// what an SRE would actually apply.
//
// It is its own module so that the Kubernetes dependencies never enter the services' builds.
package k8s
