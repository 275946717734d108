// Conversion of the fp32 parameter block into a serving format (see serving_weights.h).
#include "engine/generate/serving_weights.h"

#include <cstdint>
#include <cstring>

#include "engine/base/check.h"
#include "engine/base/float_bits.h"
#include "engine/model/parameters.h"

namespace lanlm::engine {

StatusOr<WeightFormat> ParseWeightFormat(const std::string& name) {
  if (name == "fp32") return WeightFormat::kF32;
  if (name == "bf16") return WeightFormat::kBf16;
  if (name == "q8") return WeightFormat::kQ8;
  return InvalidArgumentError("--weights = '" + name + "' is not one of: fp32, bf16, q8");
}

namespace {

// Elements one matrix takes in `format`: fp32 panels round its rows up to whole panels (zero
// padding); bf16 pair panels too, in 32-bit words of two values (cols rounded up to even).
int64_t StoredElements(int64_t rows, int64_t cols, WeightFormat format) {
  switch (format) {
    case WeightFormat::kF32: return PanelElements(rows, cols);
    case WeightFormat::kBf16: return Bf16PanelWords(rows, cols);
    case WeightFormat::kQ8: return rows * cols;
  }
  return 0;
}

// ... and all the matrices.
int64_t StoredElements(const ModelConfig& c, WeightFormat format) {
  const int64_t C = c.dim, F = c.ffn_hidden, V = c.vocab_size;
  auto n = [&](int64_t rows, int64_t cols) { return StoredElements(rows, cols, format); };
  return int64_t{c.n_layers} * (4 * n(C, C) + 2 * n(F, C) + n(C, F)) + n(V, C);
}

}  // namespace

WeightMatrix ServingWeights::Make(const float* w, int64_t rows, int64_t cols) {
  WeightMatrix m;
  m.format = format_;
  m.rows = rows;
  m.cols = cols;
  const int64_t n = rows * cols;
  // fp32 and bf16: the next StoredElements of the store, packed.
  auto pack = [&](auto& store) {
    auto* dst = store.data() + used_;
    PackPanels(w, rows, cols, dst);
    used_ += StoredElements(rows, cols, format_);
    return dst;
  };
  switch (format_) {
    case WeightFormat::kF32:
      m.f32 = pack(f32_);
      return m;
    case WeightFormat::kBf16:
      m.bf16 = pack(bf16_);
      return m;
    case WeightFormat::kQ8: {
      uint8_t* dst = q8_.data() + used_;
      float* s = scales_.data() + used_ / kQ8Group;
      QuantizeQ8Weights(w, n, dst, s);
      m.q8 = dst;
      m.scale = s;
      break;
    }
  }
  used_ += n;
  return m;
}

Status ServingWeights::CheckShape(const ModelConfig& config, WeightFormat format) {
  LANLM_RETURN_IF_ERROR(config.Validate());
  const int64_t C = config.dim, F = config.ffn_hidden;
  if (format == WeightFormat::kQ8 && (C % kQ8Group != 0 || F % kQ8Group != 0)) {
    return InvalidArgumentError("q8 weights need dim and ffn_hidden to be multiples of " + std::to_string(kQ8Group) +
                                "; this model has dim = " + std::to_string(C) + ", ffn_hidden = " + std::to_string(F));
  }
  return OkStatus();
}

StatusOr<ServingWeights> ServingWeights::Convert(const ModelConfig& config, const float* params,
                                                 WeightFormat format) {
  LANLM_RETURN_IF_ERROR(CheckShape(config, format));
  const int64_t C = config.dim, F = config.ffn_hidden, V = config.vocab_size;
  if (format != WeightFormat::kF32) {
    for (const TensorInfo& t : ParameterTensors(config)) {
      const int64_t bad = FirstNonFinite(params + t.offset, t.size);
      if (bad >= 0) {
        return InvalidArgumentError("cannot convert " + t.name + " to " + WeightFormatName(format) + ": element " +
                                    std::to_string(bad) + " is not finite");
      }
    }
  }
  ServingWeights s;
  s.config_ = config;
  s.format_ = format;
  s.params_ = params;
  const int64_t total = StoredElements(config, format);
  if (format == WeightFormat::kF32) s.f32_.resize(total);
  if (format == WeightFormat::kBf16) s.bf16_.resize(total);
  if (format == WeightFormat::kQ8) {
    s.q8_.resize(total);
    s.scales_.resize(total / kQ8Group);
  }
  const ModelWeights w = BindWeights(config, const_cast<float*>(params));
  s.tok_embeddings_ = w.tok_embeddings;
  s.norm_ = w.norm;
  for (const LayerWeights& lw : w.layers) {
    ServingLayer l;
    l.attention_norm = lw.attention_norm;
    l.ffn_norm = lw.ffn_norm;
    l.wq = s.Make(lw.wq, C, C);
    l.wk = s.Make(lw.wk, C, C);
    l.wv = s.Make(lw.wv, C, C);
    l.wo = s.Make(lw.wo, C, C);
    l.w1 = s.Make(lw.w1, F, C);
    l.w2 = s.Make(lw.w2, C, F);
    l.w3 = s.Make(lw.w3, F, C);
    s.layers_.push_back(l);
  }
  s.output_ = s.Make(w.output, V, C);
  return s;
}

int64_t ServingWeights::MatrixBytes() const {
  const int64_t n = StoredElements(config_, format_);
  switch (format_) {
    case WeightFormat::kF32:
    case WeightFormat::kBf16: return n * 4;  // floats, or pair words
    case WeightFormat::kQ8: return n + n / kQ8Group * 4;
  }
  return 0;
}

namespace {

void Widen(const WeightMatrix& m, float* dst) { WidenRows(m, 0, m.rows, dst); }

}  // namespace

std::vector<float> ServingWeights::Dequantized() const {
  std::vector<float> block(params_, params_ + ParameterCount(config_));
  const ModelWeights w = BindWeights(config_, block.data());
  for (size_t l = 0; l < layers_.size(); ++l) {
    Widen(layers_[l].wq, w.layers[l].wq);
    Widen(layers_[l].wk, w.layers[l].wk);
    Widen(layers_[l].wv, w.layers[l].wv);
    Widen(layers_[l].wo, w.layers[l].wo);
    Widen(layers_[l].w1, w.layers[l].w1);
    Widen(layers_[l].w2, w.layers[l].w2);
    Widen(layers_[l].w3, w.layers[l].w3);
  }
  Widen(output_, w.output);
  return block;
}

}  // namespace lanlm::engine
