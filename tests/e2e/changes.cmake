# The change feeds the MQTT edge polls (Registry.ListCaChanges,
# Association.ListDeviceChanges) end to end: Python grpcio stubs generated
# from proto/, a throwaway etcd, the registry and two association replicas
# on loopback ports picked at run time (tests/e2e/iotca_fixture.py: Suite).
iotca_add_script_test(NAME e2e_changes
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/test_changes.py
  TIMEOUT 300 LABELS e2e
  ENVIRONMENT "IOTCA_BUILD_DIR=${CMAKE_BINARY_DIR}")
