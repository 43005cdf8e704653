#!/bin/sh
# /init of `vm-test --tests`: the guest's side of the runner. No scenario
# of its own: it mounts what the tests need, loads the modules, and runs
# each test binary of /etc/alb-vm-tests ("NAME PATH" a line) one test at a
# time, between markers the host parses (xtask/src/vm/suite.rs).
export PATH=/usr/bin:/bin HOME=/root
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
export ALB_TEST_TIME_SCALE="$(cat /etc/alb-vm-time-scale)" RUST_BACKTRACE=1
echo "@@ALB-BEGIN"
echo "@@ALB-INFO kernel $(uname -r), ALB_TEST_TIME_SCALE=$ALB_TEST_TIME_SCALE"
while read -r name path; do
    echo "@@ALB-TEST-BEGIN $name"
    start=$(cut -d' ' -f1 /proc/uptime)
    # libtest's lines go to the console; what the tests' children write to
    # stderr is kept apart, and shown when the binary fails.
    "$path" --test-threads=1 --include-ignored </dev/null 2>/tmp/stderr-"$name"
    rc=$?
    echo "@@ALB-TEST-END $name $rc"
    echo "@@ALB-INFO $name: exit $rc, $(awk -v s="$start" '{ printf "%d", $1 - s }' /proc/uptime) s"
    if [ $rc != 0 ]; then
        tail -n 100 /tmp/stderr-"$name" | sed 's/^/@@ALB-LOG /'
    fi
done </etc/alb-vm-tests
echo "@@ALB-END"
poweroff -f
