# tools/tap: iotca-tap as a child process on free loopback ports; the
# edge's side is test_tap itself on NNG (no Python NNG binding here):
# PUSH into `listen` and check the JSON lines, SUB to `send` and check the
# exact body bytes; exit statuses, signals, argument checks, --help.
iotca_add_test(NAME test_tap SOURCES ${CMAKE_CURRENT_LIST_DIR}/test_tap.c
  LIBS iotca_proto nng::nng PkgConfig::JANSSON TIMEOUT 120 LABELS integration)
add_dependencies(test_tap iotca-tap)
set_tests_properties(test_tap PROPERTIES ENVIRONMENT
  "IOTCA_TAP=$<TARGET_FILE:iotca-tap>")
