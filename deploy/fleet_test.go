package deploy

import (
	"slices"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
)

// checkFleet holds components/redis to its promises: Redis hardened like
// the gateway, reachable from the gateways only, opening nothing; the
// gateways pointed at it with the password as a file, never a value.
func checkFleet(b *bundle, p *problems) {
	r := b.redisDeployment
	if r == nil || b.redisService == nil {
		p.addf("no Redis Deployment and Service (app.kubernetes.io/component=redis)")
		return
	}
	pod := r.Spec.Template.Spec
	if sc := pod.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		p.addf("Redis must run as non-root")
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		p.addf("Redis must not mount a service account token")
	}
	for _, c := range pod.Containers {
		sc := c.SecurityContext
		if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
			sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
			p.addf("Redis container %s: want a read-only root, no privilege escalation, all capabilities dropped", c.Name)
		}
		if c.Resources.Limits.Memory().IsZero() {
			p.addf("Redis container %s has no memory limit", c.Name)
		}
		for _, e := range c.Env {
			if e.Name == "REDIS_PASSWORD" {
				p.addf("Redis container %s takes its password from an env value", c.Name)
			}
		}
	}
	// NetworkPolicies: Redis takes the gateways on 6379 and opens nothing;
	// the gateways may reach Redis on 6379.
	var redisPol, gatewayToRedis bool
	for _, np := range b.netpols {
		sel := np.Spec.PodSelector.MatchLabels["app.kubernetes.io/component"]
		switch sel {
		case "redis":
			redisPol = len(np.Spec.Egress) == 0 && slices.Contains(np.Spec.PolicyTypes, "Egress") && len(np.Spec.Ingress) == 1 &&
				len(np.Spec.Ingress[0].From) == 1 && np.Spec.Ingress[0].From[0].PodSelector != nil &&
				np.Spec.Ingress[0].From[0].PodSelector.MatchLabels["app.kubernetes.io/component"] == "gateway" &&
				len(np.Spec.Ingress[0].Ports) == 1 && np.Spec.Ingress[0].Ports[0].Port.IntValue() == 6379
		case "gateway":
			for _, e := range np.Spec.Egress {
				for _, to := range e.To {
					if to.PodSelector != nil && to.PodSelector.MatchLabels["app.kubernetes.io/component"] == "redis" &&
						len(e.Ports) == 1 && e.Ports[0].Port.IntValue() == 6379 {
						gatewayToRedis = true
					}
				}
			}
		}
	}
	if !redisPol {
		p.addf("Redis's NetworkPolicy must let in only the gateways on 6379 and let nothing out")
	}
	if !gatewayToRedis {
		p.addf("the gateway's NetworkPolicy does not let it reach Redis on 6379")
	}
	// Every port of the gateway's policy either way is the base's, plus
	// Redis's: nothing else opened.
	var gw []*networkingv1.NetworkPolicy
	for _, np := range b.netpols {
		if np.Name == "heygen-grpc" {
			gw = append(gw, np)
		}
	}
	checkNetworkPolicies(&bundle{deployment: b.deployment, netpols: gw}, p, map[string]netpolWant{
		"heygen-grpc": {ingress: baseNetpol.ingress, egress: portSet{"TCP/443", "TCP/53", "TCP/6379", "UDP/53"}},
	})
	c := mainContainer(b)
	if c == nil {
		return
	}
	env := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		env[e.Name] = e
	}
	if env["REDIS_URL"].Value != "redis://heygen-grpc-redis:6379" {
		p.addf("the gateway's REDIS_URL is %q, want the Redis Service", env["REDIS_URL"].Value)
	}
	if _, ok := env["REDIS_PASSWORD"]; ok {
		p.addf("the gateway takes the Redis password from an env value; it must be a file (REDIS_PASSWORD_FILE)")
	}
	file := env["REDIS_PASSWORD_FILE"].Value
	mounted := false
	for _, m := range c.VolumeMounts {
		if m.ReadOnly && len(file) > len(m.MountPath) && file[:len(m.MountPath)] == m.MountPath {
			mounted = true
		}
	}
	if file == "" || !mounted {
		p.addf("REDIS_PASSWORD_FILE %q is not in a read-only mount", file)
	}
}
