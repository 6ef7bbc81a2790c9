# iotca-registry end to end: Python grpcio stubs generated from proto/,
# certificates made with the openssl command, a throwaway etcd and the
# registry binary on loopback ports picked at run time (tests/e2e/
# iotca_fixture.py). IOTCA_BUILD_DIR tells the fixture where the binaries are.
iotca_add_script_test(NAME e2e_registry
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/test_registry.py
  TIMEOUT 300 LABELS e2e
  ENVIRONMENT "IOTCA_BUILD_DIR=${CMAKE_BINARY_DIR}")
# The 10-CA limit under 20 concurrent registrations on two replicas.
iotca_add_script_test(NAME e2e_registry_race
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/test_registry_race.py
  TIMEOUT 300 LABELS e2e
  ENVIRONMENT "IOTCA_BUILD_DIR=${CMAKE_BINARY_DIR}")
