# The edge while the association service, the registry or etcd is down:
# cached devices connect, others are refused cleanly, all recover.
iotca_add_script_test(NAME e2e_edge_faults
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/test_edge_faults.py
  TIMEOUT 300 LABELS e2e
  ENVIRONMENT "IOTCA_BUILD_DIR=${CMAKE_BINARY_DIR}")
