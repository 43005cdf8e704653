#!/bin/sh
# The guests' runner of `vm-test --tests`: no scenario of its own. It runs
# each test binary of /etc/alb-vm-tests ("NAME PATH" a line) one test at a
# time (with what passing tests printed: their figures), between markers
# the host parses (xtask/src/vm/suite.rs). As the
# busybox guest's /init (PID 1) it first mounts what the tests need and
# loads the modules, and powers the guest off at the end; the systemd
# guest's alb-vmtest.service runs it as it is (systemd has mounted and
# loads modules on demand; the unit powers the guest off).
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
if [ $$ = 1 ]; then
    mount -t proc proc /proc
    mount -t sysfs sys /sys
    mount -t devtmpfs dev /dev
    mount -t tmpfs tmpfs /run
    mount -t tmpfs tmpfs /tmp
    mount -t bpf bpf /sys/fs/bpf
    mkdir -p /var /dev/pts && ln -s /run /var/run
    mount -t devpts devpts /dev/pts
    for m in $(cat /modules/order); do
        insmod /modules/"$m".ko || echo "@@ALB-INFO insmod $m failed"
    done
fi
export ALB_TEST_TIME_SCALE="$(cat /etc/alb-vm-time-scale)" RUST_BACKTRACE=1
echo "@@ALB-BEGIN"
echo "@@ALB-INFO kernel $(uname -r), ALB_TEST_TIME_SCALE=$ALB_TEST_TIME_SCALE"
while read -r name path; do
    echo "@@ALB-TEST-BEGIN $name"
    start=$(cut -d' ' -f1 /proc/uptime)
    # libtest's lines go to the console; what the tests' children write to
    # stderr is kept apart, and shown when the binary fails.
    "$path" --test-threads=1 --include-ignored --show-output </dev/null 2>/tmp/stderr-"$name"
    rc=$?
    echo "@@ALB-TEST-END $name $rc"
    echo "@@ALB-INFO $name: exit $rc, $(awk -v s="$start" '{ printf "%d", $1 - s }' /proc/uptime) s"
    if [ $rc != 0 ]; then
        tail -n 100 /tmp/stderr-"$name" | sed 's/^/@@ALB-LOG /'
    fi
done </etc/alb-vm-tests
echo "@@ALB-END"
[ $$ != 1 ] || poweroff -f
