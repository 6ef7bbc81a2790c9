# iotca-edge stopped with SIGTERM while 1,000 sessions of iotca-bench
# (tools/bench, --publish-ms) publish QoS 1 messages: the edge exits 0
# within seconds, closes every session (DISCONNECTED server_shutdown at
# iotca-tap), and every message it acknowledged reaches the NNG consumer;
# the same with the consumer stalled is an expected failure for now (see
# test_edge_load.py). About 40 s on a 2-core machine.
iotca_add_script_test(NAME e2e_edge_load
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/test_edge_load.py
  TIMEOUT 240 LABELS e2e
  ENVIRONMENT "IOTCA_BUILD_DIR=${CMAKE_BINARY_DIR}")
