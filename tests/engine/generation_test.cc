// Tests of engine/generate/generation.h: the text streamer (UTF-8 and stop strings across token
// boundaries), the stopping rules, and continuation of a session.
#include "engine/generate/generation.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "engine/model/parameters.h"

namespace lanlm::engine {
namespace {

// Independent strict UTF-8 check (RFC 3629 table 3-7).
bool ValidUtf8(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    int n;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c <= 0x7F) {
      n = 1;
    } else if (c >= 0xC2 && c <= 0xDF) {
      n = 2;
    } else if (c == 0xE0) {
      n = 3, lo = 0xA0;
    } else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) {
      n = 3;
    } else if (c == 0xED) {
      n = 3, hi = 0x9F;
    } else if (c == 0xF0) {
      n = 4, lo = 0x90;
    } else if (c >= 0xF1 && c <= 0xF3) {
      n = 4;
    } else if (c == 0xF4) {
      n = 4, hi = 0x8F;
    } else {
      return false;
    }
    if (i + n > s.size()) return false;
    for (int k = 1; k < n; ++k) {
      const auto d = static_cast<unsigned char>(s[i + k]);
      const unsigned char l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xBF;
      if (d < l || d > h) return false;
    }
    i += n;
  }
  return true;
}

std::vector<std::string> PushAll(TextStreamer& streamer, const std::vector<std::string>& pieces, bool flush) {
  std::vector<std::string> deltas;
  for (const auto& p : pieces) deltas.push_back(streamer.Push(p));
  if (flush) deltas.push_back(streamer.Flush());
  return deltas;
}

std::string Concat(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += x;
  return s;
}

TEST(TextStreamerTest, MultiByteCharacterSplitAcrossTokensIsHeldUntilComplete) {
  TextStreamer streamer;
  // "é" = C3 A9, "😀" = F0 9F 98 80, split byte by byte.
  const std::vector<std::string> pieces = {"a\xC3", "\xA9", "\xF0", "\x9F", "\x98", "\x80z"};
  const auto deltas = PushAll(streamer, pieces, true);
  EXPECT_EQ(deltas[0], "a");
  EXPECT_EQ(deltas[1], "\xC3\xA9");
  EXPECT_EQ(deltas[2], "");
  EXPECT_EQ(deltas[3], "");
  EXPECT_EQ(deltas[4], "");
  EXPECT_EQ(deltas[5], "\xF0\x9F\x98\x80z");
  for (const auto& d : deltas) EXPECT_TRUE(ValidUtf8(d));
  EXPECT_EQ(Concat(deltas), streamer.text());
  EXPECT_EQ(streamer.text(), "a\xC3\xA9\xF0\x9F\x98\x80z");
}

TEST(TextStreamerTest, InvalidAndTruncatedBytesBecomeReplacementCharacters) {
  TextStreamer streamer;
  const auto deltas = PushAll(streamer, {"x\xFF", "\x80y", "\xE2\x82"}, true);
  for (const auto& d : deltas) EXPECT_TRUE(ValidUtf8(d)) << d;
  EXPECT_EQ(Concat(deltas), streamer.text());
  EXPECT_EQ(streamer.text(), "x\xEF\xBF\xBD\xEF\xBF\xBDy\xEF\xBF\xBD");
}

TEST(TextStreamerTest, StopStringSpanningTokensNeverLeaks) {
  TextStreamer streamer({"END"});
  const auto deltas = PushAll(streamer, {"abc E", "N", "D more"}, false);
  EXPECT_EQ(deltas[0], "abc ");
  EXPECT_EQ(deltas[1], "");
  EXPECT_EQ(deltas[2], "");
  EXPECT_TRUE(streamer.stopped());
  EXPECT_EQ(streamer.Push("later"), "");
  EXPECT_EQ(streamer.text(), "abc ");
}

TEST(TextStreamerTest, PartialStopStringThatDoesNotCompleteIsReleased) {
  TextStreamer streamer({"END", "\xC3\xA9!"});
  EXPECT_EQ(streamer.Push("xE"), "x");
  EXPECT_EQ(streamer.Push("NX"), "ENX");
  EXPECT_EQ(streamer.Push("\xC3\xA9"), "");
  EXPECT_EQ(streamer.Push("?"), "\xC3\xA9?");
  EXPECT_EQ(streamer.Push("E"), "");
  EXPECT_EQ(streamer.Flush(), "E");  // the end of generation releases a held prefix
  EXPECT_FALSE(streamer.stopped());
  EXPECT_EQ(streamer.text(), "xENX\xC3\xA9?E");
}

// Random texts over multi-byte characters and stop strings, cut into random byte pieces:
// the deltas are valid UTF-8 and concatenate to the text before the first stop string.
TEST(TextStreamerTest, RandomSplitsConcatenateToTextBeforeStop) {
  const std::vector<std::string> alphabet = {"a", "b", " ",        "\n",           "E",
                                             "N", "D", "\xC3\xA9", "\xE2\x82\xAC", "\xF0\x9F\x98\x80"};
  const std::vector<std::string> stops = {"END", "\xC3\xA9\xE2\x82\xAC", "bb\n"};
  std::mt19937 rng(7);
  for (int trial = 0; trial < 500; ++trial) {
    std::string full;
    const int chars = 1 + static_cast<int>(rng() % 40);
    for (int i = 0; i < chars; ++i) full += alphabet[rng() % alphabet.size()];
    std::vector<std::string> pieces;
    for (size_t i = 0; i < full.size();) {
      const size_t n = 1 + rng() % 5;
      pieces.push_back(full.substr(i, n));
      i += n;
    }
    size_t first = std::string::npos;
    for (const auto& s : stops) first = std::min(first, full.find(s));
    const std::string expected = full.substr(0, first);

    TextStreamer streamer(stops);
    std::vector<std::string> deltas;
    for (const auto& p : pieces) deltas.push_back(streamer.Push(p));
    if (!streamer.stopped()) deltas.push_back(streamer.Flush());
    for (const auto& d : deltas) ASSERT_TRUE(ValidUtf8(d)) << "trial " << trial;
    ASSERT_EQ(Concat(deltas), expected) << "trial " << trial;
    ASSERT_EQ(streamer.text(), expected);
    ASSERT_EQ(streamer.stopped(), first != std::string::npos);
  }
}

TEST(StopOptionsTest, ValidateNamesTheField) {
  StopOptions o;
  EXPECT_TRUE(o.Validate().ok());
  o.max_new_tokens = 0;
  EXPECT_NE(o.Validate().message().find("max_new_tokens"), std::string::npos);
  o = StopOptions{};
  o.stop = {"ok", ""};
  EXPECT_NE(o.Validate().message().find("stop[1]"), std::string::npos);
  o = StopOptions{};
  o.confidence_threshold = 1.0f;
  EXPECT_NE(o.Validate().message().find("confidence_threshold"), std::string::npos);
  o.confidence_threshold = -0.1f;
  EXPECT_EQ(o.Validate().code(), StatusCode::kInvalidArgument);
}

class GenerationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto tokenizer = BpeTokenizer::Train("the cat sat on the mat. the dog sat on the log.\nabc END abc\n", 60);
    ASSERT_TRUE(tokenizer.ok()) << tokenizer.status().ToString();
    tokenizer_ = std::make_unique<BpeTokenizer>(std::move(tokenizer).value());
    vocab_ = tokenizer_->vocab_size();
  }
  // Logits that make `token` the greedy choice with probability ~1 (or uniform for -1).
  std::vector<float> Peaked(int32_t token) const {
    std::vector<float> logits(vocab_, 0.0f);
    if (token >= 0) logits[token] = 50.0f;
    return logits;
  }
  int32_t IdOfText(const std::string& text) const {
    for (int32_t id = 4; id < vocab_; ++id) {
      if (tokenizer_->TokenText(id) == text) return id;
    }
    return -1;
  }
  std::unique_ptr<BpeTokenizer> tokenizer_;
  int vocab_ = 0;
};

TEST_F(GenerationTest, ConfidenceRuleStopsAfterThreeLowConfidenceTokens) {
  ModelConfig config;
  config.vocab_size = vocab_;
  DecodeState state(config);
  StopOptions stop;  // threshold 0.15, run 3
  stop.max_new_tokens = 100;
  stop.stop_on_eos = false;  // uniform sampling may draw <eos>
  Generation generation(*tokenizer_, SamplingOptions{}, stop);
  const auto uniform = Peaked(-1);  // top probability 1/V < 0.15
  const auto sure = Peaked(IdOfText("a"));
  // Two low, one sure (resets the run), then three low: stops on the sixth token.
  const std::vector<const std::vector<float>*> sequence = {&uniform, &uniform, &sure, &uniform, &uniform, &uniform};
  for (size_t i = 0; i < sequence.size(); ++i) {
    const Generation::Step step = generation.Next(sequence[i]->data(), vocab_, state);
    EXPECT_EQ(step.finish, i + 1 < sequence.size() ? FinishReason::kNone : FinishReason::kLowConfidence) << i;
  }
  EXPECT_EQ(generation.generated(), 6);
  EXPECT_EQ(state.sampled, 6u);
}

TEST_F(GenerationTest, ThresholdZeroDisablesConfidenceRule) {
  ModelConfig config;
  config.vocab_size = vocab_;
  DecodeState state(config);
  StopOptions stop;
  stop.max_new_tokens = 5;
  stop.confidence_threshold = 0.0f;
  stop.stop_on_eos = false;
  Generation generation(*tokenizer_, SamplingOptions{}, stop);
  const auto uniform = Peaked(-1);
  FinishReason last = FinishReason::kNone;
  for (int i = 0; i < 5; ++i) last = generation.Next(uniform.data(), vocab_, state).finish;
  EXPECT_EQ(last, FinishReason::kLength);
}

TEST_F(GenerationTest, EosAndStopStringEndGeneration) {
  ModelConfig config;
  config.vocab_size = vocab_;
  SamplingOptions greedy;
  greedy.temperature = 0.0f;
  {
    DecodeState state(config);
    Generation generation(*tokenizer_, greedy, StopOptions{});
    const auto eos = Peaked(kEosId);
    EXPECT_EQ(generation.Next(eos.data(), vocab_, state).finish, FinishReason::kEos);
    EXPECT_EQ(state.pending, kEosId);
  }
  {
    const int32_t a = IdOfText("a"), b = IdOfText("b");
    ASSERT_GE(a, 0);
    ASSERT_GE(b, 0);
    DecodeState state(config);
    StopOptions stop;
    stop.stop = {"ab"};
    Generation generation(*tokenizer_, greedy, stop);
    const auto pa = Peaked(a), pb = Peaked(b);
    EXPECT_EQ(generation.Next(pa.data(), vocab_, state).text, "");  // could start "ab"
    const Generation::Step step = generation.Next(pb.data(), vocab_, state);
    EXPECT_EQ(step.finish, FinishReason::kStopString);
    EXPECT_EQ(step.text, "");
    EXPECT_EQ(generation.text(), "");
  }
}

TEST(PrefillTokensTest, OutOfRangeGivesEveryNumber) {
  ModelConfig config;  // context 128
  DecodeState state(config);
  StopOptions stop;
  stop.max_new_tokens = 100;
  const std::vector<int32_t> prompt(40, 5);
  const auto r = Generation::PrefillTokens(state, prompt, stop, config.context);
  ASSERT_EQ(r.status().code(), StatusCode::kOutOfRange);
  EXPECT_EQ(r.status().message(), "prompt_tokens + max_new_tokens = 40 + 100 = 140 exceeds context = 128");
  state.cache.length = 20;
  state.pending = 9;
  stop.max_new_tokens = 10;
  const auto ok = Generation::PrefillTokens(state, prompt, stop, config.context);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->size(), 41u);
  EXPECT_EQ(ok->front(), 9);
  EXPECT_FALSE(Generation::PrefillTokens(DecodeState(config), {}, stop, config.context).ok());
}

// Two requests on one session (the second with an empty prompt) give the same tokens as one
// request of their combined length with the same seed; the second reuses the cache.
TEST_F(GenerationTest, ContinuedSessionEqualsOneLongRequest) {
  ModelConfig config;
  config.vocab_size = vocab_;
  config.dim = 32;
  config.n_layers = 2;
  config.n_heads = 2;
  config.ffn_hidden = 48;
  config.context = 64;
  ASSERT_TRUE(config.Validate().ok());
  std::vector<float> params(static_cast<size_t>(ParameterCount(config)));
  InitParameters(config, 11, 0.5f, params.data());
  ThreadPool pool(2);
  Decoder decoder(config);
  SamplingOptions sampling;
  sampling.temperature = 1.0f;
  sampling.top_k = 0;
  sampling.top_p = 1.0f;
  sampling.seed = 42;
  StopOptions stop;
  stop.stop_on_eos = false;
  stop.confidence_threshold = 0.0f;
  const std::vector<int32_t> prompt = tokenizer_->Encode("the cat sat");

  std::vector<int32_t> split_tokens;
  auto record = [&](std::vector<int32_t>& out) {
    return [&out](const Generation::Step& s) {
      out.push_back(s.token);
      return true;
    };
  };
  DecodeState split(config);
  stop.max_new_tokens = 7;
  auto first = RunGeneration(decoder, params.data(), config, *tokenizer_, split, prompt, sampling, stop,
                             record(split_tokens), pool);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_EQ(first->cached_tokens, 0);
  EXPECT_EQ(first->prompt_tokens, static_cast<int64_t>(prompt.size()));
  stop.max_new_tokens = 9;
  auto second =
      RunGeneration(decoder, params.data(), config, *tokenizer_, split, {}, sampling, stop, record(split_tokens), pool);
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  EXPECT_EQ(second->cached_tokens, static_cast<int64_t>(prompt.size()) + 6);
  EXPECT_EQ(second->prompt_tokens, 1);

  std::vector<int32_t> long_tokens;
  DecodeState whole(config);
  stop.max_new_tokens = 16;
  auto one = RunGeneration(decoder, params.data(), config, *tokenizer_, whole, prompt, sampling, stop,
                           record(long_tokens), pool);
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(split_tokens, long_tokens);
  EXPECT_EQ(first->text + second->text, one->text);
  // Not a constant sequence: the test would pass trivially otherwise.
  EXPECT_NE(std::count(long_tokens.begin(), long_tokens.end(), long_tokens[0]), 16);
}

TEST_F(GenerationTest, CallbackFalseCancels) {
  ModelConfig config;
  config.vocab_size = vocab_;
  config.dim = 16;
  config.n_layers = 1;
  config.n_heads = 2;
  config.ffn_hidden = 32;
  config.context = 32;
  std::vector<float> params(static_cast<size_t>(ParameterCount(config)));
  InitParameters(config, 3, 0.5f, params.data());
  ThreadPool pool(1);
  Decoder decoder(config);
  DecodeState state(config);
  StopOptions stop;
  stop.confidence_threshold = 0.0f;
  stop.stop_on_eos = false;
  stop.max_new_tokens = 10;
  int calls = 0;
  auto r = RunGeneration(
      decoder, params.data(), config, *tokenizer_, state, tokenizer_->Encode("the"), SamplingOptions{}, stop,
      [&](const Generation::Step&) { return ++calls < 3; }, pool);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->finish, FinishReason::kCancelled);
  EXPECT_EQ(r->generated, 3);
  EXPECT_EQ(state.pending >= 0, true);
}

}  // namespace
}  // namespace lanlm::engine
