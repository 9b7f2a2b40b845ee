// Package deploy holds the Kubernetes manifests of heygen-grpc (a kustomize
// base and Istio and Linkerd overlays) and, in its tests, the checks that
// render every one of them and hold them to the deployment's invariants.
//
// It is a module of its own so that kustomize and the Kubernetes API types,
// which only the tests need, never enter the service's go.mod.
//
//	cd deploy && go test ./...
package deploy
