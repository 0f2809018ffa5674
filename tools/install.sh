#!/bin/sh
# Installs n2disk-ts as a service: the built checkout to /opt/n2disk-ts, the
# systemd units, the user and group n2disk, /etc/n2disk-ts (with samples, and
# npcapextractd's extract.conf and PAM stack) and /var/lib/n2disk-ts. `make install` runs it after the build.
#
# DESTDIR=DIR installs into DIR as if it were / (for packaging, and for the
# tests): the user and the directories are made there by systemd-sysusers
# and systemd-tmpfiles with --root, so the running system is not touched.
# Safe to run again: a configuration file already in /etc/n2disk-ts is kept.
set -eu
cd "$(dirname "$0")/.."
root="${DESTDIR:-}"
app="$root/opt/n2disk-ts"

for f in dist/recorder/main.js build/Release/n2disk.node node_modules; do
  [ -e "$f" ] || { echo "install: $f missing; run 'make setup' first" >&2; exit 1; }
done
node=$(command -v node) || { echo "install: node not found" >&2; exit 1; }

# The program: compiled code, the addon, the runtime dependencies.
rm -rf "$app"
mkdir -p "$app/dist" "$app/build/Release"
cp -R bin package.json package-lock.json README.md "$app/"
for d in native recorder extract tools; do cp -R "dist/$d" "$app/dist/"; done
cp build/Release/n2disk.node "$app/build/Release/"
cp -R node_modules "$app/"
(cd "$app" && npm prune --omit=dev --no-audit --no-fund --loglevel=error >/dev/null)

# Units, with the node this machine has.
units="$root/etc/systemd/system"
mkdir -p "$units"
for unit in systemd/*.service; do
  sed "s|/usr/bin/node |$node |" "$unit" > "$units/$(basename "$unit")"
  chmod 0644 "$units/$(basename "$unit")"
done

# The user, group and directories, declared for systemd so they are also
# remade at boot if removed.
mkdir -p "$root/usr/lib/sysusers.d" "$root/usr/lib/tmpfiles.d" "$root/etc"
cat > "$root/usr/lib/sysusers.d/n2disk-ts.conf" <<'EOF'
u n2disk - "n2disk-ts packet recorder" /var/lib/n2disk-ts -
EOF
cat > "$root/usr/lib/tmpfiles.d/n2disk-ts.conf" <<'EOF'
d /etc/n2disk-ts 0755 root root -
d /var/lib/n2disk-ts 0750 n2disk n2disk -
EOF
if [ -n "$root" ]; then
  systemd-sysusers --root="$root" n2disk-ts.conf
  systemd-tmpfiles --create --root="$root" n2disk-ts.conf
else
  systemd-sysusers n2disk-ts.conf
  systemd-tmpfiles --create n2disk-ts.conf
fi
install -m 0644 systemd/n2disk-ts.conf.example "$root/etc/n2disk-ts/n2disk-ts.conf.example"
# The extraction service's configuration and PAM stack, unless the admin has them already.
[ -e "$root/etc/n2disk-ts/extract.conf" ] || install -m 0644 systemd/extract.conf "$root/etc/n2disk-ts/extract.conf"
mkdir -p "$root/etc/pam.d"
[ -e "$root/etc/pam.d/npcapextract" ] || install -m 0644 systemd/npcapextract.pam "$root/etc/pam.d/npcapextract"

# A running systemd learns of the new units; a temporary root has none.
if [ -z "$root" ] && [ -d /run/systemd/system ]; then systemctl daemon-reload; fi
echo "install: done; next: cp /etc/n2disk-ts/n2disk-ts.conf.example /etc/n2disk-ts/n2disk-IFACE.conf, edit it, systemctl enable --now n2disk-ts@IFACE" >&2
