// deploy/systemd units: `systemd-analyze verify` accepts the coordinator unit and a worker
// instance without a single complaint (it only warns, exit 0, about unknown keys, so the test
// also requires empty output), and the units keep the hardening and restart options
// deploy/LAN.md promises. Skips with a message when systemd-analyze is absent.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace lanlm {
namespace {

namespace fs = std::filesystem;
const fs::path kUnits = fs::path(LANLM_SOURCE_DIR) / "deploy" / "systemd";

std::string Read(const fs::path& path) {
  std::ifstream in(path);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// Runs a shell command; returns its exit code and fills its combined output.
int Shell(const std::string& command, std::string* output) {
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return -1;
  char buf[512];
  while (std::fgets(buf, sizeof(buf), pipe) != nullptr) *output += buf;
  const int status = pclose(pipe);
  return status < 0 ? -1 : WEXITSTATUS(status);
}

TEST(SystemdUnitsTest, VerifyPassesWithoutWarnings) {
  std::string where;
  if (Shell("command -v systemd-analyze", &where) != 0) GTEST_SKIP() << "systemd-analyze not installed";
  // A copy, so verify sees the template next to the instance name it resolves.
  const fs::path dir = fs::temp_directory_path() / ("lanlm-units-" + std::to_string(getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  for (const char* unit : {"lanlm-coordinator.service", "lanlm-worker@.service"}) {
    fs::copy_file(kUnits / unit, dir / unit);
  }
  std::string output;
  const int code = Shell("systemd-analyze verify --man=no " + (dir / "lanlm-coordinator.service").string() + " " +
                           (dir / "lanlm-worker@192.168.1.10.service").string(),
                       &output);
  fs::remove_all(dir);
  EXPECT_EQ(code, 0) << output;
  EXPECT_EQ(output, "");
}

TEST(SystemdUnitsTest, UnitsAreHardenedAndRestartOnFailure) {
  for (const char* unit : {"lanlm-coordinator.service", "lanlm-worker@.service"}) {
    const std::string text = Read(kUnits / unit);
    for (const char* line :
         {"DynamicUser=yes", "NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
          "Restart=on-failure", "CapabilityBoundingSet=\n", "LoadCredential=cluster-token:/etc/lanlm/cluster-token",
          "\"$$CREDENTIALS_DIRECTORY/cluster-token\"", "--log-format json",
          // TLS by default (issue 12): certificates from deploy/make-certs.sh as credentials
          "LoadCredential=tls-ca:/etc/lanlm/tls/ca.crt", "--tls-key \"$$CREDENTIALS_DIRECTORY/tls-key\""}) {
      EXPECT_NE(text.find(line), std::string::npos) << unit << " lacks " << line;
    }
  }
  const std::string coordinator = Read(kUnits / "lanlm-coordinator.service");
  EXPECT_NE(coordinator.find("StateDirectory=lanlm"), std::string::npos);
  EXPECT_NE(coordinator.find("--resume"), std::string::npos);  // a restart continues the run
}

}  // namespace
}  // namespace lanlm
