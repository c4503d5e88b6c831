#!/usr/bin/env bash
# Builds LOCAL stand-ins for the base images the Dockerfile names, for machines that cannot pull
# from a container registry (CI here reaches only the Debian, crates.io, PyPI and npm
# registries). A user with registry access never needs this script: `docker build` pulls the
# real images.
#
#   rust:<X.Y>-slim-bookworm                   the builder: Debian bookworm (debootstrap, minbase)
#                                              with ca-certificates, gcc and libc6-dev as in the
#                                              official slim image, plus THIS machine's Rust
#                                              toolchain under RUSTUP_HOME=/usr/local/rustup and
#                                              CARGO_HOME=/usr/local/cargo, on PATH through
#                                              rustup's proxies, as in the official image.
#   gcr.io/distroless/static-debian12:nonroot  the runtime: an equivalent minimal root file
#                                              system (no shell, no package manager): passwd and
#                                              group with nonroot = 65532, CA certificates,
#                                              tzdata, netbase files; USER 65532, WORKDIR
#                                              /home/nonroot.
#
# The builder stand-in also trusts the extra CA certificates this machine trusts
# (/usr/local/share/ca-certificates), because crates are downloaded through a TLS-inspecting
# proxy here.
#
# The tags are read from the Dockerfile's FROM lines. A tag that already exists locally is left
# alone (pass --force to rebuild it). The images carry the label tokenmint.ci.stand-in=true so
# nobody mistakes them for the real ones.
#
# Needs root, a running Docker daemon and debootstrap (installed here with apt when missing).
# Usage: .ci/make-base-images.sh [--force]
set -euo pipefail

cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.."

FORCE=0
[[ ${1:-} == --force ]] && FORCE=1

DOCKER=${DOCKER:-$(command -v /usr/bin/docker || command -v docker)}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SUITE=bookworm
WORK=${BASE_IMAGES_WORKDIR:-target/docker-base}
STAND_IN_LABEL='tokenmint.ci.stand-in=true'

log() { printf '    [base-images] %s\n' "$*"; }

# The FROM images of the Dockerfile, minus stage references and scratch.
mapfile -t FROM_IMAGES < <(awk 'toupper($1) == "FROM" {
        for (i = 2; i <= NF; i++) if ($i !~ /^--/) { print $i; break } }' Dockerfile |
    sort -u | grep -vx scratch)
STAGES=$(awk 'toupper($1) == "FROM" && toupper($(NF-1)) == "AS" { print $NF }' Dockerfile)

have_image() { "$DOCKER" image inspect "$1" >/dev/null 2>&1; }

# One debootstrapped bookworm tree, shared by both stand-ins (the runtime takes its CA bundle,
# zoneinfo and netbase files from it). Kept under target/ so reruns skip the download.
ROOTFS=$WORK/bookworm-rootfs
debian_rootfs() {
    if [[ -f $ROOTFS/.complete ]]; then
        return
    fi
    if ! command -v debootstrap >/dev/null; then
        log "installing debootstrap"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
    fi
    rm -rf "$ROOTFS"
    mkdir -p "$ROOTFS"
    log "debootstrap $SUITE (minbase + ca-certificates gcc libc6-dev netbase tzdata) from $MIRROR"
    debootstrap --variant=minbase --include=ca-certificates,gcc,libc6-dev,netbase,tzdata \
        "$SUITE" "$ROOTFS" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 || {
        tail -n 30 "$WORK/debootstrap.log" >&2
        exit 1
    }
    # As the official slim images do: no apt caches or lists in the image.
    rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/*.bin \
        "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/log/*.log
    touch "$ROOTFS/.complete"
}

# rust:<X.Y>-slim-bookworm from the host's toolchain.
make_rust_image() {
    local tag=$1 want=${1#rust:}
    want=${want%%-*}
    local toolchain_dir rustc_version
    toolchain_dir=$(rustc --print sysroot)
    rustc_version=$("$toolchain_dir/bin/rustc" --version | awk '{print $2}')
    if [[ $rustc_version != "$want" && $rustc_version != "$want".* ]]; then
        echo "error: the Dockerfile wants $tag but this machine's toolchain is rustc $rustc_version;" >&2
        echo "       no other toolchain can be fetched here, so align the Dockerfile's tag with it" >&2
        exit 1
    fi
    debian_rootfs
    local tree=$WORK/rust-image
    local name=$rustc_version-x86_64-unknown-linux-gnu
    rm -rf "$tree"
    mkdir -p "$tree"
    log "assembling $tag: bookworm + rustc $rustc_version (from $toolchain_dir)"
    cp -a "$ROOTFS/." "$tree/"
    rm -f "$tree/.complete"
    mkdir -p "$tree/usr/local/rustup/toolchains/$name" "$tree/usr/local/cargo/bin"
    # The toolchain without its HTML docs (rust-docs is not in the official image either).
    tar -C "$toolchain_dir" --exclude=./share/doc -cf - . |
        tar -C "$tree/usr/local/rustup/toolchains/$name" -xf -
    cat >"$tree/usr/local/rustup/settings.toml" <<EOF
version = "12"
default_toolchain = "$name"
profile = "minimal"
auto_self_update = "disable"

[overrides]
EOF
    # rustup and its proxies, like the official image's /usr/local/cargo/bin.
    local rustup_bin
    rustup_bin=$(readlink -f "$(command -v rustup)")
    install -m 0755 "$rustup_bin" "$tree/usr/local/cargo/bin/rustup"
    local proxy
    for proxy in cargo cargo-clippy cargo-fmt clippy-driver rust-gdb rust-gdbgui rust-lldb rustc rustdoc rustfmt; do
        if [[ -e $tree/usr/local/rustup/toolchains/$name/bin/$proxy ]]; then
            ln "$tree/usr/local/cargo/bin/rustup" "$tree/usr/local/cargo/bin/$proxy"
        fi
    done
    chmod -R a+w "$tree/usr/local/rustup" "$tree/usr/local/cargo"
    # This machine reaches crates.io through a TLS-inspecting egress proxy whose CA only the
    # host trusts (/usr/local/share/ca-certificates). Give the builder stand-in the same trust,
    # as a company's own base image would, so `cargo build` inside `docker build` can download
    # crates. Only the builder gets it; the runtime stand-in keeps Debian's bundle alone.
    local extra=(/usr/local/share/ca-certificates/*.crt)
    if [[ -e ${extra[0]} ]]; then
        log "adding this machine's extra CA certificates to the builder: ${extra[*]##*/}"
        cp "${extra[@]}" "$tree/usr/local/share/ca-certificates/"
        chroot "$tree" update-ca-certificates >/dev/null 2>&1
    fi
    tar -C "$tree" --numeric-owner -cf - . | "$DOCKER" import \
        --change 'ENV RUSTUP_HOME=/usr/local/rustup' \
        --change 'ENV CARGO_HOME=/usr/local/cargo' \
        --change 'ENV PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change "ENV RUST_VERSION=$rustc_version" \
        --change "LABEL $STAND_IN_LABEL" \
        --change 'CMD ["bash"]' \
        - "$tag" >/dev/null
    rm -rf "$tree"
    "$DOCKER" run --rm "$tag" sh -c 'cargo --version && rustc --version && gcc --version | head -n1' |
        sed 's/^/    [base-images]   /'
}

# gcr.io/distroless/static-debian12:nonroot (or :latest, with user root) equivalent.
make_distroless_static() {
    local tag=$1
    local user=65532 home=/home/nonroot
    if [[ $tag != *:nonroot && $tag != *:debug-nonroot ]]; then
        user=0 home=/root
    fi
    debian_rootfs
    local tree=$WORK/distroless-static
    rm -rf "$tree"
    log "assembling $tag: passwd/group, CA certificates, tzdata, netbase; USER $user"
    mkdir -p "$tree"/{etc/ssl/certs,usr/share,tmp,root,home/nonroot,var/lib/dpkg/status.d,bin,sbin,usr/bin,usr/sbin}
    chmod 1777 "$tree/tmp"
    chmod 0700 "$tree/root"
    chmod 0700 "$tree/home/nonroot"
    chown 65532:65532 "$tree/home/nonroot"
    cat >"$tree/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
EOF
    cat >"$tree/etc/group" <<'EOF'
root:x:0:
nobody:x:65534:
tty:x:5:
staff:x:50:
nonroot:x:65532:
EOF
    cat >"$tree/etc/nsswitch.conf" <<'EOF'
passwd:         files
group:          files
shadow:         files
hosts:          files dns
networks:       files
protocols:      files
services:       files
ethers:         files
rpc:            files
EOF
    cat >"$tree/etc/os-release" <<'EOF'
PRETTY_NAME="Distroless"
NAME="Debian GNU/Linux"
ID="debian"
VERSION_ID="12"
VERSION="Debian GNU/Linux 12 (bookworm)"
HOME_URL="https://github.com/GoogleContainerTools/distroless"
EOF
    cp "$ROOTFS/etc/ssl/certs/ca-certificates.crt" "$tree/etc/ssl/certs/"
    cp "$ROOTFS"/etc/{services,protocols,ethertypes,rpc} "$tree/etc/" 2>/dev/null || true
    cp -a "$ROOTFS/usr/share/zoneinfo" "$tree/usr/share/"
    ln -sf /usr/share/zoneinfo/Etc/UTC "$tree/etc/localtime"
    tar -C "$tree" --numeric-owner -cf - . | "$DOCKER" import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
        --change "USER $user" \
        --change "WORKDIR $home" \
        --change "LABEL $STAND_IN_LABEL" \
        - "$tag" >/dev/null
    rm -rf "$tree"
}

mkdir -p "$WORK"
for image in "${FROM_IMAGES[@]}"; do
    if grep -qx -- "$image" <<<"$STAGES"; then
        continue
    fi
    if ((!FORCE)) && have_image "$image"; then
        log "$image: present, kept"
        continue
    fi
    case $image in
    rust:*-slim-bookworm) make_rust_image "$image" ;;
    gcr.io/distroless/static-debian12:*) make_distroless_static "$image" ;;
    *)
        echo "error: no recipe for a local stand-in of base image $image" >&2
        exit 1
        ;;
    esac
    log "$image: built ($("$DOCKER" image inspect -f '{{.Size}}' "$image" | numfmt --to=iec))"
done
