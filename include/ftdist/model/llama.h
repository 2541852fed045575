// LlamaModel — a decoder-only transformer with the semantics of Transformers' LlamaForCausalLM,
// MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM and Phi3ForCausalLM (RMSNorm, RoPE incl.
// llama3 scaling and Phi-3's partial rotation, grouped-query attention with a causal and optional
// sliding-window mask, SwiGLU, Qwen2's q/k/v biases, Qwen3's per-head q/k RMSNorm, tied embeddings).
// Phi-3's fused qkv_proj / gate_up_proj are kept as separate q, k, v, gate, up parameters (the
// checkpoint readers and writers split and fuse them: plan::ModelSpec::hf_tensors()).
//
// Parameters are organized in units (plan::ModelSpec::units(): embed | root, layers.i, head). Each
// unit owns one flat buffer; its parameters, with their HF names, are views into it, so fsdp/ can
// swap the buffer (bind()) and autograd delivers the unit's gradient as one flat tensor.
//
//   LlamaModel m(spec, at::TensorOptions().dtype(at::kBFloat16));   // or device meta: no memory
//   at::Tensor logits = m.forward(input_ids);                       // (b, s, V)
//   at::Tensor h = m.embed(ids); for (i...) h = m.layer(i, h, ctx); ... m.head(h)  // unit by unit
#pragma once

#include <ATen/ATen.h>

#include <map>
#include <string>
#include <vector>

#include "ftdist/model/rope.h"
#include "ftdist/plan/model_spec.h"
#include "ftdist/plan/run_setup.h"

namespace ftdist::model {

struct UnitParams {
  std::string name;
  std::vector<plan::ModelSpec::Tensor> specs;  // names and shapes, in flat order
  int64_t numel = 0;                           // without padding
  at::Tensor flat;                             // the unit's flat parameter (>= numel elements)
  std::vector<at::Tensor> params;              // views into `flat`
};

// What every layer of one forward shares, built once per sequence length, dtype and device. The
// attention masks are additive ((s, s) in the compute dtype, 0 = attend, -inf = masked; see
// attention_mask()), one tensor for every layer, so autograd keeps one copy rather than one per layer.
struct ForwardContext {
  RopeTable rope;
  int64_t seq_len = 0;
  at::Tensor causal_mask;  // eager attention's causal mask; undefined for flash (the kernel's causal mode)
  at::Tensor window_mask;  // layers with a sliding window shorter than the sequence; else undefined
};

class LlamaModel {
 public:
  LlamaModel(plan::ModelSpec spec, const at::TensorOptions& options,
             plan::Attention attention = plan::Attention::Flash);

  const plan::ModelSpec& spec() const { return spec_; }
  std::vector<UnitParams>& units() { return units_; }
  const std::vector<UnitParams>& units() const { return units_; }
  // Points unit `u`'s parameters into `flat` (1-D, at least the unit's numel; the rest is padding).
  void bind(size_t u, const at::Tensor& flat);
  // Points unit `u`'s parameters at `params` (one per tensor of the unit, in flat order, each of
  // its shape, living in `flat`'s storage): tensors made by an autograd node over the flat buffer.
  void bind_params(size_t u, const at::Tensor& flat, std::vector<at::Tensor> params);
  const at::Tensor& param(const std::string& hf_name) const;

  ForwardContext context(int64_t seq_len) const;
  // The context of a batch of packed examples: `position_ids` (b, s) int64 restart at 0 where an
  // example starts (data::Packing::Documents). RoPE reads each token's own position ((b, 1, s, d)
  // tables, from the table of the example's own length where the scaling depends on it: dynamic,
  // longrope) and attention is causal within each example only: one additive (b, 1, s, s) mask,
  // and a windowed one where the model has a sliding window shorter than the sequence. Undefined
  // position_ids: context(seq_len).
  ForwardContext context(int64_t seq_len, const at::Tensor& position_ids) const;
  size_t layer_unit(int64_t layer) const { return size_t(1 + layer); }

  at::Tensor embed(const at::Tensor& input_ids) const;                       // (b, s) -> (b, s, h)
  at::Tensor layer(int64_t i, const at::Tensor& x, const ForwardContext& ctx) const;
  at::Tensor final_norm(const at::Tensor& x) const;                          // before lm_head
  const at::Tensor& lm_head_weight() const;                                  // (V, h); the embedding when tied
  // final-normed hidden states; with position_ids (b, s), examples packed in each row (context())
  at::Tensor forward_hidden(const at::Tensor& input_ids, const at::Tensor& position_ids = {}) const;
  at::Tensor forward(const at::Tensor& input_ids, const at::Tensor& position_ids = {}) const;  // logits (b, s, V)

 private:
  struct LayerTensors {
    int q = -1, k = -1, v = -1, o = -1, gate = -1, up = -1, down = -1, ln1 = -1, ln2 = -1;
    int qb = -1, kb = -1, vb = -1, ob = -1, gb = -1, ub = -1, db = -1;
    int qn = -1, kn = -1;  // Qwen3's q_norm, k_norm
  };
  const at::Tensor& p(size_t unit, int index) const { return units_[unit].params[size_t(index)]; }
  at::Tensor bias(size_t unit, int index) const { return index < 0 ? at::Tensor() : p(unit, index); }
  at::Tensor attention(int64_t i, const at::Tensor& x, const ForwardContext& ctx) const;

  plan::ModelSpec spec_;
  plan::Attention attention_;
  std::vector<UnitParams> units_;
  // The RoPE table of the last context(): built (on the CPU, then copied) once per sequence length,
  // dtype and device rather than every forward; its plain masks only once a context without
  // positions asks for them (packed examples attend through masks of their own).
  const ForwardContext& cached_context(int64_t seq_len, bool masks) const;
  mutable ForwardContext context_cache_;
  mutable bool context_masks_ = false;
  LayerTensors layer_tensors_;
  std::map<std::string, std::pair<size_t, size_t>> by_name_;  // HF name -> (unit, index)
};

// Root-mean-square norm as Transformers computes it: in fp32 (fp64 stays fp64), then back to the
// input dtype, then times the weight.
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps);

// The additive mask (s, s) in `options`' dtype and device (0 where query i sees key j: j <= i and,
// when window > 0, i - j < window; -inf elsewhere) that `kind` needs, or undefined where the fused
// kernel's own causal mode does the masking (flash without a window).
at::Tensor attention_mask(int64_t s, int64_t window, plan::Attention kind, const at::TensorOptions& options);

// The additive mask (b, 1, s, s) of packed examples: query i sees key j in the same example (an
// example starts where position_ids is 0) at j <= i and, when window > 0, i - j < window. Every
// attention kind needs it (the fused kernels read it as a bias).
at::Tensor document_mask(const at::Tensor& position_ids, int64_t window, const at::TensorOptions& options);

// Whether the fused kernel reads grouped k/v heads (hkv < hq) in place for this query: LibTorch 2.5+,
// no mask, and a kernel that takes grouped heads (the CPU's flash kernel in every dtype; on CUDA the
// flash kernel, in bf16 and fp16 only: in fp32 with grouped heads SDPA falls back to its math path,
// which keeps the attention probabilities). Otherwise k and v are expanded to every query head first.
bool fused_attention_reads_grouped_heads(const at::Tensor& q, const at::Tensor& mask);

// Attention over q (b, hq, s, d) and k, v (b, hkv, s, d): causal, with `mask` from attention_mask()
// (undefined: plain causal through the fused kernel). hkv < hq only where
// fused_attention_reads_grouped_heads(); else k and v come expanded. Eager or fused (SDPA).
at::Tensor causal_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& mask,
                            plan::Attention kind);
// The same with its own mask for `window` (0: none): for one-off calls (tests).
at::Tensor causal_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t window,
                            plan::Attention kind);

}  // namespace ftdist::model
