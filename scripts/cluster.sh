#!/usr/bin/env bash
# An emulated cluster on one Linux host: K network namespaces joined by rate-limited links.
#
#   scripts/cluster.sh up K [--rate RATE]     make namespaces dfnode0..dfnode{K-1} (replaces an
#                                             existing cluster); RATE per link and direction in
#                                             tc units (1gbit, 10gbit, 500mbit; default 10gbit;
#                                             'none' = no limit); writes build/cluster/hosts
#   scripts/cluster.sh mpirun [--mpi openmpi|mpich] [MPIRUN ARGS] -- CMD ARGS
#                                             rank r runs in dfnode{r mod K}; every byte between
#                                             ranks goes over TCP through the limited links
#   scripts/cluster.sh exec NODE CMD ARGS     run one command inside node NODE (0..K-1)
#   scripts/cluster.sh status                 the nodes, addresses, limits and byte counters
#   scripts/cluster.sh down                   remove everything
#   scripts/cluster.sh build-mpich            configure + build build-mpich/ with mpicc.mpich (and the
#                                             MPI_Finalize work-around, scripts/mpich-ucx-close.c)
#
# Each node is a namespace with loopback, one veth interface `eth0` (address 10.213.7.(i+1)/24,
# a subnet that exists only inside the namespaces) whose host end is enslaved to the bridge
# `dfbr0`, and a tbf qdisc on both ends (the node's upload and download), so a link is a
# full-duplex RATE pipe. Processes launched by `mpirun` see their own hostname (dfnodeI, UTS
# namespace), so MPI treats every namespace as a separate machine (no shared memory between them).
# Latency cannot be emulated: tbf's `latency` only bounds its queue; the veth round trip is ~20 us.
#
# Root and network-namespace support are required; without them every command prints one line
# and exits 77 (so tests skip). Environment: DF_CLUSTER_DIR (default <repo>/build/cluster).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIR=${DF_CLUSTER_DIR:-$REPO/build/cluster}
PREFIX=dfnode
BRIDGE=dfbr0
SUBNET_PREFIX=10.213.7
SUBNET=$SUBNET_PREFIX.0/24
MAXK=250

die() { echo "cluster.sh: $*" >&2; exit 2; }
skip() { echo "cluster.sh: $* (skipping: exit 77)" >&2; exit 77; }

usage() { sed -n '2,25p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

need_root() {
  [ "$(id -u)" -eq 0 ] || skip "needs root (network namespaces, veth, tc)"
  command -v ip >/dev/null 2>&1 || skip "needs iproute2 ('ip'; scripts/install-deps.sh installs it)"
  command -v tc >/dev/null 2>&1 || skip "needs tc (iproute2)"
  command -v unshare >/dev/null 2>&1 || skip "needs unshare (util-linux)"
}

# The nodes that exist now (names dfnode<digits>), in numeric order.
nodes() {
  ip netns list 2>/dev/null | awk '{print $1}' | grep -E "^${PREFIX}[0-9]+$" | sort -V || true
}

# rate in tc syntax -> bytes per second (bit, kbit, mbit, gbit, tbit; bps, kbps... are bytes)
rate_bytes() {
  local r=${1,,} num unit
  num=$(echo "$r" | sed -E 's/^([0-9]+(\.[0-9]+)?).*/\1/')
  unit=${r#"$num"}
  [ -n "$num" ] && [ "$num" != "$r" -o -z "$unit" ] || return 1
  case "$unit" in
    ""|bit) awk -v n="$num" 'BEGIN{printf "%.0f", n/8}' ;;
    kbit) awk -v n="$num" 'BEGIN{printf "%.0f", n*1e3/8}' ;;
    mbit) awk -v n="$num" 'BEGIN{printf "%.0f", n*1e6/8}' ;;
    gbit) awk -v n="$num" 'BEGIN{printf "%.0f", n*1e9/8}' ;;
    tbit) awk -v n="$num" 'BEGIN{printf "%.0f", n*1e12/8}' ;;
    bps) awk -v n="$num" 'BEGIN{printf "%.0f", n}' ;;
    kbps) awk -v n="$num" 'BEGIN{printf "%.0f", n*1e3}' ;;
    mbps) awk -v n="$num" 'BEGIN{printf "%.0f", n*1e6}' ;;
    gbps) awk -v n="$num" 'BEGIN{printf "%.0f", n*1e9}' ;;
    *) return 1 ;;
  esac
}

down_quiet() {
  local n
  for n in $(nodes); do
    # processes still living in a node (started by an interrupted run of this script)
    local pids
    pids=$(ip netns pids "$n" 2>/dev/null || true)
    [ -n "$pids" ] && kill -9 $pids 2>/dev/null || true
    ip netns del "$n" 2>/dev/null || true
    rm -rf "/etc/netns/$n"
  done
  local v
  for v in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | sed 's/@.*//' |
             grep -E "^dfveth[0-9]+$" || true); do
    ip link del "$v" 2>/dev/null || true
  done
  ip link del "$BRIDGE" 2>/dev/null || true
  rm -f "$DIR/hosts" "$DIR/hosts.mpich" "$DIR/rsh" "$DIR/rate"
}

cmd_down() {
  need_root
  down_quiet
  echo "cluster.sh: down"
}

# tbf on one interface: the burst holds 4 ms at RATE (at least 128 KiB so that a 64 KiB GSO
# packet passes whole); the queue holds 20 ms.
add_tbf() {
  local netns=$1 dev=$2 rate=$3 bytes=$4 burst
  burst=$(( bytes / 250 ))
  [ "$burst" -lt 131072 ] && burst=131072
  if [ -n "$netns" ]; then
    ip -n "$netns" link set dev "$dev" gso_max_size 65536 2>/dev/null || true
    tc -n "$netns" qdisc replace dev "$dev" root tbf rate "$rate" burst "$burst" latency 20ms
  else
    tc qdisc replace dev "$dev" root tbf rate "$rate" burst "$burst" latency 20ms
  fi
}

cmd_up() {
  need_root
  local k="" rate=10gbit
  while [ $# -gt 0 ]; do
    case "$1" in
      --rate) [ $# -ge 2 ] || die "--rate needs a value (e.g. 1gbit)"; rate=$2; shift 2 ;;
      --rate=*) rate=${1#--rate=}; shift ;;
      -h|--help) usage; exit 0 ;;
      -*) die "up: unknown option '$1'" ;;
      *) [ -z "$k" ] || die "up: one node count expected, got '$k' and '$1'"; k=$1; shift ;;
    esac
  done
  [ -n "$k" ] || die "up: missing the node count K (scripts/cluster.sh up K [--rate RATE])"
  [[ "$k" =~ ^[0-9]+$ ]] && [ "$k" -ge 1 ] && [ "$k" -le $MAXK ] ||
    die "up: K must be an integer in 1..$MAXK, got '$k'"
  local bytes=0
  if [ "$rate" != none ]; then
    bytes=$(rate_bytes "$rate") && [ "$bytes" -gt 0 ] ||
      die "up: bad --rate '$rate' (tc units: 1gbit, 10gbit, 500mbit, ...; or 'none')"
  fi
  # probe namespace support before touching anything
  local probe=${PREFIX}probe$$
  if ! ip netns add "$probe" 2>/dev/null; then
    skip "cannot create network namespaces here (ip netns add failed)"
  fi
  ip netns del "$probe" 2>/dev/null || true

  down_quiet
  # an interrupted or failed `up` leaves nothing behind
  trap 'trap - EXIT; down_quiet; echo "cluster.sh: up interrupted, cluster removed" >&2; exit 130' INT TERM
  trap 'rc=$?; if [ $rc -ne 0 ]; then down_quiet; echo "cluster.sh: up failed, cluster removed" >&2; fi' EXIT
  mkdir -p "$DIR"
  ip link add "$BRIDGE" type bridge
  ip link set "$BRIDGE" up
  local i n hosts=""
  for ((i = 0; i < k; i++)); do hosts+="$SUBNET_PREFIX.$((i + 1)) $PREFIX$i"$'\n'; done
  for ((i = 0; i < k; i++)); do
    n=$PREFIX$i
    ip netns add "$n"
    ip -n "$n" link set lo up
    ip link add "dfveth$i" type veth peer name eth0 netns "$n"
    ip link set "dfveth$i" master "$BRIDGE"
    ip link set "dfveth$i" up
    ip -n "$n" addr add "$SUBNET_PREFIX.$((i + 1))/24" dev eth0
    ip -n "$n" link set eth0 up
    # name resolution of the nodes inside the namespaces (ip netns exec bind-mounts this file)
    mkdir -p "/etc/netns/$n"
    { echo "127.0.0.1 localhost"; printf '%s' "$hosts"; } > "/etc/netns/$n/hosts"
    echo "$n" > "/etc/netns/$n/hostname"
    if [ "$rate" != none ]; then
      add_tbf "$n" eth0 "$rate" "$bytes"
      add_tbf "" "dfveth$i" "$rate" "$bytes"
    fi
  done
  : > "$DIR/hosts"
  : > "$DIR/hosts.mpich"
  for ((i = 0; i < k; i++)); do
    echo "$PREFIX$i slots=1" >> "$DIR/hosts"
    echo "$PREFIX$i:1" >> "$DIR/hosts.mpich"
  done
  echo "$rate" > "$DIR/rate"
  # the launcher's remote shell: enter the node's namespaces instead of ssh
  cat > "$DIR/rsh" <<'EOF'
#!/bin/sh
# rsh/ssh stand-in for mpirun / mpiexec: [options] HOST COMMAND... runs COMMAND (a shell command
# line, as ssh would pass it) in HOST's network namespace with HOST as its hostname.
while [ $# -gt 0 ]; do
  case "$1" in
    -l|-p|-o|-i|-F) shift 2 ;;
    -*) shift ;;
    *) break ;;
  esac
done
[ $# -ge 2 ] || { echo "cluster rsh: usage: rsh HOST COMMAND" >&2; exit 255; }
host=$1; shift
case "$host" in
  dfnode[0-9]*) ;;
  *) echo "cluster rsh: unknown host '$host' (not a cluster node)" >&2; exit 255 ;;
esac
exec ip netns exec "$host" unshare --uts sh -c 'hostname "$0" && eval "$*"' "$host" "$@"
EOF
  chmod +x "$DIR/rsh"
  # the nodes must reach each other over the bridge
  if [ "$k" -ge 2 ] && command -v ping >/dev/null 2>&1 && ! ip netns exec "${PREFIX}0" ping -c 1 -W 2 "$SUBNET_PREFIX.2" >/dev/null 2>&1; then
    echo "cluster.sh: dfnode0 cannot reach dfnode1 over $BRIDGE (host firewall on bridged" \
         "traffic? net.bridge.bridge-nf-call-iptables)" >&2
    exit 1
  fi
  trap - INT TERM EXIT
  echo "cluster.sh: $k nodes ${PREFIX}0..${PREFIX}$((k - 1)) on $SUBNET, links $rate;" \
       "hostfile $DIR/hosts"
}

cmd_status() {
  need_root
  local n
  local list
  list=$(nodes)
  [ -n "$list" ] || { echo "cluster.sh: no cluster (scripts/cluster.sh up K)"; return 0; }
  echo "rate: $(cat "$DIR/rate" 2>/dev/null || echo '?')"
  for n in $list; do
    local a tx rx
    a=$(ip -n "$n" -4 -o addr show dev eth0 | awk '{print $4}')
    tx=$(ip netns exec "$n" cat /sys/class/net/eth0/statistics/tx_bytes)
    rx=$(ip netns exec "$n" cat /sys/class/net/eth0/statistics/rx_bytes)
    echo "$n $a tx_bytes=$tx rx_bytes=$rx"
  done
}

cmd_exec() {
  need_root
  [ $# -ge 2 ] || die "exec: usage: scripts/cluster.sh exec NODE CMD ARGS"
  local i=$1; shift
  [[ "$i" =~ ^[0-9]+$ ]] || die "exec: NODE must be a node number, got '$i'"
  ip netns list | awk '{print $1}' | grep -qx "$PREFIX$i" ||
    die "exec: no node $PREFIX$i (scripts/cluster.sh up K)"
  exec ip netns exec "$PREFIX$i" unshare --uts sh -c 'hostname "$0" && exec "$@"' "$PREFIX$i" "$@"
}

build_mpich() {
  command -v mpicc.mpich >/dev/null 2>&1 ||
    skip "needs MPICH (mpicc.mpich; scripts/install-deps.sh installs mpich libmpich-dev)"
  local b=$REPO/build-mpich
  echo "cluster.sh: building $b with mpicc.mpich" >&2
  cmake -S "$REPO" -B "$b" -DMPI_C_COMPILER=/usr/bin/mpicc.mpich \
        -DMPIEXEC_EXECUTABLE=/usr/bin/mpiexec.mpich -DDF_BUILD_TESTS=OFF >/dev/null
  cmake --build "$b" -j "$(nproc)" --target distrifuse-cli distrifuse-bench df-make-model >&2
  build_shim
}

# scripts/mpich-ucx-close.c -> build-mpich/libdf-mpich-ucx-close.so: the LD_PRELOAD work-around
# for MPICH 4.0.2/UCX's MPI_Finalize hang (see that file); needs UCX's headers (libucx-dev, a
# dependency of libmpich-dev)
SHIM=$REPO/build-mpich/libdf-mpich-ucx-close.so
build_shim() {
  [ -f /usr/include/ucp/api/ucp.h ] ||
    skip "needs UCX's headers (libucx-dev; scripts/install-deps.sh installs libmpich-dev)"
  mkdir -p "$(dirname "$SHIM")"
  ${CC:-cc} -O2 -Wall -Wextra -shared -fPIC -o "$SHIM.tmp" "$REPO/scripts/mpich-ucx-close.c" \
    -lucp -ldl && mv "$SHIM.tmp" "$SHIM" || die "cannot build $SHIM"
}

MPIRUN_PID=""
on_interrupt() {
  trap - INT TERM HUP
  [ -n "$MPIRUN_PID" ] && kill -TERM "$MPIRUN_PID" 2>/dev/null
  sleep 1
  local n p
  for n in $(nodes); do
    p=$(ip netns pids "$n" 2>/dev/null || true)
    [ -n "$p" ] && kill -9 $p 2>/dev/null
  done
  echo "cluster.sh: mpirun interrupted, every process of the job ended" >&2
  exit 130
}

cmd_mpirun() {
  need_root
  local mpi=openmpi
  local margs=() cmd=()
  while [ $# -gt 0 ]; do
    case "$1" in
      --mpi) [ $# -ge 2 ] || die "--mpi needs openmpi or mpich"; mpi=$2; shift 2 ;;
      --mpi=*) mpi=${1#--mpi=}; shift ;;
      --) shift; cmd=("$@"); break ;;
      *) margs+=("$1"); shift ;;
    esac
  done
  [ ${#cmd[@]} -gt 0 ] ||
    die "mpirun: usage: scripts/cluster.sh mpirun [--mpi openmpi|mpich] [MPIRUN ARGS] -- CMD ARGS"
  local list
  list=$(nodes)
  [ -n "$list" ] && [ -s "$DIR/hosts" ] && [ -x "$DIR/rsh" ] ||
    die "mpirun: no cluster (run scripts/cluster.sh up K first)"
  local head=${PREFIX}0 launcher=()
  case "$mpi" in
    openmpi)
      command -v mpirun.openmpi >/dev/null 2>&1 || skip "needs Open MPI (mpirun.openmpi)"
      launcher=(mpirun.openmpi --hostfile "$DIR/hosts" --map-by node --bind-to none --oversubscribe
        --mca pml ob1 --mca btl tcp,self --mca btl_tcp_if_include "$SUBNET"
        --mca oob_tcp_if_include "$SUBNET" --mca osc '^ucx' --mca plm rsh
        --mca plm_rsh_agent "$DIR/rsh" --mca plm_rsh_no_tree_spawn 1)
      [ "$(id -u)" -eq 0 ] && launcher+=(--allow-run-as-root)
      ;;
    mpich)
      command -v mpiexec.mpich >/dev/null 2>&1 ||
        skip "needs MPICH (mpiexec.mpich; scripts/install-deps.sh installs mpich)"
      # the MPICH build of the program: build/X -> build-mpich/X (built when missing)
      local c0=${cmd[0]}
      case "$c0" in
        build/*|./build/*|"$REPO"/build/*)
          local rel=${c0#"$REPO"/}; rel=${rel#./}; rel=build-mpich/${rel#build/}
          [ -x "$REPO/$rel" ] || build_mpich
          cmd[0]=$REPO/$rel ;;
      esac
      # Debian's MPICH is ch4:ucx; UCX would find the other nodes' shared memory (same boot
      # id), so its transports are pinned to TCP on eth0. MPICH 4.0.2 + UCX 1.13 hang in
      # MPI_Finalize in ~1 of 4 runs (a TCP wire-up race, then a close-flush that waits for a
      # peer already in the PMI barrier): the preloaded shim bounds that wait
      # (scripts/mpich-ucx-close.c)
      [ "$SHIM" -nt "$REPO/scripts/mpich-ucx-close.c" ] || build_shim
      launcher=(mpiexec.mpich -f "$DIR/hosts.mpich" -launcher ssh -launcher-exec "$DIR/rsh"
        -iface eth0 -genv UCX_TLS self,tcp -genv UCX_NET_DEVICES eth0
        -genv LD_PRELOAD "$SHIM${LD_PRELOAD:+:$LD_PRELOAD}")
      ;;
    *) die "--mpi must be openmpi or mpich, got '$mpi'" ;;
  esac
  # mpirun itself lives in node 0 (so that its daemons reach it over the cluster subnet); it
  # runs in the background so that a signal to this script is handled at once: interrupted, the
  # launcher and every process left in the nodes end (an interrupted run leaves nothing behind)
  local rc=0
  ip netns exec "$head" unshare --uts sh -c 'hostname "$0" && exec "$@"' "$head" \
    "${launcher[@]}" "${margs[@]}" "${cmd[@]}" <&0 &
  MPIRUN_PID=$!
  trap 'on_interrupt' INT TERM HUP
  wait "$MPIRUN_PID" || rc=$?
  trap - INT TERM HUP
  return $rc
}

[ $# -ge 1 ] || { usage >&2; exit 2; }
sub=$1; shift
case "$sub" in
  up) cmd_up "$@" ;;
  down) cmd_down "$@" ;;
  mpirun) cmd_mpirun "$@" ;;
  exec) cmd_exec "$@" ;;
  status) cmd_status "$@" ;;
  build-mpich) build_mpich ;;
  -h|--help|help) usage ;;
  *) die "unknown command '$sub' (up, down, mpirun, exec, status, build-mpich; see --help)" ;;
esac
