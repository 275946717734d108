// The model's weights as decoding reads them, in a format chosen at load time: fp32 (views
// into the parameter block where its matrices start on 64-byte boundaries, else one aligned
// copy), bf16 or q8 (converted once from the fp32 block).
// Checkpoints and training stay fp32. Only the seven matrices of each block and the output
// projection change format; the token embedding (one row read per token) and the norm weights
// stay fp32 views into the parameter block, which must therefore outlive these weights.
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
  // fp32 matrices are views when they all start on a kGemvAlign boundary and are copied into
  // an aligned buffer otherwise (a std::vector's 16-byte alignment made every 64-byte AVX-512
  // load of a weight row straddle two cache lines: 1.3x slower streaming), so the copy holds
  // the values at the time of the call.
  static StatusOr<ServingWeights> Convert(const ModelConfig& config, const float* params, WeightFormat format);
  // fp32 views into `params` whatever their alignment (never a copy): for callers that change
  // the parameters in place and decode again without converting (Decoder's params overloads).
  static ServingWeights View(const ModelConfig& config, const float* params);
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

  // Bytes of the matrices in this format (scales included); the fp32 block is not counted.
  int64_t MatrixBytes() const;
  // Whether the fp32 matrices are an aligned copy rather than views into the parameter block.
  bool CopiedF32() const { return !f32_.empty(); }
  // A full fp32 parameter block (ParameterCount floats) with every matrix replaced by its
  // served values widened to fp32: the model these weights really compute (tests, quality).
  std::vector<float> Dequantized() const;

 private:
  ServingWeights() = default;
  static StatusOr<ServingWeights> Build(const ModelConfig& config, const float* params, WeightFormat format,
                                        bool copy_f32);
  WeightMatrix Make(const float* w, int64_t rows, int64_t cols);

  ModelConfig config_;
  WeightFormat format_ = WeightFormat::kF32;
  const float* params_ = nullptr;
  const float* tok_embeddings_ = nullptr;
  const float* norm_ = nullptr;
  WeightMatrix output_;
  std::vector<ServingLayer> layers_;
  AlignedVector<float> f32_;      // fp32 copied: every matrix, in order, each on a kGemvAlign boundary
  AlignedVector<uint16_t> bf16_;  // bf16: every matrix, in order
  AlignedVector<uint8_t> q8_;     // q8: every matrix, in order (q + 128)
  AlignedVector<float> scales_;   // q8: their group scales
  int64_t used_ = 0;             // elements handed out so far by Make
};

}  // namespace lanlm::engine
