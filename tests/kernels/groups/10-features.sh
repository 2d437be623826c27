#!/usr/bin/env bash
# Kernel facts for docs/kernels.md: what this kernel offers beyond the splice datapath (kTLS, XDP
# attach modes, socket-less SYN cookies, splice(2)) and how the datapath's tcp_sock read fares
# with and without CAP_PERFMON. A missing feature is a fact, not a failure; the group fails only
# when a probe itself cannot run (so a broken probe never reads as "the kernel lacks it").
# variants: root
set -euo pipefail
source "$SRC/tests/kernels/lib.sh"
begin_group "features[$VARIANT]"
probes=$BUILD/kernels/probes

btf() { [[ -r /sys/kernel/btf/vmlinux ]] && echo yes || echo no; }
feature btf "$(btf)"
# Lockdown (none unless booted with lockdown= or Secure Boot): confidentiality refuses
# bpf_probe_read_kernel, which BPF_CORE_READ compiles to (the splice verdict no longer uses it:
# finding 6 of FINDINGS.md).
lockdown() {
  local f=/sys/kernel/security/lockdown
  if [[ -r $f ]]; then sed -n 's/.*\[\(.*\)\].*/\1/p' "$f"; else echo "unknown (no $f)"; fi
}
feature lockdown "$(lockdown)"

# kTLS: the module first (Debian: CONFIG_TLS=m from 6.x, not set on 5.10), then the ULP itself.
ktls_module() {
  local out
  if out=$(kmod_load tls 2>&1); then echo yes; else echo "no (${out##*: })"; fi
}
feature ktls_module "$(ktls_module)"
sockprobe() {  # FEATURE PROBE: sockprobe.py's answer is the fact; the probe must run to give one
  local out rc=0
  out=$(python3 "$SRC/tests/kernels/sockprobe.py" "$2" 2>&1) || rc=$?
  check "$2 probe runs" test "$rc" = 0
  feature "$1" "$out"
}
sockprobe ktls_ulp ktls-ulp
sockprobe pipe pipe

# XDP attach, native (driver) and generic (skb), on a veth pair and on lo.
xdp_attach() {  # MODE DEV: "yes" or "no (why)"
  local pin=/sys/fs/bpf/sluice-kt-xdp-$$ out
  if ! out=$(bpftool prog load "$probes/xdp_pass.bpf.o" "$pin" 2>&1); then
    echo "no (load: $(verifier_reason <(echo "$out")))"
    return
  fi
  if out=$(bpftool net attach "$1" pinned "$pin" dev "$2" 2>&1); then
    bpftool net detach "$1" dev "$2" > /dev/null 2>&1 || true
    echo yes
  else
    echo "no (${out##*Error: })" | head -1
  fi
  rm -f "$pin"
}
veth_pair() {
  kmod_load veth 2>/dev/null || true  # built in or already loaded elsewhere
  ip link add sluicekt0 type veth peer name sluicekt1 && ip link set sluicekt0 up &&
    ip link set sluicekt1 up
}
check "xdp probe object loads" test -f "$probes/xdp_pass.bpf.o"
if veth_pair >> "$LOG" 2>&1; then
  feature xdp_native_veth "$(xdp_attach xdpdrv sluicekt0)"
  feature xdp_generic_veth "$(xdp_attach xdpgeneric sluicekt0)"
  ip link del sluicekt0 2>/dev/null || true
else
  feature xdp_native_veth "not tried (no veth pair)"
  feature xdp_generic_veth "not tried (no veth pair)"
fi
feature xdp_native_lo "$(xdp_attach xdpdrv lo)"
feature xdp_generic_lo "$(xdp_attach xdpgeneric lo)"

# Socket-less SYN cookies (helpers 204-207, 6.0) for the XDP front door.
probe_load syncookie_raw "$probes/syncookie_raw.bpf.o"

# The splice verdict reads the peer's tcp_sock.write_seq through bpf_skc_to_tcp_sock() and a
# direct BTF load. Without CAP_PERFMON the helper is refused; the standalone probe of the same
# read shows that it is the helper, not the load, that needs it.
probe_load splice_noperfmon "$BUILD/bpf/skel/splice.bpf.o" noperfmon
probe_load tcp_sock_direct_read "$probes/tcp_sock_direct.bpf.o"
probe_load tcp_sock_direct_read_caps "$probes/tcp_sock_direct.bpf.o" caps
probe_load tcp_sock_direct_read_noperfmon "$probes/tcp_sock_direct.bpf.o" noperfmon

group_report
