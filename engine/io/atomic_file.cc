// Atomic file replacement with POSIX open/write/fsync/rename.
#include "engine/io/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

namespace lanlm::engine {
namespace {

Status SysError(const std::string& what, const std::string& path) {
  return UnavailableError(what + " " + path + ": " + std::strerror(errno));
}

std::string DirectoryOf(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

Status WriteAll(int fd, std::string_view data, const std::string& path) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return SysError("cannot write", path);
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return OkStatus();
}

Status WriteAndSync(const std::string& temp, const std::vector<std::string_view>& pieces) {
  const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return SysError("cannot create", temp);
  Status status;
  for (std::string_view piece : pieces) {
    status = WriteAll(fd, piece, temp);
    if (!status.ok()) break;
  }
  if (status.ok() && ::fsync(fd) != 0) status = SysError("cannot fsync", temp);
  if (::close(fd) != 0 && status.ok()) status = SysError("cannot close", temp);
  return status;
}

}  // namespace

std::string TempPathFor(const std::string& path) { return path + ".tmp"; }

Status PrepareWritableDir(const std::string& dir, const std::string& flag) {
  auto refuse = [&](const std::string& why) {
    return FailedPreconditionError(flag + " " + dir + ": " + why + "; no checkpoint could be written there");
  };
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (!std::filesystem::is_directory(dir)) {
    return refuse(ec ? "cannot create the folder (" + ec.message() + ")" : "exists and is not a folder");
  }
  // A probe of a few KiB: a full disk refuses it, as it would refuse a checkpoint.
  const std::string probe = (std::filesystem::path(dir) / ".lanlm-write-probe").string();
  const std::string block(4096, '\0');
  Status written = WriteAndSync(probe, {block});
  ::unlink(probe.c_str());
  if (!written.ok()) return refuse("not writable (" + written.message() + ")");
  return OkStatus();
}

Status WriteFileAtomically(const std::string& path, const std::vector<std::string_view>& pieces,
                           const std::function<void(const std::string&)>& before_rename) {
  if (path.empty()) return InvalidArgumentError("empty output path");
  const std::string temp = TempPathFor(path);
  Status status = WriteAndSync(temp, pieces);
  if (!status.ok()) {
    ::unlink(temp.c_str());
    return status;
  }
  if (before_rename) before_rename(temp);
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    status = SysError("cannot rename " + temp + " to", path);
    ::unlink(temp.c_str());
    return status;
  }
  // The rename is durable only once the folder entry is on disk.
  const std::string dir = DirectoryOf(path);
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return SysError("cannot open folder", dir);
  if (::fsync(dfd) != 0) status = SysError("cannot fsync folder", dir);
  ::close(dfd);
  return status;
}

}  // namespace lanlm::engine
