#!/usr/bin/env bash
# The main job on its embedded defaults (README's first command): train a small Based model on the
# synthetic MQAR recall task until it recalls (>= 0.99 accuracy, about 30 s on 2 cores), then show
# the inference side on the bundled JRT-RNN fixture model: inspect it, tokenise a sentence with the
# embedded GPT-2 vocabulary, and generate from it.
set -euo pipefail
cd "$(dirname "$0")/.."
jrt=build/release/jrt
model=tests/data/models/jrt
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
echo "== jrt synth mqar   (defaults: Based mixer, CPU)"
$jrt synth mqar --out "$out/mqar-based"
echo
echo "== jrt inspect $model"
$jrt inspect "$model"
echo
echo "== echo 'Just read twice: recall improves when the context is read twice.' | jrt tokenize"
echo "Just read twice: recall improves when the context is read twice." | $jrt tokenize
echo
echo "== jrt generate --model $model --input $model/generate.safetensors --max-new-tokens 16 --output $out/gen.safetensors"
$jrt generate --model "$model" --input "$model/generate.safetensors" --max-new-tokens 16 --output "$out/gen.safetensors"
