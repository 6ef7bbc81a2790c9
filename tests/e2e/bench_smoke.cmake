# iotca-bench (tools/bench) against a mosquitto the test starts with
# require_certificate true on a free loopback port: full and resumed TLS
# 1.3 and 1.2, held sessions, a device certificate of another CA, an
# untrusted server, the report's counts and the exit status. Counts only,
# no timings: it keeps the load generator of bench/edge_vs_mosquitto.py
# from rotting.
iotca_add_script_test(NAME e2e_bench_smoke
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/test_bench_smoke.py
          $<TARGET_FILE:iotca-bench>
  TIMEOUT 180 LABELS e2e)
# bench/tls_session_memory.sh (tools/bench/iotca-tls-memory) with 50
# connections: both TLS versions measured, the report's shape.
iotca_add_script_test(NAME bench_tls_memory_smoke
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/test_tls_memory_smoke.py
  TIMEOUT 120 LABELS e2e
  ENVIRONMENT "IOTCA_BUILD_DIR=${CMAKE_BINARY_DIR}")
