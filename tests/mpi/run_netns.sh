#!/bin/sh
# Two "machines" on one: network namespaces joined by a veth pair, OpenMPI between them over TCP
# only (btl tcp,self; the out-of-band channel too), its rsh launcher replaced by `ip netns exec`.
# A 2-rank run of the tiny llama across them must equal the 2-rank run on one host bit for bit
# (same rank order of the sums, only the transport differs) and one process within TOL.
# Needs root (ip netns); prints SKIP and succeeds otherwise. Called by tests/mpi/run_mpi.sh.
# usage: BUILD=build/mpi sh tests/mpi/run_netns.sh REF_1PROC_DIR REF_2RANK_DIR TOL
set -u
B=${BUILD:-build/mpi}
LT=$(pwd)/$B/loratune
DIFF=$B/tests/mpi_adapter_diff
one=$1; two=$2; tol=$3
if [ "$(id -u)" != 0 ] || ! command -v ip >/dev/null || ! ip netns add "lt_probe$$" 2>/dev/null; then
    echo "SKIP: two namespaces over TCP need root and ip netns"; exit 0
fi
ip netns del "lt_probe$$"
T=$(mktemp -d /tmp/lt_netns.XXXXXX)
h0=lt_a$$ h1=lt_b$$ net=10.$(( $$ % 200 + 20 )).$(( ($$ / 200) % 250 ))
cleanup() { ip netns del "$h0" 2>/dev/null; ip netns del "$h1" 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
fail=0
ip netns add "$h0" && ip netns add "$h1" &&
    ip link add "v0_$$" type veth peer name "v1_$$" &&
    ip link set "v0_$$" netns "$h0" && ip link set "v1_$$" netns "$h1" &&
    ip -n "$h0" addr add "$net.1/24" dev "v0_$$" && ip -n "$h1" addr add "$net.2/24" dev "v1_$$" &&
    ip -n "$h0" link set "v0_$$" up && ip -n "$h1" link set "v1_$$" up &&
    ip -n "$h0" link set lo up && ip -n "$h1" link set lo up ||
    { echo "FAIL: could not set up the namespaces"; exit 1; }
# the launcher: OpenMPI runs `agent HOST CMD...` to start its daemon on HOST
cat > "$T/nsrsh" <<EOS
#!/bin/sh
host=\$1; shift
case \$host in $net.1) ns=$h0;; $net.2) ns=$h1;; *) echo "nsrsh: unknown host \$host" >&2; exit 1;; esac
exec ip netns exec "\$ns" sh -c "\$*"
EOS
chmod +x "$T/nsrsh"
printf '%s slots=1\n%s slots=1\n' "$net.1" "$net.2" > "$T/hosts"
M="--hostfile $T/hosts --mca plm_rsh_agent $T/nsrsh --mca btl tcp,self
   --mca btl_tcp_if_include $net.0/24 --mca oob_tcp_if_include $net.0/24
   -x OMP_NUM_THREADS -x OMPI_ALLOW_RUN_AS_ROOT -x OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"
# shellcheck disable=SC2086
where=$(timeout 60 ip netns exec "$h0" mpirun -np 2 $M sh -c \
        'echo "$OMPI_COMM_WORLD_RANK@$(ip -o -4 addr show | grep -o "[0-9.]*\.[12]/24")"' | sort | tr '\n' ' ')
if [ "$where" = "0@$net.1/24 1@$net.2/24 " ]; then echo "ok: rank 0 on $net.1, rank 1 on $net.2"
else echo "FAIL: ranks placed at '$where'"; fail=1; fi
F="--model tests/fixtures/llama/model --data tests/mpi/seq.ids.jsonl --seq 32 --batch 2
   --accum 4 --max-steps 10 --lr 5e-3 --r 4 --alpha 8 --seed 3 --quiet --val 8 --eval-every 5"
# shellcheck disable=SC2086
if timeout 120 ip netns exec "$h0" mpirun -np 2 $M "$LT" train $F --out "$T/ns" >"$T/ns.log" 2>&1; then
    if cmp -s "$two/adapter_model.safetensors" "$T/ns/adapter_model.safetensors"; then
        echo "ok: 2 ranks over TCP between namespaces = 2 ranks on one host, bit for bit"
    else echo "FAIL: the 2-namespace run differs from the 2-rank run on one host"; fail=1; fi
    if out=$("$DIFF" "$one/adapter_model.safetensors" "$T/ns/adapter_model.safetensors" "$tol"); then
        echo "ok: 2 namespaces vs 1 process: $out"
    else echo "FAIL: 2 namespaces vs 1 process: $out"; fail=1; fi
else
    echo "FAIL: the 2-namespace run"; cat "$T/ns.log"; fail=1
fi
exit $fail
