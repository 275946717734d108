// `lanlm tokenizer train` (learn a BPE tokenizer from a text file and save it) and
// `lanlm tokenize` (print the token ids of a text under a tokenizer file or a checkpoint's
// tokenizer). Engine only; the tokenizer itself is engine/tokenizer/tokenizer.h.
#include <chrono>
#include <cstdio>
#include <iostream>
#include <iterator>
#include <string>

#include "client/commands.h"
#include "client/offline_common.h"
#include "engine/cli/flags.h"
#include "engine/io/checkpoint.h"
#include "engine/data/corpus.h"
#include "engine/model/model_config.h"
#include "engine/tokenizer/tokenizer.h"

namespace lanlm::client {
namespace {

using engine::BpeTokenizer;

constexpr size_t kMaxStdinBytes = size_t{2} << 30;

StatusOr<BpeTokenizer> LoadTokenizer(const std::string& tokenizer_path, const std::string& checkpoint_path) {
  if (!tokenizer_path.empty()) return BpeTokenizer::LoadFromFile(tokenizer_path);
  LANLM_ASSIGN_OR_RETURN(engine::Checkpoint checkpoint, engine::LoadCheckpoint(checkpoint_path));
  if (checkpoint.tokenizer.empty()) return DataLossError("checkpoint " + checkpoint_path + " holds no tokenizer");
  auto tokenizer = BpeTokenizer::Deserialize(checkpoint.tokenizer);
  if (!tokenizer.ok()) {
    return DataLossError("checkpoint " + checkpoint_path + ": " + tokenizer.status().message());
  }
  return tokenizer;
}

StatusOr<std::string> ReadStdin() {
  std::string text;
  char buf[1 << 16];
  while (std::cin.read(buf, sizeof(buf)) || std::cin.gcount() > 0) {
    text.append(buf, static_cast<size_t>(std::cin.gcount()));
    if (text.size() > kMaxStdinBytes) {
      return InvalidArgumentError("standard input is longer than the limit of " + std::to_string(kMaxStdinBytes) +
                                  " bytes");
    }
  }
  if (std::cin.bad()) return UnavailableError("cannot read standard input");
  return text;
}

}  // namespace

int RunTokenizerTrain(const Args& args) {
  const std::string command = "tokenizer train";
  std::string corpus, out;
  int vocab_size = 4096;
  FlagSet flags("lanlm tokenizer train --corpus FILE --out FILE [flags]");
  flags.String("corpus", &corpus, "UTF-8 text file to learn from (required)");
  flags.Int("vocab-size", &vocab_size, "tokens in the vocabulary, special tokens and characters included", 6,
            engine::kMaxVocab);
  flags.String("out", &out, "tokenizer file to write (required; replaced atomically)");
  if (const int code = ParseFlagsOrExit(flags, args, command); code >= 0) return code;
  if (corpus.empty()) return Fail(command, "--corpus is required (lanlm tokenizer train --help)", kExitUsage);
  if (out.empty()) return Fail(command, "--out is required (lanlm tokenizer train --help)", kExitUsage);

  auto text = engine::ReadTextFile(corpus);
  if (!text.ok()) return Fail(command, text.status());
  const auto start = std::chrono::steady_clock::now();
  auto tokenizer = BpeTokenizer::Train(*text, vocab_size);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (!tokenizer.ok()) {
    // The only failure is a --vocab-size this corpus cannot support.
    return Fail(command, "--vocab-size: " + tokenizer.status().message(), kExitUsage);
  }
  if (Status s = tokenizer->SaveToFile(out); !s.ok()) return Fail(command, s);
  std::printf("vocab_size=%d merges=%d corpus_bytes=%zu train_time=%ss hash=%s out=%s\n", tokenizer->vocab_size(),
              tokenizer->merge_count(), text->size(), FormatFixed(seconds, 3).c_str(), Hex16(tokenizer->Hash()).c_str(),
              out.c_str());
  if (tokenizer->vocab_size() < vocab_size) {
    std::printf("note: stopped at %d tokens: no pair of adjacent symbols occurs twice any more\n",
                tokenizer->vocab_size());
  }
  return kExitOk;
}

int RunTokenize(const Args& args) {
  const std::string command = "tokenize";
  std::string checkpoint, tokenizer_path, text_path;
  FlagSet flags("lanlm tokenize (--checkpoint FILE | --tokenizer FILE) [--text FILE]");
  flags.String("checkpoint", &checkpoint, "checkpoint whose tokenizer to use");
  flags.String("tokenizer", &tokenizer_path, "tokenizer file (lanlm tokenizer train) to use instead of --checkpoint");
  flags.String("text", &text_path, "text file to tokenize (default: standard input)");
  if (const int code = ParseFlagsOrExit(flags, args, command); code >= 0) return code;
  if (checkpoint.empty() == tokenizer_path.empty()) {
    return Fail(command, "give exactly one of --checkpoint and --tokenizer (lanlm tokenize --help)", kExitUsage);
  }
  auto tokenizer = LoadTokenizer(tokenizer_path, checkpoint);
  if (!tokenizer.ok()) return Fail(command, tokenizer.status());
  auto text = text_path.empty() ? ReadStdin() : engine::ReadTextFile(text_path);
  if (!text.ok()) return Fail(command, text.status());
  const std::vector<int32_t> ids = tokenizer->Encode(*text);
  std::string line;
  line.reserve(ids.size() * 5 + 1);
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i > 0) line += ' ';
    line += std::to_string(ids[i]);
  }
  line += '\n';
  if (std::fwrite(line.data(), 1, line.size(), stdout) != line.size() || std::fflush(stdout) != 0) {
    return Fail(command, "cannot write the token ids to standard output");
  }
  return kExitOk;
}

}  // namespace lanlm::client
