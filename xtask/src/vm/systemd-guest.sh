#!/bin/sh
# alb-vmtest.service of the vm-test --systemd guest (Debian 12, systemd as
# PID 1): installs alb's package with dpkg, builds the lab (the slaves
# veth17 and veth19 in this root namespace; their peers on a bridge in the
# namespace sw, with the clients c1 and c2), runs alb as alb@alb0.service
# and checks what systemd, the journal and the clients see. Results between
# markers on the console; its unit powers the guest off when it ends.
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
DIR=/opt/alb-vmtest
U=alb@alb0.service
N=/run/netns

. $DIR/lib.sh

boot_info() {
    say "METRIC boot.startup $(systemd-analyze time | head -n 1 | sed 's/^Startup finished in //')"
    say "INFO system $(systemctl is-system-running); failed units: $(systemctl list-units --failed --plain --no-legend | awk '{print $1}' | tr '\n' ' ')"
    say "INFO bpffs: $(findmnt -n -o FSTYPE /sys/fs/bpf) ($(systemctl show -P ActiveState sys-fs-bpf.mount) sys-fs-bpf.mount)"
}

install() {
    before=$(prop LoadState)
    t0=$(now)
    dpkg -i $DIR/alb.deb >/tmp/dpkg.log 2>&1
    rc=$?
    say "METRIC package.dpkg-i seconds=$(since "$t0")"
    sed 's/^/dpkg: /' /tmp/dpkg.log
    check package.dpkg-i test $rc = 0
    say "INFO $U LoadState before the package: $before, after: $(prop LoadState); $(/usr/sbin/alb --version)"
    check package.unit-loaded test "$(prop LoadState)" = loaded
    check package.no-reload-needed test "$(prop NeedDaemonReload)" = no
}

# The master's config file, from the package's example, and the slaves'
# devices ordered before the unit (as the unit's comments tell users to).
CONF=/etc/alb/alb0.toml
configure() {
    sed 's/^slaves = .*/slaves = ["veth17", "veth19"]/' \
        /usr/share/doc/alb/examples/alb.toml >$CONF
    alb config check $CONF >/tmp/check.log 2>&1
    rc=$?
    say "INFO alb config check $CONF: rc=$rc $(tr '\n' ' ' </tmp/check.log)"
    check config.check test $rc = 0
    mkdir -p /etc/systemd/system/$U.d
    cat >/etc/systemd/system/$U.d/slaves.conf <<'EOF'
[Unit]
Requires=sys-subsystem-net-devices-veth17.device sys-subsystem-net-devices-veth19.device
After=sys-subsystem-net-devices-veth17.device sys-subsystem-net-devices-veth19.device
EOF
    t0=$(now)
    systemctl daemon-reload
    say "METRIC configure.daemon-reload seconds=$(since "$t0")"
}

# Started before its slaves exist: the start job waits for their devices;
# once they appear the agent starts, and is active only after READY=1.
start() {
    systemctl start --no-block $U
    sleep 2
    job=$(systemctl list-jobs --no-legend --plain | awk -v u=$U '$2 == u {print $3 "/" $4}')
    say "INFO before the slaves exist: $U is $(prop ActiveState), job $job"
    check start.waits-for-the-slaves test "$(prop ActiveState)" = inactive -a "$job" = start/waiting
    t0=$(now)
    # Watched from before the slaves exist: the agent starts as soon as
    # they do, while the lab is still being built.
    wait_state active 90 >/tmp/states &
    watcher=$!
    lab_up
    wait $watcher
    rc=$?
    # What must exist once systemd calls it active (READY=1 came after them).
    ready_ok=true
    for what in /run/alb/alb0.sock /sys/fs/bpf/alb/alb0; do
        [ -e $what ] || { say "INFO $what missing when $U became active"; ready_ok=false; }
    done
    ip link show alb0 >/dev/null 2>&1 || { say "INFO alb0 missing when $U became active"; ready_ok=false; }
    say "INFO states seen from the slaves' creation to active ($(since "$t0") s): $(tr '\n' ';' </tmp/states)"
    check start.active test $rc = 0
    if [ $rc != 0 ]; then
        say "INFO $U did not become active; its journal:"
        journal | tail -n 20 | sed 's/^/@@ALB-LOG /'
        return 1
    fi
    check start.ready-after-setup $ready_ok
    # From systemd's own times: the agent was started, then made its control
    # socket (the last thing before READY=1), and only then was the unit
    # active. (The states polled above catch `activating` only when the
    # agent is slower than systemctl.)
    started=$(stamp ExecMainStartTimestamp)
    entered=$(stamp ActiveEnterTimestamp)
    socket=$(stat -c %.9Z /run/alb/alb0.sock)
    say "METRIC start.activating seconds=$(minus "$entered" "$started") (socket made after $(minus "$socket" "$started") s)"
    check start.active-only-after-the-socket awk -v a="$started" -v s="$socket" -v e="$entered" 'BEGIN { exit !(a < s && s <= e) }'
    snap
    for name in ActiveState SubState StatusText NotifyAccess WatchdogUSec MainPID Type; do
        say "INFO $name=$(p $name)"
    done
    check start.substate-running test "$(p SubState)" = running
    check start.status-text-set test -n "$(p StatusText)"
    check start.notify-access-main test "$(p NotifyAccess)" = main
    check start.watchdog-10s test "$(p WatchdogUSec)" = 10s
    check start.main-pid test "$(p MainPID)" -gt 0
    say "INFO $(journal | grep -o 'programs attached through [a-z]*' | head -n 1)"
    # The unit loads them (modprobe@.service) whatever the kernel: the
    # sandbox hides /lib/modules from the agent's probe.
    for m in sch_ingress cls_bpf; do
        check start.unit-loaded-$m test -d /sys/module/$m
    done
    # udev gives a new device whose MAC the kernel chose at random one of
    # its own (99-default.link, MACAddressPolicy=persistent); the agent
    # creates the master with its slave's, which udev leaves alone.
    mac=$(cat /sys/class/net/alb0/address)
    say "INFO alb0's MAC: $mac; what the agent said of it: $(journal | grep 'has a new MAC' | tr '\n' '|')"
    check start.master-mac-is-veth17s test "$mac" = 02:a1:b0:00:00:17
    capabilities start
    # The unit's own ExecStart: the slaves come from the file.
    cmdline=$(tr '\0' ' ' </proc/"$(p MainPID)"/cmdline)
    say "INFO the agent runs as: $cmdline"
    check config.agent-runs-from-the-file sh -c "echo '$cmdline' | grep -q -- '--config $CONF' && ! echo '$cmdline' | grep -q -- --iface"
    check config.slaves-from-the-file sh -c "journalctl -u $U -o cat | grep -q '^ready: .* over veth17, veth19 '"
}

# Each client reaches 198.18.0.1 on alb0 through its own slave.
serve() {
    ip addr add 198.18.0.1/24 dev alb0
    for c in 1 2; do in_ns c$c ping -n -c 2 -i 0.3 -W 2 198.18.0.1 >/dev/null; done
    check serve.c1-learned-veth17-mac test "$(neigh_mac c1)" = 02:a1:b0:00:00:17
    check serve.c2-learned-veth19-mac test "$(neigh_mac c2)" = 02:a1:b0:00:00:19
    for c in 1 2; do
        own=$((16 + 2 * c)); other=$((own == 18 ? 20 : 18))
        set -- $(port veth$own); o_rx=$1 o_tx=$2
        set -- $(port veth$other); x_rx=$1 x_tx=$2
        got=$(replies c$c 40)
        set -- $(port veth$own); do_rx=$(($1 - o_rx)) do_tx=$(($2 - o_tx))
        set -- $(port veth$other); dx_rx=$(($1 - x_rx)) dx_tx=$(($2 - x_tx))
        say "METRIC serve.c$c replies=$got/40 own-port rx=$do_rx tx=$do_tx other-port rx=$dx_rx tx=$dx_tx"
        check serve.c$c-all-replies test "$got" = 40
        check serve.c$c-own-slave-both-ways test "$do_rx" -ge 40 -a "$do_tx" -ge 40 -a "$dx_rx" -lt 10 -a "$dx_tx" -lt 10
    done
}

# The agent's lines reach the journal at their priority.
journal_priorities() {
    alb slave del nosuch >/tmp/del.log 2>&1
    say "INFO alb slave del nosuch: $(cat /tmp/del.log)"
    sleep 1
    say "INFO -p warning: $(journal -p warning | tail -n 3 | tr '\n' '|')"
    check journal.warning-at-warning sh -c "journalctl -u $U -o cat -p warning | grep -q nosuch"
    check journal.ready-at-info sh -c "journalctl -u $U -o cat -p info | grep -q '^ready:'"
    check journal.ready-not-at-warning sh -c "! journalctl -u $U -o cat -p warning | grep -q '^ready:'"
    check journal.no-raw-prefixes sh -c "! journalctl -u $U -o cat | grep -q '^<[0-7]>'"
}

# capabilities NAME: once ready, the agent keeps only CAP_NET_ADMIN (the
# set docs/architecture.md documents) in its effective, permitted and
# bounding sets (the unit's bounding set has CAP_SETPCAP for that), and no
# thread holds more.
NET_ADMIN=0000000000001000
capabilities() {
    pid=$(prop MainPID)
    say "INFO $1: capabilities of the agent: $(grep '^Cap' /proc/"$pid"/status | tr '\n\t' '  ')"
    wider=
    for task in /proc/"$pid"/task/*; do
        for set in CapEff CapPrm; do
            mask=$(awk -v s=$set: '$1 == s {print $2}' "$task"/status)
            [ "$mask" = $NET_ADMIN ] || [ "$mask" = 0000000000000000 ] ||
                wider="$wider $(cat "$task"/comm)/$set=$mask"
        done
    done
    [ -z "$wider" ] || say "INFO threads holding more than CAP_NET_ADMIN:$wider"
    check "$1.caps-effective-net-admin" test "$(awk '/^CapEff/ {print $2}' /proc/"$pid"/status)" = $NET_ADMIN
    check "$1.caps-bounding-net-admin" test "$(awk '/^CapBnd/ {print $2}' /proc/"$pid"/status)" = $NET_ADMIN
    check "$1.caps-no-thread-holds-more" test -z "$wider"
}

# systemctl reload (alb reload) applies a changed file at run time, under
# pings; a file with an error changes nothing, says why and fails it.
reload() {
    pid=$(prop MainPID)
    check reload.active-veth17-before test "$(active_slave)" = veth17
    pings_start
    sleep 1
    sed -i 's/^# primary = .*/primary = "veth19"/' $CONF
    systemctl reload $U
    rc=$?
    check reload.applied journal_wait 'reloaded: primary veth19'
    pings_stop
    say "INFO $(journal | grep 'reloaded:' | tail -n 1)"
    check reload.runs test $rc = 0 -a "$(prop ActiveState)" = active -a "$(prop MainPID)" = "$pid"
    check reload.veth19-active test "$(active_slave)" = veth19
    check reload.no-ping-lost no_loss reload
    cp $CONF /tmp/good.toml
    echo 'no_such_key = 1' >>$CONF
    systemctl reload $U
    rc=$?
    # ExecReload is `alb reload`: a refused file fails the reload.
    check reload.bad-file-fails-systemctl-reload test $rc != 0
    check reload.bad-file-refused journal_wait 'not reloaded'
    say "INFO $(journal -p warning | grep -A1 'not reloaded' | tail -n 2 | tr '\n' '|')"
    check reload.bad-file-keeps-running test "$(prop MainPID)" = "$pid" -a "$(active_slave)" = veth19
    cp /tmp/good.toml $CONF
}

# systemctl restart under pings: the data path forwards while no agent runs.
restart() {
    pid=$(prop MainPID)
    pings_start
    sleep 1
    t0=$(now)
    systemctl restart $U
    rc=$?
    say "METRIC restart.systemctl-restart seconds=$(since "$t0")"
    pings_stop
    check restart.active test $rc = 0 -a "$(prop ActiveState)" = active
    check restart.new-agent test "$(prop MainPID)" != "$pid"
    check restart.no-ping-lost no_loss restart
    # The new agent read the file as it is now.
    check restart.primary-from-the-file test "$(active_slave)" = veth19
}

# An upgrade: dpkg -i of the package again while the agent runs; postinst
# restarts it (try-restart), again under pings.
upgrade() {
    pid=$(prop MainPID)
    pings_start
    sleep 1
    t0=$(now)
    dpkg -i $DIR/alb.deb >/tmp/dpkg.log 2>&1
    rc=$?
    say "METRIC upgrade.dpkg-i seconds=$(since "$t0")"
    sed 's/^/dpkg: /' /tmp/dpkg.log
    pings_stop
    check upgrade.dpkg-i test $rc = 0
    check upgrade.agent-restarted test "$(prop MainPID)" != "$pid" -a "$(prop ActiveState)" = active
    check upgrade.no-ping-lost no_loss upgrade
}

# A hung agent: SIGSTOP; systemd's watchdog (WatchdogSec=10s) kills it and
# Restart=on-failure starts another, which adopts the data path; the data
# path forwards all along.
watchdog() {
    pid=$(prop MainPID)
    restarts=$(prop NRestarts)
    pings_start
    sleep 1
    t0=$(now)
    kill -STOP "$pid"
    stopped=$(cut -d' ' -f1 /proc/uptime)
    end=$(($(date +%s) + 60))
    while [ "$(date +%s)" -le $end ]; do
        new=$(prop MainPID)
        [ "$new" != "$pid" ] && [ "$new" != 0 ] && [ "$(prop ActiveState)" = active ] && break
        sleep 0.2
    done
    secs=$(since "$t0")
    # systemd's own times (the journal's monotonic clock, as /proc/uptime):
    # when the watchdog fired and when the next agent was ready.
    fired=$(systemd_time 'Watchdog timeout')
    ready=$(systemd_time 'Started alb@')
    say "METRIC watchdog.timeline stop=0 timeout=+$(minus "$fired" "$stopped")s ready=+$(minus "$ready" "$stopped")s (WatchdogSec=10s, RestartSec=1s; seen active by polling after ${secs}s)"
    pings_stop
    say "INFO $(journalctl -u $U --no-pager -o cat _PID=1 | grep -i watchdog | tail -n 1)"
    check watchdog.restarted test "$(prop NRestarts)" = $((restarts + 1)) -a "$(prop ActiveState)" = active
    check watchdog.new-agent test "$(prop MainPID)" != "$pid"
    check watchdog.timeout-logged sh -c "journalctl -u $U -o cat _PID=1 | grep -q -i 'watchdog timeout'"
    i=0
    while [ $i -lt 50 ] && ! journalctl -o cat _PID="$(prop MainPID)" | grep -q adopted; do
        sleep 0.2; i=$((i + 1))
    done
    say "INFO $(journalctl -o cat _PID="$(prop MainPID)" | grep adopted)"
    check watchdog.adopted sh -c "journalctl -o cat _PID=$(prop MainPID) | grep -q adopted"
    check watchdog.no-ping-lost no_loss watchdog
    capabilities watchdog
}

# A stop leaves the data path forwarding; alb down removes it.
stop_and_down() {
    systemctl stop $U
    check stop.inactive test "$(prop ActiveState)" = inactive -a "$(prop Result)" = success
    check stop.master-left ip link show alb0
    check stop.pins-left test -d /sys/fs/bpf/alb/alb0
    for c in 1 2; do
        got=$(replies c$c 20)
        say "METRIC stop.c$c replies=$got/20"
        check stop.c$c-still-served test "$got" = 20
    done
    alb down --master alb0 >/tmp/down.log 2>&1
    rc=$?
    say "INFO alb down: rc=$rc $(tr '\n' ' ' </tmp/down.log)"
    check down.runs test $rc = 0
    check down.no-master sh -c "! ip link show alb0 2>/dev/null"
    check down.no-pins test ! -e /sys/fs/bpf/alb/alb0
    check down.no-programs sh -c "! bpftool net show 2>/dev/null | grep -q alb_"
}

# The sandbox every scenario above ran under, and systemd's opinion of it.
sandbox() {
    snap
    for name in ProtectSystem ProtectHome PrivateTmp NoNewPrivileges ProtectKernelModules \
        MemoryDenyWriteExecute RestrictAddressFamilies CapabilityBoundingSet; do
        say "INFO $name=$(p $name)"
    done
    say "INFO $(systemd-analyze security $U --no-pager 2>&1 | tail -n 1)"
    # --man=no: the guest has no man(1) to look Documentation= up with.
    systemd-analyze verify --man=no $U >/tmp/verify.log 2>&1
    rc=$?
    say "INFO systemd-analyze verify: rc=$rc $(tr '\n' ' ' </tmp/verify.log)"
    check unit.verify test $rc = 0 -a ! -s /tmp/verify.log
    # Enabled, it joins the boot transaction of multi-user.target with its
    # slaves' devices, the modules and network-pre.target: no ordering cycle.
    systemctl enable $U >/dev/null 2>&1
    check unit.enable test "$(systemctl is-enabled $U)" = enabled
    systemd-analyze verify --man=no multi-user.target >/tmp/verify.log 2>&1
    say "INFO systemd-analyze verify multi-user.target with $U enabled: $(grep -c . /tmp/verify.log) lines"
    grep -i cycle /tmp/verify.log | sed 's/^/@@ALB-LOG /'
    check unit.no-ordering-cycle-at-boot sh -c "! grep -qi cycle /tmp/verify.log"
}

# For the log only (no markers): what the unit and systemd said, with
# times since boot.
transcript() {
    echo "--- journalctl -u $U ---"
    journalctl -u $U --no-pager -o short-monotonic
}

say "BEGIN"
say "INFO kernel $(uname -r); uptime $(cut -d' ' -f1 /proc/uptime) s"
boot_info
install
configure
if start; then
    serve
    journal_priorities
    reload
    restart
    upgrade
    watchdog
    stop_and_down
fi
sandbox
transcript
say "END"
# alb-vmtest.service powers the guest off (SuccessAction=).
