# heygen-grpc container image.
#
#   docker build -t heygen-grpc .
#   docker run --rm -p 50051:50051 -e HEYGEN_API_KEY heygen-grpc
#   docker run --rm -p 50051:50051 heygen-grpc -demo
#
# Base images are pinned by tag AND by the digest of their multi-architecture
# index, so a rebuild cannot silently pick up a different compiler or runtime.
# Refresh both together (tag first, then the digest it resolves to):
#   docker buildx imagetools inspect golang:1.26.8-bookworm
#   docker buildx imagetools inspect gcr.io/distroless/static-debian12:nonroot
# The Go version must satisfy the `go` line in go.mod.

# ---- build ------------------------------------------------------------------
FROM golang:1.26.8-bookworm@sha256:a688600ca24f8a4d3ca77f95b0dd40704a9fc787c826660eb7ba0b641b8b175d AS build

# Build with the image's own toolchain; never download another one.
ENV GOTOOLCHAIN=local \
    CGO_ENABLED=0

WORKDIR /src

# Dependency layer: only invalidated when go.mod/go.sum change.
COPY go.mod go.sum ./
RUN go mod download && go mod verify

# Source layer (see .dockerignore for what is left out).
COPY . .
RUN go build -mod=readonly -trimpath -ldflags='-s -w' -o /out/heygen-grpc ./cmd/heygen-grpc

# ---- runtime ----------------------------------------------------------------
# distroless/static: no shell, no package manager; CA certificates and tzdata
# are included (the gateway calls the HeyGen API over HTTPS).
FROM gcr.io/distroless/static-debian12:nonroot@sha256:afa5c872c891853ca7fcf1f12c3edb23f7eeef36189728842dd51042ff57f7ab

COPY --from=build /out/heygen-grpc /heygen-grpc

# 65532:65532 is distroless's "nonroot" user and group.
USER nonroot:nonroot

# gRPC (AvatarsService, grpc.health.v1.Health, reflection). The listen address
# defaults to :50051 and can be changed with -addr or GRPC_ADDR.
EXPOSE 50051

# HEYGEN_API_KEY is a secret: pass it at run time (-e / a secret store), never
# bake it into the image. Arguments after the image name are passed to the
# binary, e.g. `-demo` or `-log-level debug`.
ENTRYPOINT ["/heygen-grpc"]
