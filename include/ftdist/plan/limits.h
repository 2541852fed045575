// What ftdist models and can represent, in one place: every size, count and rate that comes from a
// file or a flag is checked against these where it enters (config.json, the run config, the
// planner's flags, checkpoint metadata), with the key and the range in the message. Inside the
// limits no computation of the planner overflows; its byte counts saturate at kMaxBytes ("does not
// fit") instead of wrapping.
#pragma once

#include <cstdint>

namespace ftdist::plan {

// The model (config.json). Far above any released model (Llama-3.1-405B: h 16384, I 53248, L 126,
// 128 heads, V 128256), far below where int64 products of them overflow.
constexpr int64_t kMaxHidden = int64_t(1) << 18;        // hidden_size
constexpr int64_t kMaxIntermediate = int64_t(1) << 20;  // intermediate_size
constexpr int64_t kMaxLayers = 4096;                    // num_hidden_layers
constexpr int64_t kMaxHeads = 4096;                     // num_attention_heads, num_key_value_heads
constexpr int64_t kMaxHeadDim = 4096;                   // head_dim
constexpr int64_t kMaxVocab = int64_t(1) << 24;         // vocab_size
constexpr int64_t kMaxPositions = int64_t(1) << 31;     // max_position_embeddings, sliding_window
constexpr double kMaxParams = 1e14;                     // parameters in all

// The workload (the planner's flags and the run config's keys alike: a plan is one ftdist train runs).
constexpr int64_t kMinSeqLen = 2;                      // a sequence predicts one token at least
constexpr int64_t kMaxSeqLen = int64_t(1) << 24;       // tokens per sequence (16 Mi)
constexpr int64_t kMaxMicroBatch = int64_t(1) << 16;   // sequences per rank per forward
constexpr int64_t kMaxGlobalBatch = int64_t(1) << 31;  // sequences per optimizer step
constexpr int64_t kMaxSteps = int64_t(1) << 40;        // optimizer steps
constexpr double kMaxTokens = 1e18;                    // training tokens in all
constexpr int kMaxRanks = 1 << 20;                     // GPUs / ranks
constexpr int64_t kMaxLossChunk = int64_t(1) << 40;    // tokens per loss chunk
constexpr int kMaxPrefetch = 8;                        // units gathered at once

// The hardware (the GPU catalog, a cluster file, --mfu).
constexpr double kMaxGpuMemoryGib = 1 << 20;  // memory_gib of one GPU (1 PiB)
constexpr int64_t kMaxGpusPerNode = 1024;     // gpus_per_node
constexpr int64_t kMaxNodes = 1 << 20;        // a node type's count
constexpr double kMinEfficiency = 1e-3;       // efficiency / --mfu: the fraction of peak reached
constexpr double kMinTflops = 1e-3;           // a peak rate (1 GFLOP/s): a time is always finite
constexpr double kMinBandwidthGBs = 1e-3;     // a bandwidth in GB/s (1 MB/s)

// Bytes: a count of the memory model saturates here (1 EiB, more than any machine has), so ten
// categories still sum without overflow.
constexpr uint64_t kMaxBytes = uint64_t(1) << 60;

// `bytes` (a real number of bytes, >= 0) as an integer, kMaxBytes at most.
inline uint64_t clamp_bytes(double bytes) {
  if (!(bytes > 0)) return 0;
  return bytes >= double(kMaxBytes) ? kMaxBytes : uint64_t(bytes);
}

}  // namespace ftdist::plan
