#include "app/agent.hpp"
#include "app/agent_config.hpp"

int main(int argc, char** argv) {
  sluice::app::AgentConfig config;
  int exit_code = 0;
  if (!sluice::app::parseArgs(argc, argv, config, exit_code)) {
    return exit_code;
  }
  sluice::app::Agent agent(std::move(config));
  return agent.run();
}
