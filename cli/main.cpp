// ingressctl: a read-only look at Sluice's kernel datapath through the maps ingress-agent pins;
// `deny add|del` is the one write (an emergency block, see cli/xdp.hpp).
//
// Exit codes: 0 success, 1 runtime error (maps missing, permissions, kernel), 2 usage error.
// With -o json, stdout carries exactly one JSON document: the result, or {"error": "..."}.
#include <CLI/CLI.hpp>

#include <boost/json.hpp>

#include <cstring>
#include <iostream>
#include <string>
#include <string_view>

#include "admin_client.hpp"
#include "bpf/abi.hpp"
#include "flows.hpp"
#include "l4.hpp"
#include "render.hpp"
#include "status.hpp"
#include "xdp.hpp"

namespace {

using sluice::cli::Output;

constexpr int kExitRuntime = 1;
constexpr int kExitUsage = 2;

// Usage errors happen before CLI11 has stored -o, so find it the way CLI11 will parse it.
bool jsonRequested(int argc, char** argv) {
  bool json = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--") {
      break;
    }
    if ((arg == "-o" || arg == "--output") && i + 1 < argc) {
      json = std::string_view(argv[i + 1]) == "json";
      ++i;
    } else if (arg == "-ojson" || arg == "--output=json") {
      json = true;
    } else if (arg.starts_with("-o") || arg.starts_with("--output=")) {
      json = false;
    }
  }
  return json;
}

int fail(Output output, int code, const std::string& message) {
  if (output == Output::kJson) {
    sluice::cli::printJson(std::cout, boost::json::object{{"error", message}});
  } else {
    std::cerr << "ingressctl: " << message << '\n';
  }
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  std::string pin_dir(sluice::bpf::kPinDir);
  std::string output_name = "table";
  std::string admin_text = "127.0.0.1:10254";

  CLI::App app{
      "Read-only view of Sluice's kernel datapath: the BPF programs and maps "
      "ingress-agent pins, and the flows it has spliced.",
      "ingressctl"};
  // At most one; "none" is reported after parsing, so an unknown word is called unexpected
  // (CLI11 checks requirements before extras and would only say a subcommand is required).
  app.require_subcommand(0, 1);
  app.fallthrough();  // global options are accepted after the subcommand too
  app.add_option("--pin-dir", pin_dir, "bpffs directory holding the agent's pinned maps")
      ->capture_default_str();
  app.add_option("-o,--output", output_name, "Output format: table or json")
      ->check(CLI::IsMember({"table", "json"}))
      ->capture_default_str();
  app.add_option("--admin", admin_text,
                 "Agent admin listener ADDR:PORT, used only to enrich output when reachable")
      ->check(CLI::Validator(
          [](std::string& text) {
            auto parsed = sluice::cli::parseAdminEndpoint(text);
            return parsed ? std::string() : parsed.error().message();
          },
          "ADDR:PORT"))
      ->capture_default_str();
  CLI::App* status =
      app.add_subcommand("status",
                         "Programs, attach points, pinned maps and fill, verdict counters, kernel "
                         "features and the splice strategy in use");
  CLI::App* flows = app.add_subcommand(
      "flows", "One row per spliced flow: addresses, strategy, bytes and packets each way, age");
  CLI::App* backends = app.add_subcommand(
      "backends", "XDP L4 fast path: TCP routes, their backends, Maglev table fill and flows");
  sluice::cli::XdpCommands xdp;  // xdp, deny list|add|del (cli/xdp.hpp)
  sluice::cli::addXdpCommands(app, xdp);

  const bool json_hint = jsonRequested(argc, argv);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success)) {
      return app.exit(e);  // --help
    }
    if (json_hint) {
      return fail(Output::kJson, kExitUsage, e.what());
    }
    app.exit(e);
    return kExitUsage;
  }

  const Output output = output_name == "json" ? Output::kJson : Output::kTable;
  if (xdp.parsed()) {
    return xdp.run(pin_dir, output, &fail);
  }
  if (backends->parsed()) {
    auto model = sluice::cli::collectBackends(pin_dir);
    if (!model) {
      return fail(output, kExitRuntime, model.error().message());
    }
    sluice::cli::renderBackends(*model, output, std::cout);
    std::cout.flush();
    return std::cout.good() ? 0 : kExitRuntime;
  }
  if (!status->parsed() && !flows->parsed()) {
    return fail(
        output, kExitUsage,
        "a subcommand is required: status, flows, backends, xdp or deny (run with --help for "
        "more)");
  }
  const auto admin = sluice::cli::parseAdminEndpoint(admin_text);
  if (!admin) {
    // the validator already refused it
    return fail(output, kExitUsage, "--admin " + admin.error().message());
  }

  if (status->parsed()) {
    auto model = sluice::cli::collectStatus(pin_dir, *admin);
    if (!model) {
      return fail(output, kExitRuntime, model.error().context());
    }
    sluice::cli::renderStatus(*model, output, std::cout);
  } else if (flows->parsed()) {
    auto model = sluice::cli::collectFlows(pin_dir, *admin);
    if (!model) {
      return fail(output, kExitRuntime, model.error().context());
    }
    sluice::cli::renderFlows(*model, output, std::cout, std::cerr);
  }
  std::cout.flush();
  return std::cout.good() ? 0 : kExitRuntime;
}
