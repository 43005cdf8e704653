#!/bin/sh
# /init of the measuring guests of vm-test: `--compare` (the seed lab in
# network namespaces, the kernel's balance-alb and alb under the same
# pings, figures between markers on the serial console) and `--nics`
# (nics/guest.sh). It asserts nothing of alb's behaviour: the Rust
# integration tests do, run in the guest by guest-tests.sh.
export PATH=/usr/bin:/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
mount -t bpf bpf /sys/fs/bpf
mkdir -p /var && ln -s /run /var/run
for m in $(cat /modules/order); do
    insmod /modules/"$m".ko || echo "@@ALB-INFO insmod $m failed"
done
export RUST_LOG=info
N=/run/netns
# busybox's shell runs its own applets before PATH: the real tools by path.
ip() { /usr/bin/ip "$@"; }
tc() { /usr/bin/tc "$@"; }
MODE=$(cat /etc/alb-vm-mode)

say() { echo "@@ALB-$*"; }
result() { say "RESULT $1 $2 ${3:-}"; }
check() { name=$1; shift; if "$@"; then result PASS "$name"; else result FAIL "$name"; fi; }
in_ns() { ns=$1; shift; nsenter --net=$N/"$ns" "$@"; }

# The switch (a bridge in sw, no IPv6 of its own) and the slaves veth17,
# veth19 in srv, each with its port (veth18, veth20) on the bridge.
switch_and_slaves() {
    in_ns sw sysctl -q -w net.ipv6.conf.all.disable_ipv6=1
    in_ns sw sysctl -q -w net.ipv6.conf.default.disable_ipv6=1
    ip -n sw link add br0 type bridge ageing_time 30000 stp_state 0 mcast_snooping 0
    ip -n sw link set br0 up
    for i in 17 19; do
        p=$((i + 1))
        ip -n srv link add veth$i address 02:a1:b0:00:00:$i type veth peer name veth$p \
            address 02:a1:b1:00:00:$p netns sw
        ip -n sw link set veth$p master br0 up
        ip -n srv link set veth$i up
    done
}

lab_up() {
    for ns in srv sw c1 c2; do ip netns add $ns; ip -n $ns link set lo up; done
    switch_and_slaves
    for c in 1 2; do
        in_ns c$c sysctl -q -w net.ipv6.conf.default.router_solicitations=0
        ip -n c$c link add eth0 address 02:a1:c0:00:00:0$c type veth peer name c$c \
            address 02:a1:c1:00:00:0$c netns sw
        ip -n sw link set c$c master br0 up
        ip -n c$c addr add 198.18.0.1$c/24 dev eth0
        ip -n c$c link set eth0 up
    done
}

lab_down() { for ns in srv sw c1 c2; do ip netns del $ns 2>/dev/null; done; }

# Starts the agent in srv (extra arguments after the slaves); waits for "ready".
APID=
agent_start() {
    : >/tmp/alb.log
    # nsenter execs alb: $! is the agent's own PID.
    nsenter --net=$N/srv /usr/bin/alb --iface veth17 --iface veth19 "$@" >/tmp/alb.log 2>&1 &
    APID=$!
    i=0
    while [ $i -lt 300 ]; do
        if grep -q "ready:" /tmp/alb.log; then
            ip -n srv addr add 198.18.0.1/24 dev alb0 2>/dev/null
            return 0
        fi
        kill -0 $APID 2>/dev/null || break
        sleep 0.1; i=$((i + 1))
    done
    say "INFO agent did not become ready; its log:"; sed 's/^/@@ALB-LOG /' /tmp/alb.log
    return 1
}
agent_stop() {
    [ -n "$APID" ] || return 0
    kill -TERM $APID 2>/dev/null; wait $APID; rc=$?; APID=
    cat /tmp/alb.log >>/tmp/alb-all.log
    [ $rc = 0 ] || { say "INFO agent exit status $rc; its log:"; sed 's/^/@@ALB-LOG /' /tmp/alb.log | tail -n 20; }
    return $rc
}


# rx and tx packets of a switch port (its rx is the server slave's tx).
port() {
    in_ns sw cat /proc/net/dev |
        awk -v d="$1" '{ sub(/^ +/, ""); n = split($0, f, /[: ]+/); if (f[1] == d) print f[3], f[11] }'
}

# ping -i INTERVAL for COUNT from both clients in the background; lost() reads them.
pings() {
    for c in 1 2; do in_ns c$c /usr/bin/ping -n -i "$1" -c "$2" -W 1 198.18.0.1 >/tmp/ping$c 2>&1 & done
}
lost() { awk '/transmitted/ {print $1 - $4}' /tmp/ping"$1"; }
sent() { awk '/transmitted/ {print $1}' /tmp/ping"$1"; }

# fail_under_pings SLAVE: both clients ping every 20 ms (250 each); SLAVE
# goes down 2 s in, and up again once the pings are over.
fail_under_pings() {
    pings 0.02 250
    sleep 2
    ip -n srv link set "$1" down
    wait_pings
    ip -n srv link set "$1" up
}
# ping_time C: how long client C's ping took, as it reports ("5639ms").
ping_time() { awk '/transmitted/ {for (i=1;i<=NF;i++) if ($i=="time") print $(i+1)}' /tmp/ping"$1"; }
PING_PIDS=
wait_pings() { while pidof ping >/dev/null; do sleep 0.2; done; }

# --compare: the kernel's balance-alb and alb, same guest, same lab, same
# pings; REPEATS rounds, each on a fresh lab.
bond_start() {
    ip -n srv link add bond0 type bond mode balance-alb miimon 100
    for d in veth17 veth19; do ip -n srv link set $d down; ip -n srv link set $d master bond0; done
    ip -n srv link set bond0 up
    ip -n srv addr add 198.18.0.1/24 dev bond0
    sleep 1
}
# measure IMPL SCENARIO SLAVE: pings every 20 ms from both clients, SLAVE down after 2 s.
measure() {
    fail_under_pings "$3"
    for c in 1 2; do
        say "METRIC compare $1 $2 c$c lost=$(lost $c) sent=$(sent $c) time=$(ping_time $c)"
    done
    sleep 3
}
# host_arp IMPL: only c2 pings (every 20 ms); 0.5 s in, the server forgets
# c1 and pings it once, so it broadcasts an ARP request for c1 that c2 hears
# too and follows (docs/bonding.md §2.6: the kernel's 2 s of misdirection). c2's requests
# that reach the server through veth17's port (veth18) instead of its own
# are counted: misdirected, not lost (the master takes them on any slave).
host_arp() {
    impl=$1 # `set --` below replaces the positional parameters
    in_ns c2 /usr/bin/ping -n -i 0.02 -c 150 -W 1 198.18.0.1 >/tmp/ping2 2>&1 &
    sleep 0.5
    set -- $(port veth18); before=$2
    ip -n srv neigh flush to 198.18.0.11
    in_ns srv /usr/bin/ping -n -c 1 -W 1 198.18.0.11 >/dev/null
    wait_pings
    set -- $(port veth18); wrong=$(($2 - before))
    t=$(ping_time 2)
    # The request for c1 and c1's answer cross veth18 too: not c2's.
    wrong=$((wrong > 2 ? wrong - 2 : 0))
    say "METRIC compare $impl host-arp c2 lost=$wrong sent=$(sent 2) time=$t"
    sleep 1
}
compare_round() {
    lab_up
    if [ "$1" = bond ]; then bond_start; else agent_start || { lab_down; return 1; }; fi
    for c in 1 2; do in_ns c$c /usr/bin/ping -n -c 3 -i 0.2 -W 1 198.18.0.1 >/dev/null; done
    measure "$1" non-active veth19
    measure "$1" active veth17
    host_arp "$1"
    [ "$1" = alb ] && agent_stop
    lab_down
}
run_compare() {
    r=1
    while [ $r -le "$(cat /etc/alb-vm-repeats)" ]; do
        check compare.bond.round$r compare_round bond
        check compare.alb.round$r compare_round alb
        r=$((r + 1))
    done
}

say "BEGIN"
say "INFO kernel $(uname -r)"
say "INFO btf $( [ -e /sys/kernel/btf/vmlinux ] && echo yes || echo no)"
case "$MODE" in
    compare) run_compare ;;
    nics) . /nics.sh && nics_main ;;
esac
say "END"
poweroff -f
