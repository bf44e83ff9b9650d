#!/usr/bin/env bash
# bench/train_speed.sh — GPU training throughput of jrt vs the plain PyTorch implementation of the same
# synthetic model (bench/torch_synth_train.py), same data shape, batch and optimizer, on the same GPU in
# the same run. One row per configuration: tokens/s of both and the ratio.
#   bash bench/train_speed.sh [path/to/jrt] [torch extra flags, e.g. --compile]
# Configurations: "mixer d_model seq_len kv_pairs vocab batch", override with CONFIGS (one per line).
set -uo pipefail
JRT=${1:-build/release/jrt}
shift || true
EXTRA=("$@")
STEPS=${STEPS:-200}
CONFIGS=${CONFIGS:-"based 64 256 16 8192 64
based 128 512 32 8192 64
attention 128 512 32 8192 64
mamba 128 512 32 8192 64
jrt 128 512 32 8192 64
based 256 1024 64 8192 32"}
printf "%-10s %7s %6s %5s %6s | %12s %12s | %6s\n" mixer d_model L batch vocab "jrt tok/s" "torch tok/s" ratio
while read -r mixer d L kv V B; do
  [ -z "$mixer" ] && continue
  common="--mixer $mixer --d-model $d --seq-len $L --kv-pairs $kv --vocab $V --batch $B"
  # jrt: one epoch of STEPS + 10 batches, no early stop, a log line per step. As the torch script, the first 10
  # steps are warm-up (lazy module loading, cuBLAS heuristics, first-touch allocations) and not timed: tokens/s
  # over steps 11 .. STEPS + 10 from the lines' step times (wall time between consecutive step reports).
  j=$("$JRT" synth mqar $common --train-examples $((B * (STEPS + 10))) --test-examples $B --epochs 1 \
       --early-stop 0 --no-progress --log-every 1 --device cuda |
      awk -v tok=$((B * L)) '/^step [0-9]+ \|/ { if ($2 > 10) { n++; for (i = 1; i < NF; i++) if ($(i + 1) == "ms") ms += $i } }
                             END { if (n > 0 && ms > 0) printf "%.0f", n * tok / (ms / 1000) }')
  t=$(python3 bench/torch_synth_train.py $common --steps "$STEPS" --warmup-steps 10 --device cuda --bf16 \
       "${EXTRA[@]}" | sed -n 's/^torch tokens\/s=\([0-9.]*\).*/\1/p')
  if [ -z "$j" ] || [ -z "$t" ]; then echo "$mixer $d $L $B $V: a run failed (jrt '$j', torch '$t')"; continue; fi
  ratio=$(python3 -c "print(f'{$j / $t:.2f}')")
  printf "%-10s %7s %6s %5s %6s | %12.0f %12.0f | %6s\n" "$mixer" "$d" "$L" "$B" "$V" "$j" "$t" "$ratio"
done <<< "$CONFIGS"
