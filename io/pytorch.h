// io/pytorch.h — native reader of torch.save zip checkpoints (state dicts), no Python.
// The archive's data.pkl is interpreted by a restricted unpickler: only the opcodes and globals a
// state dict uses are accepted (torch._utils._rebuild_tensor_v2, torch._utils._rebuild_parameter,
// collections.OrderedDict, torch.{Float,BFloat16,Half,Long,Int,Bool,...}Storage); anything else is
// refused with an error naming it. Nothing is ever executed.
#pragma once
#include <string>

#include "io/weights.h"

namespace jrt {

// Raw keys, no cleanup (load_weights applies it). Views (storage offset, strides) are materialised
// as contiguous tensors; storages shared by several tensors are read once.
WeightStore read_pytorch_checkpoint(const std::string& path);

}  // namespace jrt
