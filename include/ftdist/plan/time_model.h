// The time model: step time, throughput, run time, GPU-hours and cost of one RunSetup on one
// hardware description.
//
//   compute   FLOPs per token = 6·Ψm + 12·L·hq·s (torchtitan's convention; Ψm = matmul_params());
//             each checkpointed layer adds its forward once more (2·Ψlayer + 4·hq·s). Rate = peak × efficiency.
//   comm      bytes each collective moves per rank, × (n−1)/n (all-gather, reduce-scatter) or
//             × 2(n−1)/n (all-reduce), over the bus bandwidth of the links the group spans
//             (NVLink inside a node, the network across nodes)
//   overlap   per micro-batch, layer collectives run under compute: exposed = max(comm − compute,
//             comm / units) (the first gather / last reduce-scatter cannot hide)
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ftdist/plan/model_spec.h"
#include "ftdist/plan/run_setup.h"

namespace ftdist::plan {

struct Hardware {
  double peak_tflops = 0;        // dense bf16 per GPU
  double fp32_peak_tflops = 0;   // plain fp32 per GPU (precision fp32); 0: peak_tflops
  double efficiency = 0.4;       // MFU reached on compute
  double hbm_gbs = 0;
  double link_busbw_gbs = 0;     // inside a node
  double network_busbw_gbs = 0;  // across nodes, per GPU
  int gpus_per_node = 8;
  double price_per_gpu_hour = 0;
  double host_link_gbs = 25;     // PCIe to host, for optimizer offload
  double cpu_adam_params_per_s = 1e9;  // host optimizer rate per rank, for optimizer offload
};

struct Workload {
  double total_tokens = 0;  // examples × seq_len × epochs (or tokens × epochs); 0: none (rates only)
  int64_t grad_accum = 1;   // micro-batches per optimizer step
};

struct TimeEstimate {
  double flops_per_token = 0;      // model FLOPs (6Ψ + attention)
  double hw_flops_per_token = 0;   // with recompute
  double compute_s_per_micro = 0;
  double comm_s_per_micro = 0;     // collectives issued every micro-batch
  double comm_s_per_step = 0;      // collectives issued once per step
  double exposed_comm_s = 0;       // per step, not hidden by compute
  double optimizer_s = 0;          // per step
  double step_s = 0;
  double tokens_per_step = 0;
  double tokens_per_s = 0;         // whole job
  double mfu = 0;                  // model FLOPs / (peak × GPUs)
  int64_t steps = 0;
  double total_s = 0;
  double gpu_hours = 0;
  double cost_usd = 0;
  // Rates, with or without a workload (a plan without one has steps, totals and cost 0):
  double cost_per_mtok_usd = 0;    // $ per million training tokens
};

// Model FLOPs per trained token (forward + backward, no recompute): 6·Ψm + 12·hq·(keys summed over
// the L layers: s, or at most the window in a windowed layer).
double model_flops_per_token(const ModelSpec& model, int64_t seq_len);

// "42.0 s", "13.8 min", "1.83 h", "4.2 days".
std::string duration_text(double seconds);
// Dollars to the cent, and below a dollar to three significant digits ("1.85", "0.0412"), so that
// small jobs and rates per million tokens do not all read 0.00.
std::string usd_text(double dollars);

TimeEstimate estimate_time(const ModelSpec& model, const RunSetup& setup, const Hardware& hw, const Workload& work,
                           std::vector<std::string>* explain = nullptr);

}  // namespace ftdist::plan
