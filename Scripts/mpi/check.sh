#!/usr/bin/env bash
# Data-parallel training over MPI, checked for real with 2 ranks (issue #16): run by .ci/run, and by hand with
#
#   Scripts/mpi/check.sh [WORK_DIR]      (CNN_DATA_DIR must hold the data; root, for the network namespaces)
#
# It installs Open MPI from Debian if needed, builds `cnn` with the package trait MPI into .build-mpi, and checks:
#   1. equivalence: lenet5 and alexnet-cifar at 32 (no batch norm), 2 ranks x 16 images against 1 process x 32, after
#      20 SGD steps with momentum: the same weights within 1e-5 relative (`cnn compare`);
#   2. determinism: the same seed and rank count twice give the same run bit for bit;
#   3. Ctrl-C on mpirun mid-run: every rank stops after the same step, rank 0 saves last.safetensors, and --resume
#      on 2 ranks ends bit for bit where an uninterrupted run ends;
#   4. a rank killed mid-epoch (SIGKILL): mpirun stops the job naming the rank, the last checkpoint stays good and the
#      run resumes from it;
#   5. a rank that hangs (SIGSTOP), rank 1 and then rank 0: the other stops the job within --mpi-timeout, naming it;
#   6. a checkpoint folder that only rank 0 can write is enough, and one that rank 0 cannot write stops every rank
#      with the reason;
#   7. two hosts: the same run across two network namespaces joined by a veth pair, Open MPI over TCP only, and the
#      bytes that crossed the veth interface.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
work="${1:-$(mktemp -d /tmp/cnn-mpi-check.XXXXXX)}"
mkdir -p "$work"
: "${CNN_DATA_DIR:?set CNN_DATA_DIR to the folder holding mnist and cifar-10-batches-bin}"
export CNN_DATA_DIR

if ! command -v mpirun > /dev/null || ! pkg-config --exists ompi-c; then
    echo "installing Open MPI (libopenmpi-dev, openmpi-bin)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libopenmpi-dev openmpi-bin
fi
if ! command -v ip > /dev/null; then apt-get update -qq && apt-get install -y -qq iproute2; fi
mpirun --version | head -1
swift build -c release --product cnn --traits MPI --scratch-path .build-mpi 2>&1 | tail -1
cnn="$root/.build-mpi/release/cnn"
# Root in CI; oversubscribe in case the machine reports fewer slots than ranks.
mpi=(mpirun --allow-run-as-root --oversubscribe -np 2)
failures=0
pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
cd "$work"

# 1 and 2: equivalence with one process, and determinism.
for model in lenet5 alexnet-cifar; do
    size=(); [ "$model" = alexnet-cifar ] && size=(--input-size 32)
    run=(train "$model" "${size[@]}" --batch-size 32 --steps-per-epoch 20 --epochs 1 --validation-steps 4
         --optimizer sgd --lr 0.01 --momentum 0.9 --seed 5 --overwrite)
    rm -rf "$model-one" "$model-two" "$model-again"
    "$cnn" "${run[@]}" --threads 2 --checkpoint-dir "$model-one" > "$model-one.log" 2>&1
    "${mpi[@]}" "$cnn" "${run[@]}" --threads 1 --checkpoint-dir "$model-two" > "$model-two.log" 2>&1
    "${mpi[@]}" "$cnn" "${run[@]}" --threads 1 --checkpoint-dir "$model-again" > "$model-again.log" 2>&1
    if "$cnn" compare "$model-one/last.safetensors" "$model-two/last.safetensors" --tolerance 1e-5 | tee "$model-compare.txt"; then
        pass "$model: 2 ranks x 16 = 1 process x 32 after 20 steps, within 1e-5 ($(head -1 "$model-compare.txt"))"
    else
        fail "$model: 2 ranks differ from one process by more than 1e-5"
    fi
    if "$cnn" compare "$model-two/last.safetensors" "$model-again/last.safetensors" --all > /dev/null; then
        pass "$model: two 2-rank runs with seed 5 are the same bit for bit (weights and optimizer state)"
    else
        fail "$model: two 2-rank runs with the same seed differ"
    fi
    grep -q "2 ranks x 1 threads" "$model-two.log" || fail "$model: the 2-rank run did not say it ran on 2 ranks"
done

# Synchronized batch norm: vgg11-bn at 32, one step of 2 ranks x 16 with --sync-batch-norm against 1 process x 32:
# the running statistics and the weights agree within 1e-5, where each rank's own statistics (the default) move the
# first running mean by tens of percent. One step: batch norm's backward subtracts nearly equal terms, which turns
# rounding into large relative differences in the first layers' gradients, and vgg11-bn at this rate is chaotic
# enough that one process on 1 thread and on 2 threads already differ by 9% in features.0.weight after 20 steps.
# Biases are left out: those of the convolutions before a batch norm get rounding noise as their gradient.
rm -rf bn-one bn-sync bn-own
bn=(train vgg11-bn --dataset cifar10 --input-size 32 --classes 10 --batch-size 32 --steps-per-epoch 1 --epochs 1
    --validation-steps 1 --optimizer sgd --lr 0.01 --seed 5)
"$cnn" "${bn[@]}" --threads 2 --checkpoint-dir bn-one > bn-one.log 2>&1
"${mpi[@]}" "$cnn" "${bn[@]}" --threads 1 --sync-batch-norm --checkpoint-dir bn-sync > bn-sync.log 2>&1
"${mpi[@]}" "$cnn" "${bn[@]}" --threads 1 --checkpoint-dir bn-own > bn-own.log 2>&1
if "$cnn" compare bn-one/last.safetensors bn-sync/last.safetensors --skip bias --tolerance 1e-5 | tee bn-compare.txt \
   && ! "$cnn" compare bn-one/last.safetensors bn-own/last.safetensors --skip bias --tolerance 1e-2 > bn-own-compare.txt; then
    pass "vgg11-bn, --sync-batch-norm: 2 ranks x 16 = 1 process x 32 after a step, within 1e-5 ($(head -1 bn-compare.txt)); each rank's own statistics: $(head -1 bn-own-compare.txt)"
else
    fail "vgg11-bn with --sync-batch-norm: 2 ranks differ from one process by more than 1e-5, or without it they do not"
fi

# The ranks' processes of the run whose checkpoint folder is $1, with their rank.
rank_pid() { # folder rank
    for pid in $(pgrep -f "checkpoint-dir $1( |$)" || true); do
        if tr '\0' '\n' < "/proc/$pid/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$2"; then echo "$pid"; return; fi
    done
}
wait_for() { # file seconds
    for _ in $(seq 1 $(($2 * 10))); do [ -e "$1" ] && return 0; sleep 0.1; done
    return 1
}
# Three epochs: the failures below are caused a moment after epoch 1's checkpoint, with epochs left to run whatever
# the machine's speed.
lenet=(train lenet5 --batch-size 32 --epochs 3 --optimizer sgd --lr 0.05 --momentum 0.9 --seed 7 --threads 1)

# 3: Ctrl-C, then --resume, against an uninterrupted run.
rm -rf whole stopped
"${mpi[@]}" "$cnn" "${lenet[@]}" --checkpoint-dir whole > whole.log 2>&1
"${mpi[@]}" "$cnn" "${lenet[@]}" --checkpoint-dir stopped > stopped.log 2>&1 &
launcher=$!
wait_for stopped/last.safetensors 120 && sleep 0.3
kill -INT "$launcher"
status=0; wait "$launcher" || status=$?
steps=$(tr '\r' '\n' < stopped.log | grep -o "interrupted at epoch [0-9]*, after step [0-9]*" | sort -u || true)
if [ "$status" -ne 0 ] && [ "$(echo "$steps" | grep -c .)" -eq 1 ]; then
    pass "Ctrl-C: mpirun exited $status, every rank stopped $steps"
else
    fail "Ctrl-C: exit $status, stops: '$steps'"
fi
"${mpi[@]}" "$cnn" "${lenet[@]}" --checkpoint-dir stopped --resume > resumed.log 2>&1
if "$cnn" compare whole/last.safetensors stopped/last.safetensors --all > /dev/null; then
    pass "Ctrl-C then --resume on 2 ranks ends bit for bit where the uninterrupted 2-rank run ends"
else
    fail "the resumed run differs from the uninterrupted one"
fi

status=0
"$cnn" "${lenet[@]}" --checkpoint-dir whole --resume --epochs 3 > one-rank-resume.log 2>&1 || status=$?
if [ "$status" -ne 0 ] && grep -q "trained on 2 rank(s); resume it on the same number, not 1" one-rank-resume.log; then
    pass "a 2-rank checkpoint resumed by one process is refused with the reason"
else
    fail "resuming a 2-rank run on 1 process: exit $status; $(tail -2 one-rank-resume.log | tr '\n' ' ')"
fi

# 4: a rank killed mid-epoch.
rm -rf killed
"${mpi[@]}" "$cnn" "${lenet[@]}" --checkpoint-dir killed > killed.log 2>&1 &
launcher=$!
wait_for killed/last.safetensors 120 && sleep 0.3
victim=$(rank_pid killed 1)
start=$(date +%s)
[ -n "$victim" ] && kill -KILL "$victim" || true
status=0; timeout 120 tail --pid="$launcher" -f /dev/null || true; wait "$launcher" || status=$?
elapsed=$(( $(date +%s) - start ))
if [ "$status" -ne 0 ] && grep -q "rank 1" killed.log && "$cnn" compare killed/last.safetensors whole/last.safetensors --tolerance 1e30 > /dev/null; then
    pass "rank 1 killed: mpirun stopped the job in ${elapsed}s naming it ($(grep -o "process rank 1[^)]*)" killed.log | head -1 || true)); last.safetensors intact"
else
    fail "rank killed: exit $status after ${elapsed}s; log: $(tail -3 killed.log | tr '\n' ' ')"
fi
if "${mpi[@]}" "$cnn" "${lenet[@]}" --checkpoint-dir killed --resume > killed-resumed.log 2>&1; then
    pass "the run whose rank was killed resumes from its last checkpoint and finishes"
else
    fail "the run whose rank was killed did not resume"
fi

# 5: a rank that hangs (rank 1, then rank 0): the others stop the job within --mpi-timeout, naming it.
for victim_rank in 1 0; do
    rm -rf "hung$victim_rank"
    "${mpi[@]}" "$cnn" "${lenet[@]}" --checkpoint-dir "hung$victim_rank" --mpi-timeout 10 > "hung$victim_rank.log" 2>&1 &
    launcher=$!
    wait_for "hung$victim_rank/last.safetensors" 120 && sleep 0.3
    victim=$(rank_pid "hung$victim_rank" "$victim_rank")
    start=$(date +%s)
    [ -n "$victim" ] && kill -STOP "$victim" || true
    status=0; timeout 120 tail --pid="$launcher" -f /dev/null || true; wait "$launcher" || status=$?
    elapsed=$(( $(date +%s) - start ))
    [ -n "$victim" ] && kill -KILL "$victim" 2> /dev/null || true
    if [ "$status" -ne 0 ] && [ "$elapsed" -le 60 ] && grep -q "rank $victim_rank (silent for [0-9]* s, last at collective [0-9]*) has died or hangs" "hung$victim_rank.log"; then
        pass "rank $victim_rank stopped (SIGSTOP): the job ended in ${elapsed}s: $(grep -o "rank [01] of 2.*" "hung$victim_rank.log" | head -1)"
    else
        fail "hung rank $victim_rank: exit $status after ${elapsed}s; log: $(tail -3 "hung$victim_rank.log" | tr '\n' ' ')"
    fi
done

# 6: only rank 0 needs to write the checkpoint folder; if it cannot, every rank stops with the reason.
rm -rf only-rank0
short=(train lenet5 --batch-size 32 --steps-per-epoch 20 --epochs 1 --validation-steps 4 --seed 5 --threads 1)
if mpirun --allow-run-as-root --oversubscribe -np 1 "$cnn" "${short[@]}" --checkpoint-dir only-rank0 \
       : -np 1 "$cnn" "${short[@]}" --checkpoint-dir /proc/cnn-cannot-write-here > only-rank0.log 2>&1 \
   && [ -s only-rank0/last.safetensors ]; then
    pass "a checkpoint folder that rank 1 cannot write (/proc/...) does not matter: rank 0 alone writes"
else
    fail "rank 1's unwritable checkpoint folder stopped the run: $(tail -3 only-rank0.log | tr '\n' ' ')"
fi
status=0
"${mpi[@]}" "$cnn" "${short[@]}" --checkpoint-dir /proc/cnn-cannot-write-here > unwritable.log 2>&1 || status=$?
if [ "$status" -ne 0 ] && grep -q "cannot create the checkpoint folder" unwritable.log; then
    pass "rank 0 cannot write its checkpoint folder: every rank stopped (exit $status) with the reason before training"
else
    fail "unwritable folder: exit $status; $(tail -3 unwritable.log | tr '\n' ' ')"
fi

# 7: two hosts, two network namespaces joined by a veth pair; Open MPI's TCP transport only, on that subnet.
cleanup_netns() { ip netns del cnn-host-a 2> /dev/null || true; ip netns del cnn-host-b 2> /dev/null || true; }
cleanup_netns
trap cleanup_netns EXIT
ip netns add cnn-host-a && ip netns add cnn-host-b
ip link add cnn-veth-a type veth peer name cnn-veth-b
ip link set cnn-veth-a netns cnn-host-a && ip link set cnn-veth-b netns cnn-host-b
ip -n cnn-host-a addr add 10.77.0.1/24 dev cnn-veth-a && ip -n cnn-host-b addr add 10.77.0.2/24 dev cnn-veth-b
for ns in cnn-host-a cnn-host-b; do ip -n "$ns" link set lo up; done
ip -n cnn-host-a link set cnn-veth-a up && ip -n cnn-host-b link set cnn-veth-b up
# mpirun starts its daemon on the other "host" through this instead of ssh.
cat > netns-rsh <<'RSH'
#!/bin/bash
host="$1"; shift
case "$host" in 10.77.0.1) ns=cnn-host-a ;; 10.77.0.2) ns=cnn-host-b ;; *) echo "netns-rsh: unknown host $host" >&2; exit 1 ;; esac
exec ip netns exec "$ns" /bin/sh -c "$*"
RSH
chmod +x netns-rsh
printf '10.77.0.1 slots=1\n10.77.0.2 slots=1\n' > hosts
tx() { ip -n cnn-host-a -s link show cnn-veth-a | awk '/TX:/ { getline; print $1 }'; }
before=$(tx)
rm -rf two-hosts
if ip netns exec cnn-host-a mpirun --allow-run-as-root -np 2 --hostfile hosts --mca plm_rsh_agent "$work/netns-rsh" \
       --mca btl self,tcp --mca btl_tcp_if_include 10.77.0.0/24 --mca oob_tcp_if_include 10.77.0.0/24 -x CNN_DATA_DIR \
       "$cnn" train lenet5 --batch-size 32 --steps-per-epoch 20 --epochs 1 --validation-steps 4 --optimizer sgd --lr 0.01 \
       --momentum 0.9 --seed 5 --threads 1 --checkpoint-dir "$work/two-hosts" > two-hosts.log 2>&1; then
    crossed=$(( $(tx) - before ))
    gradient=$(( 61706 * 4 * 20 ))
    if "$cnn" compare lenet5-two/last.safetensors two-hosts/last.safetensors --all > /dev/null && [ "$crossed" -gt "$gradient" ]; then
        pass "two hosts (network namespaces, TCP over veth): the same run bit for bit as on one host; $crossed bytes left host a over the veth (20 steps of 246,824 gradient bytes)"
    else
        fail "two hosts: differs from the one-host run, or only $crossed bytes crossed the veth"
    fi
else
    fail "two hosts: the run failed: $(tail -5 two-hosts.log | tr '\n' ' ')"
fi

echo "MPI checks: $failures failed (work folder $work)"
[ "$failures" -eq 0 ] && rm -rf "$work"  # checkpoints of vgg11-bn: hundreds of MB; kept when a check failed
