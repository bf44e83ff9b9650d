#!/usr/bin/env bash
# The main job on its embedded default (README's first command): inspect the bundled JRT-RNN model,
# tokenise a sentence with the embedded GPT-2 vocabulary, and generate from the bundled model.
set -euo pipefail
cd "$(dirname "$0")/.."
jrt=build/release/jrt
model=tests/data/models/jrt
echo "== jrt inspect $model"
$jrt inspect "$model"
echo
echo "== echo 'Just read twice: recall improves when the context is read twice.' | jrt tokenize"
echo "Just read twice: recall improves when the context is read twice." | $jrt tokenize
echo
echo "== jrt generate --model $model --input $model/generate.safetensors --max-new-tokens 16 --output /tmp/jrt-main-job.safetensors"
$jrt generate --model "$model" --input "$model/generate.safetensors" --max-new-tokens 16 --output /tmp/jrt-main-job.safetensors
