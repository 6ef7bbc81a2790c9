# The iotca command line driven as operators and tenants use it: the product
# page's flow through the binary, error cases, exit codes and --help.
iotca_add_script_test(NAME e2e_cli_registry
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/test_cli_registry.py
  TIMEOUT 180 LABELS e2e
  ENVIRONMENT "IOTCA_BUILD_DIR=${CMAKE_BINARY_DIR}")
