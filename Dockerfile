# tokenmint container image: one static binary on distroless/static, running as nonroot (65532).
#
#   docker build -t tokenmint .                      # profile-guided: two release builds
#   docker build --build-arg PGO=0 -t tokenmint .    # the plain release build: one
#   docker run --rm -p 8080:8080 -p 9090:9090 \
#       -v "$PWD/tokenmint.toml:/etc/tokenmint/tokenmint.toml:ro" \
#       -e TWILIO_ACCOUNT_SID -e TWILIO_API_KEY_SID -e TWILIO_API_KEY_SECRET \
#       tokenmint
#
# The image has no usable default configuration: mount yours at /etc/tokenmint/tokenmint.toml
# (or point TOKENMINT_CONFIG elsewhere). Without one the container exits with status 2 and says
# which file it could not read. Build, run, probes and shutdown: docs/deployment.md.

# ---------------------------------------------------------------------------------------------
# Builder: the official Rust image (Debian bookworm, gcc and libc6-dev included, which
# aws-lc-sys needs to compile its C; no cmake needed).
FROM rust:1.95-slim-bookworm AS builder

SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /build

# A fully static glibc binary (static-pie), so the runtime image needs no libc at all. glibc
# >= 2.34 has the `files` and `dns` name services built in, so getaddrinfo (JWKS host names,
# localhost) works in the static binary without any libnss_*.so in the image. crt-static is
# passed with an explicit --target so that build scripts and proc macros stay dynamic.
ENV RUSTFLAGS="-C target-feature=+crt-static" \
    CARGO_TERM_COLOR=never

# Dependencies first, in their own layer: a change under src/ does not rebuild them.
# The image needs only the library and the binary. Bench, test and example targets declared in
# Cargo.toml point at files that are not in the build context (.dockerignore), and cargo refuses
# a manifest whose target files are missing, so they are dropped from the builder's copy of the
# manifest. Dependencies and Cargo.lock are untouched, so --locked still holds.
COPY Cargo.toml Cargo.lock ./
RUN awk '/^[[:space:]]*\[\[(bench|test|example)\]\]/ { skip = 1; next } /^[[:space:]]*\[/ { skip = 0 } !skip' \
        Cargo.toml > Cargo.toml.build \
    && mv Cargo.toml.build Cargo.toml \
    && target="$(rustc -vV | sed -n 's/^host: //p')" \
    && mkdir -p src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && cargo build --release --locked --target "$target" \
    && rm -rf src "target/$target/release/.fingerprint/tokenmint-"*

# The crate itself. config/ holds the built-in demo configuration (compiled in with
# include_str!); .dockerignore keeps everything else (target/, .git, .env files) out, except the
# profile-guided build's script, its bench configuration and its two examples.
COPY config ./config
COPY src ./src
COPY bench/pgo.sh bench/prepare-dir.sh bench/tokenmint.toml ./bench/
COPY examples/callers.rs examples/train.rs ./examples/

# The binary is built with profile-guided optimisation (bench/pgo.sh: an instrumented build
# serves training requests on the builder's loopback, with caller keys made for the run; then
# the release build again, laid out by that profile), which used some 12 % less CPU per token
# request under load than the plain release build (BENCHMARKS.md). It takes two release builds
# instead of one, and rustup's llvm-tools component, which the script adds when missing;
# --build-arg PGO=0 builds the plain release binary instead.
ARG PGO=1
RUN target="$(rustc -vV | sed -n 's/^host: //p')" \
    && if [ "$PGO" = 1 ]; then \
        bench/pgo.sh --out /tmp/pgo && bin=target/pgo/tokenmint; \
    else \
        cargo build --release --locked --target "$target" && bin="target/$target/release/tokenmint"; \
    fi \
    && install -D -m 0755 "$bin" /out/tokenmint \
    && if ldd /out/tokenmint | grep -q '=>'; then echo 'tokenmint is not static' >&2; exit 1; fi \
    && /out/tokenmint --version \
    && /out/tokenmint check-config >/dev/null

# ---------------------------------------------------------------------------------------------
# Runtime: distroless/static (CA certificates for https JWKS URLs, tzdata, /etc/passwd with
# nonroot = 65532; no shell, no package manager). The binary is about 11 MB.
FROM gcr.io/distroless/static-debian12:nonroot

LABEL org.opencontainers.image.title="tokenmint" \
      org.opencontainers.image.description="Mints short-lived, grant-scoped Twilio Access Tokens for verified callers"

COPY --from=builder /out/tokenmint /usr/local/bin/tokenmint

# The configuration file the service reads (a ConfigMap, a bind mount). Secrets stay out of it:
# it holds env:NAME / file:PATH references. (DL3064 flags the "TOKEN" in the name: this is a path.)
# hadolint ignore=DL3064
ENV TOKENMINT_CONFIG=/etc/tokenmint/tokenmint.toml

# Numeric, so Kubernetes can verify runAsNonRoot without a named-user lookup.
USER 65532:65532

# 8080: token API (server.listen); 9090: /healthz and /readyz (server.admin_listen, optional).
EXPOSE 8080 9090

# No shell or curl in the image: the binary probes /healthz itself, on the admin listener of the
# configuration above (or the public one when admin_listen is unset).
HEALTHCHECK --interval=10s --timeout=5s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/tokenmint", "healthcheck"]

# Exec form: tokenmint is PID 1 and receives SIGTERM itself (readiness goes 503, in-flight
# requests finish within server.shutdown_grace, exit 0). Give `docker stop` more time than
# shutdown_grace (e.g. --stop-timeout 15 with the default 10 s grace).
ENTRYPOINT ["/usr/local/bin/tokenmint"]
CMD ["serve"]
