// tokenizer/embedded_assets.cpp — owns the GPT-2 vocabulary blobs inside the binary: the assembler
// pulls assets/gpt2/{encoder.json,vocab.bpe} in with .incbin (path from JRT_SOURCE_DIR) into .rodata,
// bracketed by start/end symbols. Note: the build does not track these two files as dependencies of
// this object; touch this file after changing them.
#include "tokenizer/embedded_assets.h"

#ifndef JRT_SOURCE_DIR
#error "JRT_SOURCE_DIR must name the source tree (the library target defines it)"
#endif

// pushsection/popsection leave the compiler's own section state untouched; the NUL after each blob
// lies outside [start, end).
// clang-format off
#define JRT_INCBIN(sym, file)                               \
  ".pushsection .rodata\n"                                  \
  ".balign 16\n"                                            \
  ".globl " #sym "_start\n"                                 \
  ".type " #sym "_start, @object\n"                         \
  #sym "_start:\n"                                          \
  ".incbin \"" JRT_SOURCE_DIR "/" file "\"\n"               \
  ".globl " #sym "_end\n"                                   \
  ".type " #sym "_end, @object\n"                           \
  #sym "_end:\n"                                            \
  ".byte 0\n"                                               \
  ".size " #sym "_start, " #sym "_end - " #sym "_start\n"   \
  ".popsection\n"

__asm__(
    JRT_INCBIN(jrt_gpt2_encoder_json, "assets/gpt2/encoder.json")
    JRT_INCBIN(jrt_gpt2_vocab_bpe, "assets/gpt2/vocab.bpe")
    // The blobs are data: mark the stack non-executable so the linker does not warn.
    ".pushsection .note.GNU-stack,\"\",@progbits\n"
    ".popsection\n");
// clang-format on

extern "C" {
extern const char jrt_gpt2_encoder_json_start[];
extern const char jrt_gpt2_encoder_json_end[];
extern const char jrt_gpt2_vocab_bpe_start[];
extern const char jrt_gpt2_vocab_bpe_end[];
}

namespace jrt::assets {

std::string_view gpt2_encoder_json() {
  return {jrt_gpt2_encoder_json_start, size_t(jrt_gpt2_encoder_json_end - jrt_gpt2_encoder_json_start)};
}
std::string_view gpt2_vocab_bpe() {
  return {jrt_gpt2_vocab_bpe_start, size_t(jrt_gpt2_vocab_bpe_end - jrt_gpt2_vocab_bpe_start)};
}

}  // namespace jrt::assets
