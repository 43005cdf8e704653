#!/bin/sh
# Helpers of the vm-test --systemd guest's test (systemd-guest.sh sources
# this as /opt/alb-vmtest/lib.sh): result markers, the unit's
# properties and journal, the lab, pings and their losses.

say() { echo "@@ALB-$*"; }
result() { say "RESULT $1 $2 ${3:-}"; }
check() { name=$1; shift; if "$@"; then result PASS "$name"; else result FAIL "$name"; fi; }
in_ns() { ns=$1; shift; nsenter --net=$N/"$ns" "$@"; }
prop() { systemctl show -P "$1" $U; }
# Every property at once (one systemctl call: each takes ~0.3 s under TCG),
# then read them with p NAME.
snap() { systemctl show $U >/tmp/props; }
p() { sed -n "s/^$1=//p" /tmp/props; }
now() { date +%s.%N; }
# A timestamp property of the unit, in seconds since the epoch (us).
stamp() { date -d "$(systemctl show -P "$1" --timestamp=us+utc $U)" +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
# The unit's journal (only the lines of the agent: -o cat, no systemd lines
# with _PID=1 unless asked for).
journal() { journalctl -u $U --no-pager -o cat "$@"; }

lab_up() {
    for ns in sw c1 c2; do ip netns add $ns; ip -n $ns link set lo up; done
    in_ns sw sysctl -q -w net.ipv6.conf.all.disable_ipv6=1
    in_ns sw sysctl -q -w net.ipv6.conf.default.disable_ipv6=1
    ip -n sw link add br0 type bridge ageing_time 30000 stp_state 0 mcast_snooping 0
    ip -n sw link set br0 up
    for i in 17 19; do
        p=$((i + 1))
        ip link add veth$i address 02:a1:b0:00:00:$i type veth peer name veth$p \
            address 02:a1:b1:00:00:$p netns sw
        ip -n sw link set veth$p master br0 up
    done
    for c in 1 2; do
        in_ns c$c sysctl -q -w net.ipv6.conf.default.router_solicitations=0
        ip -n c$c link add eth0 address 02:a1:c0:00:00:0$c type veth peer name c$c \
            address 02:a1:c1:00:00:0$c netns sw
        ip -n sw link set c$c master br0 up
        ip -n c$c addr add 198.18.0.1$c/24 dev eth0
        ip -n c$c link set eth0 up
    done
}

# rx and tx packets of a switch port (its rx is the server slave's tx).
port() {
    in_ns sw cat /proc/net/dev |
        awk -v d="$1" '{ sub(/^ +/, ""); n = split($0, f, /[: ]+/); if (f[1] == d) print f[3], f[11] }'
}
neigh_mac() { ip -n "$1" neigh show 198.18.0.1 | awk '{for (i=1;i<NF;i++) if ($i=="lladdr") print $(i+1)}'; }
replies() { in_ns "$1" ping -n -c "$2" -i 0.02 -W 1 198.18.0.1 | awk '/transmitted/ {print $4}'; }

# Pings every 20 ms from both clients until pings_stop (SIGINT: ping
# prints its summary). nsenter execs ping, so $! is ping (in_ns would put
# a subshell in between, one that ignores SIGINT).
PING_PIDS=
pings_start() {
    PING_PIDS=
    for c in 1 2; do
        nsenter --net=$N/c$c ping -n -i 0.02 -W 1 198.18.0.1 >/tmp/ping$c 2>&1 &
        PING_PIDS="$PING_PIDS $!"
    done
}
pings_stop() {
    sleep 1
    kill -INT $PING_PIDS
    wait $PING_PIDS
}
sent() { awk '/transmitted/ {print $1}' /tmp/ping"$1"; }
ping_time() { awk '/transmitted/ {for (i=1;i<=NF;i++) if ($i=="time") print $(i+1)}' /tmp/ping"$1"; }
# The sequence numbers client $1 got no reply for, but the last one: SIGINT
# may come while its reply is on the way (a stop, not a loss).
missing() {
    awk -F'icmp_seq=' '/icmp_seq=/ { split($2, a, " "); seen[a[1]] = 1 }
        /transmitted/ { n = $1 + 0 }
        END { for (i = 1; i < n; i++) if (!(i in seen)) printf "%d ", i }' /tmp/ping"$1"
}
# no_loss NAME: both clients' losses as a metric; true when none was lost.
no_loss() {
    ok=true
    for c in 1 2; do
        m=$(missing $c)
        say "METRIC $1.c$c lost=$(echo $m | wc -w)/$(sent $c) time=$(ping_time $c) interval=20ms${m:+ seq $m}"
        [ -z "$m" ] || ok=false
    done
    $ok
}

# The unit's state in one line ("ActiveState=active MainPID=303 SubState=running").
state() { systemctl show -p ActiveState -p SubState -p MainPID $U | sort | tr '\n' ' '; }
# Waits (up to $2 s) until the unit's ActiveState is $1; prints each state
# seen, as often as systemctl answers (a few times a second under TCG).
wait_state() {
    end=$(($(date +%s) + $2))
    last=
    while [ "$(date +%s)" -le $end ]; do
        s=$(state)
        [ "$s" = "$last" ] || { echo "$s"; last=$s; }
        case $s in "ActiveState=$1 "*) return 0 ;; esac
        sleep 0.05
    done
    return 1
}

# The monotonic time of systemd's last journal line about the unit matching $1.
systemd_time() {
    journalctl -u $U -o short-monotonic --no-pager _PID=1 | grep "$1" | tail -n 1 |
        sed -E 's/^\[ *([0-9.]+)\].*/\1/'
}
minus() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", a - b }'; }

active_slave() { alb status | awk -F': ' '/^Currently Active Slave/ {print $2}'; }
# Waits (up to 30 s) for a journal line of the unit matching $1.
journal_wait() {
    i=0
    while [ $i -lt 150 ] && ! journal | grep -q "$1"; do sleep 0.2; i=$((i + 1)); done
    journal | grep -q "$1"
}
