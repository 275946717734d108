// lanlm-bench: engine throughput on one machine, in the same terms as shared/anchors/torch_ref.py.
//   train:     one optimizer step (forward + backward + clip + AdamW) on one micro-batch of B
//              random sequences; median step time after warm-up, tokens/s, GFLOP/s with
//              FLOPs/token = 6 * (matmul params) + 12 * L * T * C (S: 6.39 M, M: 48.22 M).
//   decode:    KV-cached greedy decoding of --tokens tokens with random weights served in
//              --weights format, by --sessions sessions stepping together (Decoder::FeedBatch;
//              1 = Decoder::Feed at batch 1, from token 1); median aggregate tokens/s over
//              --runs runs after a warm-up run.
//   prefill:   one Decoder::Feed of a --tokens-token prompt into a KV cache holding --cached
//              tokens (0: a new request; more: the next turn of a chat session); median
//              prompt tokens/s over --runs runs.
//   tokenizer: BpeTokenizer::Train on --corpus to the config's V, then Encode throughput.
//   header:    ParseJson of the JSON header of the safetensors file --checkpoint (what
//              LoadCheckpoint parses first); median microseconds per parse over --runs runs.
// Not a test: it checks nothing beyond the loss being finite.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "bench/bench_util.h"
#include "bench/serving.h"
#include "engine/cli/flags.h"
#include "engine/base/float_bits.h"
#include "engine/generate/decoder.h"
#include "engine/generate/serving_weights.h"
#include "engine/io/json.h"
#include "engine/model/model.h"
#include "engine/model/parameters.h"
#include "engine/ops/matmul.h"
#include "engine/base/random.h"
#include "engine/base/thread_pool.h"
#include "engine/tokenizer/tokenizer.h"
#include "engine/train/trainer.h"

namespace lanlm::engine {
namespace {

// The matmul kernel a train step runs: the fp32 GEMM (the build's vector width) or the bf16 one.
const char* KernelPath(Precision p) { return p == Precision::kBf16 ? Bf16KernelPath() : "fp32"; }

int BenchTrain(const Options& o, const ModelConfig& c, ThreadPool& pool) {
  const int B = NamedMicroBatch(o.config);
  const int64_t T = c.context;
  TrainingState state = TrainingState::Init(c, o.seed, 0.02f);
  Precision precision = Precision::kFp32;
  LANLM_CHECK(ParsePrecision(o.precision, &precision), "--precision must be fp32 or bf16");
  Model model(c, B, precision);
  AdamWOptions adam;
  std::vector<float> grad(state.params.size());
  std::vector<int32_t> tokens(static_cast<size_t>(B) * (T + 1));
  std::vector<double> step_s, fwd_s, bwd_s, opt_s;
  float first_loss = 0.0f, last_loss = 0.0f;
  for (int i = 0; i < o.warmup + o.steps; ++i) {
    for (size_t j = 0; j < tokens.size(); ++j) {
      tokens[j] = static_cast<int32_t>(CounterRng::Below(o.seed + 1 + i, j, c.vocab_size));
    }
    const auto t0 = Clock::now();
    std::fill(grad.begin(), grad.end(), 0.0f);
    const float loss = model.Forward(state.params.data(), tokens.data(), B, pool);
    const auto t1 = Clock::now();
    model.Backward(state.params.data(), tokens.data(), B, grad.data(), pool);
    const auto t2 = Clock::now();
    ApplyUpdate(adam, grad.data(), state, pool);
    const auto t3 = Clock::now();
    if (i == 0) first_loss = loss;
    last_loss = loss;
    if (i < o.warmup) continue;
    step_s.push_back(Seconds(t0, t3));
    fwd_s.push_back(Seconds(t0, t1));
    bwd_s.push_back(Seconds(t1, t2));
    opt_s.push_back(Seconds(t2, t3));
  }
  if (!IsFiniteBits(last_loss)) {
    std::fprintf(stderr, "non-finite loss\n");
    return 1;
  }
  const double med = Median(step_s);
  const double tok_s = static_cast<double>(B) * T / med;
  const double fpt = TrainFlopsPerToken(c);
  const double gflops = fpt * tok_s / 1e9;
  char text[512], json[512];
  std::snprintf(text, sizeof(text),
                "B=%d T=%lld flops/token=%.2fM steps=%d median_step_ms=%.1f min_ms=%.1f max_ms=%.1f "
                "forward_ms=%.1f backward_ms=%.1f optimizer_ms=%.1f loss_first=%.4f loss_last=%.4f precision=%s kernel=%s",
                B, static_cast<long long>(T), fpt / 1e6, o.steps, med * 1e3,
                *std::min_element(step_s.begin(), step_s.end()) * 1e3,
                *std::max_element(step_s.begin(), step_s.end()) * 1e3, Median(fwd_s) * 1e3, Median(bwd_s) * 1e3,
                Median(opt_s) * 1e3, first_loss, last_loss, o.precision.c_str(), KernelPath(precision));
  std::snprintf(json, sizeof(json),
                ",\"batch\":%d,\"flops_per_token\":%.0f,\"steps\":%d,\"median_step_ms\":%.3f,\"forward_ms\":%.3f,"
                "\"backward_ms\":%.3f,\"optimizer_ms\":%.3f,\"precision\":\"%s\",\"kernel\":\"%s\"",
                B, fpt, o.steps, med * 1e3, Median(fwd_s) * 1e3, Median(bwd_s) * 1e3, Median(opt_s) * 1e3,
                o.precision.c_str(), KernelPath(precision));
  Report(o, pool.size(), tok_s, gflops, text, json);
  return 0;
}


// The bytes of `path`, or "" after printing why (missing, unreadable or empty).
std::string ReadWholeFile(const char* flag, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (!in.good() && !in.eof()) {
    std::fprintf(stderr, "cannot read --%s = '%s'\n", flag, path.c_str());
    return "";
  }
  if (buffer.str().empty()) std::fprintf(stderr, "--%s = '%s' is missing or empty\n", flag, path.c_str());
  return buffer.str();
}

int BenchHeader(const Options& o) {
  const std::string file = ReadWholeFile("checkpoint", o.checkpoint);
  if (file.empty()) return 1;
  uint64_t n = 0;
  for (int i = 0; i < 8 && i < static_cast<int>(file.size()); ++i) n |= uint64_t(uint8_t(file[i])) << (8 * i);
  if (file.size() < 8 || n > file.size() - 8) {
    std::fprintf(stderr, "--checkpoint = '%s' is not a safetensors file\n", o.checkpoint.c_str());
    return 1;
  }
  const std::string_view header(file.data() + 8, n);
  JsonLimits limits;
  limits.max_depth = 4;  // as LoadCheckpoint
  std::vector<double> parse_s;
  for (int r = 0; r < 1 + o.runs; ++r) {
    const auto t0 = Clock::now();
    auto parsed = ParseJson(header, limits);
    if (r > 0) parse_s.push_back(Seconds(t0, Clock::now()));
    if (!parsed.ok()) {
      std::fprintf(stderr, "%s\n", parsed.status().ToString().c_str());
      return 1;
    }
  }
  const double med = Median(parse_s);
  std::printf("header bytes=%zu parse_us=%.1f MB/s=%.1f\n", header.size(), med * 1e6,
              static_cast<double>(header.size()) / med / 1e6);
  return 0;
}

int BenchTokenizer(const Options& o, const ModelConfig& c) {
  if (o.corpus.empty()) {
    std::fprintf(stderr, "--mode tokenizer needs --corpus FILE\n");
    return 2;
  }
  const std::string text_data = ReadWholeFile("corpus", o.corpus);
  if (text_data.empty()) return 1;
  const std::string* text = &text_data;
  const int vocab = o.vocab_size > 0 ? o.vocab_size : c.vocab_size;
  const auto t0 = Clock::now();
  auto tok = BpeTokenizer::Train(*text, vocab);
  const double train_s = Seconds(t0, Clock::now());
  if (!tok.ok()) {
    std::fprintf(stderr, "%s\n", tok.status().ToString().c_str());
    return 1;
  }
  std::vector<double> encode_s;
  size_t n_tokens = 0;
  for (int r = 0; r < 1 + o.runs; ++r) {
    const auto t1 = Clock::now();
    n_tokens = tok->Encode(*text).size();
    if (r > 0) encode_s.push_back(Seconds(t1, Clock::now()));
  }
  const double mb = static_cast<double>(text->size()) / 1e6;
  const double med = Median(encode_s);
  char out[256], json[256];
  std::snprintf(out, sizeof(out), "corpus_MB=%.2f vocab=%d train_s=%.2f encode_MB/s=%.2f tokens=%zu", mb,
                tok->vocab_size(), train_s, mb / med, n_tokens);
  std::snprintf(json, sizeof(json), ",\"corpus_mb\":%.3f,\"vocab\":%d,\"train_s\":%.3f,\"encode_mb_per_s\":%.3f", mb,
                tok->vocab_size(), train_s, mb / med);
  Report(o, 1, static_cast<double>(n_tokens) / med, 0.0, out, json);
  return 0;
}

int Main(int argc, char** argv) {
  Options o;
  FlagSet flags("lanlm-bench --config S|M|INF15M --mode train|decode|prefill|sample|tokenizer|header [flags]");
  flags.String("config", &o.config, "model config: S, M or INF15M");
  flags.String("mode", &o.mode, "train, decode, prefill, sample (SampleToken alone), tokenizer or header");
  flags.Int("threads", &o.threads, "threads in the pool (0 = all cores)", 0, 1024);
  flags.Int("steps", &o.steps, "timed training steps (train)", 1, 100000);
  flags.Int("warmup", &o.warmup, "untimed warm-up steps (train)", 0, 1000);
  flags.Int("tokens", &o.tokens, "tokens decoded (decode) or prompt tokens (prefill) per run, at most the context", 1,
            1 << 16);
  flags.Int("runs", &o.runs, "timed runs (decode, prefill, tokenizer encode)", 1, 1000);
  flags.Int("cached", &o.cached, "tokens already in the KV cache before the prompt (prefill)", 0, 1 << 16);
  flags.String("weights", &o.weights, "served weight format for decode and prefill: fp32, bf16 or q8");
  flags.String("precision", &o.precision, "matmul precision of --mode train: fp32 or bf16");
  flags.String("bf16-kernel", &o.bf16_kernel, "bf16 kernel: auto, native (AVX512_BF16), emulated or emulated-avx2");
  flags.Int("sessions", &o.sessions, "sessions decoding together (decode)", 1, 1024);
  flags.Float("temperature", &o.temperature, "decode, sample: sampling temperature, 0 = greedy (as run.c -t 0)", 0.0, 100.0);
  flags.Int("top-k", &o.top_k, "decode, sample: sample among the k most likely tokens; 0 = all", 0, kMaxVocab);
  flags.Float("top-p", &o.top_p, "decode, sample: sample within this probability mass (0, 1]", 1e-6, 1.0);
  flags.Int("vocab-size", &o.vocab_size, "tokenizer vocabulary (0 = the config's V)", 0, kMaxVocab);
  flags.String("corpus", &o.corpus, "text file for --mode tokenizer");
  flags.String("checkpoint", &o.checkpoint, "safetensors file for --mode header");
  flags.Bool("json", &o.json, "print one JSON object per result line");
  flags.Uint64("seed", &o.seed, "random weights and tokens");
  Status s = flags.Parse(std::vector<std::string>(argv + 1, argv + argc));
  if (!s.ok()) {
    std::fprintf(stderr, "%s\n%s", s.ToString().c_str(), flags.Help().c_str());
    return 2;
  }
  if (flags.help_requested()) {
    std::printf("%s", flags.Help().c_str());
    return 0;
  }
  auto config = NamedConfig(o.config);
  if (!config.ok()) {
    std::fprintf(stderr, "%s\n", config.status().ToString().c_str());
    return 2;
  }
  if (o.mode == "tokenizer") return BenchTokenizer(o, *config);
  if (o.mode == "header") return BenchHeader(o);
  if (auto format = ParseWeightFormat(o.weights); !format.ok()) {
    std::fprintf(stderr, "%s\n", format.status().ToString().c_str());
    return 2;
  }
  Precision p = Precision::kFp32;
  const bool precision_ok = ParsePrecision(o.precision, &p) && (p == Precision::kFp32 || Bf16Supported());
  if (!precision_ok || !SelectBf16Kernel(o.bf16_kernel)) {
    std::fprintf(stderr, "--precision %s / --bf16-kernel %s: fp32, or bf16 on a CPU with AVX512_BF16, AVX-512F or "
                 "AVX2 + FMA; kernel auto, emulated, emulated-avx2 (AVX2 + FMA), or native on a CPU with AVX512_BF16\n",
                 o.precision.c_str(), o.bf16_kernel.c_str());
    return 2;
  }
  ThreadPool pool(o.threads);
  if (o.mode == "train") return BenchTrain(o, *config, pool);
  if (o.mode == "decode") return BenchDecode(o, *config, pool);
  if (o.mode == "prefill") return BenchPrefill(o, *config, pool);
  if (o.mode == "sample") return BenchSample(o, *config, pool);
  std::fprintf(stderr, "--mode = '%s' is not one of: train, decode, prefill, sample, tokenizer, header\n",
               o.mode.c_str());
  return 2;
}

}  // namespace
}  // namespace lanlm::engine

int main(int argc, char** argv) { return lanlm::engine::Main(argc, argv); }
