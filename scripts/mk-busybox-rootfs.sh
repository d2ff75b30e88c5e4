#!/usr/bin/env bash
# Makes a busybox rootfs tar from Debian's busybox-static: the base image of berth's tests
# and demo (no registry on the internet can be reached here).
#   scripts/mk-busybox-rootfs.sh OUT.tar
set -euo pipefail
out=${1:?usage: mk-busybox-rootfs.sh OUT.tar}
bb=/bin/busybox
[ -x "$bb" ] || { echo "error: $bb missing: apt-get install busybox-static" >&2; exit 1; }
file -L "$bb" 2>/dev/null | grep -q 'dynamically' && { echo "error: $bb is not static: install busybox-static" >&2; exit 1; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
mkdir -p "$dir"/{bin,sbin,usr/bin,usr/sbin,etc,root,tmp,var/www,home,proc,sys,dev}
chmod 1777 "$dir/tmp"
cp "$bb" "$dir/bin/busybox"
for applet in $("$bb" --list-full); do
  [ "$applet" = bin/busybox ] && continue
  mkdir -p "$dir/$(dirname "$applet")"
  ln -sf /bin/busybox "$dir/$applet"
done
cat > "$dir/etc/passwd" <<'P'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
app:x:1000:1000:app:/home/app:/bin/sh
P
cat > "$dir/etc/group" <<'G'
root:x:0:
daemon:x:1:
wheel:x:10:app
nogroup:x:65534:
app:x:1000:
G
mkdir -p "$dir/home/app" && chown 1000:1000 "$dir/home/app"
echo '<h1>hello from berth</h1>' > "$dir/var/www/index.html"
# Fixed mtimes so the same busybox gives the same tar, byte for byte.
find "$dir" -exec touch -h -d '2000-01-01T00:00:00Z' {} +
tar --sort=name --numeric-owner -C "$dir" -cf "$out" .
