# IOTCA_PROBE_LISTEN on the registry and the association service.
iotca_add_script_test(NAME e2e_service_probes
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/test_service_probes.py
  TIMEOUT 120 LABELS e2e
  ENVIRONMENT "IOTCA_BUILD_DIR=${CMAKE_BINARY_DIR}")
