// Small helpers for end-to-end tests with real processes: spawn with output to a log file,
// wait with a timeout, signal, poll a log for a line, read the final fingerprint, pick a free
// loopback port. Linux only.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace lanlm::testing {

inline std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// Starts argv[0] with stdout and stderr appended to log_path. Returns the pid (-1 on failure).
inline pid_t Spawn(const std::vector<std::string>& argv, const std::string& log_path) {
  const pid_t pid = fork();
  if (pid != 0) return pid;
  const int fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (fd >= 0) {
    dup2(fd, 1);
    dup2(fd, 2);
    close(fd);
  }
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  execv(args[0], args.data());
  _exit(127);
}

// Waits for pid to exit; returns its exit code, 128 + signal, or -1 after killing it on timeout.
inline int WaitExit(pid_t pid, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    int status = 0;
    const pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (r < 0) return -1;
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

// SIGKILLs and reaps every process in pids (a test's teardown) and empties it.
inline void KillAll(std::vector<pid_t>& pids) {
  for (pid_t pid : pids) {
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
  }
  pids.clear();
}

// Polls a log file until it contains needle (true) or the timeout passes (false).
inline bool WaitForLog(const std::string& path, const std::string& needle, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (ReadAll(path).find(needle) != std::string::npos) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

// The 16 hex digits after the last "fingerprint=" in text ("" if none).
inline std::string LastFingerprint(const std::string& text) {
  const auto at = text.rfind("fingerprint=");
  if (at == std::string::npos || at + 12 + 16 > text.size()) return "";
  return text.substr(at + 12, 16);
}

// The port a coordinator started with --listen HOST:0 logs ("listening on port N"); 0 if
// the line does not appear within the timeout.
inline int LoggedPort(const std::string& log, std::chrono::milliseconds timeout) {
  const std::string key = "listening on port ";
  if (!WaitForLog(log, key, timeout)) return 0;
  const std::string text = ReadAll(log);
  return std::atoi(text.c_str() + text.find(key) + key.size());
}

// A loopback TCP port that was free a moment ago.
inline int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

}  // namespace lanlm::testing
