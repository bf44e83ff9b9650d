// tokenizer/embedded_assets.h — views of the data files linked into the binary (see
// embedded_assets.cpp), so the builtin tokenizer needs no files at run time.
#pragma once
#include <string_view>

namespace jrt::assets {

std::string_view gpt2_encoder_json();  // assets/gpt2/encoder.json, byte for byte
std::string_view gpt2_vocab_bpe();     // assets/gpt2/vocab.bpe, byte for byte

}  // namespace jrt::assets
