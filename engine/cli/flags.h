// FlagSet: the one command-line parser of every lanlm program (flags are parsed only in
// main.cc files and command entry points). `--name value` or `--name=value`; `--help` lists
// every flag with its default. Errors name the flag, the value and what was expected.
#pragma once

#include <cstdint>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "engine/base/status.h"

namespace lanlm {

// The names (without --) of the flags given on a command line; what rules that treat a given
// flag differently from a default (resume, --steps) read. Code that starts a run without a
// command line (tests, in-process clusters) lists the names itself.
using GivenFlags = std::set<std::string>;

class FlagSet {
 public:
  // usage: first line of --help, e.g. "lanlm train --corpus FILE [flags]".
  explicit FlagSet(std::string usage) : usage_(std::move(usage)) {}

  // Registers a flag bound to *target, whose current value is the default shown in --help.
  void String(const std::string& name, std::string* target, const std::string& help);
  void Int(const std::string& name, int64_t* target, const std::string& help, int64_t min, int64_t max);
  void Int(const std::string& name, int* target, const std::string& help, int min, int max);
  void Uint64(const std::string& name, uint64_t* target, const std::string& help);
  void Double(const std::string& name, double* target, const std::string& help, double min, double max);
  void Float(const std::string& name, float* target, const std::string& help, double min, double max);
  // A boolean flag: `--name` alone sets true; `--name=false` sets false.
  void Bool(const std::string& name, bool* target, const std::string& help);

  // Parses args (without the program/command name). Sets help_requested() on --help.
  // INVALID_ARGUMENT naming the flag for unknown flags, missing or malformed values, values
  // out of range, and positional arguments.
  Status Parse(const std::vector<std::string>& args);
  bool help_requested() const { return help_requested_; }
  // True when the flag appeared on the command line.
  bool WasSet(const std::string& name) const;
  // Every flag that appeared on the command line.
  GivenFlags Given() const;
  std::string Help() const;

 private:
  struct Flag {
    std::string name;
    std::string help;
    std::string default_text;
    bool is_bool = false;
    std::function<Status(const std::string&)> set;
    bool was_set = false;
  };
  Flag* Find(const std::string& name);
  std::string usage_;
  std::vector<Flag> flags_;
  bool help_requested_ = false;
};

}  // namespace lanlm
