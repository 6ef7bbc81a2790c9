# lib/probe: the request parser (valid, every proper prefix, malformed,
# the path cap), the Prometheus text helpers byte for byte, and a running
# probe on 127.0.0.1:0 over real sockets: every path and status, readiness
# flip, HEAD, a request in pieces, oversized, a stalled client beside a
# served one, the connection cap, stop with a client connected, and curl.
iotca_add_test(NAME test_probe SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_probe.c LABELS unit)
