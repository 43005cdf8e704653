# vm-test --nics, the guest's half: sourced by /init (guest.sh) once the
# modules are loaded. The slaves are QEMU's emulated NICs, named by their
# MAC (02:a1:b0:00:00:17 -> nic17); the host drives the scenarios through
# the second serial port (/dev/ttyS1): it sends one shell line at a time,
# run here by this shell (so the agent started by one line can be waited
# for by another), and answered with its output and "@@DONE <status>".

nics_name_by_mac() {
    for dev in /sys/class/net/*/; do
        dev=${dev%/}
        mac=$(cat "$dev"/address)
        case $mac in
            02:a1:b0:00:00:*)
                ip link set dev "${dev##*/}" name "nic${mac##*:}"
                ip link set dev "nic${mac##*:}" up
                ;;
        esac
    done
}

# Waits up to 10 s for both NICs' carrier (e1000e renegotiates for a few
# seconds after its link comes back); says how long it waited.
wait_carriers() {
    i=0
    while [ "$(cat /sys/class/net/nic*/carrier 2>/dev/null | grep -c 1)" != 2 ] && [ $i -lt 100 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    [ $i = 0 ] || echo "waited $i x 100 ms for both carriers"
}

# The agent over both NICs, in the guest's own namespace, once both have
# carrier (so the first clients are dealt over both); waits for "ready".
AGENT_PID=
agent_start() {
    wait_carriers
    : >/tmp/alb.log
    /usr/bin/alb --iface nic17 --iface nic19 "$@" >/tmp/alb.log 2>&1 &
    AGENT_PID=$!
    i=0
    while [ $i -lt 600 ]; do
        grep -q "ready:" /tmp/alb.log && return 0
        kill -0 $AGENT_PID 2>/dev/null || break
        sleep 0.1
        i=$((i + 1))
    done
    cat /tmp/alb.log
    return 1
}
agent_stop() {
    [ -n "$AGENT_PID" ] || return 0
    kill -TERM $AGENT_PID
    wait $AGENT_PID
    rc=$?
    AGENT_PID=
    [ $rc = 0 ] || tail -n 20 /tmp/alb.log
    return $rc
}

# Waits up to 5 s until both NICs have MTU $1 (the agent gives them the
# master's); prints what they have.
wait_nic_mtu() {
    i=0
    while [ "$(cat /sys/class/net/nic17/mtu) $(cat /sys/class/net/nic19/mtu)" != "$1 $1" ] && [ $i -lt 50 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    echo "nic17 $(cat /sys/class/net/nic17/mtu) nic19 $(cat /sys/class/net/nic19/mtu)"
}

# What each NIC's driver was given: promiscuity, multicast list, and the
# entries the agent says it added.
filters() {
    for d in nic17 nic19; do
        echo "$d: promiscuity $(ip -d link show $d | grep -o 'promiscuity [0-9]*' | cut -d' ' -f2)," \
            "multicast $(ip maddr show dev $d | awk '/link/ {printf "%s ", $2}')"
    done
    /usr/bin/alb status | grep -E "^(Slave Interface|Filters added)"
}

nics_main() {
    nics_name_by_mac
    # The bonding module (loaded for the other mode) made a bond0.
    ip link del bond0 2>/dev/null
    for d in /sys/class/net/nic*; do
        say "INFO ${d##*/} $(cat "$d"/address) driver $(basename "$(readlink "$d"/device/driver)")"
    done
    stty -F /dev/ttyS1 raw -echo
    exec 3<>/dev/ttyS1
    echo "@@READY" >&3
    while IFS= read -r line <&3; do
        [ "$line" = quit ] && break
        eval "$line" >/tmp/cmd.out 2>&1 </dev/null
        rc=$?
        cat /tmp/cmd.out >&3
        echo "@@DONE $rc" >&3
    done
    agent_stop
    exec 3>&-
}
