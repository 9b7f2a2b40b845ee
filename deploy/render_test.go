package deploy

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// kinds lists every kind a render may contain, by "apiVersion/kind", with
// the Go type it must decode into strictly. Anything else (a Secret
// included) is an error.
var kinds = map[string]func() any{
	"v1/ServiceAccount":                       func() any { return new(corev1.ServiceAccount) },
	"v1/Service":                              func() any { return new(corev1.Service) },
	"apps/v1/Deployment":                      func() any { return new(appsv1.Deployment) },
	"policy/v1/PodDisruptionBudget":           func() any { return new(policyv1.PodDisruptionBudget) },
	"autoscaling/v2/HorizontalPodAutoscaler":  func() any { return new(autoscalingv2.HorizontalPodAutoscaler) },
	"networking.k8s.io/v1/NetworkPolicy":      func() any { return new(networkingv1.NetworkPolicy) },
	"v1/ConfigMap":                            func() any { return new(corev1.ConfigMap) },
	"networking.istio.io/v1/VirtualService":   func() any { return new(istioVirtualService) },
	"networking.istio.io/v1/DestinationRule":  func() any { return new(istioDestinationRule) },
	"security.istio.io/v1/PeerAuthentication": func() any { return new(istioPeerAuthentication) },
	"linkerd.io/v1alpha2/ServiceProfile":      func() any { return new(linkerdServiceProfile) },
}

// renderDir runs kustomize in-process on dir (relative to this package) and
// returns each resource as YAML.
func renderDir(dir string) ([][]byte, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(filesys.MakeFsOnDisk(), abs)
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	var docs [][]byte
	for _, r := range m.Resources() {
		y, err := r.AsYAML()
		if err != nil {
			return nil, fmt.Errorf("kustomize build %s: %s: %w", dir, r.CurId(), err)
		}
		docs = append(docs, y)
	}
	return docs, nil
}

// decodeStrict decodes one manifest into the Go type of its kind: unknown
// kinds, unknown fields and duplicate fields are errors.
func decodeStrict(doc []byte) (any, error) {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return nil, fmt.Errorf("not a Kubernetes object: %w", err)
	}
	gvk := tm.APIVersion + "/" + tm.Kind
	if tm.Kind == "Secret" {
		return nil, fmt.Errorf("%s: a Secret is rendered; the HeyGen key must be created out of band (kubectl create secret generic heygen-api-key --from-file=api-key=...)", gvk)
	}
	newObj, ok := kinds[gvk]
	if !ok {
		return nil, fmt.Errorf("%s: kind not expected in these manifests", gvk)
	}
	obj := newObj()
	if err := yaml.UnmarshalStrict(doc, obj); err != nil {
		return nil, fmt.Errorf("%s: strict decode: %w", gvk, err)
	}
	return obj, nil
}

// bundle is one render, decoded.
type bundle struct {
	dir            string
	objects        []metav1.Object
	serviceAccount *corev1.ServiceAccount
	deployment     *appsv1.Deployment
	service        *corev1.Service
	pdb            *policyv1.PodDisruptionBudget
	hpa            *autoscalingv2.HorizontalPodAutoscaler
	netpols        []*networkingv1.NetworkPolicy
	virtualSvcs    []*istioVirtualService
	destRules      []*istioDestinationRule
	peerAuths      []*istioPeerAuthentication
	svcProfiles    []*linkerdServiceProfile
	// The shared store's objects (components/redis), kept apart from the
	// gateway's: labelled app.kubernetes.io/component=redis.
	redisDeployment *appsv1.Deployment
	redisService    *corev1.Service
	configMaps      []*corev1.ConfigMap
}

// decodeBundle decodes every document strictly and sorts them by kind; the
// kinds that must appear exactly once are checked here.
func decodeBundle(dir string, docs [][]byte) (*bundle, error) {
	b := &bundle{dir: dir}
	var errs []string
	once := func(kind string, have bool) {
		if have {
			errs = append(errs, "more than one "+kind)
		}
	}
	for i, doc := range docs {
		obj, err := decodeStrict(doc)
		if err != nil {
			errs = append(errs, fmt.Sprintf("document %d: %v", i+1, err))
			continue
		}
		b.objects = append(b.objects, obj.(metav1.Object))
		if obj.(metav1.Object).GetLabels()["app.kubernetes.io/component"] == "redis" {
			switch o := obj.(type) {
			case *appsv1.Deployment:
				once("Redis Deployment", b.redisDeployment != nil)
				b.redisDeployment = o
				continue
			case *corev1.Service:
				once("Redis Service", b.redisService != nil)
				b.redisService = o
				continue
			}
		}
		switch o := obj.(type) {
		case *corev1.ConfigMap:
			b.configMaps = append(b.configMaps, o)
		case *corev1.ServiceAccount:
			once("ServiceAccount", b.serviceAccount != nil)
			b.serviceAccount = o
		case *appsv1.Deployment:
			once("Deployment", b.deployment != nil)
			b.deployment = o
		case *corev1.Service:
			once("Service", b.service != nil)
			b.service = o
		case *policyv1.PodDisruptionBudget:
			once("PodDisruptionBudget", b.pdb != nil)
			b.pdb = o
		case *autoscalingv2.HorizontalPodAutoscaler:
			once("HorizontalPodAutoscaler", b.hpa != nil)
			b.hpa = o
		case *networkingv1.NetworkPolicy:
			b.netpols = append(b.netpols, o)
		case *istioVirtualService:
			b.virtualSvcs = append(b.virtualSvcs, o)
		case *istioDestinationRule:
			b.destRules = append(b.destRules, o)
		case *istioPeerAuthentication:
			b.peerAuths = append(b.peerAuths, o)
		case *linkerdServiceProfile:
			b.svcProfiles = append(b.svcProfiles, o)
		}
	}
	for kind, missing := range map[string]bool{
		"ServiceAccount": b.serviceAccount == nil, "Deployment": b.deployment == nil,
		"Service": b.service == nil, "PodDisruptionBudget": b.pdb == nil,
		"HorizontalPodAutoscaler": b.hpa == nil, "NetworkPolicy": len(b.netpols) == 0,
	} {
		if missing {
			errs = append(errs, "no "+kind)
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%s:\n  %s", dir, strings.Join(errs, "\n  "))
	}
	return b, nil
}

// renderCache keeps each directory's render for the test binary's run.
var renderCache = map[string][][]byte{}

// load renders dir (once per test binary) and decodes a fresh bundle, which
// the caller may modify.
func load(t *testing.T, dir string) *bundle {
	t.Helper()
	docs, ok := renderCache[dir]
	if !ok {
		var err error
		if docs, err = renderDir(dir); err != nil {
			t.Fatal(err)
		}
		renderCache[dir] = docs
	}
	b, err := decodeBundle(dir, docs)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
