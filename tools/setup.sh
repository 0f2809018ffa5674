#!/bin/sh
# Installs what the build, the demo and the tests need, only where missing:
# Debian packages, the npm dependencies, the native addon and the compiled
# TypeScript. Safe to run again; does nothing when all is in place.
set -eu
cd "$(dirname "$0")/.."

PACKAGES="libpcap-dev libisal-dev libpam0g-dev tcpdump tshark tcpreplay libpam-wrapper strace flatbuffers-compiler lz4 zstd
  netsniff-ng iproute2 ethtool procps systemd"

missing=""
for p in $PACKAGES; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing Debian packages:$missing (run as root, or apt-get install them)" >&2
    exit 1
  fi
  echo "setup: installing$missing" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi

# Rebuild what is older than its sources.
if [ ! -f build/Release/n2disk.node ] || [ -n "$(find native binding.gyp -newer build/Release/n2disk.node -name '*.[ch]*' -o -newer build/Release/n2disk.node -name binding.gyp | head -1)" ]; then
  npx --no-install node-gyp rebuild --loglevel=error >/dev/null
fi
npx --no-install tsc -p .
