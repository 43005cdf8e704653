#!/bin/sh
# /init of the vm-test guest: the seed lab in network namespaces, alb's
# behaviour scenarios, results between markers on the serial console.
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
MODE=$(cat /etc/alb-vm-mode 2>/dev/null || echo test)

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
agent_kill9() { kill -KILL $APID; wait $APID 2>/dev/null; APID=; cat /tmp/alb.log >>/tmp/alb-all.log; }
# Every agent's whole log (kept at each stop): no bpf() the kernel refused
# (kernels before 5.19 refuse map access without CAP_BPF), no map write
# refused; the probe's decision is shown.
log_clean() {
    say "INFO $(grep -h -o 'capabilities kept after setup: .*' /tmp/alb-all.log | sort -u | tr '\n' ' ')"
    bad=$(grep -h -e "Operation not permitted" -e "map write failed" /tmp/alb-all.log | sort -u | head -n 5)
    [ -z "$bad" ] || { echo "$bad" | sed 's/^/@@ALB-LOG /'; return 1; }
}

# rx and tx packets of a switch port (its rx is the server slave's tx).
port() {
    in_ns sw cat /proc/net/dev |
        awk -v d="$1" '{ sub(/^ +/, ""); n = split($0, f, /[: ]+/); if (f[1] == d) print f[3], f[11] }'
}
neigh_mac() { ip -n "$1" neigh show 198.18.0.1 | awk '{for (i=1;i<NF;i++) if ($i=="lladdr") print $(i+1)}'; }
no_filter() { ! tc -n srv filter show dev "$1" ingress | grep -q alb; }
has_clsact() { tc -n srv qdisc show dev "$1" | grep -q clsact; }
# Nothing of alb left in the server namespace or in bpffs.
clean() {
    ! ip -n srv link show alb0 >/dev/null 2>&1 || { say "INFO alb0 left"; return 1; }
    [ ! -e /sys/fs/bpf/alb ] || { say "INFO pins left: $(find /sys/fs/bpf/alb)"; return 1; }
    for d in veth17 veth19; do
        if tc -n srv filter show dev $d ingress | grep -q alb; then say "INFO filter left on $d"; return 1; fi
    done
    if in_ns srv bpftool net show 2>/dev/null | grep -q alb_; then
        say "INFO programs left: $(in_ns srv bpftool net show | tr '\n' ' ')"; return 1
    fi
    return 0
}

# ping -i INTERVAL for COUNT from both clients in the background; lost() reads them.
pings() {
    for c in 1 2; do in_ns c$c /usr/bin/ping -n -i "$1" -c "$2" -W 1 198.18.0.1 >/tmp/ping$c 2>&1 & done
}
lost() { awk '/transmitted/ {print $1 - $4}' /tmp/ping"$1"; }
sent() { awk '/transmitted/ {print $1}' /tmp/ping"$1"; }

# own_slave NAME TARGET: each client pings TARGET 40 times; every request
# and reply crosses its own slave's switch port, next to nothing the other.
own_slave() {
    # check() sets `name`; `set --` below replaces the positional parameters.
    what=$1; target=$2
    for c in 1 2; do
        own=$((16 + 2 * c)); other=$((own == 18 ? 20 : 18))
        set -- $(port veth$own); o_rx=$1 o_tx=$2
        set -- $(port veth$other); x_rx=$1 x_tx=$2
        in_ns c$c /usr/bin/ping -n -c 40 -i 0.05 -W 1 "$target" >/tmp/seedping
        got=$(awk '/transmitted/ {print $4}' /tmp/seedping)
        set -- $(port veth$own); do_rx=$(($1 - o_rx)) do_tx=$(($2 - o_tx))
        set -- $(port veth$other); dx_rx=$(($1 - x_rx)) dx_tx=$(($2 - x_tx))
        say "METRIC $what.c$c replies=$got/40 own-port rx=$do_rx tx=$do_tx other-port rx=$dx_rx tx=$dx_tx"
        check $what.c$c-all-replies test "$got" = 40
        check $what.c$c-own-slave-both-ways test "$do_rx" -ge 40 -a "$do_tx" -ge 40 -a "$dx_rx" -lt 10 -a "$dx_tx" -lt 10
    done
}

seed() {
    for c in 1 2; do in_ns c$c /usr/bin/ping -n -c 2 -i 0.3 -W 2 198.18.0.1 >/dev/null; done
    check seed.c1-learned-veth17-mac test "$(neigh_mac c1)" = 02:a1:b0:00:00:17
    check seed.c2-learned-veth19-mac test "$(neigh_mac c2)" = 02:a1:b0:00:00:19
    own_slave seed 198.18.0.1
}

# IPv6, beyond the kernel's mode 6: the clients are dealt after their IPv4
# entries (veth17, veth19 again), learn their slave's MAC from the server's
# neighbour advertisements (the IPv6 programs, tail-called) and cross only
# their slave.
neigh6_mac() { ip -n "$1" -6 neigh show 2001:2::1 | awk '{for (i=1;i<NF;i++) if ($i=="lladdr") print $(i+1)}'; }
seed6() {
    ip -n srv addr add 2001:2::1/64 dev alb0 nodad
    for c in 1 2; do ip -n c$c addr add 2001:2::1$c/64 dev eth0 nodad; done
    for c in 1 2; do in_ns c$c /usr/bin/ping -n -c 2 -i 0.3 -W 2 2001:2::1 >/dev/null; done
    check seed6.c1-learned-veth17-mac test "$(neigh6_mac c1)" = 02:a1:b0:00:00:17
    check seed6.c2-learned-veth19-mac test "$(neigh6_mac c2)" = 02:a1:b0:00:00:19
    own_slave seed6 2001:2::1
}

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

# failover NAME SLAVE: both clients ping every 20 ms; SLAVE goes down after 2 s.
failover() {
    fail_under_pings "$2"
    for c in 1 2; do
        say "METRIC failover.$1.c$c lost=$(lost $c)/$(sent $c) interval=20ms"
    done
    check failover.$1.c1-recovers test "$(lost 1)" -lt 50
    check failover.$1.c2-recovers test "$(lost 2)" -lt 50
    sleep 2
}
PING_PIDS=
wait_pings() { while pidof ping >/dev/null; do sleep 0.2; done; }

restart() {
    pings 0.02 300
    sleep 1.5
    agent_kill9
    check restart.after-kill9-starts agent_start
    wait_pings
    for c in 1 2; do say "METRIC restart.c$c lost=$(lost $c)/$(sent $c) interval=20ms"; done
    check restart.no-ping-lost test "$(lost 1)" = 0 -a "$(lost 2)" = 0
}

slaves() {
    check slave.del in_ns srv alb slave del veth19
    sleep 0.5
    check slave.del-unlinked test ! -e /sys/fs/bpf/alb/alb0/links/rx-veth19
    check slave.del-no-filter no_filter veth19
    in_ns c2 /usr/bin/ping -n -c 20 -i 0.1 -W 1 198.18.0.1 >/tmp/p; got=$(awk '/transmitted/ {print $4}' /tmp/p)
    say "METRIC slave.del.c2 replies=$got/20"
    check slave.del-c2-served test "$got" -ge 15
    check slave.add in_ns srv alb slave add veth19
    sleep 0.5
    check slave.add-linked test -e /sys/fs/bpf/alb/alb0/links/rx-veth19
    in_ns c2 /usr/bin/ping -n -c 20 -i 0.1 -W 1 198.18.0.1 >/tmp/p; got=$(awk '/transmitted/ {print $4}' /tmp/p)
    say "METRIC slave.add.c2 replies=$got/20"
    check slave.add-c2-served test "$got" -ge 15
}

bad_input() {
    in_ns srv alb --iface veth17 --iface nosuch0 >/tmp/bad.log 2>&1; rc=$?
    say "INFO unknown interface: rc=$rc: $(tail -n 1 /tmp/bad.log)"
    check bad.unknown-iface-refused test $rc -ne 0
    check bad.unknown-iface-nothing-left clean
    in_ns srv alb --iface veth17 --iface veth17 >/dev/null 2>&1
    check bad.twice-refused test $? -ne 0
    in_ns srv alb --iface alb0 --iface lo >/dev/null 2>&1
    check bad.loopback-refused test $? -ne 0
    check bad.nothing-left clean
}

# A clsact qdisc that was there before alb stays, with nothing of alb in it.
foreign_qdisc() {
    tc -n srv qdisc add dev veth17 clsact
    in_ns srv alb --iface veth17 --iface nosuch0 >/dev/null 2>&1
    check qdisc.refused-start-keeps-qdisc has_clsact veth17
    check qdisc.refused-start-nothing-left clean
    check qdisc.start-over-existing-clsact agent_start
    in_ns c1 /usr/bin/ping -n -c 5 -i 0.1 -W 1 198.18.0.1 >/dev/null
    check qdisc.traffic test $? = 0
    check qdisc.clean-stop agent_stop
    check qdisc.stop-keeps-qdisc has_clsact veth17
    check qdisc.stop-nothing-left clean
    tc -n srv qdisc del dev veth17 clsact
}

# VLANs on the master: alb0.100 in srv and alb0.200 (moved to srv2), both
# 198.18.0.1; clients c1, c2 on eth0.100 and c3, c4 on eth0.200 reuse the
# same two addresses (.11, .12), behind a switch that carries both tags.
# Each VLAN's two clients are spread over the slaves, every client reaches
# its own VLAN's server both ways, and when veth19 fails its clients (one
# per VLAN) are told veth17's MAC by tagged ARP updates.
VNS="srv srv2 sw c1 c2 c3 c4"
vlan_of() { if [ "$1" -le 2 ]; then echo 100; else echo 200; fi; }
vlan_ip() { if [ $(($1 % 2)) = 1 ]; then echo 198.18.0.11; else echo 198.18.0.12; fi; }
vlan_lab_up() {
    for ns in $VNS; do ip netns add $ns; ip -n $ns link set lo up; done
    switch_and_slaves
    for c in 1 2 3 4; do
        in_ns c$c sysctl -q -w net.ipv6.conf.all.disable_ipv6=1
        in_ns c$c sysctl -q -w net.ipv6.conf.default.disable_ipv6=1
        ip -n c$c link add eth0 address 02:a1:c0:00:00:0$c type veth peer name c$c \
            address 02:a1:c1:00:00:0$c netns sw
        ip -n sw link set c$c master br0 up
        ip -n c$c link set eth0 up
        v=$(vlan_of $c)
        ip -n c$c link add link eth0 name eth0.$v type vlan id $v
        ip -n c$c addr add "$(vlan_ip $c)"/24 dev eth0.$v
        ip -n c$c link set eth0.$v up
    done
}
vlan_lab_down() { for ns in $VNS; do ip netns del $ns 2>/dev/null; done; }
vneigh_mac() {
    ip -n c$1 neigh show 198.18.0.1 dev eth0.$(vlan_of $1) |
        awk '{for (i=1;i<NF;i++) if ($i=="lladdr") print $(i+1)}'
}
vlan_servers() {
    ip -n srv link add link alb0 name alb0.100 type vlan id 100 &&
        ip -n srv link add link alb0 name alb0.200 type vlan id 200 &&
        ip -n srv link set alb0.200 netns srv2 &&
        ip -n srv addr add 198.18.0.1/24 dev alb0.100 &&
        ip -n srv2 addr add 198.18.0.1/24 dev alb0.200 &&
        ip -n srv link set alb0.100 up && ip -n srv2 link set alb0.200 up
}
vlan_scenario() {
    vlan_lab_up
    if ! agent_start; then result FAIL vlan.agent-ready; vlan_lab_down; return; fi
    ip -n srv addr del 198.18.0.1/24 dev alb0 2>/dev/null
    check vlan.devices-on-alb0 vlan_servers
    # In turn: c1, c2 (VLAN 100), c3, c4 (VLAN 200): dealt veth17, veth19, ...
    for c in 1 2 3 4; do
        in_ns c$c /usr/bin/ping -n -c 3 -i 0.2 -W 2 198.18.0.1 >/tmp/p
        got=$(awk '/transmitted/ {print $4}' /tmp/p)
        say "METRIC vlan.c$c vlan=$(vlan_of $c) ip=$(vlan_ip $c) replies=$got/3 server-mac=$(vneigh_mac $c)"
        check vlan.c$c-reaches-its-server test "$got" = 3
    done
    check vlan.100-spread test -n "$(vneigh_mac 1)" -a "$(vneigh_mac 1)" != "$(vneigh_mac 2)"
    check vlan.200-spread test -n "$(vneigh_mac 3)" -a "$(vneigh_mac 3)" != "$(vneigh_mac 4)"
    in_ns srv /usr/bin/alb status >/tmp/vstatus 2>&1
    sed 's/^/@@ALB-LOG /' /tmp/vstatus
    n11=$(grep -c " 198.18.0.11 " /tmp/vstatus)
    check vlan.same-ip-two-clients test "$n11" = 2 -a "$(grep -c '^100 ' /tmp/vstatus)" = 2 \
        -a "$(grep -c '^200 ' /tmp/vstatus)" = 2
    for ns in srv srv2; do
        for ip4 in 198.18.0.11 198.18.0.12; do
            in_ns $ns /usr/bin/ping -n -c 2 -i 0.2 -W 2 $ip4 >/tmp/p
            check vlan.$ns-reaches-$ip4 test "$(awk '/transmitted/ {print $4}' /tmp/p)" = 2
        done
    done
    # Failover of veth19 under pings from all four clients.
    for c in 1 2 3 4; do
        in_ns c$c /usr/bin/ping -n -i 0.02 -c 250 -W 1 198.18.0.1 >/tmp/ping$c 2>&1 &
    done
    sleep 2
    ip -n srv link set veth19 down
    wait_pings
    for c in 1 2 3 4; do
        say "METRIC vlan.failover.c$c vlan=$(vlan_of $c) lost=$(lost $c)/$(sent $c) interval=20ms server-mac=$(vneigh_mac $c)"
        check vlan.failover.c$c-recovers test "$(lost $c)" -lt 50
    done
    # Within 3 s of the failure the entries are still REACHABLE: only the
    # tagged ARP updates can have changed them.
    check vlan.failover.c2-told-veth17 test "$(vneigh_mac 2)" = 02:a1:b0:00:00:17
    check vlan.failover.c4-told-veth17 test "$(vneigh_mac 4)" = 02:a1:b0:00:00:17
    ip -n srv link set veth19 up
    vlan_rejoin
    check vlan.stop agent_stop
    vlan_lab_down
}

# A group joined on alb0.100: when the active slave (veth17) fails, the
# agent re-sends the membership report through veth19, tagged with VLAN
# 100 (bonding's resend_igmp, per VLAN device), which the switch sees
# coming in on veth19's port (veth20). The stack's own reports went out
# by veth17 at the join, seconds before.
# tcpdump -v prints a report over several lines: its tag, then the group.
rejoin_seen() { tr '\n' ' ' </tmp/rejoin | grep -q 'vlan 100.*239\.1\.2\.3'; }
vlan_rejoin() {
    # tcpdump -Z root looks root up; the initramfs has no passwd.
    [ -e /etc/passwd ] || echo 'root:x:0:0:root:/:/bin/sh' >/etc/passwd
    sleep 1.5 # veth19 usable again (no updelay)
    ip -n srv addr add 239.1.2.3/32 dev alb0.100 autojoin
    sleep 1
    in_ns sw timeout 5 /usr/bin/tcpdump -Z root -Q in -i veth20 -nn -e -v -c 1 \
        'vlan 100 and igmp' >/tmp/rejoin 2>/tmp/rejoin.err &
    dump=$!
    sleep 1 # tcpdump listening
    ip -n srv link set veth17 down
    wait $dump
    say "METRIC vlan.rejoin $(head -c 300 /tmp/rejoin /tmp/rejoin.err | tr '\n' ' ')"
    check vlan.rejoin.tagged-report-on-new-active rejoin_seen
    ip -n srv link set veth17 up
    sleep 1.5
}

run_tests() {
    : >/tmp/alb.log
    lab_up
    if agent_start; then
        result PASS load.programs-attached "$(grep -o 'attached through [a-z]*' /tmp/alb.log | head -n 1)"
    else
        result FAIL load.programs-attached
        lab_down; return
    fi
    seed
    seed6
    failover non-active veth19
    failover active veth17
    restart
    slaves
    check stop.clean agent_stop
    check stop.nothing-left clean
    check down.start agent_start
    agent_kill9
    check down.left-running ip -n srv link show alb0
    in_ns srv /usr/bin/alb down >/tmp/down.log 2>&1
    check down.runs test $? = 0
    check down.nothing-left clean
    bad_input
    foreign_qdisc
    [ -n "$APID" ] && agent_stop
    probe_refusal
    lab_down
    vlan_scenario
    check log.no-bpf-refusal log_clean
}

# Without TCX, and with cls_bpf unloaded: a refusal in one line.
probe_refusal() {
    grep -q "attached through tcx" /tmp/alb-all.log && return 0
    rmmod cls_bpf || { say "INFO cannot unload cls_bpf"; return 0; }
    in_ns srv /usr/bin/alb --iface veth17 --iface veth19 >/tmp/probe.log 2>&1; rc=$?
    say "INFO without clsact: rc=$rc: $(cat /tmp/probe.log)"
    check probe.refuses-in-one-line test $rc -ne 0 -a "$(grep -c lacks /tmp/probe.log)" = 1
    check probe.nothing-left clean
    insmod /modules/cls_bpf.ko
}

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
    test) run_tests ;;
    compare) run_compare ;;
    nics) . /nics.sh && nics_main ;;
esac
say "END"
poweroff -f
