# iotca-association end to end: Python grpcio stubs generated from proto/,
# a throwaway etcd, the registry and the association service on loopback
# ports picked at run time (tests/e2e/iotca_fixture.py: Suite, Association).
# One test per rule of association.proto and of DESIGN.md's CSV rules.
iotca_add_script_test(NAME e2e_association
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/test_association.py
  TIMEOUT 300 LABELS e2e
  ENVIRONMENT "IOTCA_BUILD_DIR=${CMAKE_BINARY_DIR}")
# All or nothing under a crash before/after the commit (IOTCA_FAULT_ABORT,
# compiled into test builds), under SIGKILL at several moments of an
# upload, and under concurrent overlapping uploads on two replicas.
iotca_add_script_test(NAME e2e_association_faults
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/test_association_faults.py
  TIMEOUT 600 LABELS e2e
  ENVIRONMENT "IOTCA_BUILD_DIR=${CMAKE_BINARY_DIR}")
