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
package e2e
