package deploy

import (
	"fmt"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

// What the manifests promise; the checks below hold every render to it.
const (
	containerName  = "heygen-grpc"
	grpcPort       = 50051
	metricsPort    = 9090
	nonRootID      = 65532
	avatarsService = "heygen.v1.AvatarsService"
	readyService   = "heygen-grpc.ready"
	keySecretName  = "heygen-api-key"
	keySecretKey   = "api-key"
	keyFileEnv     = "HEYGEN_API_KEY_FILE"
	keyFilePath    = "/var/run/secrets/heygen/api-key"
	drainDelayEnv  = "SHUTDOWN_DRAIN_DELAY"
	stopTimeoutEnv = "SHUTDOWN_TIMEOUT"
	rpcTimeoutEnv  = "RPC_DEFAULT_TIMEOUT"
	protoGlob      = "../proto/heygen/v1/*.proto"
	// streamTimeout is the least a mesh route timeout of a server stream
	// (WatchVideo) may be where the mesh cannot switch it off (Linkerd): a
	// watch lasts as long as the render.
	streamTimeout   = time.Hour
	istioInjectKey  = "sidecar.istio.io/inject"
	istioProxyKey   = "proxy.istio.io/config"
	linkerdInject   = "linkerd.io/inject"
	linkerdAwait    = "config.linkerd.io/proxy-await"
	linkerdWaitExit = "config.alpha.linkerd.io/proxy-wait-before-exit-seconds"
)

// problems collects what a check found wrong.
type problems []string

func (p *problems) addf(format string, args ...any) { *p = append(*p, fmt.Sprintf(format, args...)) }

// check is one named invariant.
type check struct {
	name string
	fn   func(b *bundle, p *problems)
}

// baseChecks hold for the base and for every overlay.
var baseChecks = []check{
	{"namespace", checkNamespace},
	{"deployment", checkDeployment},
	{"probes", checkProbes},
	{"security", checkSecurity},
	{"api-key", checkAPIKey},
	{"shutdown", checkShutdown},
	{"spread", checkSpread},
	{"service", checkService},
	{"pdb", checkPDB},
	{"hpa", checkHPA},
	{"networkpolicy", checkBaseNetworkPolicy},
}

// run runs checks on b and returns the problems, each prefixed by its check.
func run(b *bundle, checks []check) []string {
	var all []string
	for _, c := range checks {
		var p problems
		c.fn(b, &p)
		for _, s := range p {
			all = append(all, c.name+": "+s)
		}
	}
	return all
}

// ---- helpers -----------------------------------------------------------------

func podLabels(b *bundle) labels.Set { return b.deployment.Spec.Template.Labels }

func podSpec(b *bundle) *corev1.PodSpec { return &b.deployment.Spec.Template.Spec }

// mainContainer is the gateway's container, or nil.
func mainContainer(b *bundle) *corev1.Container {
	for i := range podSpec(b).Containers {
		if podSpec(b).Containers[i].Name == containerName {
			return &podSpec(b).Containers[i]
		}
	}
	return nil
}

// allContainers is every container of the pod, init containers included.
func allContainers(b *bundle) []*corev1.Container {
	var cs []*corev1.Container
	for i := range podSpec(b).InitContainers {
		cs = append(cs, &podSpec(b).InitContainers[i])
	}
	for i := range podSpec(b).Containers {
		cs = append(cs, &podSpec(b).Containers[i])
	}
	return cs
}

// selects reports whether sel (a LabelSelector) is non-empty and matches set.
func selects(sel *metav1.LabelSelector, set labels.Set) bool {
	if sel == nil || (len(sel.MatchLabels) == 0 && len(sel.MatchExpressions) == 0) {
		return false
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	return err == nil && s.Matches(set)
}

// containerPort resolves a port given by number or name against the main
// container's ports; 0 when it does not resolve.
func containerPort(b *bundle, port intstr.IntOrString) int32 {
	c := mainContainer(b)
	if c == nil {
		return 0
	}
	for _, cp := range c.Ports {
		if (port.Type == intstr.String && cp.Name == port.StrVal) ||
			(port.Type == intstr.Int && cp.ContainerPort == port.IntVal) {
			return cp.ContainerPort
		}
	}
	return 0
}

// envValue is the literal value of the main container's env var name.
func envValue(b *bundle, name string) (string, bool) {
	c := mainContainer(b)
	if c == nil {
		return "", false
	}
	for _, e := range c.Env {
		if e.Name == name && e.ValueFrom == nil {
			return e.Value, true
		}
	}
	return "", false
}

// envDuration is a duration-valued env var of the main container.
func envDuration(b *bundle, p *problems, name string) (time.Duration, bool) {
	v, ok := envValue(b, name)
	if !ok {
		p.addf("env %s is not set on container %s", name, containerName)
		return 0, false
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		p.addf("env %s=%q is not a duration: %v", name, v, err)
		return 0, false
	}
	return d, true
}

func gracePeriod(b *bundle, p *problems) (time.Duration, bool) {
	g := podSpec(b).TerminationGracePeriodSeconds
	if g == nil {
		p.addf("terminationGracePeriodSeconds is not set (the 30s default is implicit)")
		return 0, false
	}
	return time.Duration(*g) * time.Second, true
}

func serviceFQDN(b *bundle) string {
	return b.service.Name + "." + b.service.Namespace + ".svc.cluster.local"
}

// ---- base invariants ---------------------------------------------------------

// checkNamespace: every object is namespaced, in the Deployment's namespace
// (a resource an overlay adds does not get the base's namespace by itself).
func checkNamespace(b *bundle, p *problems) {
	ns := b.deployment.Namespace
	if ns == "" {
		p.addf("the Deployment has no namespace")
	}
	for _, o := range b.objects {
		if o.GetNamespace() != ns {
			p.addf("%s is in namespace %q, the Deployment in %q", o.GetName(), o.GetNamespace(), ns)
		}
	}
}

func checkDeployment(b *bundle, p *problems) {
	d := b.deployment
	if d.Spec.Replicas == nil || *d.Spec.Replicas < 2 {
		p.addf("replicas must be at least 2")
	}
	if !selects(d.Spec.Selector, podLabels(b)) {
		p.addf("the Deployment's selector does not match its pod template labels %v", podLabels(b))
	}
	c := mainContainer(b)
	if c == nil {
		p.addf("no container named %s", containerName)
		return
	}
	want := map[string]int32{"grpc": grpcPort, "metrics": metricsPort}
	for _, cp := range c.Ports {
		if w, ok := want[cp.Name]; ok && cp.ContainerPort == w && (cp.Protocol == "" || cp.Protocol == corev1.ProtocolTCP) {
			delete(want, cp.Name)
		}
	}
	for name, port := range want {
		p.addf("container port %s (%d/TCP) is missing", name, port)
	}
	for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, hasReq := c.Resources.Requests[res]
		lim, hasLim := c.Resources.Limits[res]
		switch {
		case !hasReq || req.IsZero():
			p.addf("no %s request", res)
		case !hasLim || lim.IsZero():
			p.addf("no %s limit", res)
		case req.Cmp(lim) > 0:
			p.addf("%s request %s is above its limit %s", res, req.String(), lim.String())
		}
	}
}

func checkProbes(b *bundle, p *problems) {
	c := mainContainer(b)
	if c == nil {
		p.addf("no container named %s", containerName)
		return
	}
	probe := func(kind string, pr *corev1.Probe, service string) {
		switch {
		case pr == nil:
			p.addf("no %s probe", kind)
			return
		case pr.GRPC == nil || pr.HTTPGet != nil || pr.TCPSocket != nil || pr.Exec != nil:
			p.addf("the %s probe must be a native gRPC probe (grpc:) and nothing else", kind)
			return
		}
		if pr.GRPC.Port != grpcPort || containerPort(b, intstr.FromInt32(pr.GRPC.Port)) != grpcPort {
			p.addf("the %s probe checks port %d, not the container's gRPC port %d", kind, pr.GRPC.Port, grpcPort)
		}
		got := ""
		if pr.GRPC.Service != nil {
			got = *pr.GRPC.Service
		}
		if got != service {
			p.addf("the %s probe asks for health service %q, want %q", kind, got, service)
		}
	}
	probe("readiness", c.ReadinessProbe, readyService)
	probe("liveness", c.LivenessProbe, "")
}

func checkSecurity(b *bundle, p *problems) {
	ps := podSpec(b)
	if ps.HostNetwork || ps.HostPID || ps.HostIPC {
		p.addf("the pod shares a host namespace")
	}
	if ps.AutomountServiceAccountToken == nil || *ps.AutomountServiceAccountToken {
		p.addf("automountServiceAccountToken must be false on the pod")
	}
	psc := ps.SecurityContext
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	podSeccomp := psc.SeccompProfile != nil && psc.SeccompProfile.Type == corev1.SeccompProfileTypeRuntimeDefault
	for _, c := range allContainers(b) {
		sc := c.SecurityContext
		if sc == nil {
			p.addf("container %s has no securityContext", c.Name)
			continue
		}
		nonRoot := (sc.RunAsNonRoot != nil && *sc.RunAsNonRoot) || (sc.RunAsNonRoot == nil && psc.RunAsNonRoot != nil && *psc.RunAsNonRoot)
		if !nonRoot {
			p.addf("container %s: runAsNonRoot is not true", c.Name)
		}
		uid, gid := sc.RunAsUser, sc.RunAsGroup
		if uid == nil {
			uid = psc.RunAsUser
		}
		if gid == nil {
			gid = psc.RunAsGroup
		}
		if uid == nil || *uid != nonRootID || gid == nil || *gid != nonRootID {
			p.addf("container %s must run as %d:%d", c.Name, nonRootID, nonRootID)
		}
		if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			p.addf("container %s: readOnlyRootFilesystem is not true", c.Name)
		}
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			p.addf("container %s: allowPrivilegeEscalation is not false", c.Name)
		}
		if sc.Privileged != nil && *sc.Privileged {
			p.addf("container %s is privileged", c.Name)
		}
		if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
			p.addf("container %s does not drop ALL capabilities", c.Name)
		} else if len(sc.Capabilities.Add) > 0 {
			p.addf("container %s adds capabilities %v", c.Name, sc.Capabilities.Add)
		}
		seccomp := podSeccomp
		if sc.SeccompProfile != nil {
			seccomp = sc.SeccompProfile.Type == corev1.SeccompProfileTypeRuntimeDefault
		}
		if !seccomp {
			p.addf("container %s: seccompProfile is not RuntimeDefault", c.Name)
		}
	}
	if b.serviceAccount.AutomountServiceAccountToken == nil || *b.serviceAccount.AutomountServiceAccountToken {
		p.addf("ServiceAccount %s: automountServiceAccountToken must be false", b.serviceAccount.Name)
	}
	if ps.ServiceAccountName != b.serviceAccount.Name {
		p.addf("the pod runs as ServiceAccount %q, not %q", ps.ServiceAccountName, b.serviceAccount.Name)
	}
}

// sensitiveEnv matches env var names that could hold a credential.
var sensitiveEnv = regexp.MustCompile(`(?i)KEY|SECRET|TOKEN|PASSWORD|CREDENTIAL`)

func checkAPIKey(b *bundle, p *problems) {
	ps := podSpec(b)
	secretVols := map[string]*corev1.SecretVolumeSource{}
	for i := range ps.Volumes {
		if s := ps.Volumes[i].Secret; s != nil {
			secretVols[ps.Volumes[i].Name] = s
		}
	}
	for _, c := range allContainers(b) {
		// The files this container sees from Secret volumes, read-only.
		secretFiles := map[string]bool{}
		for _, m := range c.VolumeMounts {
			s, ok := secretVols[m.Name]
			if !ok {
				continue
			}
			if !m.ReadOnly {
				p.addf("container %s mounts Secret volume %s read-write", c.Name, m.Name)
				continue
			}
			for _, it := range s.Items {
				secretFiles[path.Join(m.MountPath, it.Path)] = true
			}
		}
		for _, e := range c.Env {
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
				p.addf("container %s: env %s takes a Secret key (secretKeyRef): mount the key as a file instead", c.Name, e.Name)
			}
			if !sensitiveEnv.MatchString(e.Name) || e.Value == "" {
				continue
			}
			if strings.HasSuffix(strings.ToUpper(e.Name), "_FILE") && secretFiles[e.Value] {
				continue // a path to a file of a read-only Secret mount
			}
			p.addf("container %s: env %s has a literal value: a credential must come from a Secret file", c.Name, e.Name)
		}
		for _, ef := range c.EnvFrom {
			if ef.SecretRef != nil {
				p.addf("container %s: envFrom a Secret (%s): mount the key as a file instead", c.Name, ef.SecretRef.Name)
			}
		}
	}

	c := mainContainer(b)
	if c == nil {
		return
	}
	if v, ok := envValue(b, keyFileEnv); !ok || v != keyFilePath {
		p.addf("container %s: env %s must be %s", containerName, keyFileEnv, keyFilePath)
	}
	// The key file comes from Secret heygen-api-key, key api-key, through a
	// read-only mount of its directory (no subPath, so a rotated Secret shows).
	found := false
	for _, m := range c.VolumeMounts {
		s, ok := secretVols[m.Name]
		if !ok || m.MountPath != path.Dir(keyFilePath) {
			continue
		}
		found = true
		if !m.ReadOnly || m.SubPath != "" {
			p.addf("the key volume must be mounted readOnly and without subPath")
		}
		if s.SecretName != keySecretName {
			p.addf("the key volume uses Secret %q, want %q", s.SecretName, keySecretName)
		}
		if s.Optional != nil && *s.Optional {
			p.addf("the key Secret must not be optional")
		}
		if len(s.Items) != 1 || s.Items[0].Key != keySecretKey || s.Items[0].Path != path.Base(keyFilePath) {
			p.addf("the key volume must project exactly key %s as %s", keySecretKey, path.Base(keyFilePath))
		}
		if s.DefaultMode == nil || *s.DefaultMode&0o007 != 0 {
			p.addf("the key volume's defaultMode must give others no access")
		}
	}
	if !found {
		p.addf("no Secret volume is mounted at %s", path.Dir(keyFilePath))
	}
}

func checkShutdown(b *bundle, p *problems) {
	drain, ok1 := envDuration(b, p, drainDelayEnv)
	stop, ok2 := envDuration(b, p, stopTimeoutEnv)
	_, _ = envDuration(b, p, rpcTimeoutEnv)
	grace, ok3 := gracePeriod(b, p)
	if ok1 && ok2 && ok3 && grace <= drain+stop {
		p.addf("terminationGracePeriodSeconds (%s) must exceed %s + %s (%s + %s)", grace, drainDelayEnv, stopTimeoutEnv, drain, stop)
	}
	if ok1 && drain <= 0 {
		p.addf("%s must be positive, so endpoints update before the gateway refuses calls", drainDelayEnv)
	}
}

func checkSpread(b *bundle, p *problems) {
	ps := podSpec(b)
	for _, tsc := range ps.TopologySpreadConstraints {
		if tsc.TopologyKey == "kubernetes.io/hostname" && tsc.MaxSkew >= 1 && selects(tsc.LabelSelector, podLabels(b)) {
			return
		}
	}
	if a := ps.Affinity; a != nil && a.PodAntiAffinity != nil {
		for _, t := range a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution {
			if t.TopologyKey == "kubernetes.io/hostname" && selects(t.LabelSelector, podLabels(b)) {
				return
			}
		}
		for _, w := range a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution {
			if w.PodAffinityTerm.TopologyKey == "kubernetes.io/hostname" && selects(w.PodAffinityTerm.LabelSelector, podLabels(b)) {
				return
			}
		}
	}
	p.addf("no topologySpreadConstraint or podAntiAffinity spreads the pods over nodes (kubernetes.io/hostname)")
}

func checkService(b *bundle, p *problems) {
	s := b.service
	if len(s.Spec.Selector) == 0 || !labels.SelectorFromSet(s.Spec.Selector).Matches(podLabels(b)) {
		p.addf("the Service's selector %v does not match the pod labels %v", s.Spec.Selector, podLabels(b))
	}
	if s.Namespace != b.deployment.Namespace {
		p.addf("the Service is in namespace %q, the Deployment in %q", s.Namespace, b.deployment.Namespace)
	}
	want := map[string]struct {
		port        int32
		appProtocol string
	}{"grpc": {grpcPort, "grpc"}, "metrics": {metricsPort, ""}}
	for _, sp := range s.Spec.Ports {
		w, ok := want[sp.Name]
		if !ok {
			p.addf("unexpected Service port %q", sp.Name)
			continue
		}
		delete(want, sp.Name)
		if sp.Protocol != "" && sp.Protocol != corev1.ProtocolTCP {
			p.addf("Service port %s is %s, not TCP", sp.Name, sp.Protocol)
		}
		target := sp.TargetPort
		if target.Type == intstr.Int && target.IntVal == 0 {
			target = intstr.FromInt32(sp.Port) // targetPort defaults to port
		}
		if got := containerPort(b, target); got != w.port {
			p.addf("Service port %s targets %s, which is container port %d, want %d", sp.Name, target.String(), got, w.port)
		}
		if w.appProtocol != "" && (sp.AppProtocol == nil || *sp.AppProtocol != w.appProtocol) {
			p.addf("Service port %s must declare appProtocol: %s", sp.Name, w.appProtocol)
		}
		if sp.Name == "grpc" && sp.Port != grpcPort {
			p.addf("Service port grpc is %d, want %d", sp.Port, grpcPort)
		}
	}
	for name := range want {
		p.addf("the Service has no port named %s", name)
	}
}

func checkPDB(b *bundle, p *problems) {
	pdb := b.pdb
	if !selects(pdb.Spec.Selector, podLabels(b)) {
		p.addf("the PodDisruptionBudget's selector does not match the pod labels %v", podLabels(b))
	}
	if pdb.Namespace != b.deployment.Namespace {
		p.addf("the PodDisruptionBudget is in namespace %q, the Deployment in %q", pdb.Namespace, b.deployment.Namespace)
	}
	minReplicas := int32(1)
	if b.hpa.Spec.MinReplicas != nil {
		minReplicas = *b.hpa.Spec.MinReplicas
	}
	// It must keep one pod serving and still let a drain evict one.
	switch mu, ma := pdb.Spec.MaxUnavailable, pdb.Spec.MinAvailable; {
	case (mu == nil) == (ma == nil):
		p.addf("set exactly one of maxUnavailable and minAvailable")
	case mu != nil && (mu.Type != intstr.Int || mu.IntVal < 1 || mu.IntVal >= minReplicas):
		p.addf("maxUnavailable %s must be a count from 1 to minReplicas-1 (%d)", mu.String(), minReplicas-1)
	case ma != nil && (ma.Type != intstr.Int || ma.IntVal < 1 || ma.IntVal >= minReplicas):
		p.addf("minAvailable %s must be a count from 1 to minReplicas-1 (%d)", ma.String(), minReplicas-1)
	}
}

func checkHPA(b *bundle, p *problems) {
	h := b.hpa
	ref := h.Spec.ScaleTargetRef
	if ref.APIVersion != "apps/v1" || ref.Kind != "Deployment" || ref.Name != b.deployment.Name {
		p.addf("the HPA targets %s %s %s, not apps/v1 Deployment %s", ref.APIVersion, ref.Kind, ref.Name, b.deployment.Name)
	}
	if h.Namespace != b.deployment.Namespace {
		p.addf("the HPA is in namespace %q, the Deployment in %q", h.Namespace, b.deployment.Namespace)
	}
	if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas < 2 {
		p.addf("minReplicas must be at least 2")
	} else if h.Spec.MaxReplicas < *h.Spec.MinReplicas {
		p.addf("maxReplicas %d is below minReplicas %d", h.Spec.MaxReplicas, *h.Spec.MinReplicas)
	}
	if len(h.Spec.Metrics) == 0 {
		p.addf("the HPA has no metrics")
	}
	for _, m := range h.Spec.Metrics {
		if m.Resource != nil && m.Resource.Name == corev1.ResourceCPU {
			if _, ok := mainContainer(b).Resources.Requests[corev1.ResourceCPU]; !ok {
				p.addf("the HPA scales on CPU utilization but the container has no CPU request")
			}
		}
	}
}

// portSet is a NetworkPolicy rule set's ports as "PROTO/PORT" strings.
type portSet []string

// rulePorts flattens the ports of NetworkPolicy rules; a rule without ports
// (every port) or a port without a number (every port), a range or a named
// port that does not resolve is a problem.
func rulePorts(b *bundle, p *problems, what string, rules [][]networkingv1.NetworkPolicyPort) portSet {
	var set portSet
	for i, ports := range rules {
		if len(ports) == 0 {
			p.addf("%s rule %d allows every port", what, i+1)
		}
		for _, np := range ports {
			proto := "TCP"
			if np.Protocol != nil {
				proto = string(*np.Protocol)
			}
			switch {
			case np.Port == nil:
				p.addf("%s rule %d allows every %s port", what, i+1, proto)
				continue
			case np.EndPort != nil:
				p.addf("%s rule %d opens a port range", what, i+1)
			}
			port := np.Port.IntVal
			if np.Port.Type == intstr.String {
				if port = containerPort(b, *np.Port); port == 0 {
					p.addf("%s rule %d: named port %q is not a container port", what, i+1, np.Port.StrVal)
					continue
				}
			}
			set = append(set, fmt.Sprintf("%s/%d", proto, port))
		}
	}
	slices.Sort(set)
	return slices.Compact(set)
}

// netpolWant is what one NetworkPolicy may let in and out.
type netpolWant struct {
	ingress, egress portSet
}

// checkNetworkPolicies holds the render's NetworkPolicies to want, by name:
// no other policy, exactly these ports each way, both directions enforced.
func checkNetworkPolicies(b *bundle, p *problems, want map[string]netpolWant) {
	seen := map[string]bool{}
	for _, np := range b.netpols {
		w, ok := want[np.Name]
		if !ok {
			p.addf("unexpected NetworkPolicy %s", np.Name)
			continue
		}
		seen[np.Name] = true
		if !selects(&np.Spec.PodSelector, podLabels(b)) {
			p.addf("NetworkPolicy %s does not select the gateway's pods", np.Name)
		}
		types := np.Spec.PolicyTypes
		if !slices.Contains(types, networkingv1.PolicyTypeIngress) || !slices.Contains(types, networkingv1.PolicyTypeEgress) {
			p.addf("NetworkPolicy %s must list both Ingress and Egress in policyTypes", np.Name)
		}
		var in, out [][]networkingv1.NetworkPolicyPort
		for _, r := range np.Spec.Ingress {
			in = append(in, r.Ports)
		}
		for _, r := range np.Spec.Egress {
			out = append(out, r.Ports)
		}
		if got := rulePorts(b, p, np.Name+" ingress", in); !slices.Equal(got, w.ingress) {
			p.addf("NetworkPolicy %s lets in %v, want exactly %v", np.Name, got, w.ingress)
		}
		if got := rulePorts(b, p, np.Name+" egress", out); !slices.Equal(got, w.egress) {
			p.addf("NetworkPolicy %s lets out %v, want exactly %v", np.Name, got, w.egress)
		}
	}
	for name := range want {
		if !seen[name] {
			p.addf("no NetworkPolicy %s", name)
		}
	}
}

// baseNetpol: in, the gRPC and metrics ports; out, DNS and HTTPS only.
var baseNetpol = netpolWant{
	ingress: portSet{"TCP/50051", "TCP/9090"},
	egress:  portSet{"TCP/443", "TCP/53", "UDP/53"},
}

func checkBaseNetworkPolicy(b *bundle, p *problems) {
	var base []*networkingv1.NetworkPolicy
	for _, np := range b.netpols {
		if np.Name == "heygen-grpc" {
			base = append(base, np)
		}
	}
	checkNetworkPolicies(&bundle{deployment: b.deployment, netpols: base}, p, map[string]netpolWant{"heygen-grpc": baseNetpol})
}

// ---- mesh invariants -----------------------------------------------------------

// meshTimeout parses a mesh route timeout and holds it above the gateway's
// default RPC deadline, so the gateway's deadline ends a slow call first.
func meshTimeout(b *bundle, p *problems, what, s string) {
	rpc, ok := envDuration(b, p, rpcTimeoutEnv)
	if !ok {
		return
	}
	if s == "" {
		p.addf("%s has no timeout", what)
		return
	}
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		p.addf("%s timeout %q: %v", what, s, err)
	case d <= rpc:
		p.addf("%s timeout %s is not above %s (%s)", what, d, rpcTimeoutEnv, rpc)
	}
}

// checkNoMesh: the base is mesh-neutral.
func checkNoMesh(b *bundle, p *problems) {
	if n := len(b.virtualSvcs) + len(b.destRules) + len(b.peerAuths) + len(b.svcProfiles); n > 0 {
		p.addf("%d mesh resources in a mesh-neutral render", n)
	}
	checkNoRetryAnnotations(b, p)
}

// checkNoRetryAnnotations: no Linkerd policy-route retry annotations anywhere.
func checkNoRetryAnnotations(b *bundle, p *problems) {
	metas := []metav1.ObjectMeta{b.deployment.ObjectMeta, b.deployment.Spec.Template.ObjectMeta, b.service.ObjectMeta}
	for _, m := range metas {
		for k := range m.Annotations {
			if strings.HasPrefix(k, "retry.linkerd.io/") {
				p.addf("%s: annotation %s turns on mesh retries", m.Name, k)
			}
		}
	}
}

func checkIstio(b *bundle, p *problems) {
	fqdn := serviceFQDN(b)
	tmpl := b.deployment.Spec.Template
	if tmpl.Labels[istioInjectKey] != "true" {
		p.addf("pod label %s is not \"true\"", istioInjectKey)
	}
	// Sidecar lifecycle around the gateway's own drain.
	if raw, ok := tmpl.Annotations[istioProxyKey]; !ok {
		p.addf("no %s pod annotation", istioProxyKey)
	} else {
		var pc istioProxyConfig
		if err := yaml.UnmarshalStrict([]byte(raw), &pc); err != nil {
			p.addf("%s: %v", istioProxyKey, err)
		} else {
			if pc.HoldApplicationUntilProxyStarts == nil || !*pc.HoldApplicationUntilProxyStarts {
				p.addf("%s: holdApplicationUntilProxyStarts must be true", istioProxyKey)
			}
			drain, ok1 := envDuration(b, p, drainDelayEnv)
			stop, ok2 := envDuration(b, p, stopTimeoutEnv)
			grace, ok3 := gracePeriod(b, p)
			d, err := time.ParseDuration(pc.TerminationDrainDuration)
			switch {
			case err != nil:
				p.addf("%s: terminationDrainDuration %q: %v", istioProxyKey, pc.TerminationDrainDuration, err)
			case ok1 && ok2 && ok3 && (d < drain+stop || d >= grace):
				p.addf("%s: terminationDrainDuration %s must cover the gateway's drain and stop (%s) and end before the grace period (%s)", istioProxyKey, d, drain+stop, grace)
			}
		}
	}

	methods, err := protoMethods()
	if err != nil {
		p.addf("%v", err)
	}
	if len(b.virtualSvcs) != 1 {
		p.addf("%d VirtualServices, want 1", len(b.virtualSvcs))
	}
	for _, vs := range b.virtualSvcs {
		if !slices.Equal(vs.Spec.Hosts, []string{fqdn}) {
			p.addf("VirtualService %s hosts %v, want [%s]", vs.Name, vs.Spec.Hosts, fqdn)
		}
		if len(vs.Spec.HTTP) == 0 {
			p.addf("VirtualService %s has no http route", vs.Name)
		}
		for i, r := range vs.Spec.HTTP {
			what := fmt.Sprintf("VirtualService %s http[%d]", vs.Name, i)
			// Absent retries means Istio's default retry policy, not none.
			if r.Retries == nil || r.Retries.Attempts != 0 {
				p.addf("%s must set retries: {attempts: 0} (absent means Istio's default retries)", what)
			}
			if streams := istioStreamRoute(r, methods); streams {
				if r.Timeout != "0s" {
					p.addf("%s serves a stream: its timeout must be 0s (off), not %q", what, r.Timeout)
				}
			} else {
				meshTimeout(b, p, what, r.Timeout)
			}
			for _, rt := range r.Route {
				if rt.Destination.Host != fqdn || rt.Destination.Port == nil || rt.Destination.Port.Number != grpcPort {
					p.addf("%s routes to %s, want %s port %d", what, rt.Destination.Host, fqdn, grpcPort)
				}
			}
		}
	}
	// Every server stream has a route of its own before the catch-all.
	for _, m := range methods {
		if !m.stream {
			continue
		}
		covered := false
		for _, vs := range b.virtualSvcs {
			for _, r := range vs.Spec.HTTP {
				if istioStreamRoute(r, []rpcMethod{m}) {
					covered = true
				}
			}
		}
		if !covered {
			p.addf("no VirtualService route for the stream %s: the catch-all route's timeout would cut it", m.path)
		}
	}
	if len(b.destRules) != 1 {
		p.addf("%d DestinationRules, want 1", len(b.destRules))
	}
	for _, dr := range b.destRules {
		if dr.Spec.Host != fqdn {
			p.addf("DestinationRule %s host %s, want %s", dr.Name, dr.Spec.Host, fqdn)
		}
		if tp := dr.Spec.TrafficPolicy; tp == nil || tp.TLS == nil || tp.TLS.Mode != "ISTIO_MUTUAL" {
			p.addf("DestinationRule %s must set trafficPolicy.tls.mode ISTIO_MUTUAL", dr.Name)
		}
	}
	if len(b.peerAuths) != 1 {
		p.addf("%d PeerAuthentications, want 1", len(b.peerAuths))
	}
	for _, pa := range b.peerAuths {
		if pa.Spec.Selector == nil || len(pa.Spec.Selector.MatchLabels) == 0 ||
			!labels.SelectorFromSet(pa.Spec.Selector.MatchLabels).Matches(podLabels(b)) {
			p.addf("PeerAuthentication %s does not select the gateway's pods", pa.Name)
		}
		if pa.Spec.MTLS == nil || pa.Spec.MTLS.Mode != "STRICT" {
			p.addf("PeerAuthentication %s must set mtls.mode STRICT", pa.Name)
		}
		for port, m := range pa.Spec.PortLevelMTLS {
			if m.Mode != "STRICT" {
				p.addf("PeerAuthentication %s relaxes mTLS on port %s to %s", pa.Name, port, m.Mode)
			}
		}
	}
	if len(b.svcProfiles) > 0 {
		p.addf("Linkerd ServiceProfiles in the Istio overlay")
	}
	checkNoRetryAnnotations(b, p)
	checkNetworkPolicies(b, p, map[string]netpolWant{
		"heygen-grpc":       baseNetpol,
		"heygen-grpc-istio": {ingress: portSet{"TCP/15020", "TCP/15021", "TCP/15090"}, egress: portSet{"TCP/15012"}},
	})
}

// protoMethods lists the AvatarsService RPCs from the proto file.
// rpcMethod is one RPC of the gateway's API.
type rpcMethod struct {
	path   string // /heygen.v1.Service/Method
	stream bool   // a server stream (its response is `stream ...`)
}

// protoMethods returns every RPC of every service in proto/heygen/v1.
func protoMethods() ([]rpcMethod, error) {
	files, err := filepath.Glob(protoGlob)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", protoGlob, err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("%s: no proto files", protoGlob)
	}
	service := regexp.MustCompile(`(?m)^service\s+(\w+)\s*\{`)
	rpc := regexp.MustCompile(`(?m)^\s*rpc\s+(\w+)\s*\([^)]*\)\s*returns\s*\(\s*(stream\s+)?`)
	var out []rpcMethod
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		svcs := service.FindAllSubmatchIndex(src, -1)
		for i, sv := range svcs {
			end := len(src)
			if i+1 < len(svcs) {
				end = svcs[i+1][0]
			}
			name := string(src[sv[2]:sv[3]])
			for _, m := range rpc.FindAllSubmatch(src[sv[1]:end], -1) {
				out = append(out, rpcMethod{path: "/heygen.v1." + name + "/" + string(m[1]), stream: len(m[2]) > 0})
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no rpc found", protoGlob)
	}
	return out, nil
}

// routesStream reports whether a Linkerd route's pathRegex matches a
// server stream of methods.
func routesStream(pathRegex string, methods []rpcMethod) bool {
	re, err := regexp.Compile("^(?:" + pathRegex + ")$")
	if err != nil {
		return false
	}
	for _, m := range methods {
		if m.stream && re.MatchString(m.path) {
			return true
		}
	}
	return false
}

// istioStreamRoute reports whether an Istio http route matches (by uri) a
// server stream of methods.
func istioStreamRoute(r istioHTTPRoute, methods []rpcMethod) bool {
	for _, mt := range r.Match {
		if mt.URI == nil {
			continue
		}
		for _, m := range methods {
			if m.stream && ((mt.URI.Exact != "" && mt.URI.Exact == m.path) || (mt.URI.Prefix != "" && strings.HasPrefix(m.path, mt.URI.Prefix))) {
				return true
			}
		}
	}
	return false
}

func checkLinkerd(b *bundle, p *problems) {
	ann := b.deployment.Spec.Template.Annotations
	if ann[linkerdInject] != "enabled" {
		p.addf("pod annotation %s is not \"enabled\"", linkerdInject)
	}
	if ann[linkerdAwait] != "enabled" {
		p.addf("pod annotation %s is not \"enabled\"", linkerdAwait)
	}
	drain, ok1 := envDuration(b, p, drainDelayEnv)
	grace, ok2 := gracePeriod(b, p)
	if s, ok := ann[linkerdWaitExit]; !ok {
		p.addf("no %s pod annotation", linkerdWaitExit)
	} else if n, err := strconv.Atoi(s); err != nil {
		p.addf("%s %q: %v", linkerdWaitExit, s, err)
	} else if w := time.Duration(n) * time.Second; ok1 && ok2 && (w < drain || w >= grace) {
		p.addf("%s %s must cover the drain delay (%s) and end before the grace period (%s)", linkerdWaitExit, w, drain, grace)
	}

	methods, err := protoMethods()
	if err != nil {
		p.addf("%v", err)
	}
	if len(b.svcProfiles) != 1 {
		p.addf("%d ServiceProfiles, want 1", len(b.svcProfiles))
	}
	for _, sp := range b.svcProfiles {
		if sp.Name != serviceFQDN(b) {
			p.addf("ServiceProfile %s must be named after the Service's FQDN %s", sp.Name, serviceFQDN(b))
		}
		if sp.Namespace != b.service.Namespace {
			p.addf("ServiceProfile %s is in namespace %q, the Service in %q", sp.Name, sp.Namespace, b.service.Namespace)
		}
		if sp.Spec.RetryBudget != nil {
			p.addf("ServiceProfile %s sets a retryBudget", sp.Name)
		}
		for _, r := range sp.Spec.Routes {
			what := "ServiceProfile route " + r.Name
			if r.IsRetryable {
				p.addf("%s is retryable", what)
			}
			if routesStream(r.Condition.PathRegex, methods) {
				if d, err := time.ParseDuration(r.Timeout); err != nil || d < streamTimeout {
					p.addf("%s serves a stream: its timeout %q must be at least %s (Linkerd's default is 10s)", what, r.Timeout, streamTimeout)
				}
			} else {
				meshTimeout(b, p, what, r.Timeout)
			}
			if r.Condition.Method != http.MethodPost {
				p.addf("%s: gRPC calls are POSTs, the condition says %q", what, r.Condition.Method)
			}
			if _, err := regexp.Compile(r.Condition.PathRegex); err != nil {
				p.addf("%s: pathRegex: %v", what, err)
			}
		}
		for _, m := range methods {
			path := m.path
			covered := false
			for _, r := range sp.Spec.Routes {
				if re, err := regexp.Compile("^(?:" + r.Condition.PathRegex + ")$"); err == nil && re.MatchString(path) {
					covered = true
					break
				}
			}
			if !covered {
				p.addf("ServiceProfile %s has no route for %s", sp.Name, path)
			}
		}
	}
	if n := len(b.virtualSvcs) + len(b.destRules) + len(b.peerAuths); n > 0 {
		p.addf("Istio resources in the Linkerd overlay")
	}
	checkNoRetryAnnotations(b, p)
	checkNetworkPolicies(b, p, map[string]netpolWant{
		"heygen-grpc":         baseNetpol,
		"heygen-grpc-linkerd": {ingress: portSet{"TCP/4191"}, egress: portSet{"TCP/8080", "TCP/8086", "TCP/8090"}},
	})
}
