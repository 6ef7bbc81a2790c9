# scripts/demo.sh (the README's guided demo) end to end against a suite
# started here: it must complete and clean up.
iotca_add_script_test(NAME e2e_demo
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/test_demo.py
  TIMEOUT 300 LABELS e2e
  ENVIRONMENT "IOTCA_BUILD_DIR=${CMAKE_BINARY_DIR}")
