// Package e2e holds the end-to-end tests of the heygen-grpc binary, run as a
// user runs it: they build ./cmd/heygen-grpc, start it in demo mode on a
// free loopback port and drive it with grpcurl, grpc-health-probe and the
// example clients in examples/, comparing what each command prints with
// what README.md and examples/README.md show.
//
// The tests are behind the e2e build tag so that `go test ./...` stays fast
// and hermetic:
//
//	./scripts/install-tools.sh          # grpcurl, grpc-health-probe in .bin
//	go test -tags e2e -count=1 ./e2e
//
// The Python example also needs Debian's python3-grpcio, python3-protobuf,
// protobuf-compiler, protobuf-compiler-grpc and libprotobuf-dev; the tests
// fail with the apt-get command when one is missing, and never install
// anything themselves (scripts/install-debian-packages.sh does, in CI).
//
// container_test.go, behind its own build tag `container`, builds the image
// with buildah and runs the binary from its root filesystem; it needs root,
// so scripts/container-check.sh installs what it needs and runs
// `go test -tags container ./e2e` on its own.
package e2e
