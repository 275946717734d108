// FlagSet parsing and help text.
#include "engine/cli/flags.h"

#include <cerrno>
#include <cstdlib>
#include <memory>
#include <sstream>

namespace lanlm {
namespace {

std::string FormatDouble(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

Status BadValue(const std::string& name, const std::string& value, const std::string& expected) {
  return InvalidArgumentError("--" + name + "=" + (value.empty() ? "''" : value) + ": expected " + expected);
}

}  // namespace

void FlagSet::String(const std::string& name, std::string* target, const std::string& help) {
  flags_.push_back({name, help, target->empty() ? "\"\"" : *target, false, [target](const std::string& v) {
                      *target = v;
                      return OkStatus();
                    }});
}

namespace {

// Parses an integer flag value in [min, max] into *target (int or int64_t).
template <typename T>
std::function<Status(const std::string&)> IntSetter(const std::string& name, T* target, int64_t min, int64_t max) {
  return [=](const std::string& v) {
    errno = 0;
    char* end = nullptr;
    long long x = std::strtoll(v.c_str(), &end, 10);
    if (v.empty() || *end != '\0' || errno == ERANGE || x < min || x > max) {
      return BadValue(name, v, "an integer in [" + std::to_string(min) + ", " + std::to_string(max) + "]");
    }
    *target = static_cast<T>(x);
    return OkStatus();
  };
}

}  // namespace

void FlagSet::Int(const std::string& name, int64_t* target, const std::string& help, int64_t min, int64_t max) {
  flags_.push_back({name, help, std::to_string(*target), false, IntSetter(name, target, min, max)});
}

void FlagSet::Int(const std::string& name, int* target, const std::string& help, int min, int max) {
  flags_.push_back({name, help, std::to_string(*target), false, IntSetter(name, target, min, max)});
}

void FlagSet::Uint64(const std::string& name, uint64_t* target, const std::string& help) {
  flags_.push_back({name, help, std::to_string(*target), false, [=](const std::string& v) {
                      errno = 0;
                      char* end = nullptr;
                      unsigned long long x = std::strtoull(v.c_str(), &end, 10);
                      if (v.empty() || v[0] == '-' || *end != '\0' || errno == ERANGE) {
                        return BadValue(name, v, "a non-negative 64-bit integer");
                      }
                      *target = x;
                      return OkStatus();
                    }});
}

void FlagSet::Double(const std::string& name, double* target, const std::string& help, double min, double max) {
  flags_.push_back({name, help, FormatDouble(*target), false, [=](const std::string& v) {
                      errno = 0;
                      char* end = nullptr;
                      double x = std::strtod(v.c_str(), &end);
                      // x != x is folded away by -ffast-math, so NaN is caught by the range test
                      // written to fail for NaN.
                      if (v.empty() || *end != '\0' || errno == ERANGE || !(x >= min && x <= max) ||
                          v.find_first_of("nN") != std::string::npos) {
                        return BadValue(name, v, "a number in [" + FormatDouble(min) + ", " + FormatDouble(max) + "]");
                      }
                      *target = x;
                      return OkStatus();
                    }});
}

void FlagSet::Float(const std::string& name, float* target, const std::string& help, double min, double max) {
  auto holder = std::make_shared<double>(*target);
  Double(name, holder.get(), help, min, max);
  auto inner = flags_.back().set;
  flags_.back().set = [inner, holder, target](const std::string& v) {
    LANLM_RETURN_IF_ERROR(inner(v));
    *target = static_cast<float>(*holder);
    return OkStatus();
  };
}

void FlagSet::Bool(const std::string& name, bool* target, const std::string& help) {
  flags_.push_back({name, help, *target ? "true" : "false", true, [=](const std::string& v) {
                      if (v == "true" || v == "1" || v == "yes") {
                        *target = true;
                      } else if (v == "false" || v == "0" || v == "no") {
                        *target = false;
                      } else {
                        return BadValue(name, v, "true or false");
                      }
                      return OkStatus();
                    }});
}

FlagSet::Flag* FlagSet::Find(const std::string& name) {
  for (auto& f : flags_) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

bool FlagSet::WasSet(const std::string& name) const {
  for (const auto& f : flags_) {
    if (f.name == name) return f.was_set;
  }
  return false;
}

GivenFlags FlagSet::Given() const {
  GivenFlags given;
  for (const auto& f : flags_) {
    if (f.was_set) given.insert(f.name);
  }
  return given;
}

Status FlagSet::Parse(const std::vector<std::string>& args) {
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--help" || arg == "-h") {
      help_requested_ = true;
      return OkStatus();
    }
    if (arg.size() < 3 || arg.compare(0, 2, "--") != 0) {
      return InvalidArgumentError("unexpected argument '" + arg + "' (flags look like --name value; see --help)");
    }
    std::string name = arg.substr(2);
    std::string value;
    bool has_value = false;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_value = true;
    }
    Flag* flag = Find(name);
    if (flag == nullptr) return InvalidArgumentError("unknown flag --" + name + " (see --help)");
    if (!has_value) {
      if (flag->is_bool) {
        value = "true";
      } else if (i + 1 < args.size()) {
        value = args[++i];
      } else {
        return InvalidArgumentError("--" + name + " needs a value");
      }
    }
    LANLM_RETURN_IF_ERROR(flag->set(value));
    flag->was_set = true;
  }
  return OkStatus();
}

std::string FlagSet::Help() const {
  std::ostringstream os;
  os << "usage: " << usage_ << "\n\nflags:\n";
  for (const auto& f : flags_) {
    os << "  --" << f.name << (f.is_bool ? "" : " VALUE") << "\n      " << f.help << " (default: " << f.default_text
       << ")\n";
  }
  os << "  --help\n      print this help and exit\n";
  return os.str();
}

}  // namespace lanlm
