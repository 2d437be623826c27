#!/bin/busybox sh
# /init of the kernel-matrix initramfs (tests/kernels/run.sh builds it). Runs as PID 1 under
# Debian's kernel in qemu: loads the 9p modules shipped with that kernel, mounts the host's root
# read-only over virtio-9p, gives it the guest's own /proc, /sys, bpffs, /dev and tmpfs, and runs
# tests/kernels/payload.sh inside it with chroot. Results go to a second, writable 9p share (the
# host's run directory). Whatever happens, it ends with an immediate reboot, which qemu
# (-no-reboot) turns into an exit; a panic does the same through panic=-1.
/bin/busybox --install -s /bin
export PATH=/bin

say() { echo "sluice-init: $*" > /dev/console; }
finish() {  # exit qemu: results are already on the host (the share is cache=none)
  sync
  reboot -f
  sleep 5
}
param() {  # value of sluice.NAME= on the kernel command line
  sed -n "s/.*sluice\.$1=\([^ ]*\).*/\1/p" /proc/cmdline
}

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
kver=$(uname -r)
# The kernel's own module requests (sock_diag families, crypto, ...) run this modprobe, in this
# root, with the staged modules: as udev/kmod would load them on a real node.
echo /bin/modprobe > /proc/sys/kernel/modprobe

# Modules the 9p mounts need, in dependency order (built in on some kernels, then not listed).
while read -r module; do
  [ -n "$module" ] || continue
  insmod "/lib/modules/$kver/$module" || say "insmod $module failed"
done < /etc/sluice/boot-modules

host=/host
out=$(param out)
mkdir -p $host
# cache=loose: the host tree does not change during a run, and uncached 9p reads make every exec
# and Python import several times slower under TCG.
if ! mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=262144 hostroot $host; then
  say "cannot mount the host root over 9p"; finish
fi
# The run directory, writable and uncached, at the same path as on the host, so the payload
# writes results where the host reads them.
if ! mount -t 9p -o trans=virtio,version=9p2000.L,cache=none,msize=262144 sluiceout "$host$out"; then
  say "cannot mount the results share at $out"; finish
fi

# The guest's own kernel interfaces inside the chroot, never the host's (those are in the 9p tree).
mount -t proc proc $host/proc
mount -t sysfs sysfs $host/sys
mount -t bpf bpf $host/sys/fs/bpf
mount -t securityfs securityfs $host/sys/kernel/security 2>/dev/null
mount -t devtmpfs devtmpfs $host/dev
mkdir -p $host/dev/pts $host/dev/shm
mount -t devpts devpts $host/dev/pts
# devtmpfs has no /dev/fd links; bash process substitution needs them.
ln -sf /proc/self/fd $host/dev/fd
ln -sf /proc/self/fd/0 $host/dev/stdin
ln -sf /proc/self/fd/1 $host/dev/stdout
ln -sf /proc/self/fd/2 $host/dev/stderr
mount -t tmpfs tmpfs $host/dev/shm
mount -t tmpfs -o mode=1777 tmpfs $host/tmp
mount -t tmpfs tmpfs $host/run
mount -t tmpfs -o mode=1777 tmpfs $host/var/tmp
# The host has no /lib/modules (its kernel has no modules): the payload finds this kernel's
# staged modules under SLUICE_MODROOT (modprobe -d).
mkdir -p $host/run/sluice-modroot/lib
cp -a /lib/modules $host/run/sluice-modroot/lib/
ip link set lo up
hostname "sluice-$kver"

say "kernel $kver: running the payload"
chroot $host /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root TERM=dumb LANG=C.UTF-8 \
  PYTHONDONTWRITEBYTECODE=1 SLUICE_MODROOT=/run/sluice-modroot SLUICE_GUEST=qemu \
  /bin/bash "$(param payload)" --build "$(param build)" --out "$out" --label "$(param label)" \
  --groups "$(param groups)" > /dev/console 2>&1
say "payload exited with status $?"
umount "$host$out"
finish
