package deploy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// renders is every kustomization in this directory and what it must hold to.
var renders = []struct {
	dir    string
	checks []check
}{
	{"base", append(copyChecks(baseChecks), check{"mesh", checkNoMesh}, check{"networkpolicies", func(b *bundle, p *problems) {
		checkNetworkPolicies(b, p, map[string]netpolWant{"heygen-grpc": baseNetpol})
	}})},
	{"overlays/istio", append(copyChecks(baseChecks), check{"istio", checkIstio})},
	{"overlays/linkerd", append(copyChecks(baseChecks), check{"linkerd", checkLinkerd})},
	{"overlays/fleet", append(withoutCheck(baseChecks, "networkpolicy"), check{"mesh", checkNoMesh}, check{"fleet", checkFleet})},
}

// withoutCheck copies a check list without the named check (an overlay
// that changes what it checks checks it its own way).
func withoutCheck(cs []check, name string) []check {
	var out []check
	for _, c := range cs {
		if c.name != name {
			out = append(out, c)
		}
	}
	return out
}

// copyChecks copies a check list so appends never share a backing array.
func copyChecks(cs []check) []check { return append([]check(nil), cs...) }

// TestRenders renders the base and each overlay with kustomize, decodes every
// object strictly into its API type and holds it to the invariants.
func TestRenders(t *testing.T) {
	for _, r := range renders {
		t.Run(r.dir, func(t *testing.T) {
			b := load(t, r.dir)
			for _, s := range run(b, r.checks) {
				t.Error(s)
			}
		})
	}
}

// TestEveryKustomizationIsTested fails when a kustomization is added under
// overlays/ without an entry in renders.
func TestEveryKustomizationIsTested(t *testing.T) {
	known := map[string]bool{}
	for _, r := range renders {
		known[r.dir] = true
	}
	err := filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && (d.Name() == "kustomization.yaml" || d.Name() == "kustomization.yml" || d.Name() == "Kustomization") {
			// A component renders only as part of an overlay, which is tested.
			if b, err := os.ReadFile(path); err == nil && strings.Contains(string(b), "\nkind: Component\n") {
				return nil
			}
			if dir := filepath.ToSlash(filepath.Dir(path)); !known[dir] {
				t.Errorf("%s is not in renders: add it with its checks", dir)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestStrictDecoding proves the decoder refuses what it must.
func TestStrictDecoding(t *testing.T) {
	for name, doc := range map[string]string{
		"unknown field": `apiVersion: apps/v1
kind: Deployment
metadata: {name: x}
spec:
  replica: 2
`,
		"unknown nested field": `apiVersion: v1
kind: Service
metadata: {name: x}
spec:
  ports: [{name: grpc, port: 50051, appProtocl: grpc}]
`,
		"duplicate field": `apiVersion: v1
kind: ServiceAccount
metadata: {name: x}
automountServiceAccountToken: false
automountServiceAccountToken: true
`,
		"unknown kind": `apiVersion: v1
kind: Endpoints
metadata: {name: x}
`,
		"a Secret": `apiVersion: v1
kind: Secret
metadata: {name: heygen-api-key}
stringData: {api-key: not-a-real-key}
`,
		"unknown Istio field": `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: x}
spec:
  hosts: [x]
  http: [{route: [{destination: {host: x}}], retries: {attempts: 0}, fault: {abort: {httpStatus: 503}}}]
`,
		"unknown Linkerd field": `apiVersion: linkerd.io/v1alpha2
kind: ServiceProfile
metadata: {name: x}
spec:
  routes: [{name: r, condition: {method: POST}, isRetryable: false, timeout: 35s, retries: 3}]
`,
		"wrong type": `apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: x}
spec:
  selector: app=x
`,
	} {
		if _, err := decodeStrict([]byte(doc)); err == nil {
			t.Errorf("%s: decoded without error", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}

// TestChecksCatchMistakes breaks a correct render in one way at a time and
// expects the named check to report it: the checks are not vacuous.
func TestChecksCatchMistakes(t *testing.T) {
	env := func(b *bundle, e corev1.EnvVar) {
		c := mainContainer(b)
		c.Env = append(c.Env, e)
	}
	setEnv := func(b *bundle, name, value string) {
		c := mainContainer(b)
		for i := range c.Env {
			if c.Env[i].Name == name {
				c.Env[i].Value = value
			}
		}
	}
	cases := []struct {
		name, dir, check string
		mutate           func(b *bundle)
	}{
		{"key as an env literal", "base", "api-key", func(b *bundle) {
			env(b, corev1.EnvVar{Name: "HEYGEN_API_KEY", Value: "sk-live-0123"})
		}},
		{"key from secretKeyRef", "base", "api-key", func(b *bundle) {
			env(b, corev1.EnvVar{Name: "HEYGEN_API_KEY", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: keySecretName}, Key: keySecretKey}}})
		}},
		{"key from envFrom secretRef", "base", "api-key", func(b *bundle) {
			mainContainer(b).EnvFrom = []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: keySecretName}}}}
		}},
		{"key file path outside the mount", "base", "api-key", func(b *bundle) {
			setEnv(b, keyFileEnv, "/etc/heygen/api-key")
		}},
		{"key mounted read-write", "base", "api-key", func(b *bundle) {
			for i := range mainContainer(b).VolumeMounts {
				mainContainer(b).VolumeMounts[i].ReadOnly = false
			}
		}},
		{"key world-readable", "base", "api-key", func(b *bundle) {
			for _, v := range podSpec(b).Volumes {
				if v.Secret != nil {
					v.Secret.DefaultMode = ptr.To[int32](0o444)
				}
			}
		}},
		{"readiness on the overall service", "base", "probes", func(b *bundle) {
			mainContainer(b).ReadinessProbe.GRPC.Service = ptr.To("")
		}},
		{"liveness on the wrong port", "base", "probes", func(b *bundle) {
			mainContainer(b).LivenessProbe.GRPC.Port = 8080
		}},
		{"HTTP probe", "base", "probes", func(b *bundle) {
			mainContainer(b).LivenessProbe.ProbeHandler = corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromInt32(50051)}}
		}},
		{"grace period too short", "base", "shutdown", func(b *bundle) {
			podSpec(b).TerminationGracePeriodSeconds = ptr.To[int64](25) // = 5s + 20s
		}},
		{"shutdown timeout raised", "base", "shutdown", func(b *bundle) {
			setEnv(b, stopTimeoutEnv, "30s")
		}},
		{"writable root filesystem", "base", "security", func(b *bundle) {
			mainContainer(b).SecurityContext.ReadOnlyRootFilesystem = ptr.To(false)
		}},
		{"runs as root", "base", "security", func(b *bundle) {
			mainContainer(b).SecurityContext.RunAsUser = ptr.To[int64](0)
		}},
		{"keeps a capability", "base", "security", func(b *bundle) {
			mainContainer(b).SecurityContext.Capabilities.Add = []corev1.Capability{"NET_BIND_SERVICE"}
		}},
		{"unconfined seccomp", "base", "security", func(b *bundle) {
			mainContainer(b).SecurityContext.SeccompProfile = &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeUnconfined}
		}},
		{"privilege escalation", "base", "security", func(b *bundle) {
			mainContainer(b).SecurityContext.AllowPrivilegeEscalation = nil
		}},
		{"no spread", "base", "spread", func(b *bundle) {
			podSpec(b).TopologySpreadConstraints = nil
		}},
		{"no memory limit", "base", "deployment", func(b *bundle) {
			delete(mainContainer(b).Resources.Limits, corev1.ResourceMemory)
		}},
		{"service without appProtocol", "base", "service", func(b *bundle) {
			b.service.Spec.Ports[0].AppProtocol = nil
		}},
		{"service targets the metrics port", "base", "service", func(b *bundle) {
			b.service.Spec.Ports[0].TargetPort = intstr.FromString("metrics")
		}},
		{"PDB selects other pods", "base", "pdb", func(b *bundle) {
			b.pdb.Spec.Selector.MatchLabels = map[string]string{"app": "other"}
		}},
		{"PDB blocks every eviction", "base", "pdb", func(b *bundle) {
			b.pdb.Spec.MaxUnavailable = nil
			b.pdb.Spec.MinAvailable = ptr.To(intstr.FromInt32(2))
		}},
		{"HPA targets another Deployment", "base", "hpa", func(b *bundle) {
			b.hpa.Spec.ScaleTargetRef.Name = "other"
		}},
		{"egress to port 80", "base", "networkpolicy", func(b *bundle) {
			b.netpols[0].Spec.Egress = append(b.netpols[0].Spec.Egress, networkingv1.NetworkPolicyEgressRule{
				Ports: []networkingv1.NetworkPolicyPort{{Port: ptr.To(intstr.FromInt32(80))}}})
		}},
		{"egress to everything", "base", "networkpolicy", func(b *bundle) {
			b.netpols[0].Spec.Egress = append(b.netpols[0].Spec.Egress, networkingv1.NetworkPolicyEgressRule{})
		}},
		{"ingress without metrics", "base", "networkpolicy", func(b *bundle) {
			b.netpols[0].Spec.Ingress[0].Ports = b.netpols[0].Spec.Ingress[0].Ports[:1]
		}},
		{"overlay resource without namespace", "overlays/istio", "namespace", func(b *bundle) {
			b.virtualSvcs[0].Namespace = ""
		}},
		{"Istio default retries", "overlays/istio", "istio", func(b *bundle) {
			b.virtualSvcs[0].Spec.HTTP[0].Retries = nil
		}},
		{"Istio retries", "overlays/istio", "istio", func(b *bundle) {
			b.virtualSvcs[0].Spec.HTTP[0].Retries.Attempts = 3
		}},
		{"Istio timeout below the RPC deadline", "overlays/istio", "istio", func(b *bundle) {
			http := b.virtualSvcs[0].Spec.HTTP
			http[len(http)-1].Timeout = "10s"
		}},
		{"Istio stream route with a timeout", "overlays/istio", "istio", func(b *bundle) {
			b.virtualSvcs[0].Spec.HTTP[0].Timeout = "35s"
		}},
		{"Istio stream without its own route", "overlays/istio", "istio", func(b *bundle) {
			b.virtualSvcs[0].Spec.HTTP = b.virtualSvcs[0].Spec.HTTP[1:]
		}},
		{"Linkerd stream route with a unary timeout", "overlays/linkerd", "linkerd", func(b *bundle) {
			routes := b.svcProfiles[0].Spec.Routes
			routes[len(routes)-1].Timeout = "35s"
		}},
		{"Istio permissive mTLS", "overlays/istio", "istio", func(b *bundle) {
			b.peerAuths[0].Spec.MTLS.Mode = "PERMISSIVE"
		}},
		{"Istio plain-text callers", "overlays/istio", "istio", func(b *bundle) {
			b.destRules[0].Spec.TrafficPolicy.TLS.Mode = "DISABLE"
		}},
		{"Linkerd retryable route", "overlays/linkerd", "linkerd", func(b *bundle) {
			b.svcProfiles[0].Spec.Routes[1].IsRetryable = true
		}},
		{"Linkerd route timeout missing", "overlays/linkerd", "linkerd", func(b *bundle) {
			b.svcProfiles[0].Spec.Routes[0].Timeout = ""
		}},
		{"Linkerd method without a route", "overlays/linkerd", "linkerd", func(b *bundle) {
			b.svcProfiles[0].Spec.Routes = b.svcProfiles[0].Spec.Routes[1:]
		}},
		{"Linkerd retry annotation", "overlays/linkerd", "linkerd", func(b *bundle) {
			b.service.Annotations = map[string]string{"retry.linkerd.io/grpc": "unavailable"}
		}},
		{"Linkerd not injected", "overlays/linkerd", "linkerd", func(b *bundle) {
			delete(b.deployment.Spec.Template.Annotations, linkerdInject)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var checks []check
			for _, r := range renders {
				if r.dir == tc.dir {
					checks = r.checks
				}
			}
			b := load(t, tc.dir)
			if got := run(b, checks); len(got) != 0 {
				t.Fatalf("unmodified %s already fails: %v", tc.dir, got)
			}
			tc.mutate(b)
			got := run(b, checks)
			hit := false
			for _, s := range got {
				hit = hit || strings.HasPrefix(s, tc.check+": ")
			}
			if !hit {
				t.Errorf("check %q did not catch it; problems: %v", tc.check, got)
			} else {
				t.Logf("caught: %v", got)
			}
		})
	}
}
