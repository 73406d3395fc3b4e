package k8s

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// A small NetworkPolicy evaluator (the semantics of networking.k8s.io/v1): a connection from
// pod A to pod B on a port is allowed when A's egress allows it (A is selected by no policy
// with Egress, or one such policy has a rule whose peer matches B and whose ports match) and
// B's ingress allows it likewise. ipBlock peers are taken to match addresses outside the
// cluster only (pod addresses under ipBlock are implementation-defined).

// endpoint is a pod as the policies see it.
type endpoint struct {
	Name      string // how the edge table names it
	Namespace string
	Labels    map[string]string
	Ports     []corev1.ContainerPort
}

// peer of an edge: a pod endpoint or an external address.
type external struct {
	Name string
	Addr netip.Addr
}

// regionNetworks are the addresses each region's network component must set.
var regionNetworks = map[string]struct{ cloud, apiserver string }{
	"us-east": {cloud: "10.10.240.10", apiserver: "10.10.0.10"},
	"eu-west": {cloud: "10.20.240.10", apiserver: "10.20.0.10"},
}

// externals are the outside addresses every region is probed with.
func externals(region string) []external {
	n := regionNetworks[region]
	return []external{
		{"public-v4", netip.MustParseAddr("1.1.1.1")},
		{"public-v6", netip.MustParseAddr("2606:4700::1111")},
		{"cloud-endpoint", netip.MustParseAddr(n.cloud)},
		{"kube-apiserver", netip.MustParseAddr(n.apiserver)},
		{"private-10", netip.MustParseAddr("10.0.0.1")},
		{"private-172", netip.MustParseAddr("172.16.0.1")},
		{"private-192", netip.MustParseAddr("192.168.0.1")},
		{"cgnat", netip.MustParseAddr("100.64.0.1")},
		{"metadata", netip.MustParseAddr("169.254.169.254")},
		{"loopback", netip.MustParseAddr("127.0.0.1")},
		{"ula-v6", netip.MustParseAddr("fd00::1")},
		{"link-local-v6", netip.MustParseAddr("fe80::1")},
		{"v4-mapped-private", netip.MustParseAddr("::ffff:10.0.0.1")},
		{"nat64-private", netip.MustParseAddr("64:ff9b::a00:1")},
	}
}

var probePorts = []int32{22, 443, 5432, 6443, 8443}

// endpointsOf lists the pods a region runs: its workloads, the CloudNativePG instances of its
// Clusters, and the two outside pods the policies name (cluster DNS, the CNPG operator).
func endpointsOf(r rendering) []endpoint {
	var out []endpoint
	for _, w := range workloadsOf(r) {
		name := w.obj.Name
		var ports []corev1.ContainerPort
		for _, c := range w.template.Spec.Containers {
			ports = append(ports, c.Ports...)
		}
		out = append(out, endpoint{Name: name, Namespace: w.obj.Namespace, Labels: w.template.Labels, Ports: ports})
	}
	for _, o := range r.ofKind("Cluster") {
		c := o.Typed.(*PGCluster)
		l := map[string]string{"cnpg.io/cluster": o.Name, "cnpg.io/podRole": "instance"}
		if c.Spec.InheritedMetadata != nil {
			for k, v := range c.Spec.InheritedMetadata.Labels {
				l[k] = v
			}
		}
		out = append(out, endpoint{Name: o.Name, Namespace: o.Namespace, Labels: l, Ports: []corev1.ContainerPort{
			{Name: "postgresql", ContainerPort: 5432, Protocol: corev1.ProtocolTCP},
			{Name: "status", ContainerPort: 8000, Protocol: corev1.ProtocolTCP}}})
	}
	out = append(out,
		endpoint{Name: "kube-dns", Namespace: "kube-system", Labels: map[string]string{"k8s-app": "kube-dns"}, Ports: []corev1.ContainerPort{
			{ContainerPort: 53, Protocol: corev1.ProtocolUDP}, {ContainerPort: 53, Protocol: corev1.ProtocolTCP}}},
		endpoint{Name: "cnpg-operator", Namespace: "cnpg-system", Labels: map[string]string{"app.kubernetes.io/name": "cloudnative-pg"}},
	)
	return out
}

// outside: the pods of other namespaces that the policies name (DNS, the CNPG operator).
func outside(e endpoint) bool { return e.Namespace == "kube-system" || e.Namespace == "cnpg-system" }

func policiesOf(r rendering) []*networkingv1.NetworkPolicy {
	var out []*networkingv1.NetworkPolicy
	for _, o := range r.ofKind("NetworkPolicy") {
		out = append(out, o.Typed.(*networkingv1.NetworkPolicy))
	}
	return out
}

func selectorMatches(s *metav1.LabelSelector, l map[string]string) bool {
	if s == nil {
		return false
	}
	sel, err := metav1.LabelSelectorAsSelector(s)
	if err != nil {
		return false
	}
	return sel.Matches(labels.Set(l))
}

func hasType(np *networkingv1.NetworkPolicy, t networkingv1.PolicyType) bool {
	if len(np.Spec.PolicyTypes) == 0 {
		return t == networkingv1.PolicyTypeIngress || (t == networkingv1.PolicyTypeEgress && len(np.Spec.Egress) > 0)
	}
	return slices.Contains(np.Spec.PolicyTypes, t)
}

func selecting(nps []*networkingv1.NetworkPolicy, ep endpoint, t networkingv1.PolicyType) []*networkingv1.NetworkPolicy {
	var out []*networkingv1.NetworkPolicy
	for _, np := range nps {
		if np.Namespace == ep.Namespace && hasType(np, t) && selectorMatches(&np.Spec.PodSelector, ep.Labels) {
			out = append(out, np)
		}
	}
	return out
}

// peerMatchesPod: a peer with only podSelector means the policy's namespace; with a
// namespaceSelector, the namespaces it selects (by their kubernetes.io/metadata.name label).
func peerMatchesPod(p networkingv1.NetworkPolicyPeer, policyNS string, ep endpoint) bool {
	if p.IPBlock != nil {
		return false
	}
	if p.NamespaceSelector == nil {
		if ep.Namespace != policyNS {
			return false
		}
	} else if !selectorMatches(p.NamespaceSelector, map[string]string{"kubernetes.io/metadata.name": ep.Namespace}) {
		return false
	}
	return p.PodSelector == nil || selectorMatches(p.PodSelector, ep.Labels)
}

func peerMatchesAddr(p networkingv1.NetworkPolicyPeer, a netip.Addr) bool {
	if p.IPBlock == nil {
		return false
	}
	in, err := netip.ParsePrefix(p.IPBlock.CIDR)
	if err != nil || !in.Contains(a) {
		return false
	}
	for _, ex := range p.IPBlock.Except {
		e, err := netip.ParsePrefix(ex)
		if err == nil && e.Contains(a) {
			return false
		}
	}
	return true
}

// portMatches: dst is the destination pod (for named ports), or nil for an address.
func portMatches(ports []networkingv1.NetworkPolicyPort, port int32, proto corev1.Protocol, dst *endpoint) bool {
	if len(ports) == 0 {
		return true
	}
	for _, p := range ports {
		pp := corev1.ProtocolTCP
		if p.Protocol != nil {
			pp = *p.Protocol
		}
		if pp != proto {
			continue
		}
		if p.Port == nil {
			return true
		}
		want := p.Port.IntVal
		if p.Port.Type == intstr.String {
			if dst == nil {
				continue
			}
			want = -1
			for _, cp := range dst.Ports {
				if cp.Name == p.Port.StrVal {
					want = cp.ContainerPort
				}
			}
		}
		end := want
		if p.EndPort != nil {
			end = *p.EndPort
		}
		if port >= want && port <= end {
			return true
		}
	}
	return false
}

func egressAllows(nps []*networkingv1.NetworkPolicy, src endpoint, match func(networkingv1.NetworkPolicyPeer, string) bool, port int32, proto corev1.Protocol, dst *endpoint) bool {
	sel := selecting(nps, src, networkingv1.PolicyTypeEgress)
	if len(sel) == 0 {
		return true
	}
	for _, np := range sel {
		for _, rule := range np.Spec.Egress {
			if !portMatches(rule.Ports, port, proto, dst) {
				continue
			}
			if len(rule.To) == 0 || slices.ContainsFunc(rule.To, func(p networkingv1.NetworkPolicyPeer) bool { return match(p, np.Namespace) }) {
				return true
			}
		}
	}
	return false
}

func ingressAllows(nps []*networkingv1.NetworkPolicy, dst endpoint, match func(networkingv1.NetworkPolicyPeer, string) bool, port int32, proto corev1.Protocol) bool {
	sel := selecting(nps, dst, networkingv1.PolicyTypeIngress)
	if len(sel) == 0 {
		return true
	}
	for _, np := range sel {
		for _, rule := range np.Spec.Ingress {
			if !portMatches(rule.Ports, port, proto, &dst) {
				continue
			}
			if len(rule.From) == 0 || slices.ContainsFunc(rule.From, func(p networkingv1.NetworkPolicyPeer) bool { return match(p, np.Namespace) }) {
				return true
			}
		}
	}
	return false
}

// edges computes every allowed connection of a rendering, as "src -> dst:port/proto" lines.
func edges(r rendering, exts []external) []string {
	nps := policiesOf(r)
	eps := endpointsOf(r)
	set := map[string]bool{}
	for _, src := range eps {
		for _, dst := range eps {
			if outside(src) && outside(dst) {
				continue
			}
			for _, cp := range dst.Ports {
				proto := cp.Protocol
				if proto == "" {
					proto = corev1.ProtocolTCP
				}
				if egressAllows(nps, src, func(p networkingv1.NetworkPolicyPeer, ns string) bool { return peerMatchesPod(p, ns, dst) }, cp.ContainerPort, proto, &dst) &&
					ingressAllows(nps, dst, func(p networkingv1.NetworkPolicyPeer, ns string) bool { return peerMatchesPod(p, ns, src) }, cp.ContainerPort, proto) {
					set[fmt.Sprintf("%s -> %s:%d/%s", src.Name, dst.Name, cp.ContainerPort, proto)] = true
				}
			}
		}
		if outside(src) {
			continue // outside pods: their egress is not ours to assert
		}
		for _, x := range exts {
			for _, port := range probePorts {
				if egressAllows(nps, src, func(p networkingv1.NetworkPolicyPeer, _ string) bool { return peerMatchesAddr(p, x.Addr) }, port, corev1.ProtocolTCP, nil) {
					set[fmt.Sprintf("%s -> %s:%d/TCP", src.Name, x.Name, port)] = true
				}
			}
		}
	}
	// From outside addresses into the region's pods.
	for _, x := range exts {
		for _, dst := range eps {
			if outside(dst) {
				continue
			}
			for _, cp := range dst.Ports {
				if ingressAllows(nps, dst, func(p networkingv1.NetworkPolicyPeer, _ string) bool {
					return peerMatchesAddr(p, x.Addr)
				}, cp.ContainerPort, corev1.ProtocolTCP) {
					set[fmt.Sprintf("%s -> %s:%d/TCP", x.Name, dst.Name, cp.ContainerPort)] = true
				}
			}
		}
	}
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// expectedEdges is the design's edge list (issue 8), and the infrastructure every pod needs:
//   - DNS for every pod of the suite;
//   - the gRPC edges of the services' workload tables (services(), held to the tables by
//     TestCallersMatchTheWorkloadTables): the edge (gateway) to every service; apps to tenant
//     and secrets-vault; sandbox-origin to apps and secrets-vault; data-lifecycle to the
//     services it drives (tenant, apps, secrets-vault; sandbox-origin learns of deletions
//     through NATS). The external billing and builder callers are admitted by nothing;
//   - every service that owns data (server and migration Job) to the Postgres cluster holding
//     its database: secrets-vault to secrets-vault-pg, the others to forge-pg; data-lifecycle's
//     backup to forge-pg, its vault backup to secrets-vault-pg, its restore to both; every
//     service, the gateway included, to NATS; NATS to itself (routes); each Postgres cluster to
//     itself (never to the other) and from the operator;
//   - outside: anyone to the two HTTP edges; the sandbox proxy to public addresses on any
//     port; the gateway to public HTTPS (OIDC keys, the other region's edge); apps,
//     secrets-vault, data-lifecycle, its backups and restore and forge-pg (WAL archive) to the
//     region's object storage endpoints, never secrets-vault-pg; both Postgres clusters to the
//     Kubernetes API. Never a private, link-local, loopback or shared address otherwise.
func expectedEdges(r rendering, exts []external) []string {
	set := map[string]bool{}
	add := func(format string, a ...any) { set[fmt.Sprintf(format, a...)] = true }
	var suiteWorkloads []string
	for _, w := range workloadsOf(r) {
		suiteWorkloads = append(suiteWorkloads, w.obj.Name)
	}
	for _, c := range r.ofKind("Cluster") {
		suiteWorkloads = append(suiteWorkloads, c.Name)
	}
	for _, w := range suiteWorkloads {
		add("%s -> kube-dns:53/UDP", w)
		add("%s -> kube-dns:53/TCP", w)
	}
	for _, dst := range services() {
		for _, caller := range dst.Callers {
			add("%s -> %s:%d/TCP", caller, dst.Name, dst.GRPCPort)
		}
		if dst.HTTPPort != 0 {
			for _, x := range exts {
				add("%s -> %s:%d/TCP", x.Name, dst.Name, dst.HTTPPort)
			}
			for _, o := range []string{"kube-dns", "cnpg-operator"} {
				add("%s -> %s:%d/TCP", o, dst.Name, dst.HTTPPort) // the HTTP edges admit anyone
			}
		}
		add("%s -> nats:4222/TCP", dst.Name) // every service uses JetStream; the gateway its revocation feed
		if dst.Postgres == "" {
			continue
		}
		for _, src := range []string{dst.Name, dst.Name + "-migrate"} {
			add("%s -> %s:5432/TCP", src, dst.Postgres)
		}
	}
	add("data-lifecycle-backup -> %s:5432/TCP", mainPostgres)
	add("data-lifecycle-vault-backup -> %s:5432/TCP", vaultPostgres)
	add("secrets-vault-restore-keyring -> %s:5432/TCP", vaultPostgres)
	for _, pg := range []string{mainPostgres, vaultPostgres} {
		add("data-lifecycle-restore -> %s:5432/TCP", pg)
		for _, src := range []string{pg, "cnpg-operator"} {
			add("%s -> %s:5432/TCP", src, pg)
			add("%s -> %s:8000/TCP", src, pg)
		}
		add("%s -> kube-apiserver:443/TCP", pg)
		add("%s -> kube-apiserver:6443/TCP", pg)
	}
	add("nats -> nats:6222/TCP")
	for _, x := range exts {
		if strings.HasPrefix(x.Name, "public-") {
			for _, p := range probePorts {
				add("sandbox-origin -> %s:%d/TCP", x.Name, p)
			}
			add("gateway -> %s:443/TCP", x.Name)
		}
	}
	// Object storage: never secrets-vault-pg, which has no backup to ship.
	for _, w := range []string{"apps", "secrets-vault", "data-lifecycle", "data-lifecycle-backup", "data-lifecycle-vault-backup", "data-lifecycle-restore",
		"secrets-vault-restore-keyring", mainPostgres} {
		add("%s -> cloud-endpoint:443/TCP", w)
	}
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func checkNetworkEdges(t *testing.T, s *suite) {
	for _, region := range regions(t) {
		t.Run(region, func(t *testing.T) {
			require.Contains(t, regionNetworks, region, "the test knows the region's network addresses")
			r := regionWithMigrations(t, s, region)
			exts := externals(region)
			require.Equal(t, expectedEdges(r, exts), edges(r, exts))
		})
	}
}

// checkEdgeEvaluatorCatchesAWideningPolicy proves the evaluator sees a policy change: widening
// one rule of the rendered region adds edges, and dropping the sandbox's exceptions lets it
// reach the metadata address.
func checkEdgeEvaluatorCatchesAWideningPolicy(t *testing.T, s *suite) {
	r := regionWithMigrations(t, s, "us-east")
	exts := externals("us-east")
	require.Equal(t, expectedEdges(r, exts), edges(r, exts))

	for i, o := range r.Objects {
		np, ok := o.Typed.(*networkingv1.NetworkPolicy)
		if !ok {
			continue
		}
		switch o.Name {
		case "secrets-vault":
			wide := np.DeepCopy()
			wide.Spec.Ingress[0].From = nil // any pod may call the vault (the callers' egress still limits ours)
			r.Objects[i].Typed = wide
			got := edges(r, exts)
			require.Contains(t, got, "cnpg-operator -> secrets-vault:9103/TCP")
			r.Objects[i].Typed = np
		case "sandbox-origin":
			open := np.DeepCopy()
			for j := range open.Spec.Egress {
				for k := range open.Spec.Egress[j].To {
					if b := open.Spec.Egress[j].To[k].IPBlock; b != nil {
						b.Except = nil
					}
				}
			}
			r.Objects[i].Typed = open
			got := edges(r, exts)
			require.Contains(t, got, "sandbox-origin -> metadata:443/TCP")
			require.Contains(t, got, "sandbox-origin -> private-10:5432/TCP")
			r.Objects[i].Typed = np
		}
	}
}

// checkDefaultDeny: each namespace of a region has a default deny in both directions, and
// every workload of every entry is isolated in both directions by a policy of its own entry,
// so a service applied alone is locked down too.
func checkDefaultDeny(t *testing.T, s *suite) {
	for _, region := range regions(t) {
		r := s.get(t, "regions/"+region)
		for _, ns := range []string{"forge", "forge-data"} {
			var found bool
			for _, np := range policiesOf(r) {
				if np.Namespace == ns && len(np.Spec.PodSelector.MatchLabels)+len(np.Spec.PodSelector.MatchExpressions) == 0 &&
					len(np.Spec.Ingress)+len(np.Spec.Egress) == 0 && hasType(np, networkingv1.PolicyTypeIngress) && hasType(np, networkingv1.PolicyTypeEgress) {
					found = true
				}
			}
			require.True(t, found, "%s: default deny in namespace %s", region, ns)
		}
	}
	for _, e := range s.entries {
		r := s.get(t, e)
		nps := policiesOf(r)
		for _, w := range workloadsOf(r) {
			ep := endpoint{Namespace: w.obj.Namespace, Labels: w.template.Labels}
			require.NotEmpty(t, selecting(nps, ep, networkingv1.PolicyTypeIngress), "%s: %s is isolated for ingress", e, w)
			require.NotEmpty(t, selecting(nps, ep, networkingv1.PolicyTypeEgress), "%s: %s is isolated for egress", e, w)
		}
	}
}

// regionWithMigrations is the whole region plus its migration entries, data-lifecycle's
// restore entry and secrets-vault's keyring restore: what runs in the region while a
// migration or a restore Job is up.
func regionWithMigrations(tb testing.TB, s *suite, region string) rendering {
	tb.Helper()
	whole := s.get(tb, "regions/"+region)
	r := rendering{Entry: whole.Entry + " (with migrations)", Objects: slices.Clone(whole.Objects)}
	for _, svc := range services() {
		if svc.Postgres != "" {
			r.Objects = append(r.Objects, s.get(tb, "regions/"+region+"/"+svc.Name+"/migrate").ofKind("Job")...)
			r.Objects = append(r.Objects, s.get(tb, "regions/"+region+"/"+svc.Name+"/migrate").ofKind("NetworkPolicy")...)
		}
	}
	for _, entry := range []string{"data-lifecycle/restore", "secrets-vault/restore-keyring"} {
		restore := s.get(tb, "regions/"+region+"/"+entry)
		r.Objects = append(r.Objects, restore.ofKind("Job")...)
		r.Objects = append(r.Objects, restore.ofKind("NetworkPolicy")...)
	}
	return r
}

// checkEachSideOfTheGRPCEdges: the gRPC edges hold on each side on its own, so that widening
// one policy is caught even while the other side still blocks the connection (each side is
// the only guard when the other pod's policy is missing or wrong).
func checkEachSideOfTheGRPCEdges(t *testing.T, s *suite) {
	for _, region := range regions(t) {
		r := regionWithMigrations(t, s, region)
		nps := policiesOf(r)
		eps := endpointsOf(r)
		var want, ingress, egress []string
		for _, dst := range services() {
			for _, c := range dst.Callers {
				want = append(want, c+" -> "+dst.Name)
			}
		}
		for _, dst := range eps {
			svc := slices.IndexFunc(services(), func(x service) bool {
				return x.Name == dst.Name && dst.Labels["app.kubernetes.io/component"] == "server"
			})
			if svc < 0 {
				continue
			}
			port := services()[svc].GRPCPort
			for _, src := range eps {
				if outside(src) {
					continue
				}
				if ingressAllows(nps, dst, func(p networkingv1.NetworkPolicyPeer, ns string) bool { return peerMatchesPod(p, ns, src) }, port, corev1.ProtocolTCP) {
					ingress = append(ingress, src.Name+" -> "+dst.Name)
				}
				if egressAllows(nps, src, func(p networkingv1.NetworkPolicyPeer, ns string) bool { return peerMatchesPod(p, ns, dst) }, port, corev1.ProtocolTCP, &dst) {
					egress = append(egress, src.Name+" -> "+dst.Name)
				}
			}
		}
		require.ElementsMatch(t, want, ingress, "%s: who each service admits on its gRPC port", region)
		require.ElementsMatch(t, want, egress, "%s: which gRPC ports each workload may reach", region)
	}
}
