// The model's weights as decoding reads them, in a format chosen at load time, converted once
// from the fp32 block: fp32 or bf16 panels (gemv.h), or q8.
// Checkpoints and training stay fp32. Only the seven matrices of each block and the output
// projection change format; the token embedding (one row read per token) and the norm weights
// stay fp32 views into the parameter block, which must therefore outlive these weights. fp32
// serving thus holds the matrices twice (the block and the panels), where it used to view them.
// Immutable after Convert; safe to share between threads. Move-only (the views point into
// the owned buffers, whose storage a move keeps).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/base/status.h"
#include "engine/model/model_config.h"
#include "engine/ops/gemv.h"

namespace lanlm::engine {

// "fp32", "bf16" or "q8"; anything else is INVALID_ARGUMENT naming the value and the choices.
StatusOr<WeightFormat> ParseWeightFormat(const std::string& name);

struct ServingLayer {
  const float* attention_norm = nullptr;  // (C)
  WeightMatrix wq, wk, wv, wo;            // (C, C)
  const float* ffn_norm = nullptr;        // (C)
  WeightMatrix w1, w3;                    // (F, C)
  WeightMatrix w2;                        // (C, F)
};

class ServingWeights {
 public:
  // Views or converts `params` (ParameterCount(config) floats). INVALID_ARGUMENT when the
  // format cannot hold this model: q8 needs C and F to be multiples of 32, and no format takes
  // a non-finite weight (the message names the tensor and the limit).
  static StatusOr<ServingWeights> Convert(const ModelConfig& config, const float* params, WeightFormat format);
  // Convert's checks that depend on the shapes alone (not on the values): whether every model of
  // `config` can be served in `format`. For refusing a server's flags at start.
  static Status CheckShape(const ModelConfig& config, WeightFormat format);

  ServingWeights(ServingWeights&&) = default;
  ServingWeights& operator=(ServingWeights&&) = default;
  ServingWeights(const ServingWeights&) = delete;
  ServingWeights& operator=(const ServingWeights&) = delete;

  const ModelConfig& config() const { return config_; }
  WeightFormat format() const { return format_; }
  const float* params() const { return params_; }
  const float* tok_embeddings() const { return tok_embeddings_; }  // (V, C)
  const float* norm() const { return norm_; }                      // (C)
  const WeightMatrix& output() const { return output_; }           // (V, C)
  const std::vector<ServingLayer>& layers() const { return layers_; }

  // Bytes of the matrices in this format (scales and panel padding included); the fp32 block
  // is not counted.
  int64_t MatrixBytes() const;
  // A full fp32 parameter block (ParameterCount floats) with every matrix replaced by its
  // served values widened to fp32: the model these weights really compute (tests, quality).
  std::vector<float> Dequantized() const;

 private:
  ServingWeights() = default;
  WeightMatrix Make(const float* w, int64_t rows, int64_t cols);

  ModelConfig config_;
  WeightFormat format_ = WeightFormat::kF32;
  const float* params_ = nullptr;
  const float* tok_embeddings_ = nullptr;
  const float* norm_ = nullptr;
  WeightMatrix output_;
  std::vector<ServingLayer> layers_;
  AlignedVector<float> f32_;      // fp32: every matrix's panels, in order
  AlignedVector<uint32_t> bf16_;  // bf16: every matrix's pair panels, in order
  AlignedVector<uint8_t> q8_;     // q8: every matrix, in order (q + 128)
  AlignedVector<float> scales_;   // q8: their group scales
  int64_t used_ = 0;             // elements handed out so far by Make
};

}  // namespace lanlm::engine
