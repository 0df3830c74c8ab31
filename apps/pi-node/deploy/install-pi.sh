#!/usr/bin/env bash
# Installs pi-node (or executor-node) on a Raspberry Pi OS (arm64) host, idempotently: the app
# under /usr/local/lib/digicap/<app> with its command in /usr/local/bin, the service user
# `digicap` (in group tss for /dev/tpmrm0), the data folder /var/lib/digicap (0700), the
# environment file /etc/digicap/<app>.env (kept if present) and the systemd unit. Run it
# again to upgrade or repair: every step checks before it changes anything.
#
#   sudo ./install-pi.sh [--app pi-node|executor-node] [--version 1.2.3 | --tarballs DIR | --from-prefix DIR]
#                        [--root DIR] [--no-start] [--oci] [--release-manifest FILE --release-key HEX]
#
#   --version V       npm i @digicap/<app>@V from the registry (default: latest)
#   --tarballs DIR    install from the release's .tgz files in DIR (offline: `pnpm pack` output)
#   --from-prefix DIR copy an installed tree (a folder with node_modules/@digicap/<app>)
#   --root DIR        install below DIR instead of / (packaging, tests): no user is created,
#                     systemctl is not called
#   --no-start        do not enable or start the unit
#   --oci             executor-node running image capsules (init --oci): also the unit's drop-in
#                     executor-node.service.d/oci.conf, which lets runc run (root, namespaces,
#                     cgroups; see the file)
#   --release-manifest FILE, --release-key HEX
#                     pi-node: a manifest the release process signed for the tree it ships
#                     (with --from-prefix), checked now and used instead of the host's own
#
# pi-node's release manifest: unless one is given, the install signs the tree it just installed
# with the host's release key (/etc/digicap/release-signing.pem, root's alone, created once) and
# leaves <install-root>.release.json and .release-key beside it: the unit's `verify-install`
# (ExecStartPre) checks them from the first start, and `pi-node init` pins them.
set -euo pipefail

APP=pi-node
VERSION=latest
TARBALLS=""
FROM_PREFIX=""
ROOT=/
START=1
RELEASE_MANIFEST=""
RELEASE_KEY=""
OCI=0
while [ $# -gt 0 ]; do
  case "$1" in
    --app) APP="$2"; shift 2 ;;
    --version) VERSION="$2"; shift 2 ;;
    --tarballs) TARBALLS="$(cd "$2" && pwd)"; shift 2 ;;
    --from-prefix) FROM_PREFIX="$(cd "$2" && pwd)"; shift 2 ;;
    --root) ROOT="$(cd "$2" && pwd)"; shift 2 ;;
    --no-start) START=0; shift ;;
    --release-manifest) RELEASE_MANIFEST="$(cd "$(dirname "$2")" && pwd)/$(basename "$2")"; shift 2 ;;
    --release-key) RELEASE_KEY="$2"; shift 2 ;;
    --oci) OCI=1; shift ;;
    -h|--help) sed -n '2,27p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install-pi: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$APP" in pi-node|executor-node) ;; *) echo "install-pi: --app pi-node|executor-node" >&2; exit 2 ;; esac
if [ -n "$RELEASE_MANIFEST$RELEASE_KEY" ] && { [ -z "$RELEASE_MANIFEST" ] || [ -z "$RELEASE_KEY" ] || [ "$APP" != pi-node ]; }; then
  echo "install-pi: --release-manifest and --release-key go together, for pi-node" >&2; exit 2
fi
if [ "$OCI" = 1 ] && [ "$APP" != executor-node ]; then echo "install-pi: --oci is for --app executor-node" >&2; exit 2; fi

HERE="$(cd "$(dirname "$0")" && pwd)"
R="${ROOT%/}"
LIB="$R/usr/local/lib/digicap/$APP"
BIN="$R/usr/local/bin/$APP"
DATA="$R/var/lib/digicap"
ETC="$R/etc/digicap"
UNIT_DIR="$R/etc/systemd/system"
changed=0
installed=0
say() { echo "install-pi: $*"; }
did() { say "$*"; changed=1; }

# 1. The host: Node >= 22 on PATH; arm64 expected (other machines work for tests).
if ! command -v node >/dev/null 2>&1 || [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 22 ]; then
  echo "install-pi: Node >= 22 must be on PATH (nodejs.org arm64 build, or npm i node@24)" >&2
  exit 1
fi
[ "$(uname -m)" = aarch64 ] || say "note: this machine is $(uname -m), not aarch64"
if [ "$ROOT" = / ] && [ "$(id -u)" -ne 0 ]; then echo "install-pi: run as root (sudo)" >&2; exit 1; fi

# 2. The service user and its groups (only on the real root).
if [ "$ROOT" = / ]; then
  if ! id digicap >/dev/null 2>&1; then
    useradd --system --home-dir /var/lib/digicap --no-create-home --shell /usr/sbin/nologin digicap
    did "created the system user digicap"
  fi
  if getent group tss >/dev/null 2>&1 && ! id -nG digicap | tr ' ' '\n' | grep -qx tss; then
    usermod -aG tss digicap
    did "added digicap to group tss (/dev/tpmrm0)"
  fi
fi

# 3. Folders: the data folder is the service's alone.
for d in "$DATA" "$ETC" "$UNIT_DIR" "$(dirname "$BIN")" "$LIB"; do
  [ -d "$d" ] || { mkdir -p "$d"; did "created $d"; }
done
chmod 0700 "$DATA"
[ "$ROOT" = / ] && chown digicap:digicap "$DATA"

# 4. The app: a small npm project under $LIB whose one dependency is the app. Installed into
# an emptied $LIB, so the manifest signed below lists what this run installed and nothing a
# previous tree left (npm keeps files of packages whose version did not change).
clean_lib() { find "$LIB" -mindepth 1 -maxdepth 1 -exec rm -rf {} +; }
if [ -n "$FROM_PREFIX" ]; then
  # Links compared as links (cp -a copies them so): a pnpm tree is mostly links.
  if ! diff -rq --no-dereference "$FROM_PREFIX/node_modules" "$LIB/node_modules" >/dev/null 2>&1; then
    clean_lib
    cp -a "$FROM_PREFIX/node_modules" "$LIB/node_modules"
    installed=1
    did "installed $APP from $FROM_PREFIX"
  fi
else
  if [ -n "$TARBALLS" ]; then
    spec="file:$(ls "$TARBALLS"/digicap-"$APP"-*.tgz | head -n1)"
    # Every @digicap/* dependency from the same release's tarballs.
    overrides="$(for f in "$TARBALLS"/digicap-*.tgz; do
      n="$(basename "$f" | sed -E 's/^digicap-(.*)-[0-9][^-]*\.tgz$/\1/')"
      printf '"@digicap/%s":"file:%s",' "$n" "$f"
    done | sed 's/,$//')"
  else
    spec="$VERSION"
    overrides=""
  fi
  want="{\"name\":\"digicap-$APP-install\",\"private\":true,\"dependencies\":{\"@digicap/$APP\":\"$spec\"},\"overrides\":{$overrides}}"
  if [ "$(cat "$LIB/package.json" 2>/dev/null)" != "$want" ] || [ ! -d "$LIB/node_modules/@digicap/$APP" ]; then
    clean_lib
    printf '%s' "$want" > "$LIB/package.json"
    (cd "$LIB" && npm install --omit=dev --no-audit --no-fund --loglevel=error)
    installed=1
    did "installed @digicap/$APP ($spec)"
  fi
fi
target="$LIB/node_modules/@digicap/$APP/bin/$APP.js"
[ -f "$target" ] || { echo "install-pi: $target is missing after the install" >&2; exit 1; }
version="$(node "$target" --version | cut -d' ' -f2)"
if [ "$(readlink "$BIN" 2>/dev/null)" != "${target#"$R"}" ]; then
  ln -sfn "${target#"$R"}" "$BIN"
  did "linked $BIN"
fi

# 4b. pi-node's signed release manifest, beside the install root (outside it: the manifest
# lists every file under it). Signed only when this run installed the app (or none is there):
# a tree changed under an unchanged install is never blessed by a new signature; the unit's
# `verify-install` refuses it at the next start.
if [ "$APP" = pi-node ]; then
  MANIFEST="$LIB.release.json"
  PUBKEY="$LIB.release-key"
  if [ -n "$RELEASE_MANIFEST" ]; then
    # The release process's own signature, checked against the tree whenever either changed.
    if [ "$installed" = 1 ] || ! cmp -s "$RELEASE_MANIFEST" "$MANIFEST" || [ "$(cat "$PUBKEY" 2>/dev/null)" != "$RELEASE_KEY" ]; then
      node "$target" verify-install --data-dir "$DATA" --root "$LIB" --manifest "$RELEASE_MANIFEST" --release-key "$RELEASE_KEY" >/dev/null \
        || { echo "install-pi: the installed tree does not match $RELEASE_MANIFEST" >&2; exit 1; }
      install -m 0644 "$RELEASE_MANIFEST" "$MANIFEST"
      printf '%s\n' "$RELEASE_KEY" > "$PUBKEY"; chmod 0644 "$PUBKEY"
      did "installed the release manifest signed by $RELEASE_KEY"
    fi
  elif [ "$installed" = 1 ] || [ ! -f "$MANIFEST" ] || [ ! -f "$PUBKEY" ]; then
    SIGNING_KEY="$ETC/release-signing.pem"
    if [ ! -f "$SIGNING_KEY" ]; then
      (umask 077 && node -e 'const { generateKeyPairSync } = require("node:crypto");
        process.stdout.write(generateKeyPairSync("ed25519").privateKey.export({ format: "pem", type: "pkcs8" }))' > "$SIGNING_KEY")
      did "created the host release key $SIGNING_KEY (root only)"
    fi
    chmod 0600 "$SIGNING_KEY"
    node "$target" sign-release --root "$LIB" --key "$SIGNING_KEY" --release "@digicap/$APP@$version" --out "$MANIFEST" > "$PUBKEY"
    chmod 0644 "$PUBKEY"
    grep -qxE '[0-9a-f]{64}' "$PUBKEY" || { echo "install-pi: signing the release manifest failed" >&2; exit 1; }
    did "signed the release manifest $MANIFEST"
  fi
fi

# 5. The environment file (the operator's: never overwritten) and the unit (ours: replaced).
if [ ! -f "$ETC/$APP.env" ]; then
  cat > "$ETC/$APP.env" <<ENV
# Overrides for $APP (one VAR=value a line), read by $APP.service, e.g.
# DIGICAP_RPC_URL=https://...
# DIGICAP_OPS_PORT=9464        # /metrics, /healthz (and the pi-node status page) on 127.0.0.1
# DIGICAP_LOG_LEVEL=info
ENV
  chmod 0640 "$ETC/$APP.env"
  did "wrote $ETC/$APP.env"
fi
unit_src="$LIB/node_modules/@digicap/$APP/deploy/$APP.service"
[ -f "$unit_src" ] || unit_src="$HERE/$APP.service"
if ! cmp -s "$unit_src" "$UNIT_DIR/$APP.service"; then
  install -m 0644 "$unit_src" "$UNIT_DIR/$APP.service"
  did "installed $UNIT_DIR/$APP.service"
fi

if [ "$OCI" = 1 ]; then
  dropin_src="$LIB/node_modules/@digicap/$APP/deploy/oci.conf"
  dropin="$UNIT_DIR/$APP.service.d/oci.conf"
  if ! cmp -s "$dropin_src" "$dropin"; then
    mkdir -p "$(dirname "$dropin")"
    install -m 0644 "$dropin_src" "$dropin"
    did "installed $dropin (runc for image capsules)"
  fi
fi

# 6. systemd (only on the real root).
if [ "$ROOT" = / ] && command -v systemctl >/dev/null 2>&1; then
  systemctl daemon-reload
  [ "$START" = 1 ] && systemctl enable --now "$APP"
fi
say "$([ $changed = 1 ] && echo done || echo 'nothing to change'): $APP $version"
