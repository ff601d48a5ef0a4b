# syntax=docker/dockerfile:1
# Notes service image: a static Go binary on scratch. Works with the legacy builder (no BuildKit
# features are required) and without a registry for the runtime stage.
#
#   docker build --build-arg APP_VERSION=1.2.3 -t notes-service:1.2.3 .
#
# Base images are build args with public defaults; the Pulumi program passes notes:goImage.
ARG GO_IMAGE=golang:1.26

FROM ${GO_IMAGE} AS deps
WORKDIR /src
ENV CGO_ENABLED=0
# Modules and their compiled packages are cached in a layer of their own: they change less often
# than the code, and the legacy builder has no cache mounts. Precompiling the packages the service
# imports turns a code-only rebuild from about a minute into seconds; a package missing from this
# list only makes the build below slower, never wrong.
COPY go.mod go.sum ./
RUN go mod download \
 && go build -trimpath std \
      github.com/jackc/pgx/v5/pgxpool github.com/jackc/pgx/v5/stdlib \
      github.com/labstack/echo/v4/middleware \
      github.com/pressly/goose/v3/lock \
      github.com/prometheus/client_golang/prometheus/collectors \
      github.com/prometheus/client_golang/prometheus/promhttp

# A stage of its own so that `docker build --target deps` warms the cache (the e2e suite does
# before its stacks build in parallel).
FROM deps AS build
COPY . .
# Declared after the cached layers: a new version only re-runs the compile step.
ARG APP_VERSION=dev
RUN go build -trimpath -ldflags "-s -w -X main.version=${APP_VERSION}" -o /out/notes ./service \
 && mkdir -p /out/etc /out/tmp \
 && echo 'nonroot:x:65532:65532:nonroot:/nonexistent:/sbin/nologin' > /out/etc/passwd \
 && echo 'nonroot:x:65532:' > /out/etc/group \
 && chmod 1777 /out/tmp

FROM scratch
ARG APP_VERSION=dev
LABEL org.opencontainers.image.title="notes" \
      org.opencontainers.image.description="Notes HTTP API (Go, Postgres)" \
      org.opencontainers.image.source="https://github.com/notes-stack/notes" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.version="${APP_VERSION}"
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/etc/passwd /out/etc/group /etc/
COPY --from=build /out/tmp /tmp
COPY --from=build /out/notes /notes
ENV HTTP_ADDR=:8080
USER 65532:65532
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 CMD ["/notes", "healthcheck"]
ENTRYPOINT ["/notes"]
CMD ["serve"]
