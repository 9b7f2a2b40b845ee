package deploy

// Local mirrors of the Istio and Linkerd custom resources the overlays use.
//
// The upstream API modules (istio.io/api + istio.io/client-go, and Linkerd's
// monorepo) are large and bring their own Kubernetes dependency tree, so the
// tests decode into these structs instead. They hold only the fields the
// overlays set; decoding is strict, so a field that is not mirrored here
// (a typo, or a new setting such as a fault injection or a retry budget) is
// an error until it is added, and checked, on purpose.

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// ---- Istio (networking.istio.io/v1, security.istio.io/v1) -------------------

// istioVirtualService mirrors networking.istio.io/v1 VirtualService.
type istioVirtualService struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Hosts    []string         `json:"hosts"`
		Gateways []string         `json:"gateways,omitempty"`
		HTTP     []istioHTTPRoute `json:"http"`
	} `json:"spec"`
}

// istioHTTPRoute mirrors VirtualService.spec.http[]: the route gRPC uses.
type istioHTTPRoute struct {
	Name  string `json:"name,omitempty"`
	Match []struct {
		Port uint32 `json:"port,omitempty"`
		URI  *struct {
			Exact  string `json:"exact,omitempty"`
			Prefix string `json:"prefix,omitempty"`
		} `json:"uri,omitempty"`
	} `json:"match,omitempty"`
	Route []struct {
		Destination istioDestination `json:"destination"`
		Weight      int32            `json:"weight,omitempty"`
	} `json:"route"`
	// Timeout is a protobuf Duration in JSON form ("35s").
	Timeout string `json:"timeout,omitempty"`
	// Retries, when absent, means Istio's DEFAULT retry policy (2 attempts):
	// absent is not "no retries".
	Retries *struct {
		Attempts      int32  `json:"attempts"`
		PerTryTimeout string `json:"perTryTimeout,omitempty"`
		RetryOn       string `json:"retryOn,omitempty"`
	} `json:"retries,omitempty"`
}

// istioDestination mirrors a route destination.
type istioDestination struct {
	Host   string `json:"host"`
	Subset string `json:"subset,omitempty"`
	Port   *struct {
		Number uint32 `json:"number"`
	} `json:"port,omitempty"`
}

// istioDestinationRule mirrors networking.istio.io/v1 DestinationRule.
type istioDestinationRule struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Host          string `json:"host"`
		TrafficPolicy *struct {
			LoadBalancer *struct {
				Simple string `json:"simple"`
			} `json:"loadBalancer,omitempty"`
			TLS *struct {
				Mode string `json:"mode"`
			} `json:"tls,omitempty"`
		} `json:"trafficPolicy,omitempty"`
	} `json:"spec"`
}

// istioPeerAuthentication mirrors security.istio.io/v1 PeerAuthentication.
type istioPeerAuthentication struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Selector *struct {
			MatchLabels map[string]string `json:"matchLabels"`
		} `json:"selector,omitempty"`
		MTLS *struct {
			Mode string `json:"mode"`
		} `json:"mtls,omitempty"`
		PortLevelMTLS map[string]struct {
			Mode string `json:"mode"`
		} `json:"portLevelMtls,omitempty"`
	} `json:"spec"`
}

// istioProxyConfig mirrors the part of Istio's ProxyConfig that the
// proxy.istio.io/config pod annotation sets.
type istioProxyConfig struct {
	HoldApplicationUntilProxyStarts *bool  `json:"holdApplicationUntilProxyStarts,omitempty"`
	TerminationDrainDuration        string `json:"terminationDrainDuration,omitempty"`
}

// ---- Linkerd (linkerd.io/v1alpha2) ---------------------------------------------

// linkerdServiceProfile mirrors linkerd.io/v1alpha2 ServiceProfile.
type linkerdServiceProfile struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Routes []linkerdRoute `json:"routes"`
		// RetryBudget, when set, lets retryable routes be retried.
		RetryBudget *struct {
			RetryRatio          float64 `json:"retryRatio"`
			MinRetriesPerSecond int32   `json:"minRetriesPerSecond"`
			TTL                 string  `json:"ttl"`
		} `json:"retryBudget,omitempty"`
	} `json:"spec"`
}

// linkerdRoute mirrors ServiceProfile.spec.routes[].
type linkerdRoute struct {
	Name      string `json:"name"`
	Condition struct {
		Method    string `json:"method,omitempty"`
		PathRegex string `json:"pathRegex,omitempty"`
	} `json:"condition"`
	IsRetryable bool   `json:"isRetryable"`
	Timeout     string `json:"timeout,omitempty"`
}
